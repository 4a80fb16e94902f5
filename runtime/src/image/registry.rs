//! `strata image push REF docker://HOST[:PORT]/NAME[:TAG]`: the image to an OCI distribution
//! registry.
//!
//! Transport (pull and push alike, and the token service): HTTPS first, its certificate
//! verified against the system's CA store (`SSL_CERT_FILE` / `SSL_CERT_DIR` when set, as
//! OpenSSL reads them). A certificate that does not verify is an error, never a reason to
//! fall back. Plain HTTP is used only when the registry's port does not speak TLS at all, and
//! then only for a registry on this machine (localhost, 127.0.0.0/8, ::1) or with
//! `--insecure`.
//!
//! First `GET /v2/` (an unreachable registry is named as such). For each layer blob and the
//! config: `HEAD /v2/NAME/blobs/DIGEST` (present: skipped); else, when another repository of
//! the same registry is known to hold it (strata pushed it there or pulled it from there:
//! `ROOT/registries.json`), a cross-repository mount `POST /v2/NAME/blobs/uploads/?mount=
//! DIGEST&from=REPO`; else (or when the registry declines the mount) a monolithic upload,
//! `POST /v2/NAME/blobs/uploads/` then `PUT <Location>?digest=DIGEST` with the blob. Then
//! `PUT /v2/NAME/manifests/TAG` (TAG: `latest` unless given) with the manifest bytes as
//! stored (so its digest is kept) and its media type as Content-Type.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;

use super::blobs::Blobs;
use super::records::Image;
use super::reference;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::store::Store;

/// `docker://HOST[:PORT]/NAME[:TAG|@DIGEST]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    pub host: String,
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl std::fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "docker://{}/{}", self.host, self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl RegistryRef {
    /// True for a registry on this machine (localhost, 127.0.0.0/8, ::1).
    pub fn is_loopback(&self) -> bool {
        host_is_loopback(&self.host)
    }
}

/// True for `HOST[:PORT]` naming this machine (localhost, 127.0.0.0/8, ::1).
pub fn host_is_loopback(host_port: &str) -> bool {
    let h = host_port
        .rsplit_once(':')
        .filter(|(h, port)| !h.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(host_port);
    h == "localhost"
        || h == "[::1]"
        || h.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The CA certificates HTTPS trusts: the system store as rustls-native-certs finds it
/// (`SSL_CERT_FILE`, `SSL_CERT_DIR`, else the distribution's bundle), read once per process;
/// with why none were found when the store is empty.
fn trusted_roots() -> &'static (Vec<ureq::tls::Certificate<'static>>, Option<String>) {
    static ROOTS: OnceLock<(Vec<ureq::tls::Certificate<'static>>, Option<String>)> =
        OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let certs: Vec<_> = found
            .certs
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        let why = certs.is_empty().then(|| {
            if found.errors.is_empty() {
                "no CA certificates found (SSL_CERT_FILE, SSL_CERT_DIR, /etc/ssl/certs)".to_string()
            } else {
                let errs: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                format!("no CA certificates loaded: {}", errs.join("; "))
            }
        });
        (certs, why)
    })
}

/// How an HTTPS attempt failed.
enum TlsFailure {
    /// The port answered, but not with TLS (a plain HTTP server).
    NotTls,
    /// The certificate did not verify (or the handshake failed otherwise).
    Refused(String),
    /// No connection (refused, unresolved, timed out...).
    Unreachable(String),
}

/// The rustls error in `e` (ureq reports handshake errors as I/O errors wrapping it).
fn rustls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

fn classify(e: &ureq::Error) -> TlsFailure {
    match rustls_error(e) {
        Some(rustls::Error::InvalidMessage(_)) => TlsFailure::NotTls,
        Some(rustls::Error::InvalidCertificate(c)) => {
            let reason = match c {
                rustls::CertificateError::UnknownIssuer => {
                    "its certificate is not signed by a trusted CA".to_string()
                }
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. } => {
                    "its certificate is not valid for this host name".to_string()
                }
                rustls::CertificateError::Expired
                | rustls::CertificateError::ExpiredContext { .. } => {
                    "its certificate has expired".to_string()
                }
                other => format!("its certificate is refused ({other:?})"),
            };
            let hint = match &trusted_roots().1 {
                Some(why) => format!(" ({why})"),
                None => String::new(),
            };
            TlsFailure::Refused(format!(
                "TLS: {reason}: trust its CA in the system store or through SSL_CERT_FILE{hint}"
            ))
        }
        Some(other) => TlsFailure::Refused(format!("TLS: {other}")),
        None => TlsFailure::Unreachable(e.to_string()),
    }
}

/// Parses a `docker://` destination; `None` when `s` is not one.
pub fn parse_dest(s: &str) -> Option<Result<RegistryRef>> {
    let rest = s.strip_prefix("docker://")?;
    let parsed = (|| {
        let (host, path) = rest.split_once('/').ok_or_else(|| {
            Error::Usage(format!("{s}: expected docker://HOST[:PORT]/NAME[:TAG]"))
        })?;
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        {
            return Err(Error::Usage(format!("{s}: bad registry host {host:?}")));
        }
        let (path, digest) = match path.split_once('@') {
            Some((p, d)) => (
                p,
                Some(Digest::parse(d).ok_or_else(|| {
                    Error::Usage(format!("{s}: {d:?} is not a sha256:<64 hex> digest"))
                })?),
            ),
            None => (path, None),
        };
        let (name, tag) = reference::split_tag(path);
        reference::check_name(name)?;
        if let Some(t) = tag {
            reference::check_tag(t)?;
        }
        Ok(RegistryRef {
            host: host.to_string(),
            name: name.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    })();
    Some(parsed)
}

/// What a push to a registry did.
#[derive(Clone, Debug, Serialize)]
pub struct RegistryPush {
    pub dest: String,
    pub manifest: Digest,
    pub blobs_uploaded: usize,
    /// Blobs mounted from another repository of the registry (not uploaded again).
    pub blobs_mounted: usize,
    pub blobs_present: usize,
    pub bytes_uploaded: u64,
}

pub(crate) struct Client {
    pub(crate) agent: ureq::Agent,
    host: String,
    /// `https`, or `http` for a registry on this machine (or `--insecure`) that does not
    /// speak TLS.
    scheme: &'static str,
    insecure: bool,
    pub(crate) base: String,
    dest: String,
    /// The `Authorization` value that last worked (a bearer token or basic credentials).
    auth: std::cell::RefCell<Option<String>>,
    /// docker config.json credentials for the host (base64 `user:password`).
    basic: Option<String>,
}

/// A request, given the `Authorization` header value to send (if any).
pub(crate) type Build<'a> = &'a dyn Fn(Option<&str>) -> std::result::Result<Resp, ureq::Error>;

pub(crate) type Resp = ureq::http::Response<ureq::Body>;

impl Client {
    /// A client of repository `r.name` at `r.host` (`shown` names it in errors), after
    /// `GET /v2/` said the registry speaks the distribution API (a 401 there only says that
    /// requests will need authentication). HTTPS unless the port does not speak TLS and the
    /// registry is on this machine or `insecure` (see the module's documentation).
    pub(crate) fn connect(r: &RegistryRef, shown: String, insecure: bool) -> Result<Client> {
        let proxy = if r.is_loopback() {
            None // As Go's ProxyFromEnvironment: this machine is never reached through a proxy.
        } else {
            ureq::Proxy::try_from_env()
        };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::new_with_certs(&trusted_roots().0))
            .build();
        let config = ureq::Agent::config_builder()
            .proxy(proxy)
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_per_read(Some(Duration::from_secs(300)))
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .build();
        let mut c = Client {
            agent: config.new_agent(),
            host: r.host.clone(),
            scheme: "https",
            insecure,
            base: String::new(),
            dest: shown,
            auth: std::cell::RefCell::new(None),
            basic: super::auth::docker_credentials(&r.host),
        };
        let https = format!("https://{}/v2/", c.host);
        let cannot = |url: &str, why: &str| {
            Error::Usage(format!(
                "{}: the registry {} ({url}) cannot be reached: {why}",
                c.dest, c.host
            ))
        };
        let resp = match c.agent.get(&https).call() {
            Ok(resp) => resp,
            Err(e) => match classify(&e) {
                TlsFailure::Unreachable(why) => return Err(cannot(&https, &why)),
                TlsFailure::Refused(why) => {
                    return Err(Error::Usage(format!(
                        "{}: the registry {} ({https}) is refused: {why}",
                        c.dest, c.host
                    )));
                }
                TlsFailure::NotTls if !(r.is_loopback() || insecure) => {
                    return Err(Error::Usage(format!(
                        "{}: the registry {} does not speak TLS (its answer to {https} is not a TLS handshake); pass --insecure to use plain HTTP to it (trusted networks only)",
                        c.dest, c.host
                    )));
                }
                TlsFailure::NotTls => {
                    c.scheme = "http";
                    let http = format!("http://{}/v2/", c.host);
                    c.agent
                        .get(&http)
                        .call()
                        .map_err(|e| cannot(&http, &e.to_string()))?
                }
            },
        };
        c.base = format!("{}://{}/v2/{}", c.scheme, c.host, r.name);
        match resp.status().as_u16() {
            200 | 401 => Ok(c),
            _ => {
                let url = format!("{}://{}/v2/", c.scheme, c.host);
                Err(c.status_err(&format!("registry {url}"), resp))
            }
        }
    }

    /// Sends the request `build` makes; when the registry answers 401 with a challenge,
    /// authenticates (a bearer token from the realm, or basic credentials) and sends it once
    /// more.
    pub(crate) fn call(&self, what: &str, build: Build<'_>) -> Result<Resp> {
        let auth = self.auth.borrow().clone();
        let resp = self.send(what, build(auth.as_deref()))?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        let Some(ch) = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(super::auth::parse_challenge)
        else {
            return Ok(resp);
        };
        let value = match ch.scheme.as_str() {
            "bearer" => format!("Bearer {}", self.token(what, &ch)?),
            "basic" => match &self.basic {
                Some(b) => format!("Basic {b}"),
                None => {
                    return Err(self.err(
                        what,
                        format!(
                            "the registry asks for a user and password, and no docker config.json has any for {}",
                            self.host
                        ),
                    ));
                }
            },
            other => {
                return Err(self.err(what, format!("unsupported authentication scheme {other:?}")));
            }
        };
        *self.auth.borrow_mut() = Some(value.clone());
        self.send(what, build(Some(&value)))
    }

    /// A token for `ch` from its realm.
    fn token(&self, what: &str, ch: &super::auth::Challenge) -> Result<String> {
        let url = super::auth::token_url(ch)
            .ok_or_else(|| self.err(what, "the registry's bearer challenge names no realm"))?;
        let plain = url.strip_prefix("http://").map(|rest| {
            let authority = rest.split(['/', '?']).next().unwrap_or(rest);
            authority.rsplit_once('@').map_or(authority, |(_, h)| h)
        });
        match plain {
            Some(host) if !(host_is_loopback(host) || self.insecure) => {
                return Err(self.err(
                    what,
                    format!(
                        "the token service {url} is plain HTTP on another machine (credentials would travel in clear): pass --insecure to allow it"
                    ),
                ));
            }
            None if !url.starts_with("https://") => {
                return Err(self.err(
                    what,
                    format!("the token service {url} is not an http(s) URL"),
                ));
            }
            _ => {}
        }
        let mut req = self.agent.get(&url);
        if let Some(b) = &self.basic {
            req = req.header("Authorization", &format!("Basic {b}"));
        }
        let mut resp = req
            .call()
            .map_err(|e| self.err(what, format!("token service {url}: {e}")))?;
        if resp.status().as_u16() != 200 {
            return Err(self.err(
                what,
                format!(
                    "token service {url} answered {}{}",
                    resp.status(),
                    if self.basic.is_none() {
                        " (anonymous: no docker config.json credentials for this registry)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| self.err(what, format!("token service {url}: {e}")))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| self.err(what, format!("token service {url}: not JSON: {e}")))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| self.err(what, format!("token service {url}: no token in its answer")))
    }

    pub(crate) fn err(&self, what: &str, reason: impl std::fmt::Display) -> Error {
        Error::Usage(format!("{}: {what}: {reason}", self.dest))
    }

    pub(crate) fn send(
        &self,
        what: &str,
        r: std::result::Result<Resp, ureq::Error>,
    ) -> Result<Resp> {
        r.map_err(|e| self.err(what, e))
    }

    /// The error for an unexpected status, with the registry's own error codes.
    pub(crate) fn status_err(&self, what: &str, mut resp: Resp) -> Error {
        let status = resp.status();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let errs = v.get("errors")?.as_array()?.clone();
                Some(
                    errs.iter()
                        .map(|e| {
                            format!(
                                "{}: {}",
                                e.get("code").and_then(|c| c.as_str()).unwrap_or("?"),
                                e.get("message").and_then(|c| c.as_str()).unwrap_or("")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })
            .unwrap_or_else(|| {
                body.lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect()
            });
        self.err(what, format!("the registry answered {status}: {detail}"))
    }

    fn url(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}://{}{location}", self.scheme, self.host)
        } else {
            format!("{}/{location}", self.base)
        }
    }

    fn has_blob(&self, d: &Digest) -> Result<bool> {
        let what = format!("blob {d}");
        let url = format!("{}/blobs/{d}", self.base);
        let resp = self.call(&what, &|a| with_auth(self.agent.head(&url), a).call())?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_err(&what, resp)),
        }
    }

    /// Mounts `d` from repository `from` of the same registry (true), or uploads it (false).
    fn upload(&self, d: &Digest, blobs: &Blobs, from: Option<&str>) -> Result<(u64, bool)> {
        let what = format!("blob {d}");
        let url = match from {
            Some(repo) => format!("{}/blobs/uploads/?mount={d}&from={repo}", self.base),
            None => format!("{}/blobs/uploads/", self.base),
        };
        let resp = self.call(&what, &|a| with_auth(self.agent.post(&url), a).send_empty())?;
        if from.is_some() && resp.status().as_u16() == 201 {
            return Ok((0, true));
        }
        // 202: an upload session (also the answer of a registry that declines the mount).
        if resp.status().as_u16() != 202 {
            return Err(self.status_err(&what, resp));
        }
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.err(&what, "the upload answer has no Location"))?;
        let loc = self.url(loc);
        let sep = if loc.contains('?') { '&' } else { '?' };
        let url = format!("{loc}{sep}digest=sha256%3A{}", d.hex());
        let size = blobs.size(d)?;
        let resp = self.call(&what, &|a| {
            let f = blobs
                .open(d)
                .map_err(|e| ureq::Error::Io(std::io::Error::other(e.to_string())))?;
            with_auth(self.agent.put(&url), a)
                .header("Content-Type", "application/octet-stream")
                .send(f)
        })?;
        if resp.status().as_u16() != 201 {
            return Err(self.status_err(&what, resp));
        }
        Ok((size, false))
    }
}

/// `r` with an `Authorization` header when `auth` is given.
pub(crate) fn with_auth<B>(
    r: ureq::RequestBuilder<B>,
    auth: Option<&str>,
) -> ureq::RequestBuilder<B> {
    match auth {
        Some(a) => r.header("Authorization", a),
        None => r,
    }
}

/// Which repository of each registry strata knows to hold a blob (it pushed the blob there
/// or pulled it from there): `ROOT/registries.json`, host -> digest -> repository.
type Known = BTreeMap<String, BTreeMap<Digest, String>>;

fn known_path(store: &Store) -> std::path::PathBuf {
    store.root().join("registries.json")
}

pub(crate) fn known(store: &Store) -> Known {
    crate::store::read_json(&known_path(store)).unwrap_or_default()
}

/// Records that repository `repo` of `host` holds `digests`.
pub(crate) fn remember(store: &Store, host: &str, repo: &str, digests: &[Digest]) -> Result<()> {
    let mut k = known(store);
    let m = k.entry(host.to_string()).or_default();
    for d in digests {
        m.insert(*d, repo.to_string());
    }
    crate::store::write_json(&known_path(store), &k)
}

/// Pushes `img` to `dest` (tag: the destination's, else `latest`); plain HTTP to another
/// machine only when `insecure` (see the module's documentation).
pub fn push(
    store: &Store,
    img: &Image,
    dest: &RegistryRef,
    insecure: bool,
) -> Result<RegistryPush> {
    if dest.digest.is_some() {
        return Err(Error::Usage(format!(
            "{dest}: a push names a tag, not a digest"
        )));
    }
    let tag = dest
        .tag
        .clone()
        .unwrap_or_else(|| reference::DEFAULT_TAG.to_string());
    let shown = RegistryRef {
        tag: Some(tag.clone()),
        ..dest.clone()
    }
    .to_string();
    let c = Client::connect(dest, shown.clone(), insecure)?;
    let blobs = Blobs::of(store)?;
    let known = known(store);
    let sources = known.get(&dest.host);
    let mut report = RegistryPush {
        dest: shown,
        manifest: img.record.manifest,
        blobs_uploaded: 0,
        blobs_mounted: 0,
        blobs_present: 0,
        bytes_uploaded: 0,
    };
    let mut todo: Vec<Digest> = img.manifest.layers.iter().map(|l| l.digest).collect();
    todo.push(img.manifest.config.digest);
    let mut done = Vec::new();
    for d in todo {
        if done.contains(&d) {
            continue;
        }
        if c.has_blob(&d)? {
            report.blobs_present += 1;
        } else {
            let from = sources
                .and_then(|m| m.get(&d))
                .map(String::as_str)
                .filter(|r| *r != dest.name);
            let (n, mounted) = c.upload(&d, &blobs, from)?;
            if mounted {
                report.blobs_mounted += 1;
            } else {
                report.bytes_uploaded += n;
                report.blobs_uploaded += 1;
            }
        }
        done.push(d);
    }
    let mbytes = blobs.read(&img.record.manifest)?;
    let what = format!("manifest {}", img.record.manifest);
    let url = format!("{}/manifests/{tag}", c.base);
    let resp = c.call(&what, &|a| {
        with_auth(c.agent.put(&url), a)
            .header("Content-Type", img.manifest.media_type())
            .send(&mbytes[..])
    })?;
    if resp.status().as_u16() != 201 {
        return Err(c.status_err(&what, resp));
    }
    if let Some(got) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(Digest::parse)
        && got != img.record.manifest
    {
        return Err(c.err(&what, format!("the registry stored it as {got}")));
    }
    remember(store, &dest.host, &dest.name, &done)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        let r = parse_dest("docker://127.0.0.1:5000/team/app:v2")
            .unwrap()
            .unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.name, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v2"));
        let r = parse_dest("docker://localhost/app").unwrap().unwrap();
        assert_eq!(r.tag, None);
        assert!(parse_dest("/some/dir").is_none());
        assert!(parse_dest("docker://host").unwrap().is_err());
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.8.9.1:443",
            "[::1]:5000",
        ] {
            assert!(host_is_loopback(h), "{h}");
        }
        for h in [
            "registry.example",
            "10.0.0.1:5000",
            "localhost.example:80",
            "[::2]:5000",
        ] {
            assert!(!host_is_loopback(h), "{h}");
        }
    }
}

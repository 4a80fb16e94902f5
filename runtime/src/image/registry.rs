//! `strata image push REF docker://HOST:PORT/NAME[:TAG]`: the image to an OCI distribution
//! registry over plain HTTP (a registry on this machine or a trusted network; TLS is not
//! built in).
//!
//! For each layer blob and the config: `HEAD /v2/NAME/blobs/DIGEST` (present: skipped), else a
//! monolithic upload, `POST /v2/NAME/blobs/uploads/` then `PUT <Location>?digest=DIGEST` with
//! the blob. Then `PUT /v2/NAME/manifests/TAG` with the manifest bytes as stored (so its
//! digest is kept) and its media type as Content-Type.

use std::time::Duration;

use serde::Serialize;

use super::blobs::Blobs;
use super::records::Image;
use super::reference;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::store::Store;

/// `docker://HOST[:PORT]/NAME[:TAG]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    pub host: String,
    pub name: String,
    pub tag: Option<String>,
}

impl std::fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "docker://{}/{}", self.host, self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        Ok(())
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
        let (name, tag) = reference::split_tag(path);
        reference::check_name(name)?;
        if let Some(t) = tag {
            reference::check_tag(t)?;
        }
        Ok(RegistryRef {
            host: host.to_string(),
            name: name.to_string(),
            tag: tag.map(str::to_string),
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
    pub blobs_present: usize,
    pub bytes_uploaded: u64,
}

struct Client {
    agent: ureq::Agent,
    host: String,
    base: String,
    dest: String,
}

type Resp = ureq::http::Response<ureq::Body>;

impl Client {
    fn err(&self, what: &str, reason: impl std::fmt::Display) -> Error {
        Error::Usage(format!("{}: {what}: {reason}", self.dest))
    }

    fn send(&self, what: &str, r: std::result::Result<Resp, ureq::Error>) -> Result<Resp> {
        r.map_err(|e| self.err(what, e))
    }

    /// The error for an unexpected status, with the registry's own error codes.
    fn status_err(&self, what: &str, mut resp: Resp) -> Error {
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
            format!("http://{}{location}", self.host)
        } else {
            format!("{}/{location}", self.base)
        }
    }

    fn has_blob(&self, d: &Digest) -> Result<bool> {
        let what = format!("blob {d}");
        let resp = self.send(
            &what,
            self.agent.head(format!("{}/blobs/{d}", self.base)).call(),
        )?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_err(&what, resp)),
        }
    }

    fn upload(&self, d: &Digest, blobs: &Blobs) -> Result<u64> {
        let what = format!("blob {d}");
        let resp = self.send(
            &what,
            self.agent
                .post(format!("{}/blobs/uploads/", self.base))
                .send_empty(),
        )?;
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
        let f = blobs.open(d)?;
        let size = blobs.size(d)?;
        let resp = self.send(
            &what,
            self.agent
                .put(url)
                .header("Content-Type", "application/octet-stream")
                .send(f),
        )?;
        if resp.status().as_u16() != 201 {
            return Err(self.status_err(&what, resp));
        }
        Ok(size)
    }
}

/// Pushes `img` to `dest` (tag: the destination's, else the image's).
pub fn push(store: &Store, img: &Image, dest: &RegistryRef) -> Result<RegistryPush> {
    let tag = dest.tag.clone().unwrap_or_else(|| img.record.tag.clone());
    let shown = RegistryRef {
        tag: Some(tag.clone()),
        ..dest.clone()
    }
    .to_string();
    let host_only = dest
        .host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(&dest.host);
    let loopback = host_only == "localhost"
        || host_only == "[::1]"
        || host_only
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    let proxy = if loopback {
        None // As Go's ProxyFromEnvironment: this machine is never reached through a proxy.
    } else {
        ureq::Proxy::try_from_env()
    };
    let config = ureq::Agent::config_builder()
        .proxy(proxy)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_per_read(Some(Duration::from_secs(300)))
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .build();
    let c = Client {
        agent: config.new_agent(),
        host: dest.host.clone(),
        base: format!("http://{}/v2/{}", dest.host, dest.name),
        dest: shown.clone(),
    };
    let blobs = Blobs::of(store)?;
    let mut report = RegistryPush {
        dest: shown,
        manifest: img.record.manifest,
        blobs_uploaded: 0,
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
            report.bytes_uploaded += c.upload(&d, &blobs)?;
            report.blobs_uploaded += 1;
        }
        done.push(d);
    }
    let mbytes = blobs.read(&img.record.manifest)?;
    let what = format!("manifest {}", img.record.manifest);
    let resp = c.send(
        &what,
        c.agent
            .put(format!("{}/manifests/{tag}", c.base))
            .header("Content-Type", img.manifest.media_type())
            .send(&mbytes[..]),
    )?;
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
}

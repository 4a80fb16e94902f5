//! `strata image pull docker://HOST[:PORT]/NAME[:TAG|@DIGEST]`: an image from an OCI
//! distribution registry, over HTTPS (plain HTTP only as [`super::registry`] says).
//!
//! 1. `GET /v2/` (an unreachable registry is named as such, a certificate that does not verify
//!    is refused).
//! 2. `GET /v2/NAME/manifests/REF` accepting OCI and docker manifests and indexes. An index
//!    (manifest list) is resolved to the manifest of the host's platform (linux and this
//!    machine's architecture), fetched by digest. A manifest asked for by digest, and one an
//!    index names, must hash to that digest.
//! 3. The config and every layer blob the store does not hold yet: `GET /v2/NAME/blobs/D`,
//!    hashed while written to a staging OCI layout under `ROOT/tmp/` and refused when the
//!    digest or size differs. Blobs the store holds are linked into the layout, not fetched.
//! 4. The layout is imported as any other ([`super::import`]): every blob verified again,
//!    each layer's diff-id checked, layers the store holds shared, nothing left on failure.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use serde::Serialize;

use super::blobs::Blobs;
use super::import::{ImportOptions, ImportReport};
use super::oci::{self, Descriptor, Index, Manifest};
use super::records;
use super::registry::{self, Client, RegistryRef};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::store::{Store, unique_id};

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// What a pull did.
#[derive(Clone, Debug, Serialize)]
pub struct Pulled {
    /// Blobs fetched from the registry and their bytes.
    pub blobs_fetched: usize,
    pub bytes_fetched: u64,
    /// Blobs the store held already (not fetched).
    pub blobs_shared: usize,
    /// The platform picked from an index, when the reference named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(flatten)]
    pub import: ImportReport,
}

/// Pulls `src` into the store as `name` (`NAME[:TAG]`; default `HOST[:PORT]/NAME:TAG`, the
/// tag `latest` unless given, `sha256-<12 hex>` for a pull by digest). `progress` is told
/// each fetched blob's digest, size and bytes received so far (0 before the first).
pub fn pull(
    store: &Store,
    src: &RegistryRef,
    name: Option<String>,
    insecure: bool,
    progress: &mut dyn FnMut(&Digest, u64, u64),
) -> Result<Pulled> {
    let shown = src.to_string();
    let c = Client::connect(src, shown.clone(), insecure)?;
    let reference = match (&src.digest, &src.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => super::reference::DEFAULT_TAG.to_string(),
    };
    let (mut mbytes, mut mtype) = get_manifest(&c, &reference, src.digest)?;
    let mut platform = None;
    if oci::is_index(&mtype) {
        let index: Index = parse(&c, "index", &mbytes)?;
        let desc = pick_platform(&index).ok_or_else(|| {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect();
            c.err(
                &format!("manifest list {reference}"),
                format!(
                    "no manifest for linux/{} (it has {})",
                    oci::host_arch(),
                    if have.is_empty() {
                        "no platforms".to_string()
                    } else {
                        have.join(", ")
                    }
                ),
            )
        })?;
        platform = desc
            .platform
            .as_ref()
            .map(|p| format!("{}/{}", p.os, p.architecture));
        (mbytes, mtype) = get_manifest(&c, &desc.digest.to_string(), Some(desc.digest))?;
    }
    if !oci::is_manifest(&mtype) {
        return Err(c.err(
            &format!("manifest {reference}"),
            format!("media type {mtype:?} is not an image manifest"),
        ));
    }
    let manifest: Manifest = parse(&c, "manifest", &mbytes)?;
    let manifest_digest = Digest::of(&mbytes);

    // A staging OCI layout: blobs fetched (or linked from the store), index.json, oci-layout.
    let tmp = store
        .root()
        .join("tmp")
        .join(format!("pull-{}", unique_id()));
    let _cleanup = RemoveOnDrop(tmp.clone());
    let bdir = tmp.join("blobs/sha256");
    fs::create_dir_all(&bdir).map_err(|e| Error::io("create", &bdir, e))?;
    let store_blobs = Blobs::of(store)?;
    let (mut blobs_fetched, mut bytes_fetched, mut blobs_shared) = (0, 0, 0);
    let mut wanted: Vec<&Descriptor> = vec![&manifest.config];
    wanted.extend(manifest.layers.iter());
    let mut fetched = Vec::new();
    for desc in wanted {
        let dst = bdir.join(desc.digest.hex());
        if dst.exists() {
            continue;
        }
        if store_blobs.has(&desc.digest) {
            let from = store_blobs.path(&desc.digest);
            if fs::hard_link(&from, &dst).is_err() {
                fs::copy(&from, &dst).map_err(|e| Error::io("copy", &from, e))?;
            }
            blobs_shared += 1;
            continue;
        }
        progress(&desc.digest, desc.size, 0);
        bytes_fetched += fetch_blob(&c, desc, &dst, progress)?;
        blobs_fetched += 1;
        fetched.push(desc.digest);
    }
    let mpath = bdir.join(manifest_digest.hex());
    fs::write(&mpath, &mbytes).map_err(|e| Error::io("write", &mpath, e))?;
    let tag = match (&src.digest, &src.tag) {
        (Some(d), _) => format!("sha256-{}", &d.hex()[..12]),
        (None, Some(t)) => t.clone(),
        (None, None) => super::reference::DEFAULT_TAG.to_string(),
    };
    let mut desc = Descriptor::new(&mtype, manifest_digest, mbytes.len() as u64);
    desc.annotations.insert(oci::REF_NAME.into(), tag.clone());
    let mut index = Index::new();
    index.manifests.push(desc);
    let ipath = tmp.join("index.json");
    let ibytes = serde_json::to_vec(&index).map_err(|e| Error::Usage(e.to_string()))?;
    fs::write(&ipath, ibytes).map_err(|e| Error::io("write", &ipath, e))?;
    let lpath = tmp.join(oci::OCI_LAYOUT_FILE);
    fs::write(
        &lpath,
        format!("{{\"imageLayoutVersion\":\"{}\"}}", oci::OCI_LAYOUT_VERSION),
    )
    .map_err(|e| Error::io("write", &lpath, e))?;

    let name = name.unwrap_or_else(|| format!("{}/{}:{tag}", src.host, src.name));
    let spec = format!("{}:{tag}", tmp.display());
    let mut rep = super::import::import(store, &spec, &ImportOptions { name: Some(name) })
        .map_err(|e| Error::Usage(format!("{shown}: {e}")))?;
    // The record says where the image came from, not the staging directory.
    if let Some(mut rec) = records::record(store, &rep.name, &rep.tag)? {
        rec.source = shown.clone();
        records::write_record(store, &rec)?;
    }
    rep.source = shown;
    let mut all = fetched;
    all.push(manifest.config.digest);
    all.extend(manifest.layers.iter().map(|l| l.digest));
    registry::remember(store, &src.host, &src.name, &all)?;
    Ok(Pulled {
        blobs_fetched,
        bytes_fetched,
        blobs_shared,
        platform,
        import: rep,
    })
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = crate::fsutil::remove_tree(&self.0);
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(c: &Client, what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| c.err(what, format!("not valid JSON: {e}")))
}

/// The manifest or index `reference` names: its bytes and media type, checked against
/// `digest` when given.
fn get_manifest(c: &Client, reference: &str, digest: Option<Digest>) -> Result<(Vec<u8>, String)> {
    let what = format!("manifest {reference}");
    let url = format!("{}/manifests/{reference}", c.base);
    let mut resp = c.call(&what, &|a| {
        registry::with_auth(c.agent.get(&url), a)
            .header("Accept", ACCEPT)
            .call()
    })?;
    if resp.status().as_u16() != 200 {
        return Err(c.status_err(&what, resp));
    }
    let header_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(oci::MAX_JSON_BLOB)
        .read_to_vec()
        .map_err(|e| c.err(&what, e))?;
    if let Some(d) = digest
        && Digest::of(&bytes) != d
    {
        return Err(c.err(
            &what,
            format!("the registry sent bytes hashing to {}", Digest::of(&bytes)),
        ));
    }
    // The document's own mediaType wins over the header (registries may send a generic one).
    let inner = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string));
    let mtype = inner.or(header_type).unwrap_or_default();
    Ok((bytes, mtype))
}

/// The index entry for linux and this machine's architecture.
fn pick_platform(index: &Index) -> Option<&Descriptor> {
    let arch = oci::host_arch();
    index.manifests.iter().find(|m| {
        m.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    })
}

/// Fetches blob `desc` into `dst`, refusing it unless its size and sha256 match.
fn fetch_blob(
    c: &Client,
    desc: &Descriptor,
    dst: &Path,
    progress: &mut dyn FnMut(&Digest, u64, u64),
) -> Result<u64> {
    let what = format!("blob {}", desc.digest);
    let url = format!("{}/blobs/{}", c.base, desc.digest);
    let mut resp = c.call(&what, &|a| registry::with_auth(c.agent.get(&url), a).call())?;
    if resp.status().as_u16() != 200 {
        return Err(c.err(&what, format!("the registry answered {}", resp.status())));
    }
    let f = fs::File::create(dst).map_err(|e| Error::io("create", dst, e))?;
    let mut w = HashingWriter::new(std::io::BufWriter::new(f));
    let mut body = resp
        .body_mut()
        .with_config()
        .limit(desc.size.saturating_add(1))
        .reader();
    let mut buf = vec![0u8; 256 << 10];
    let mut done = 0u64;
    loop {
        let n = body.read(&mut buf).map_err(|e| c.err(&what, e))?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n])
            .map_err(|e| Error::io("write", dst, e))?;
        done += n as u64;
        progress(&desc.digest, desc.size, done);
    }
    let (got, size, mut inner) = w.finish();
    inner.flush().map_err(|e| Error::io("write", dst, e))?;
    if size != desc.size || got != desc.digest {
        return Err(c.err(
            &what,
            format!(
                "the registry sent {size} bytes hashing to {got}, not the {} bytes the manifest names",
                desc.size
            ),
        ));
    }
    Ok(size)
}

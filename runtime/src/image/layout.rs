//! OCI image layouts: `oci-layout`, `index.json` and `blobs/sha256/<hex>`, read (choosing a
//! manifest by tag) and written (blobs first, `index.json` last, each through a rename).

use std::fs;
use std::path::{Path, PathBuf};

use super::blobs::{copy_atomic, write_atomic};
use super::input::Input;
use super::oci::{self, Descriptor, Index, OCI_LAYOUT_FILE, OCI_LAYOUT_VERSION, REF_NAME};
use crate::digest::Digest;
use crate::error::{Error, Result};

/// The path of a blob inside a layout.
pub fn blob_rel(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// True when the input looks like an OCI layout (it has `index.json`).
pub fn is_layout(input: &Input) -> bool {
    input.exists("index.json")
}

/// Reads and checks `oci-layout`, then reads `index.json`.
pub fn read_index(input: &Input) -> Result<Index> {
    let bad = |rel: &str, reason: String| Error::BadArchive {
        path: input.label(rel),
        reason,
    };
    let layout = input
        .read(OCI_LAYOUT_FILE, oci::MAX_JSON_BLOB)?
        .ok_or_else(|| bad(OCI_LAYOUT_FILE, "missing: not an OCI image layout".into()))?;
    let v: serde_json::Value = serde_json::from_slice(&layout)
        .map_err(|e| bad(OCI_LAYOUT_FILE, format!("not JSON: {e}")))?;
    match v.get("imageLayoutVersion").and_then(|x| x.as_str()) {
        Some(OCI_LAYOUT_VERSION) => {}
        other => {
            return Err(bad(
                OCI_LAYOUT_FILE,
                format!("imageLayoutVersion {other:?}: only {OCI_LAYOUT_VERSION} is known"),
            ));
        }
    }
    let idx = input
        .read("index.json", oci::MAX_JSON_BLOB)?
        .ok_or_else(|| bad("index.json", "missing".into()))?;
    serde_json::from_slice(&idx).map_err(|e| bad("index.json", format!("not an image index: {e}")))
}

/// Picks the manifest tagged `tag` (or the only one when no tag is given).
pub fn select<'a>(input: &Input, index: &'a Index, tag: Option<&str>) -> Result<&'a Descriptor> {
    let tags = || {
        let t: Vec<&str> = index
            .manifests
            .iter()
            .map(|d| d.ref_name().unwrap_or("(untagged)"))
            .collect();
        if t.is_empty() {
            "none".to_string()
        } else {
            t.join(", ")
        }
    };
    let hit = match tag {
        Some(tag) => index.manifests.iter().find(|d| {
            d.ref_name()
                .is_some_and(|r| r == tag || r.ends_with(&format!(":{tag}")))
        }),
        None if index.manifests.len() == 1 => index.manifests.first(),
        None => {
            return Err(Error::BadArchive {
                path: input.label("index.json"),
                reason: format!(
                    "{} manifests: name one as PATH:TAG (tags: {})",
                    index.manifests.len(),
                    tags()
                ),
            });
        }
    };
    hit.ok_or_else(|| Error::BadArchive {
        path: input.label("index.json"),
        reason: format!(
            "no manifest tagged {:?} (tags: {})",
            tag.unwrap_or(""),
            tags()
        ),
    })
}

/// From a platform index, the manifest for linux on this machine's architecture.
pub fn select_platform<'a>(index: &'a Index, label: &Path) -> Result<&'a Descriptor> {
    let arch = oci::host_arch();
    let wanted = |d: &&Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    };
    index
        .manifests
        .iter()
        .find(wanted)
        .or_else(|| {
            (index.manifests.len() == 1)
                .then(|| index.manifests.first())
                .flatten()
        })
        .ok_or_else(|| Error::BadArchive {
            path: label.to_path_buf(),
            reason: format!("the image index has no manifest for linux/{arch}"),
        })
}

/// A layout directory being written.
pub struct LayoutWriter {
    dir: PathBuf,
}

/// What writing blobs into a layout did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Written {
    pub blobs_written: usize,
    pub blobs_present: usize,
    pub bytes_written: u64,
}

impl LayoutWriter {
    /// Creates the layout (or opens an existing one, checking its version).
    pub fn create(dir: &Path) -> Result<LayoutWriter> {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| Error::io("create", &blobs, e))?;
        let lf = dir.join(OCI_LAYOUT_FILE);
        if lf.exists() {
            let input = Input::Dir(dir.to_path_buf());
            if input.exists("index.json") {
                read_index(&input)?;
            }
        } else {
            let body = format!("{{\"imageLayoutVersion\":\"{OCI_LAYOUT_VERSION}\"}}");
            write_atomic(&lf, body.as_bytes())?;
        }
        Ok(LayoutWriter {
            dir: dir.to_path_buf(),
        })
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join(blob_rel(d))
    }

    /// Copies the stored blob at `src` as `d` unless the layout has it (same size) already.
    pub fn put_file(&self, d: &Digest, src: &Path, size: u64, w: &mut Written) -> Result<()> {
        let dest = self.blob_path(d);
        if fs::metadata(&dest).is_ok_and(|m| m.len() == size) {
            w.blobs_present += 1;
            return Ok(());
        }
        w.bytes_written += copy_atomic(src, &dest)?;
        w.blobs_written += 1;
        Ok(())
    }

    /// Writes `bytes` as a blob unless present.
    pub fn put_bytes(&self, bytes: &[u8], w: &mut Written) -> Result<Digest> {
        let d = Digest::of(bytes);
        let dest = self.blob_path(&d);
        if fs::metadata(&dest).is_ok_and(|m| m.len() == bytes.len() as u64) {
            w.blobs_present += 1;
        } else {
            write_atomic(&dest, bytes)?;
            w.blobs_written += 1;
            w.bytes_written += bytes.len() as u64;
        }
        Ok(d)
    }

    /// Points `tag` at the manifest `desc` in `index.json` (replacing what the tag named).
    pub fn tag(&self, desc: &Descriptor, tag: &str) -> Result<()> {
        let input = Input::Dir(self.dir.clone());
        let mut index = if input.exists("index.json") {
            read_index(&input)?
        } else {
            Index::new()
        };
        index.manifests.retain(|d| d.ref_name() != Some(tag));
        let mut desc = desc.clone();
        desc.annotations.insert(REF_NAME.into(), tag.into());
        index.manifests.push(desc);
        let bytes = serde_json::to_vec(&index).map_err(|e| Error::BadArchive {
            path: self.dir.join("index.json"),
            reason: format!("cannot encode: {e}"),
        })?;
        write_atomic(&self.dir.join("index.json"), &bytes)
    }
}

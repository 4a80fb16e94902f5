//! docker-save archives: `manifest.json` (`[{Config, RepoTags, Layers}]`), the config JSON
//! and one uncompressed `layer.tar` per layer.
//!
//! Reading: the entry is chosen by tag; its config is checked against the digest its name
//! carries (`<hex>.json` or `blobs/sha256/<hex>`); each layer against the config's diff-id.
//! Writing: the classic layout `docker load` and `skopeo` read: `<config hex>.json`,
//! `<diff-id hex>/layer.tar` (decompressed from the stored blob and checked against its
//! diff-id), `manifest.json`.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::blobs::Blobs;
use super::input::Input;
use super::oci;
use super::records::Image;
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::store::Store;

/// One image of a docker-save archive.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SaveEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

impl SaveEntry {
    pub fn tags(&self) -> &[String] {
        self.repo_tags.as_deref().unwrap_or(&[])
    }
}

/// True when the input has a docker-save `manifest.json`.
pub fn is_docker_save(input: &Input) -> bool {
    input.exists("manifest.json")
}

/// Reads `manifest.json`.
pub fn read_manifest(input: &Input) -> Result<Vec<SaveEntry>> {
    let label = input.label("manifest.json");
    let bytes = input
        .read("manifest.json", oci::MAX_JSON_BLOB)?
        .ok_or_else(|| Error::BadArchive {
            path: label.clone(),
            reason: "missing".into(),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::BadArchive {
        path: label,
        reason: format!("not a docker-save manifest: {e}"),
    })
}

/// Picks the entry tagged `tag` (a bare tag or `NAME:TAG`), or the only one.
pub fn select<'a>(
    input: &Input,
    entries: &'a [SaveEntry],
    tag: Option<&str>,
) -> Result<&'a SaveEntry> {
    let all = || {
        entries
            .iter()
            .flat_map(|e| e.tags().iter().cloned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let hit = match tag {
        Some(t) => entries.iter().find(|e| {
            e.tags()
                .iter()
                .any(|x| x == t || x.ends_with(&format!(":{t}")))
        }),
        None if entries.len() == 1 => entries.first(),
        None => {
            return Err(Error::BadArchive {
                path: input.label("manifest.json"),
                reason: format!(
                    "{} images: name one as PATH:TAG (tags: {})",
                    entries.len(),
                    all()
                ),
            });
        }
    };
    hit.ok_or_else(|| Error::BadArchive {
        path: input.label("manifest.json"),
        reason: format!("no image tagged {:?} (tags: {})", tag.unwrap_or(""), all()),
    })
}

/// The digest a file's name promises: `<hex>.json`, `blobs/sha256/<hex>`, `<hex>.tar`.
pub fn digest_in_name(rel: &str) -> Option<Digest> {
    let base = rel.rsplit('/').next().unwrap_or(rel);
    let stem = base
        .strip_suffix(".json")
        .or_else(|| base.strip_suffix(".tar"))
        .unwrap_or(base);
    if rel.starts_with("blobs/sha256/") || base != stem {
        Digest::parse(stem)
    } else {
        None
    }
}

fn header(path: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(size);
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

/// Writes `img` as a docker-save archive to `out`.
pub fn write(
    store: &Store,
    img: &Image,
    out: &mut dyn Write,
    label: &std::path::Path,
) -> Result<()> {
    let blobs = Blobs::of(store)?;
    let werr = |e: std::io::Error| Error::io("write", label, e);
    let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 17, out));
    let config = blobs.read(&img.manifest.config.digest)?;
    let config_name = format!("{}.json", img.manifest.config.digest.hex());
    b.append(&header(&config_name, config.len() as u64), &config[..])
        .map_err(werr)?;
    let mut names = Vec::new();
    for (desc, diff_id) in img.manifest.layers.iter().zip(img.diff_ids()) {
        let name = format!("{}/layer.tar", diff_id.hex());
        if names.contains(&name) {
            names.push(name);
            continue;
        }
        let layer = store.get(diff_id)?;
        let size = layer.info.tar_size;
        let f = blobs.open(&desc.digest)?;
        let mut hr = HashingReader::new(super::import::decompress(
            Box::new(std::io::BufReader::new(f)),
            &blobs.path(&desc.digest),
        )?);
        b.append(&header(&name, size), (&mut hr).take(size))
            .map_err(werr)?;
        let (got, n) = hr
            .finish()
            .map_err(|e| Error::io("read blob", blobs.path(&desc.digest), e))?;
        if got != *diff_id || n != size {
            return Err(Error::BadArchive {
                path: blobs.path(&desc.digest),
                reason: format!(
                    "stored blob decompresses to {got} ({n} bytes), not the diff-id {diff_id} ({size} bytes)"
                ),
            });
        }
        names.push(name);
    }
    let entry = SaveEntry {
        config: config_name,
        repo_tags: Some(vec![img.record.reference()]),
        layers: names,
    };
    let manifest = serde_json::to_vec(&[entry]).map_err(|e| Error::BadArchive {
        path: label.to_path_buf(),
        reason: format!("cannot encode manifest.json: {e}"),
    })?;
    b.append(
        &header("manifest.json", manifest.len() as u64),
        &manifest[..],
    )
    .map_err(werr)?;
    b.into_inner().map_err(werr)?.flush().map_err(werr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_digests() {
        let h = "a".repeat(64);
        assert!(digest_in_name(&format!("{h}.json")).is_some());
        assert!(digest_in_name(&format!("blobs/sha256/{h}")).is_some());
        assert!(digest_in_name(&format!("{h}/layer.tar")).is_none());
        assert!(digest_in_name("config.json").is_none());
    }
}

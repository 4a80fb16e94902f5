//! The store side of images: tag records, lookup by reference, and removal that keeps every
//! blob and layer another image or a live mount still uses.
//!
//! ```text
//! ROOT/images/<name, `/` and `:` escaped>/<tag>.json   name, tag, manifest and config digests
//! ```
//!
//! Image operations that change the store (import, commit, rm) hold an exclusive `flock` on
//! `ROOT/images`, so one never removes what another is about to share.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::blobs::Blobs;
use super::oci::{Config, Manifest};
use super::reference::{self, ImageRef};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsutil::remove_tree;
use crate::store::{Store, StoredLayer, read_json, write_json};

/// `LayerInfo.source` of a layer an image import or commit extracted: `image rm` may remove
/// such a layer when nothing uses it, never one imported on its own (`strata layer import`).
pub const IMAGE_LAYER_SOURCE: &str = "image layer from ";

/// A tag in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub name: String,
    pub tag: String,
    /// The digest of the manifest blob.
    pub manifest: Digest,
    /// The digest of the config blob (the image id).
    pub config: Digest,
    /// Seconds since the epoch when the tag was written.
    pub created: u64,
    /// Where it came from (a path, or `commit of TARGET`).
    pub source: String,
}

/// The name of a dangling image's record: an image that lost its last tag (to a commit,
/// import or `image tag` that moved the tag) stays, as docker keeps it, until `image prune`.
/// Its tag is the manifest's hex digest; it is found by id (`strata run <id>`).
pub const DANGLING: &str = "<none>";

impl ImageRecord {
    pub fn reference(&self) -> String {
        if self.is_dangling() {
            format!("{DANGLING}@{}", self.manifest)
        } else {
            format!("{}:{}", self.name, self.tag)
        }
    }

    /// True for an image no tag names any more.
    pub fn is_dangling(&self) -> bool {
        self.name == DANGLING
    }
}

/// After tag `old` was moved to another image: unless another tag still names `old`'s
/// manifest, the image stays as a dangling image (its blobs and layers kept until
/// `image prune`). The caller holds the lock.
pub(crate) fn keep_dangling(store: &Store, old: &ImageRecord) -> Result<()> {
    let all = records(store)?;
    if all.iter().any(|r| r.manifest == old.manifest) {
        return Ok(());
    }
    write_record(
        store,
        &ImageRecord {
            name: DANGLING.to_string(),
            tag: old.manifest.hex(),
            ..old.clone()
        },
    )
}

/// Removes the dangling record of an image that has a tag again. The caller holds the lock.
pub(crate) fn settle(store: &Store) -> Result<()> {
    let all = records(store)?;
    for d in all.iter().filter(|r| r.is_dangling()) {
        if all
            .iter()
            .any(|r| !r.is_dangling() && r.manifest == d.manifest)
        {
            let p = record_path(store, &d.name, &d.tag)?;
            fs::remove_file(&p).map_err(|e| Error::io("remove", &p, e))?;
        }
    }
    Ok(())
}

/// What `image tag` did.
#[derive(Clone, Debug, Serialize)]
pub struct Tagged {
    pub reference: String,
    pub manifest: Digest,
    /// The image the tag named before (now dangling unless another tag names it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Digest>,
}

/// `image tag SRC NAME[:TAG]`: the tag (`latest` when none is given) names the image `src`
/// names; an image it named before stays as a dangling image when no other tag has it.
pub fn tag(store: &Store, src: &str, new_ref: &str) -> Result<Tagged> {
    let (name, tag) = reference::parse_name_tag(new_ref)?;
    let _lock = lock(store)?;
    let img = get(store, src)?;
    let old = record(store, &name, &tag)?;
    let rec = ImageRecord {
        name,
        tag,
        manifest: img.record.manifest,
        config: img.record.config,
        created: crate::store::now_secs(),
        source: format!("tag of {}", img.record.reference()),
    };
    write_record(store, &rec)?;
    let replaced = old.filter(|o| o.manifest != rec.manifest);
    if let Some(o) = &replaced {
        keep_dangling(store, o)?;
    }
    settle(store)?;
    Ok(Tagged {
        reference: rec.reference(),
        manifest: rec.manifest,
        replaced: replaced.map(|o| o.manifest),
    })
}

/// A stored image: its record, manifest and config.
#[derive(Clone, Debug)]
pub struct Image {
    pub record: ImageRecord,
    pub manifest: Manifest,
    pub config: Config,
}

impl Image {
    /// The diff-ids, lowest first.
    pub fn diff_ids(&self) -> &[Digest] {
        &self.config.rootfs.diff_ids
    }

    /// The stored layers, lowest first.
    pub fn layers(&self, store: &Store) -> Result<Vec<StoredLayer>> {
        self.diff_ids().iter().map(|d| store.get(d)).collect()
    }

    /// Every blob the image names: manifest, config, layers.
    pub fn blobs(&self) -> Vec<Digest> {
        let mut v = vec![self.record.manifest, self.manifest.config.digest];
        v.extend(self.manifest.layers.iter().map(|l| l.digest));
        v
    }

    /// (layer blob, diff-id) pairs.
    pub fn layer_pairs(&self) -> impl Iterator<Item = (Digest, Digest)> + '_ {
        self.manifest
            .layers
            .iter()
            .map(|l| l.digest)
            .zip(self.diff_ids().iter().copied())
    }
}

/// An exclusive lock on the image side of the store, released when dropped.
pub struct ImageLock {
    _dir: File,
}

/// Takes the image lock (waits for another strata process holding it).
pub fn lock(store: &Store) -> Result<ImageLock> {
    let dir = images_dir(store)?;
    let f = File::open(&dir).map_err(|e| Error::io("open", &dir, e))?;
    rustix::fs::flock(f.as_fd(), rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io("lock", &dir, crate::fsutil::ioe(e)))?;
    Ok(ImageLock { _dir: f })
}

fn images_dir(store: &Store) -> Result<PathBuf> {
    let d = store.root().join("images");
    fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
    Ok(d)
}

fn escape(name: &str) -> String {
    name.replace('%', "%25")
        .replace('/', "%2F")
        .replace(':', "%3A")
}

fn record_path(store: &Store, name: &str, tag: &str) -> Result<PathBuf> {
    Ok(images_dir(store)?
        .join(escape(name))
        .join(format!("{tag}.json")))
}

/// Writes (or replaces) a tag record.
pub fn write_record(store: &Store, rec: &ImageRecord) -> Result<()> {
    let p = record_path(store, &rec.name, &rec.tag)?;
    if let Some(dir) = p.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    write_json(&p, rec)
}

/// The record of `name:tag`, if any.
pub fn record(store: &Store, name: &str, tag: &str) -> Result<Option<ImageRecord>> {
    let p = record_path(store, name, tag)?;
    if p.exists() {
        Ok(Some(read_json(&p)?))
    } else {
        Ok(None)
    }
}

/// Every tag record, by name then tag.
pub fn records(store: &Store) -> Result<Vec<ImageRecord>> {
    let dir = images_dir(store)?;
    let mut out = Vec::new();
    for name in fs::read_dir(&dir).map_err(|e| Error::io("read", &dir, e))? {
        let name = name.map_err(|e| Error::io("read", &dir, e))?;
        if !name.path().is_dir() {
            continue;
        }
        let sub = name.path();
        for ent in fs::read_dir(&sub).map_err(|e| Error::io("read", &sub, e))? {
            let p = ent.map_err(|e| Error::io("read", &sub, e))?.path();
            if p.extension().is_some_and(|x| x == "json") {
                out.push(read_json::<ImageRecord>(&p)?);
            }
        }
    }
    out.sort_by(|a, b| (&a.name, &a.tag).cmp(&(&b.name, &b.tag)));
    Ok(out)
}

/// Reads the manifest and config of a record (checking both digests).
pub fn load(store: &Store, rec: &ImageRecord) -> Result<Image> {
    let blobs = Blobs::of(store)?;
    let manifest: Manifest = parse_blob(&blobs, &rec.manifest, "manifest")?;
    let config: Config = parse_blob(&blobs, &manifest.config.digest, "config")?;
    Ok(Image {
        record: rec.clone(),
        manifest,
        config,
    })
}

fn parse_blob<T: serde::de::DeserializeOwned>(blobs: &Blobs, d: &Digest, what: &str) -> Result<T> {
    let bytes = blobs.read(d)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::BadArchive {
        path: blobs.path(d),
        reason: format!("stored {what} is not valid: {e}"),
    })
}

/// Every stored image.
pub fn images(store: &Store) -> Result<Vec<Image>> {
    records(store)?.iter().map(|r| load(store, r)).collect()
}

/// The image `reference` names, or `None` when no image matches (an ambiguous id prefix is
/// an error).
pub fn find(store: &Store, reference: &str) -> Result<Option<Image>> {
    let r = match reference::parse(reference) {
        Ok(r) => r,
        Err(_) => return Ok(None),
    };
    let rec = match &r {
        ImageRef::Tagged { name, tag } => record(store, name, tag)?,
        ImageRef::Digested { name, digest } => records(store)?
            .into_iter()
            .find(|x| &x.name == name && &x.manifest == digest),
        ImageRef::Id(prefix) => {
            let p = prefix.strip_prefix("sha256:").unwrap_or(prefix).to_string();
            let all = records(store)?;
            let hits: Vec<&ImageRecord> = all
                .iter()
                .filter(|x| x.manifest.hex().starts_with(&p) || x.config.hex().starts_with(&p))
                .collect();
            let distinct: BTreeSet<Digest> = hits.iter().map(|x| x.manifest).collect();
            if distinct.len() > 1 {
                return Err(Error::Usage(format!(
                    "image {reference}: matches {} images ({}); give more digits or NAME:TAG",
                    distinct.len(),
                    hits.iter()
                        .map(|x| x.reference())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            hits.first().map(|x| (*x).clone())
        }
    };
    rec.map(|r| load(store, &r)).transpose()
}

/// The image `reference` names; an error naming it when there is none.
pub fn get(store: &Store, reference: &str) -> Result<Image> {
    find(store, reference)?.ok_or_else(|| {
        Error::Usage(format!(
            "image {reference}: not in the store {} (see `strata image ls`)",
            store.root().display()
        ))
    })
}

/// The (layer blob -> diff-id) pairs every stored image vouches for.
pub fn known_pairs(store: &Store) -> Result<HashMap<Digest, Digest>> {
    let mut out = HashMap::new();
    for img in images(store)? {
        out.extend(img.layer_pairs());
    }
    Ok(out)
}

/// What removing an image's tag freed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Released {
    pub blobs_removed: Vec<Digest>,
    pub layers_removed: Vec<Digest>,
    /// Layers of the image another image or a live mount still uses (or that were imported
    /// on their own), left in place.
    pub layers_kept: Vec<Digest>,
    /// Overlay chain directories (`ROOT/overlay/chains/<chain-id>`) no image or live mount
    /// uses any more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains_removed: Vec<String>,
    /// Dangling images (manifest digests) `image prune` removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images_removed: Vec<Digest>,
    pub bytes_freed: u64,
}

/// What `image rm` did.
#[derive(Clone, Debug, Serialize)]
pub struct Removed {
    pub reference: String,
    pub manifest: Digest,
    #[serde(flatten)]
    pub released: Released,
}

/// Removes the tag `reference` names; then the image's blobs and layers that no other image
/// or mount uses.
pub fn remove(store: &Store, reference: &str) -> Result<Removed> {
    let _lock = lock(store)?;
    let img = get(store, reference)?;
    let p = record_path(store, &img.record.name, &img.record.tag)?;
    fs::remove_file(&p).map_err(|e| Error::io("remove", &p, e))?;
    if let Some(dir) = p.parent() {
        let _ = fs::remove_dir(dir); // Only when it was the name's last tag.
    }
    Ok(Removed {
        reference: img.record.reference(),
        manifest: img.record.manifest,
        released: release(store, &img)?,
    })
}

/// Removes what `img` (whose record is gone) alone used. The caller holds the lock.
pub(crate) fn release(store: &Store, img: &Image) -> Result<Released> {
    let blobs = Blobs::of(store)?;
    let mut used_blobs = BTreeSet::new();
    let mut used_layers = BTreeSet::new();
    for other in images(store)? {
        used_blobs.extend(other.blobs());
        used_layers.extend(other.diff_ids().iter().copied());
    }
    for m in store.records()? {
        used_layers.extend(m.layers);
    }
    let mut r = Released::default();
    for d in img.blobs() {
        if !used_blobs.contains(&d) && blobs.has(&d) && !r.blobs_removed.contains(&d) {
            r.bytes_freed += blobs.size(&d).unwrap_or(0);
            blobs.remove(&d)?;
            r.blobs_removed.push(d);
        }
    }
    for d in img.diff_ids() {
        if r.layers_removed.contains(d) || r.layers_kept.contains(d) {
            continue;
        }
        let Ok(layer) = store.get(d) else { continue };
        if used_layers.contains(d) || !layer.info.source.starts_with(IMAGE_LAYER_SOURCE) {
            r.layers_kept.push(*d);
            continue;
        }
        r.bytes_freed += du(&layer.dir);
        remove_tree(&layer.dir)?;
        r.layers_removed.push(*d);
    }
    remove_unused_chains(store, &mut r)?;
    Ok(r)
}

/// Removes the overlay chain directories no image and no live mount uses.
fn remove_unused_chains(store: &Store, r: &mut Released) -> Result<()> {
    let mut keep: Vec<Vec<Digest>> = images(store)?
        .iter()
        .map(|i| i.diff_ids().to_vec())
        .collect();
    keep.extend(store.records()?.into_iter().map(|m| m.layers));
    let (removed, bytes) = crate::driver::chain::remove_unused(store.root(), &keep)?;
    r.chains_removed = removed;
    r.bytes_freed += bytes;
    Ok(())
}

/// Removes every blob no image names and every layer an image brought in that no image and
/// no live mount uses (what `image rm` had to keep for a mount that has ended since).
pub fn prune(store: &Store) -> Result<Released> {
    let _lock = lock(store)?;
    let mut dangling = Vec::new();
    for r in records(store)?.into_iter().filter(|r| r.is_dangling()) {
        let p = record_path(store, &r.name, &r.tag)?;
        fs::remove_file(&p).map_err(|e| Error::io("remove", &p, e))?;
        dangling.push(r.manifest);
    }
    let blobs = Blobs::of(store)?;
    let mut used_blobs = BTreeSet::new();
    let mut used_layers = BTreeSet::new();
    for img in images(store)? {
        used_blobs.extend(img.blobs());
        used_layers.extend(img.diff_ids().iter().copied());
    }
    for m in store.records()? {
        used_layers.extend(m.layers);
    }
    let mut r = Released {
        images_removed: dangling,
        ..Released::default()
    };
    for d in blobs.list()? {
        if !used_blobs.contains(&d) {
            r.bytes_freed += blobs.size(&d).unwrap_or(0);
            blobs.remove(&d)?;
            r.blobs_removed.push(d);
        }
    }
    for layer in store.layers()? {
        let d = layer.info.diff_id;
        if !layer.info.source.starts_with(IMAGE_LAYER_SOURCE) {
            continue;
        }
        if used_layers.contains(&d) {
            r.layers_kept.push(d);
            continue;
        }
        r.bytes_freed += du(&layer.dir);
        remove_tree(&layer.dir)?;
        r.layers_removed.push(d);
    }
    remove_unused_chains(store, &mut r)?;
    Ok(r)
}

/// Bytes allocated under `dir` (st_blocks), for reports.
pub fn du(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        total += m.blocks() * 512;
        if m.is_dir()
            && let Ok(rd) = fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
    }
    total
}

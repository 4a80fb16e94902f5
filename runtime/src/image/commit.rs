//! `strata commit TARGET --image NAME:TAG`: a mount's writable layer becomes a new top layer of
//! the image the mount was made from, with a new config (diff_ids and history appended) and a
//! new manifest, tagged `NAME:TAG`. The base image is the one whose layers are exactly the
//! mount's (preferring one already called `NAME`).

use std::fs::File;
use std::io::BufReader;

use flate2::write::GzEncoder;
use serde::Serialize;

use super::blobs::Staging;
use super::import::decompress;
use super::oci::{self, Descriptor, Manifest};
use super::records::{self, IMAGE_LAYER_SOURCE, Image, ImageRecord};
use super::reference;
use crate::commit::CommitOptions;
use crate::container::InitLayer;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::mounts::Mount;
use crate::store::{Store, now_secs};

/// What a commit into an image did.
#[derive(Clone, Debug, Serialize)]
pub struct CommitReport {
    /// `NAME:TAG` of the new image.
    pub reference: String,
    /// `NAME:TAG` of the image it was built on.
    pub base: String,
    pub manifest: Digest,
    pub config: Digest,
    /// The new layer: its gzip blob, and the diff-id of the tar.
    pub blob: Digest,
    pub blob_size: u64,
    pub diff_id: Digest,
    pub tar_size: u64,
}

/// The mount's layers without the init layer of a container (`strata run --keep`) on top,
/// and whether it had one: the init layer is never an image layer.
pub fn image_layers(store: &Store, m: &Mount) -> Result<(Vec<Digest>, bool)> {
    let mut layers = m.record().layers.clone();
    let init = match layers.last() {
        Some(top) => InitLayer::is_init(&store.get(top)?),
        None => false,
    };
    if init {
        layers.pop();
    }
    Ok((layers, init))
}

/// What a commit of `m` leaves out: the init layer's files when the mount has one, and what
/// its record excludes (a kept container's volume mount points).
pub fn commit_options(store: &Store, m: &Mount) -> Result<CommitOptions> {
    let mut exclude = if image_layers(store, m)?.1 {
        InitLayer::excluded()
    } else {
        Vec::new()
    };
    exclude.extend(m.record().exclude.iter().cloned());
    Ok(CommitOptions { exclude })
}

/// The image a mount was made from: the one whose diff-ids are exactly the mount's layers
/// (below a container's init layer).
pub fn base_of(store: &Store, m: &Mount, prefer_name: &str) -> Result<Image> {
    let (layers, _) = image_layers(store, m)?;
    let mut hits: Vec<Image> = records::images(store)?
        .into_iter()
        .filter(|i| i.diff_ids() == layers.as_slice())
        .collect();
    hits.sort_by_key(|i| {
        (
            i.record.name == prefer_name,
            !i.record.is_dangling(),
            i.record.created,
        )
    });
    hits.pop().ok_or_else(|| {
        Error::Usage(format!(
            "{}: its {} layer(s) are not those of any image in the store: mount an image \
             (`strata mount IMAGE TARGET`) to commit into one",
            m.target().display(),
            layers.len()
        ))
    })
}

/// Commits the writable layer of `m` as a new image `new_ref` (`NAME[:TAG]`).
pub fn commit_image(store: &Store, m: &Mount, new_ref: &str) -> Result<CommitReport> {
    let created_by = format!("strata commit {}", m.target().display());
    commit_image_as(store, m, new_ref, &created_by, &[])
}

/// [`commit_image`] with `created_by` for the history entry (e.g. the container's command)
/// and more paths to leave out (e.g. volume mount points). Out of room, the error names the
/// file in the store being written, and the store.
pub fn commit_image_as(
    store: &Store,
    m: &Mount,
    new_ref: &str,
    created_by: &str,
    exclude: &[String],
) -> Result<CommitReport> {
    commit_staged(store, m, new_ref, created_by, exclude)
        .map_err(|e| e.no_space("commit --image", || store.place()))
}

fn commit_staged(
    store: &Store,
    m: &Mount,
    new_ref: &str,
    created_by: &str,
    exclude: &[String],
) -> Result<CommitReport> {
    let (name, tag) = reference::parse_name_tag(new_ref)?;
    let _lock = records::lock(store)?;
    let base = base_of(store, m, &name)?;
    let mut opts = commit_options(store, m)?;
    opts.exclude.extend(exclude.iter().cloned());
    let mut staging = Staging::new(store)?;
    let label = m.target().to_path_buf();

    // The layer: tar -> (diff-id) -> gzip -> (blob digest) -> staged file.
    let mut diff_id = Digest([0; 32]);
    let mut tar_size = 0;
    let (path, blob, blob_size) = staging.write_with("commit", |w| {
        let mut gz = HashingWriter::new(GzEncoder::new(w, flate2::Compression::default()));
        m.commit_with(&opts, &mut gz)?;
        let (d, n, gz) = gz.finish();
        (diff_id, tar_size) = (d, n);
        gz.finish()
            .map_err(|e| Error::io("compress commit", &label, e))?;
        Ok(())
    })?;

    // Into the store as a layer (so the new image mounts), checked against its diff-id.
    let f = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let dec = decompress(Box::new(BufReader::new(f)), &path)?;
    let source = format!("{IMAGE_LAYER_SOURCE}commit of {}", label.display());
    let imp = store.import_reader_from(dec, &path, &source)?;
    if !imp.reused {
        staging.layer_created(imp.layer.info.diff_id);
    }
    if imp.layer.info.diff_id != diff_id {
        return Err(Error::BadArchive {
            path: path.clone(),
            reason: format!(
                "the committed layer reads back as {}, not {diff_id}",
                imp.layer.info.diff_id
            ),
        });
    }
    staging.add_file(blob, path)?;

    // The config: the base's, with the diff-id and a history entry appended.
    let blobs = staging.blobs().clone();
    let cbytes = blobs.read(&base.manifest.config.digest)?;
    let cpath = blobs.path(&base.manifest.config.digest);
    let mut config: serde_json::Value =
        serde_json::from_slice(&cbytes).map_err(|e| Error::BadArchive {
            path: cpath.clone(),
            reason: format!("stored config is not JSON: {e}"),
        })?;
    let created = oci::rfc3339(now_secs());
    let history = serde_json::json!({
        "created": created,
        "created_by": created_by,
        "comment": format!("the writable layer of a mount by the {} driver", m.driver().name()),
    });
    edit_config(&mut config, diff_id, history, &created).map_err(|reason| Error::BadArchive {
        path: cpath,
        reason,
    })?;
    let new_config = serde_json::to_vec(&config).map_err(|e| Error::Usage(e.to_string()))?;
    let config_digest = staging.add_bytes(&new_config)?;

    // The manifest: OCI, the base's layers plus the new one.
    let layers = base
        .manifest
        .layers
        .iter()
        .map(|l| {
            let mut l = l.clone();
            if l.media_type == oci::DOCKER_LAYER_GZIP {
                l.media_type = oci::OCI_LAYER_GZIP.into();
            }
            l
        })
        .chain(std::iter::once(Descriptor::new(
            oci::OCI_LAYER_GZIP,
            blob,
            blob_size,
        )))
        .collect();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::OCI_MANIFEST.into()),
        config: Descriptor::new(oci::OCI_CONFIG, config_digest, new_config.len() as u64),
        layers,
        annotations: base.manifest.annotations.clone(),
    };
    let mbytes = serde_json::to_vec(&manifest).map_err(|e| Error::Usage(e.to_string()))?;
    let manifest_digest = staging.add_bytes(&mbytes)?;

    let old = records::record(store, &name, &tag)?;
    let rec = ImageRecord {
        name,
        tag,
        manifest: manifest_digest,
        config: config_digest,
        created: now_secs(),
        source: format!("commit of {}", label.display()),
    };
    staging.commit(|| records::write_record(store, &rec))?;
    if let Some(o) = old.as_ref().filter(|o| o.manifest != manifest_digest) {
        // The image the tag named before keeps its layers, dangling, until `image prune`.
        records::keep_dangling(store, o)?;
    }
    records::settle(store)?;
    Ok(CommitReport {
        reference: rec.reference(),
        base: base.record.reference(),
        manifest: manifest_digest,
        config: config_digest,
        blob,
        blob_size,
        diff_id,
        tar_size,
    })
}

/// Appends `diff_id` and `history` to a config and sets its `created`.
fn edit_config(
    config: &mut serde_json::Value,
    diff_id: Digest,
    history: serde_json::Value,
    created: &str,
) -> std::result::Result<(), String> {
    let obj = config.as_object_mut().ok_or("not a JSON object")?;
    obj.insert("created".into(), created.into());
    let ids = obj
        .get_mut("rootfs")
        .and_then(|r| r.get_mut("diff_ids"))
        .and_then(|d| d.as_array_mut())
        .ok_or("no rootfs.diff_ids")?;
    ids.push(diff_id.to_string().into());
    match obj.get_mut("history").and_then(|h| h.as_array_mut()) {
        Some(h) => h.push(history),
        None => {
            obj.insert("history".into(), serde_json::Value::Array(vec![history]));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_edit_appends_and_keeps_the_rest() {
        let mut v = serde_json::json!({
            "architecture": "amd64", "config": {"Env": ["A=1"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
        });
        let d = Digest::of(b"x");
        edit_config(&mut v, d, serde_json::json!({"created_by": "t"}), "now").unwrap();
        assert_eq!(v["rootfs"]["diff_ids"][1], d.to_string());
        assert_eq!(v["history"][0]["created_by"], "t");
        assert_eq!(v["config"]["Env"][0], "A=1");
        assert_eq!(v["created"], "now");
    }
}

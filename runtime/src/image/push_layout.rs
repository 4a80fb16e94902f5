//! `strata image push REF DIR[:TAG]`: the image into an OCI image layout directory, created
//! or updated. Layer blobs and the config go first, the manifest next, `index.json` (which
//! makes the tag visible) last; each file through a rename. Blobs the layout holds already
//! are not copied again.

use std::path::Path;

use serde::Serialize;

use super::blobs::Blobs;
use super::layout::{LayoutWriter, Written};
use super::oci::Descriptor;
use super::records::Image;
use crate::digest::Digest;
use crate::error::Result;
use crate::store::Store;

/// What a push to a layout did.
#[derive(Clone, Debug, Serialize)]
pub struct LayoutPush {
    pub dir: String,
    pub tag: String,
    pub manifest: Digest,
    #[serde(flatten)]
    pub written: Written,
}

/// Writes `img` into the layout at `dir`, tagged `tag`.
pub fn push_layout(store: &Store, img: &Image, dir: &Path, tag: &str) -> Result<LayoutPush> {
    super::reference::check_tag(tag)?;
    let blobs = Blobs::of(store)?;
    let w = LayoutWriter::create(dir)?;
    let mut written = Written::default();
    let mut put = |d: &Digest| -> Result<u64> {
        let size = blobs.size(d)?;
        w.put_file(d, &blobs.path(d), size, &mut written)?;
        Ok(size)
    };
    for l in &img.manifest.layers {
        put(&l.digest)?;
    }
    put(&img.manifest.config.digest)?;
    let msize = put(&img.record.manifest)?;
    let desc = Descriptor::new(img.manifest.media_type(), img.record.manifest, msize);
    w.tag(&desc, tag)?;
    Ok(LayoutPush {
        dir: dir.display().to_string(),
        tag: tag.to_string(),
        manifest: img.record.manifest,
        written,
    })
}

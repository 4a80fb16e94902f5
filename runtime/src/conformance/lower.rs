//! A lower layer's directory as it is on disk, for property 2 (the lower layers never
//! change): [`crate::scan::scan`] leaves overlayfs's own xattrs out, as a view must not show
//! them, but in a layer directory they are the layer (`trusted.overlay.opaque` is its opaque
//! marker), so here they are read too.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil::OVERLAY_XATTR_PREFIX;
use crate::model::Tree;

/// The prefixes of the xattrs overlayfs (and fuse-overlayfs) keep in layer directories.
pub const LAYER_XATTR_PREFIXES: [&str; 2] = [OVERLAY_XATTR_PREFIX, "user.overlay."];

/// The tree of the layer directory `dir`, its overlay xattrs included.
pub fn scan_layer(dir: &Path) -> Result<Tree> {
    let mut t = crate::scan::scan(dir)?;
    let paths: Vec<String> = t.iter().map(|(p, _)| p.clone()).collect();
    for p in paths {
        let full = if p.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(&p)
        };
        let x = overlay_xattrs(&full).map_err(|e| Error::io("read xattrs", &full, e))?;
        if let Some(i) = t.get_mut(&p) {
            i.meta.xattrs.extend(x);
        }
    }
    Ok(t)
}

/// The overlay xattrs of `path` (not following it).
fn overlay_xattrs(path: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    use rustix::fs::{lgetxattr, lgetxattr_query, llistxattr, llistxattr_query};
    let size = |r: rustix::io::Result<usize>| r.map_err(std::io::Error::from);
    let mut out = Vec::new();
    let need = match llistxattr_query(path) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    let mut list = vec![0u8; need];
    let n = size(llistxattr(path, &mut list[..]))?;
    for key in list[..n].split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let key = String::from_utf8_lossy(key).into_owned();
        if !LAYER_XATTR_PREFIXES.iter().any(|p| key.starts_with(p)) {
            continue;
        }
        let len = size(lgetxattr_query(path, key.as_str()))?;
        let mut val = vec![0u8; len];
        let got = size(lgetxattr(path, key.as_str(), &mut val[..]))?;
        val.truncate(got);
        out.push((key, val));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layers_overlay_xattrs_are_part_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        if let Err(e) = rustix::fs::lsetxattr(
            &d,
            "user.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        ) {
            println!("SKIPPED: {}: no user xattrs here: {e}", d.display());
            return;
        }
        let layer = scan_layer(dir.path()).unwrap();
        let x = &layer.get("d").unwrap().meta.xattrs;
        assert_eq!(
            x.get("user.overlay.opaque").map(Vec::as_slice),
            Some(&b"y"[..])
        );
        // A view's scan leaves them out; so a damaged marker shows only here.
        let view = crate::scan::scan(dir.path()).unwrap();
        assert!(view.get("d").unwrap().meta.xattrs.is_empty());
        rustix::fs::lremovexattr(&d, "user.overlay.opaque").unwrap();
        let after = scan_layer(dir.path()).unwrap();
        assert!(!layer.compare(&after, &Default::default()).is_empty());
    }
}

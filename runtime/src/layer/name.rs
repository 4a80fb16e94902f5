//! What a tar entry name means: an entry, a whiteout, an opaque marker, or a refusal.
//!
//! The rule for names beginning with `.wh.` (the OCI image spec reserves the prefix: no image
//! root can hold such a name): a last component `.wh.NAME` is always a whiteout of NAME,
//! whatever the entry's type (`.wh.etc/` deletes `etc`, as containerd and moby read it), and
//! an entry *under* a `.wh.` component is refused, since nothing could show it. aufs's own
//! bookkeeping at the root (`.wh..wh.plnk/...`, `.wh..wh.aufs`) is skipped whole, as moby
//! skips it. Commit refuses such names in a view for the same reason, so every layer strata
//! writes reads back the same everywhere.

use crate::model::{RelPath, join, normalize, parent_and_name};
use crate::tarw::{OPAQUE_MARKER, WHITEOUT_PREFIX};

/// aufs's bookkeeping names at the root of a layer (hard-link dir, its xino, ...).
const AUFS_META_PREFIX: &str = ".wh..wh.";

/// The meaning of an entry name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Name {
    /// A real entry at this path (`""` is the root).
    Entry(RelPath),
    /// `.wh.NAME`: deletes this path from the lower layers.
    Whiteout(RelPath),
    /// `.wh..wh..opq`: hides the lower children of this directory.
    Opaque(RelPath),
    /// aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`, ...): not part of the change set;
    /// Docker's importer skips these too.
    AufsMeta,
}

/// Classifies a raw entry name, or says why it is refused.
pub fn classify(raw: &str) -> Result<Name, String> {
    #[cfg(feature = "mutants")]
    let raw: &str = &crate::mutants::lenient_name(raw);
    if raw.starts_with('/') {
        return Err("absolute name (layer entries must be relative)".into());
    }
    if raw.split('/').any(|c| c == "..") {
        return Err("name has a `..` component".into());
    }
    let path = normalize(raw).ok_or("name cannot be normalized")?;
    if path.starts_with(AUFS_META_PREFIX) && path != OPAQUE_MARKER {
        return Ok(Name::AufsMeta);
    }
    let Some((parent, base)) = parent_and_name(&path) else {
        return Ok(Name::Entry(path));
    };
    if let Some(c) = parent.split('/').find(|c| c.starts_with(WHITEOUT_PREFIX)) {
        return Err(format!(
            "lies under {c:?}: a name beginning with {WHITEOUT_PREFIX} is a whiteout, so no \
             image can hold anything under it"
        ));
    }
    let Some(target) = base.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(Name::Entry(path));
    };
    if base == OPAQUE_MARKER {
        return Ok(Name::Opaque(parent.to_string()));
    }
    if target.starts_with(WHITEOUT_PREFIX) {
        return Ok(Name::AufsMeta);
    }
    if target.is_empty() || target == "." || target == ".." {
        return Err(format!("invalid whiteout name {base:?} (it names no file)"));
    }
    Ok(Name::Whiteout(join(parent, target)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_whiteouts_and_markers() {
        assert_eq!(classify("./etc/hosts"), Ok(Name::Entry("etc/hosts".into())));
        assert_eq!(classify("./"), Ok(Name::Entry("".into())));
        assert_eq!(
            classify("etc/.wh.hosts"),
            Ok(Name::Whiteout("etc/hosts".into()))
        );
        assert_eq!(classify(".wh..baz"), Ok(Name::Whiteout(".baz".into())));
        assert_eq!(classify("var/.wh..wh..opq"), Ok(Name::Opaque("var".into())));
        assert_eq!(classify(".wh..wh..opq"), Ok(Name::Opaque("".into())));
        assert_eq!(classify(".wh..wh.plnk/123"), Ok(Name::AufsMeta));
        assert_eq!(classify(".wh..wh.plnk"), Ok(Name::AufsMeta));
        // A directory entry named `.wh.etc/` is a whiteout too, as containerd and moby read it.
        assert_eq!(classify("./.wh.etc/"), Ok(Name::Whiteout("etc".into())));
    }

    #[test]
    fn refusals_say_why() {
        assert!(classify("/etc/passwd").unwrap_err().contains("absolute"));
        assert!(classify("a/../../etc").unwrap_err().contains(".."));
        for bad in [".wh.etc/somefile", "a/.wh.b/c/d", "a/.wh..wh..opq/x"] {
            assert!(
                classify(bad).unwrap_err().contains("no image can hold"),
                "{bad}"
            );
        }
        for bad in [".wh.", "d/.wh..", "d/.wh..."] {
            assert!(
                classify(bad).unwrap_err().contains("invalid whiteout"),
                "{bad}"
            );
        }
    }
}

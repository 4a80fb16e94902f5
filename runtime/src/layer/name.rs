//! What a tar entry name means: an entry, a whiteout, an opaque marker, or a refusal.

use crate::model::{RelPath, join, normalize, parent_and_name};
use crate::tarw::{OPAQUE_MARKER, WHITEOUT_PREFIX};

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
    if raw.starts_with('/') {
        return Err("absolute name (layer entries must be relative)".into());
    }
    if raw.split('/').any(|c| c == "..") {
        return Err("name has a `..` component".into());
    }
    let path = normalize(raw).ok_or("name cannot be normalized")?;
    let Some((parent, base)) = parent_and_name(&path) else {
        return Ok(Name::Entry(path));
    };
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
        assert_eq!(
            classify(".wh..wh.plnk/123"),
            Ok(Name::Entry(".wh..wh.plnk/123".into()))
        );
        assert_eq!(classify(".wh..wh.plnk"), Ok(Name::AufsMeta));
    }

    #[test]
    fn refusals_say_why() {
        assert!(classify("/etc/passwd").unwrap_err().contains("absolute"));
        assert!(classify("a/../../etc").unwrap_err().contains(".."));
        for bad in [".wh.", "d/.wh..", "d/.wh..."] {
            assert!(
                classify(bad).unwrap_err().contains("invalid whiteout"),
                "{bad}"
            );
        }
    }
}

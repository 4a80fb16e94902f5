//! The rules a view is expected to follow: the OCI rules, or a driver's declared divergences
//! from them. A driver that declares `follow_lower_symlinks = false` is checked against the
//! model with that switch off, so the divergence must happen exactly as declared.

/// Switches for the places where union filesystems differ by design.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Semantics {
    /// An entry under a lower layer's symlink lands behind it (OCI); off: the layer's own
    /// directory replaces the symlink (overlayfs with layer directories).
    pub follow_lower_symlinks: bool,
    /// A directory a layer only implies keeps the attributes below (OCI); off: it shows
    /// 0755 root:root mtime 0, the layer directory's own.
    pub implied_dirs_keep_lower_attrs: bool,
    /// rename(2) of a directory that came from a lower layer works; off: EXDEV.
    pub dir_rename: bool,
    /// A file with several names stays one inode when one name is changed; off: the changed
    /// name is copied up alone (the hard link splits).
    pub hardlinks_kept: bool,
}

impl Semantics {
    /// The OCI rules and POSIX behaviour, with no divergence.
    pub const fn oci() -> Self {
        Semantics {
            follow_lower_symlinks: true,
            implied_dirs_keep_lower_attrs: true,
            dir_rename: true,
            hardlinks_kept: true,
        }
    }
}

impl Default for Semantics {
    fn default() -> Self {
        Semantics::oci()
    }
}

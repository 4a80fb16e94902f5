//! Deliberate bugs, compiled in only with the `mutants` feature, to show the property tests
//! catch them (issue 4). Each is switched on for the calling thread alone, so tests running
//! in parallel are not affected; without the feature nothing here exists.

use std::cell::Cell;

/// The deliberate bugs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    /// (a) copy ignores the opaque marker.
    IgnoreOpaque,
    /// (b) copy's whiteout also deletes the same-named entry of its own layer.
    WhiteoutDeletesOwnLayer,
    /// (c) the model's directory whiteout removes the directory but not the entries under it.
    DirWhiteoutKeepsChildren,
    /// (d) copy materializes hard links as separate files.
    SplitHardLinks,
    /// (e) commit leaves out the unchanged parent directories of changed entries.
    CommitOmitsParents,
    /// (f) copy's commit misses chmod-only changes.
    CommitMissesChmod,
    /// (g) the upper-dir diff (overlay, fuse-overlayfs) drops a whiteout device: the deletion
    /// of a lower name is lost from the commit.
    UpperDropsWhiteout,
    /// (h) fuse-overlayfs's mount skips its workaround of fuse-overlayfs#435 (every lower
    /// hard link looked up once after the mount, so st_nlink counts every name).
    FuseNoLinkLookups,
    /// (i) layer import accepts a name with a `..` component (read without it).
    ImportAcceptsDotDot,
    /// (j) layer import accepts an absolute name or hard-link target (read as relative).
    ImportAcceptsAbsolute,
    /// (k) the scanner drops every xattr.
    ScanDropsXattrs,
    /// (l) the scanner reads each name of a hard-linked file as a file of its own.
    ScanSplitsHardLinks,
}

/// `mutant!(Name, expr)`: runs `expr` (a `return`, `continue`, ...) where mutant `Name` is
/// switched on. Each hook is this one statement behind `#[cfg(feature = "mutants")]`.
#[macro_export]
macro_rules! mutant {
    ($m:ident, $e:expr) => {
        if $crate::mutants::active($crate::mutants::Mutant::$m) {
            $e;
        }
    };
}

/// What import's mutants make of a raw entry name or hard-link target
/// ([`crate::layer::name::classify`]'s one hook): a breakout read as a relative name.
pub fn lenient_name(raw: &str) -> String {
    if active(Mutant::ImportAcceptsAbsolute) && raw.starts_with('/') {
        return raw.trim_start_matches('/').to_string();
    }
    if active(Mutant::ImportAcceptsDotDot) {
        return raw
            .split('/')
            .filter(|c| *c != "..")
            .collect::<Vec<_>>()
            .join("/");
    }
    raw.to_string()
}

/// What the scanner's mutants do to a scanned tree ([`crate::scan::scan`]'s one hook).
pub fn scanned(tree: &mut crate::model::Tree) {
    let paths: Vec<String> = tree.iter().map(|(p, _)| p.clone()).collect();
    if active(Mutant::ScanDropsXattrs) {
        for p in &paths {
            if let Some(i) = tree.get_mut(p) {
                i.meta.xattrs.clear();
            }
        }
    }
    if active(Mutant::ScanSplitsHardLinks) {
        for group in tree.hardlink_groups() {
            for p in group.iter().skip(1) {
                if let Some(i) = tree.get(p).cloned() {
                    tree.insert(p, i);
                }
            }
        }
    }
}

thread_local! {
    static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
}

/// True when `m` is switched on for this thread.
pub fn active(m: Mutant) -> bool {
    ACTIVE.with(|a| a.get() == Some(m))
}

/// Runs `f` with `m` switched on for this thread.
pub fn with<R>(m: Mutant, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<Mutant>);
    impl Drop for Reset {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.set(self.0));
        }
    }
    let _reset = Reset(ACTIVE.with(|a| a.replace(Some(m))));
    f()
}

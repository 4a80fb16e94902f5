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

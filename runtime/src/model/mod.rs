//! THE SPEC: a pure, I/O-free model of union semantics.
//!
//! A layer is a [`ChangeSet`] (the entries of an OCI layer tar, in tar order). [`apply`] folds
//! change sets, lowest first, into the [`Tree`] every storage driver's merged view must equal.
//! The rules (OCI image-spec `layer.md`, and the flat appliers of Docker and containerd):
//!
//! 1. Layers apply lowest first; a later entry replaces an earlier one at the same path.
//!    A directory entry over an existing directory replaces only its attributes; in every other
//!    combination the old path (and everything under it) is removed first.
//! 2. `.wh.NAME` deletes NAME and everything under it from the *lower* layers only: the layer's
//!    own entry NAME survives, whatever the tar order. `.wh..wh..opq` in directory D hides every
//!    lower child of D. Whiteouts never appear in the merged view.
//! 3. Every entry, whiteout and opaque marker implies its parent directories: a missing parent
//!    is created with mode 0755, owner 0:0 and mtime 0; an existing directory keeps its
//!    attributes; an existing non-directory is replaced by such a directory. A whiteout or
//!    marker implies nothing behind a symlink it followed: under a dangling symlink it is a
//!    no-op and creates nothing.
//! 4. Parent paths are resolved through symlinks *inside the root* (`lib -> usr/lib`, then
//!    `lib/x` in a later layer lands at `usr/lib/x` and the symlink stays), by the one rule of
//!    [`resolve`]. The last component of an entry is never followed: a directory entry `d/`
//!    replaces a lower symlink `d`, and the layer's markers under `d` (`d/.wh..wh..opq`,
//!    `d/.wh.x`) apply to that new directory, never through the old symlink, whatever the
//!    order of the layer's entries.
//! 5. A hard link entry names an earlier entry of the same layer; both paths then share one
//!    inode (mode, owner, content).
//!
//! Where a kernel driver differs by design (overlayfs shows a layer's directory over a lower
//! symlink, keeps its own attributes for implied directories), the driver declares it in its
//! [`crate::driver::Capabilities`]; nothing is silently "close enough".

mod apply;
mod changeset;
pub mod ops;
mod path;
pub mod resolve;
mod semantics;
mod tree;

pub use apply::{apply, apply_layer, apply_layer_traced, apply_layer_with, apply_with};
pub use changeset::{Change, ChangeSet, Entry, EntryKind};
pub use path::{RelPath, ancestors, is_within, join, normalize, parent_and_name};
pub use semantics::{Semantics, symlink_loops};
pub use tree::{
    CompareOptions, FileData, Ino, Inode, Kind, Meta, Mismatch, MtimeCompare, Timespec, Tree,
};

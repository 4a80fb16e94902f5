//! A layer as the model sees it: the entries of an OCI layer tar, in tar order.

use serde::{Deserialize, Serialize};

use super::path::RelPath;
use super::tree::{FileData, Kind, Meta};

/// One layer's changes, in the order of its tar.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    pub changes: Vec<Change>,
}

/// One entry of a layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Change {
    /// `.wh.NAME`: the path deleted from the lower layers.
    Whiteout { path: RelPath },
    /// `DIR/.wh..wh..opq`: the directory whose lower children are hidden.
    Opaque { path: RelPath },
    /// Anything else: a file, directory, link, device or fifo at `path`.
    Entry(Entry),
}

impl Change {
    /// The path this change concerns (the deleted name, the opaque dir, the entry).
    pub fn path(&self) -> &str {
        match self {
            Change::Whiteout { path } | Change::Opaque { path } => path,
            Change::Entry(e) => &e.path,
        }
    }
}

/// A file, directory, link, device or fifo added by a layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: RelPath,
    pub kind: EntryKind,
    pub meta: Meta,
}

/// What an entry adds. Hard links name an earlier entry of the same layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum EntryKind {
    File(FileData),
    Dir,
    Symlink { target: String },
    HardLink { target: RelPath },
    CharDev { major: u32, minor: u32 },
    BlockDev { major: u32, minor: u32 },
    Fifo,
}

impl EntryKind {
    /// The inode kind this entry creates; `None` for a hard link (it adds a name, not an inode).
    pub fn to_kind(&self) -> Option<Kind> {
        Some(match self {
            EntryKind::File(d) => Kind::File(d.clone()),
            EntryKind::Dir => Kind::Dir,
            EntryKind::Symlink { target } => Kind::Symlink {
                target: target.clone(),
            },
            EntryKind::HardLink { .. } => return None,
            EntryKind::CharDev { major, minor } => Kind::CharDev {
                major: *major,
                minor: *minor,
            },
            EntryKind::BlockDev { major, minor } => Kind::BlockDev {
                major: *major,
                minor: *minor,
            },
            EntryKind::Fifo => Kind::Fifo,
        })
    }

    /// The entry kind that recreates an inode of `kind`.
    pub fn from_kind(kind: &Kind) -> Self {
        match kind {
            Kind::File(d) => EntryKind::File(d.clone()),
            Kind::Dir => EntryKind::Dir,
            Kind::Symlink { target } => EntryKind::Symlink {
                target: target.clone(),
            },
            Kind::CharDev { major, minor } => EntryKind::CharDev {
                major: *major,
                minor: *minor,
            },
            Kind::BlockDev { major, minor } => EntryKind::BlockDev {
                major: *major,
                minor: *minor,
            },
            Kind::Fifo => EntryKind::Fifo,
        }
    }
}

impl ChangeSet {
    /// The entries (not whiteouts or opaque markers), in order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.changes.iter().filter_map(|c| match c {
            Change::Entry(e) => Some(e),
            _ => None,
        })
    }

    /// The metadata of the layer's root entry (`./`), when it has one.
    pub fn root_meta(&self) -> Option<&Meta> {
        self.entries()
            .filter(|e| e.path.is_empty() && e.kind == EntryKind::Dir)
            .last()
            .map(|e| &e.meta)
    }
}

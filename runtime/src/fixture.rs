//! Layer fixtures: one description gives both the OCI layer tar and the model's change set,
//! for tests, benchmarks and the conformance catalog.
//!
//! ```
//! use strata_runtime::fixture::Layer;
//! let l = Layer::new().dir("etc").file("etc/hosts", "127.0.0.1 localhost\n").mode(0o644).whiteout("etc/old");
//! let tar_bytes = l.to_tar().unwrap();
//! let changes = l.changeset();
//! # assert_eq!(changes.changes.len(), 3);
//! # assert!(!tar_bytes.is_empty());
//! ```

use std::collections::BTreeMap;

use crate::layer::Name;
use crate::model::{Change, ChangeSet, Entry, EntryKind, FileData, Meta, Timespec};
use crate::tarw::TarWriter;

/// The mtime fixtures use unless told otherwise (2023-11-14, with nanoseconds).
pub const DEFAULT_MTIME: Timespec = Timespec {
    sec: 1_700_000_000,
    nsec: 123_456_789,
};

#[derive(Clone, Debug)]
enum Item {
    Entry {
        path: String,
        kind: FixKind,
        meta: Meta,
    },
    Whiteout(String),
    Opaque(String),
}

#[derive(Clone, Debug)]
enum FixKind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    HardLink(String),
    CharDev(u32, u32),
    BlockDev(u32, u32),
    Fifo,
}

/// A layer under construction. Modifiers (`mode`, `owner`, `mtime`, `xattr`) apply to the
/// entry added last.
#[derive(Clone, Debug, Default)]
pub struct Layer {
    items: Vec<Item>,
}

fn meta(mode: u32) -> Meta {
    Meta {
        mode,
        uid: 0,
        gid: 0,
        mtime: DEFAULT_MTIME,
        xattrs: BTreeMap::new(),
    }
}

impl Layer {
    pub fn new() -> Self {
        Layer::default()
    }

    fn push(mut self, path: &str, kind: FixKind, mode: u32) -> Self {
        self.items.push(Item::Entry {
            path: path.trim_matches('/').to_string(),
            kind,
            meta: meta(mode),
        });
        self
    }

    /// A regular file, mode 0644.
    pub fn file(self, path: &str, content: impl AsRef<[u8]>) -> Self {
        self.push(path, FixKind::File(content.as_ref().to_vec()), 0o644)
    }

    /// A directory, mode 0755.
    pub fn dir(self, path: &str) -> Self {
        self.push(path, FixKind::Dir, 0o755)
    }

    /// A symlink to `target` (kept verbatim).
    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.push(path, FixKind::Symlink(target.to_string()), 0o777)
    }

    /// A hard link to the earlier entry `target` of this layer.
    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.push(path, FixKind::HardLink(target.to_string()), 0o644)
    }

    /// A character device.
    pub fn chardev(self, path: &str, major: u32, minor: u32) -> Self {
        self.push(path, FixKind::CharDev(major, minor), 0o666)
    }

    /// A block device.
    pub fn blockdev(self, path: &str, major: u32, minor: u32) -> Self {
        self.push(path, FixKind::BlockDev(major, minor), 0o660)
    }

    /// A fifo.
    pub fn fifo(self, path: &str) -> Self {
        self.push(path, FixKind::Fifo, 0o644)
    }

    /// A whiteout: deletes `path` from the layers below.
    pub fn whiteout(mut self, path: &str) -> Self {
        self.items
            .push(Item::Whiteout(path.trim_matches('/').to_string()));
        self
    }

    /// An opaque marker: hides every lower child of directory `dir`.
    pub fn opaque(mut self, dir: &str) -> Self {
        self.items
            .push(Item::Opaque(dir.trim_matches('/').to_string()));
        self
    }

    fn last_meta(&mut self) -> &mut Meta {
        match self.items.iter_mut().rev().find_map(|i| match i {
            Item::Entry { meta, .. } => Some(meta),
            _ => None,
        }) {
            Some(m) => m,
            None => panic!("fixture modifier with no entry before it"),
        }
    }

    /// Sets the permission bits (with setuid, setgid, sticky) of the last entry.
    pub fn mode(mut self, mode: u32) -> Self {
        self.last_meta().mode = mode;
        self
    }

    /// Sets the owner of the last entry.
    pub fn owner(mut self, uid: u32, gid: u32) -> Self {
        let m = self.last_meta();
        m.uid = uid;
        m.gid = gid;
        self
    }

    /// Sets the mtime of the last entry.
    pub fn mtime(mut self, sec: i64, nsec: u32) -> Self {
        self.last_meta().mtime = Timespec::new(sec, nsec);
        self
    }

    /// Adds an xattr to the last entry.
    pub fn xattr(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.last_meta()
            .xattrs
            .insert(key.to_string(), value.as_ref().to_vec());
        self
    }

    /// The layer as the model sees it.
    pub fn changeset(&self) -> ChangeSet {
        let changes = self
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Whiteout(p) => Some(Change::Whiteout { path: p.clone() }),
                Item::Opaque(p) => Some(Change::Opaque { path: p.clone() }),
                // A name is what the import reads it as: `.wh.etc/` is a whiteout of `etc`.
                // Names the import refuses or skips are left out (a case then expects the
                // refusal).
                Item::Entry { path, kind, meta } => match crate::layer::classify(path) {
                    Ok(Name::Entry(path)) => Some(Change::Entry(Entry {
                        path,
                        kind: entry_kind(kind),
                        meta: meta.clone(),
                    })),
                    Ok(Name::Whiteout(path)) => Some(Change::Whiteout { path }),
                    Ok(Name::Opaque(path)) => Some(Change::Opaque { path }),
                    Ok(Name::AufsMeta) | Err(_) => None,
                },
            })
            .collect();
        ChangeSet { changes }
    }

    /// The layer as an uncompressed OCI layer tar.
    pub fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut w = TarWriter::new(Vec::new());
        for i in &self.items {
            match i {
                Item::Whiteout(p) => w.whiteout(p),
                Item::Opaque(p) => w.opaque(p, &meta(0o755)),
                Item::Entry { path, kind, meta } => {
                    let e = Entry {
                        path: path.clone(),
                        kind: entry_kind(kind),
                        meta: meta.clone(),
                    };
                    match kind {
                        FixKind::File(data) => w.entry(&e, Some(&mut data.as_slice())),
                        _ => w.entry(&e, None),
                    }
                }
            }?;
        }
        w.finish()
    }
}

fn entry_kind(k: &FixKind) -> EntryKind {
    match k {
        FixKind::File(d) => EntryKind::File(FileData::from_bytes(d.clone())),
        FixKind::Dir => EntryKind::Dir,
        FixKind::Symlink(t) => EntryKind::Symlink { target: t.clone() },
        FixKind::HardLink(t) => EntryKind::HardLink {
            target: t.trim_matches('/').to_string(),
        },
        FixKind::CharDev(a, b) => EntryKind::CharDev {
            major: *a,
            minor: *b,
        },
        FixKind::BlockDev(a, b) => EntryKind::BlockDev {
            major: *a,
            minor: *b,
        },
        FixKind::Fifo => EntryKind::Fifo,
    }
}

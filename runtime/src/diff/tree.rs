//! The tree diff: a merged directory compared with the model of the stack it was made from,
//! by content and metadata (a same-size, same-mtime rewrite is a change), for drivers whose
//! writable layer is a whole tree (copy, btrfs) rather than an upper directory.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::FileType;

use crate::commit::{self, Item, ItemKind};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsutil::{
    self, DirIdentity, Next, Step, file_type, lstat_at, open_dir, open_dir_beneath_long,
    open_file_at,
};
use crate::model::{Kind, Meta, RelPath, Tree, parent_and_name};

/// What the walk of the merged tree saw at one path.
struct Seen {
    item: Item,
    ino: u64,
    dev: u64,
    /// A directory's identity, read during the walk (a path lookup from the root would fail
    /// on paths longer than PATH_MAX).
    dir_id: Option<DirIdentity>,
}

/// The changes between the stack's model `lower` (root attributes `lower_root`) and the tree
/// at `merged`: added and changed entries (with their parents and every name of a changed
/// hard-linked inode), whiteouts for deleted names, and an opaque marker for a directory that
/// was removed and made again. `dirs` holds the identity of every directory when the tree was
/// made (to see a directory replaced whole).
pub fn tree_diff(
    lower: &Tree,
    lower_root: &Meta,
    dirs: &BTreeMap<RelPath, DirIdentity>,
    merged: &Path,
) -> Result<Vec<Item>> {
    let root = open_dir(merged)?;
    let mut seen: BTreeMap<RelPath, Seen> = BTreeMap::new();
    walk(root.as_fd(), "", merged, &mut seen)?;
    let mut changed: BTreeSet<RelPath> = BTreeSet::new();
    let mut recreated: HashSet<RelPath> = HashSet::new();
    for (path, s) in &seen {
        let Item::Entry { kind, meta, .. } = &s.item else {
            continue;
        };
        let Some(l) = lower.get(path) else {
            changed.insert(path.clone());
            continue;
        };
        let differs = match (kind, &l.kind) {
            (ItemKind::Dir, Kind::Dir) => {
                if dirs.get(path) != s.dir_id.as_ref() {
                    recreated.insert(path.clone());
                    true
                } else {
                    commit::meta_changed(&l.meta, meta)
                }
            }
            (ItemKind::File { size }, Kind::File(d)) => {
                #[cfg(feature = "mutants")]
                let meta = &if crate::mutants::active(crate::mutants::Mutant::CommitMissesChmod) {
                    Meta {
                        mode: l.meta.mode,
                        ..meta.clone()
                    }
                } else {
                    meta.clone()
                };
                *size != d.size
                    || meta != &l.meta
                    || file_digest(root.as_fd(), path, merged)? != d.digest
            }
            // A symlink's mode never changes; its owner, xattrs and mtime can (continuity
            // ignores a symlink's mtime; a commit that drops it would not round-trip).
            (ItemKind::Symlink(t), Kind::Symlink { target }) => {
                t != target
                    || meta.uid != l.meta.uid
                    || meta.gid != l.meta.gid
                    || meta.mtime != l.meta.mtime
                    || meta.xattrs != l.meta.xattrs
            }
            (ItemKind::CharDev(a, b), Kind::CharDev { major, minor })
            | (ItemKind::BlockDev(a, b), Kind::BlockDev { major, minor }) => {
                (a, b) != (major, minor) || meta != &l.meta
            }
            (ItemKind::Fifo, Kind::Fifo) => meta != &l.meta,
            _ => true,
        };
        if differs {
            changed.insert(path.clone());
        }
    }
    // A name that joined or left a hard-link group is a change even with equal content.
    let mut by_inode: HashMap<(u64, u64), Vec<RelPath>> = HashMap::new();
    for (path, s) in &seen {
        if let Item::Entry { inode: Some(_), .. } = s.item {
            by_inode
                .entry((s.dev, s.ino))
                .or_default()
                .push(path.clone());
        }
    }
    let mut group_now: HashMap<&str, &Vec<RelPath>> = HashMap::new();
    for names in by_inode.values() {
        for n in names {
            group_now.insert(n.as_str(), names);
        }
    }
    let lower_groups = lower.hardlink_groups();
    let mut group_before: HashMap<&str, &Vec<RelPath>> = HashMap::new();
    for names in &lower_groups {
        for n in names {
            group_before.insert(n.as_str(), names);
        }
    }
    for path in group_now.keys().chain(group_before.keys()) {
        let now = group_now
            .get(path)
            .map(|g| g.iter().collect::<BTreeSet<_>>());
        let before = group_before
            .get(path)
            .map(|g| g.iter().collect::<BTreeSet<_>>());
        if now != before && seen.contains_key(*path) {
            changed.insert(path.to_string());
        }
    }
    // Every name of a changed inode goes in, so the layer keeps the link.
    for names in by_inode.values() {
        if names.iter().any(|n| changed.contains(n)) {
            changed.extend(names.iter().cloned());
        }
    }
    let mut items = Vec::new();
    let mut emitted: BTreeSet<RelPath> = BTreeSet::new();
    for path in &changed {
        let mut p = path.as_str();
        while let Some((parent, _)) = parent_and_name(p) {
            if parent.is_empty() || !emitted.insert(parent.to_string()) {
                break;
            }
            if let Some(s) = seen.get(parent) {
                items.push(as_parent_unless(&changed, parent, &s.item));
            }
            p = parent;
        }
        if emitted.insert(path.clone())
            && let Some(s) = seen.get(path)
        {
            items.push(s.item.clone());
        }
        if recreated.contains(path)
            && let Some(Seen {
                item: Item::Entry { meta, .. },
                ..
            }) = seen.get(path)
        {
            items.push(Item::Opaque {
                path: path.clone(),
                meta: meta.clone(),
            });
        }
    }
    // Deleted names: the topmost missing path under a directory that is still the same one.
    for (path, _) in lower.iter() {
        if path.is_empty() || seen.contains_key(path) {
            continue;
        }
        let (parent, _) = parent_and_name(path).unwrap_or(("", ""));
        let parent_same = parent.is_empty()
            || (lower.get(parent).is_some_and(|i| i.kind.is_dir())
                && matches!(
                    seen.get(parent),
                    Some(Seen {
                        item: Item::Entry {
                            kind: ItemKind::Dir,
                            ..
                        },
                        ..
                    })
                )
                && !recreated.contains(parent));
        if parent_same {
            items.push(Item::Whiteout { path: path.clone() });
            if !parent.is_empty() && emitted.insert(parent.to_string()) {
                let mut p = parent;
                loop {
                    if let Some(s) = seen.get(p) {
                        items.push(as_parent_unless(&changed, p, &s.item));
                    }
                    match parent_and_name(p) {
                        Some((pp, _)) if !pp.is_empty() && emitted.insert(pp.to_string()) => p = pp,
                        _ => break,
                    }
                }
            }
        }
    }
    if let Some(Seen {
        item: Item::Entry { meta, .. },
        ..
    }) = seen.get("")
        && commit::meta_changed(lower_root, meta)
    {
        items.push(Item::dir("", meta.clone()));
    }
    Ok(items)
}

/// A parent's item: marked parent-only unless the parent changed itself.
fn as_parent_unless(changed: &BTreeSet<RelPath>, path: &str, item: &Item) -> Item {
    if changed.contains(path) {
        item.clone()
    } else {
        item.clone().as_parent()
    }
}

fn walk(
    dir: BorrowedFd<'_>,
    rel: &str,
    root: &Path,
    seen: &mut BTreeMap<RelPath, Seen>,
) -> Result<()> {
    debug_assert!(rel.is_empty());
    let st = lstat_at(dir, ".").map_err(|e| Error::io("stat", root, e))?;
    let item = commit::item_at(dir, ".", "", &st, root)?;
    let dir_id = fsutil::dir_identity(dir, ".").map_err(|e| Error::io("stat", root, e))?;
    seen.insert(
        String::new(),
        Seen {
            item,
            ino: st.st_ino,
            dev: st.st_dev,
            dir_id: Some(dir_id),
        },
    );
    // An explicit stack, not recursion: any depth the kernel allows works.
    fsutil::walk_tree(
        dir,
        |step| {
            let Step::Entry {
                dir, path, name, ..
            } = step
            else {
                return Ok(Next::Skip);
            };
            let is_dir = entry(dir, name, path, root, seen)?;
            Ok(if is_dir { Next::Descend } else { Next::Skip })
        },
        |op, path, e| Error::io(op, root.join(path), e),
    )
}

/// Records `name` in `dir` (at `path`); true when it is a directory.
fn entry(
    dir: BorrowedFd<'_>,
    name: &str,
    path: &str,
    root: &Path,
    seen: &mut BTreeMap<RelPath, Seen>,
) -> Result<bool> {
    let st = lstat_at(dir, name).map_err(|e| Error::io("stat", root.join(path), e))?;
    let item = commit::item_at(dir, name, path, &st, root)?;
    let is_dir = file_type(&st) == FileType::Directory;
    let dir_id = if is_dir {
        Some(fsutil::dir_identity(dir, name).map_err(|e| Error::io("stat", root.join(path), e))?)
    } else {
        None
    };
    seen.insert(
        path.to_string(),
        Seen {
            item,
            ino: st.st_ino,
            dev: st.st_dev,
            dir_id,
        },
    );
    Ok(is_dir)
}

fn file_digest(root: BorrowedFd<'_>, path: &str, merged: &Path) -> Result<Digest> {
    let (parent, name) = parent_and_name(path).unwrap_or(("", path));
    let open = || -> io::Result<File> {
        let d = open_dir_beneath_long(root, parent)?;
        open_file_at(d.as_fd(), name)
    };
    let f = open().map_err(|e| Error::io("open", merged.join(path), e))?;
    Digest::of_reader(io::BufReader::with_capacity(1 << 17, f))
        .map(|(d, _)| d)
        .map_err(|e| Error::io("read", merged.join(path), e))
}

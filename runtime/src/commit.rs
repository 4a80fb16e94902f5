//! Commit: a writable layer's changes as an OCI layer tar.
//!
//! Drivers find the changes (overlay reads its upper directory, copy compares its tree with the
//! stack); this module orders and writes them the same way for both:
//! - depth first; in each directory the opaque marker, then whiteouts, then entries, by name;
//! - a changed entry's parent directories are in the layer with their current attributes;
//! - hard links: the first name of an inode carries the data, later names are links to it;
//! - names beginning with `.wh.` cannot be committed (they would read back as whiteouts).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{FileType, Stat};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result, TagWrites};
use crate::fsutil::{self, file_type, open_dir, open_file_at};
use crate::model::{Entry, EntryKind, FileData, Meta, RelPath, is_within, parent_and_name};
use crate::tarw::{TarWriter, WHITEOUT_PREFIX};

/// What a committed path holds (file content is read when the tar is written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    File { size: u64 },
    Dir,
    Symlink(String),
    CharDev(u32, u32),
    BlockDev(u32, u32),
    Fifo,
}

/// One thing a commit writes.
#[derive(Clone, Debug)]
pub enum Item {
    /// An added or changed entry. `inode` is (st_dev, st_ino) for a non-directory with more
    /// than one name, so its names become one entry and hard links to it. `parent_only`: unchanged
    /// itself, present only as the parent of another change (dropped if that change is
    /// excluded).
    Entry {
        path: RelPath,
        kind: ItemKind,
        meta: Meta,
        inode: Option<(u64, u64)>,
        parent_only: bool,
    },
    /// `.wh.NAME`.
    Whiteout { path: RelPath },
    /// `DIR/.wh..wh..opq`, with the directory's attributes.
    Opaque { path: RelPath, meta: Meta },
}

impl Item {
    /// A directory entry.
    pub fn dir(path: &str, meta: Meta) -> Item {
        Item::Entry {
            path: path.to_string(),
            kind: ItemKind::Dir,
            meta,
            inode: None,
            parent_only: false,
        }
    }

    /// This item, marked as present only as the parent of another change.
    pub fn as_parent(mut self) -> Item {
        if let Item::Entry { parent_only, .. } = &mut self {
            *parent_only = true;
        }
        self
    }

    pub fn path(&self) -> &str {
        match self {
            Item::Entry { path, .. } | Item::Whiteout { path } | Item::Opaque { path, .. } => path,
        }
    }
}

/// `items` in tar order, depth first; in a directory: opaque marker, whiteouts, then entries,
/// each by name. Of two items with the same place the first given stays. Linear in the
/// total length of the paths (a sort by component lists costs the square of the depth, and
/// a writable layer may hold a chain 10,000 directories deep).
fn tar_order(items: Vec<Item>) -> Vec<Item> {
    use std::collections::hash_map::Entry as Slot;
    fn split(p: &str) -> (&str, &str) {
        parent_and_name(p).unwrap_or(("", p))
    }
    // Every directory entry by path (with its item, if one was given), intermediate
    // directories included so that every item is reachable from the root.
    let mut entries: HashMap<&str, Option<usize>> = HashMap::new();
    let mut root = None;
    for (i, item) in items.iter().enumerate() {
        if let Item::Entry { path, .. } = item {
            if path.is_empty() {
                root.get_or_insert(i);
            } else if let Slot::Vacant(v) = entries.entry(path.as_str()) {
                v.insert(Some(i));
            } else if let Some(slot @ None) = entries.get_mut(path.as_str()) {
                *slot = Some(i);
            }
        }
        let mut up = match item {
            Item::Entry { path, .. } => split(path).0,
            Item::Opaque { path, .. } => path.as_str(),
            Item::Whiteout { path } => split(path).0,
        };
        while !up.is_empty() {
            match entries.entry(up) {
                Slot::Occupied(_) => break,
                Slot::Vacant(v) => {
                    v.insert(None);
                }
            }
            up = split(up).0;
        }
    }
    // A directory's children: (0 opaque marker, 1 whiteout, 2 entry; name; item).
    type Child<'a> = (u8, &'a str, Option<usize>);
    let mut children: HashMap<&str, Vec<Child>> = HashMap::new();
    for (path, idx) in &entries {
        let (parent, name) = split(path);
        children.entry(parent).or_default().push((2, name, *idx));
    }
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Opaque { path, .. } => children.entry(path).or_default().push((0, "", Some(i))),
            Item::Whiteout { path } => {
                let (parent, name) = split(path);
                children.entry(parent).or_default().push((1, name, Some(i)));
            }
            Item::Entry { .. } => {}
        }
    }
    for list in children.values_mut() {
        // Stable: of equal keys the one given first stays first, and dedup keeps it.
        list.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.cmp(&b.2)));
        list.dedup_by(|b, a| (a.0, a.1) == (b.0, b.1));
    }
    let mut order = Vec::with_capacity(items.len());
    order.extend(root);
    // Depth first with an explicit stack: (directory path, its children, the next one).
    let mut stack: Vec<(String, usize)> = vec![(String::new(), 0)];
    while let Some((dir, next)) = stack.pop() {
        let Some(list) = children.get(dir.as_str()) else {
            continue;
        };
        let Some(&(rank, name, idx)) = list.get(next) else {
            continue;
        };
        order.extend(idx);
        let child = (rank == 2).then(|| crate::model::join(&dir, name));
        stack.push((dir, next + 1));
        if let Some(child) = child {
            stack.push((child, 0));
        }
    }
    let mut slots: Vec<Option<Item>> = items.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// True when two directory (or root) attributes differ in a way a layer records:
/// mode, owner, xattrs (a directory's mtime alone is not a change).
pub fn meta_changed(a: &Meta, b: &Meta) -> bool {
    a.mode != b.mode || a.uid != b.uid || a.gid != b.gid || a.xattrs != b.xattrs
}

/// Reads the kind (file content not hashed) and metadata of `name` in `dir`.
pub fn inode_at(dir: BorrowedFd<'_>, name: &str, root: &Path) -> Result<(ItemKind, Meta)> {
    let st = fsutil::lstat_at(dir, name).map_err(|e| Error::io("stat", root.join(name), e))?;
    let item = item_at(dir, name, name, &st, root)?;
    match item {
        Item::Entry { kind, meta, .. } => Ok((kind, meta)),
        _ => Err(Error::io(
            "stat",
            root.join(name),
            io::Error::other("not an entry"),
        )),
    }
}

/// Builds the commit item for `name` in `dir`, known by `path` in the layer.
pub fn item_at(
    dir: BorrowedFd<'_>,
    name: &str,
    path: &str,
    st: &Stat,
    root: &Path,
) -> Result<Item> {
    let at = || root.join(path);
    let kind = match file_type(st) {
        FileType::RegularFile => ItemKind::File {
            size: st.st_size as u64,
        },
        FileType::Directory => ItemKind::Dir,
        FileType::Symlink => ItemKind::Symlink(
            fsutil::read_link(dir, name).map_err(|e| Error::io("readlink", at(), e))?,
        ),
        FileType::CharacterDevice => {
            ItemKind::CharDev(rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev))
        }
        FileType::BlockDevice => {
            ItemKind::BlockDev(rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev))
        }
        FileType::Fifo => ItemKind::Fifo,
        other => {
            return Err(Error::io(
                "commit",
                at(),
                io::Error::other(format!("cannot be in a layer: {other:?}")),
            ));
        }
    };
    let meta = Meta {
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: fsutil::mtime_of(st),
        xattrs: fsutil::read_xattrs(dir, name).map_err(|e| Error::io("read xattrs", at(), e))?,
    };
    // Any non-directory can have several names: files, and symlinks, devices, fifos too.
    let inode = (kind != ItemKind::Dir && st.st_nlink > 1).then_some((st.st_dev, st.st_ino));
    Ok(Item::Entry {
        path: path.to_string(),
        kind,
        meta,
        inode,
        parent_only: false,
    })
}

/// What a commit leaves out.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    /// Paths (with everything under them) never committed, e.g. the init layer's files.
    pub exclude: Vec<RelPath>,
}

/// Drops excluded items, then parent directories left with nothing to be the parent of.
fn apply_exclusions(items: Vec<Item>, opts: &CommitOptions) -> Vec<Item> {
    let kept: Vec<Item> = items
        .into_iter()
        .filter(|i| !opts.exclude.iter().any(|x| is_within(i.path(), x)))
        .collect();
    // A directory present only as the parent of a change stays only while such a change
    // does: one the container merely passed through (`mkdir d; rmdir d` copies up d's
    // parent) is no change, and a commit never writes a directory the container left alone.
    let mut needed: HashSet<&str> = HashSet::new();
    for i in &kept {
        if matches!(
            i,
            Item::Entry {
                parent_only: true,
                ..
            }
        ) {
            continue;
        }
        let mut p = i.path();
        while let Some((parent, _)) = parent_and_name(p) {
            if !needed.insert(parent) {
                break;
            }
            p = parent;
        }
    }
    let keep: Vec<bool> = kept
        .iter()
        .map(|i| match i {
            Item::Entry {
                parent_only: true,
                path,
                ..
            } => needed.contains(path.as_str()),
            _ => true,
        })
        .collect();
    kept.into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(i, _)| i)
        .collect()
}

/// Writes `items` as a tar to `out`, reading file data under `data_root`.
pub fn write(
    items: Vec<Item>,
    data_root: &Path,
    opts: &CommitOptions,
    out: &mut dyn Write,
) -> Result<()> {
    #[cfg(feature = "mutants")]
    let items: Vec<Item> = if crate::mutants::active(crate::mutants::Mutant::CommitOmitsParents) {
        items
            .into_iter()
            .filter(|i| {
                !matches!(
                    i,
                    Item::Entry {
                        parent_only: true,
                        ..
                    }
                )
            })
            .collect()
    } else {
        items
    };
    let items = apply_exclusions(items, opts);
    for item in &items {
        if let Item::Entry { path, .. } = &item
            && let Some((_, base)) = parent_and_name(path)
            && base.starts_with(WHITEOUT_PREFIX)
        {
            return Err(Error::Usage(format!(
                "{}: a name beginning with {WHITEOUT_PREFIX} cannot be committed (it would read back as a whiteout)",
                data_root.join(path).display()
            )));
        }
    }
    let sorted = tar_order(items);
    let root = open_dir(data_root)?;
    let mut tw = TarWriter::new(io::BufWriter::with_capacity(1 << 17, out));
    let mut first_name: HashMap<(u64, u64), RelPath> = HashMap::new();
    let werr = |p: &str, e: io::Error| Error::io("write tar entry", data_root.join(p), e);
    for item in sorted {
        match item {
            Item::Whiteout { path } => tw.whiteout(&path).map_err(|e| werr(&path, e))?,
            Item::Opaque { path, meta } => tw.opaque(&path, &meta).map_err(|e| werr(&path, e))?,
            Item::Entry {
                path,
                kind,
                meta,
                inode,
                ..
            } => {
                if let Some(key) = inode {
                    if let Some(first) = first_name.get(&key) {
                        let e = Entry {
                            path: path.clone(),
                            kind: EntryKind::HardLink {
                                target: first.clone(),
                            },
                            meta,
                        };
                        tw.entry(&e, None).map_err(|e| werr(&path, e))?;
                        continue;
                    }
                    first_name.insert(key, path.clone());
                }
                let kind = match kind {
                    ItemKind::File { size } => EntryKind::File(FileData {
                        size,
                        digest: Digest([0; 32]),
                        bytes: None,
                    }),
                    ItemKind::Dir => EntryKind::Dir,
                    ItemKind::Symlink(target) => EntryKind::Symlink { target },
                    ItemKind::CharDev(major, minor) => EntryKind::CharDev { major, minor },
                    ItemKind::BlockDev(major, minor) => EntryKind::BlockDev { major, minor },
                    ItemKind::Fifo => EntryKind::Fifo,
                };
                let e = Entry {
                    path: path.clone(),
                    kind,
                    meta,
                };
                if let EntryKind::File(_) = e.kind {
                    let mut f = open_data(root.as_fd(), &path)
                        .map_err(|e| Error::io("open", data_root.join(&path), e))?;
                    tw.entry(&e, Some(&mut f)).map_err(|e| werr(&path, e))?;
                } else {
                    tw.entry(&e, None).map_err(|e| werr(&path, e))?;
                }
            }
        }
    }
    let mut w = tw.finish().map_err(|e| werr("", e))?;
    w.flush().map_err(|e| werr("", e))
}

fn open_data(root: BorrowedFd<'_>, path: &str) -> io::Result<File> {
    let (parent, name) = parent_and_name(path).unwrap_or(("", path));
    let dir = fsutil::open_dir_beneath_long(root, parent)?;
    open_file_at(dir.as_fd(), name)
}

/// Writes a commit to `path` atomically: a temporary beside it, renamed into place only when
/// whole; on any error the temporary is removed. Returns the sha256 of the tar (its diff-id).
/// Out of room, the error says `what` was writing `path`, in which output directory.
pub fn write_file(
    what: &'static str,
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<Digest> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let place = || format!("output directory {}", dir.display());
    sweep_dead_temps(dir, path);
    let (tmp, file) = tempfile_in(dir, path).map_err(|e| e.no_space(what, place))?;
    // A failed write names the output (the file being read names itself).
    let mut file = TagWrites::new(file, path);
    let result = (|| -> Result<Digest> {
        // Held while this process writes it: a later commit to the same output removes only
        // temporaries nobody holds (those of killed commits).
        let _held = crate::fsutil::Flock::wait_existing(&tmp)?;
        let mut hw = HashingWriter::new(&mut file);
        let result = f(&mut hw);
        let (digest, _, _) = hw.finish();
        result?;
        file.get_mut()
            .sync_all()
            .map_err(|e| Error::io("sync", path, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
        Ok(digest)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        e.no_space(what, place)
    })
}

/// Removes the temporaries of earlier commits to `path` that were killed before their
/// rename (no live process holds their lock). Best effort: a leftover is only untidy.
fn sweep_dead_temps(dir: &Path, path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}.tmp-");
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for ent in rd.flatten() {
        if !ent.file_name().to_string_lossy().starts_with(&prefix)
            || !ent.file_type().is_ok_and(|t| t.is_file())
        {
            continue;
        }
        let p = ent.path();
        if let Ok(Some(_dead)) = crate::fsutil::Flock::try_take(&p) {
            let _ = std::fs::remove_file(&p);
        }
    }
}

fn tempfile_in(dir: &Path, path: &Path) -> Result<(std::path::PathBuf, File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "commit".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", crate::store::unique_id()));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    Ok((tmp, f))
}

//! Operations on a mounted view's writable layer, as the model sees them: the tree they
//! leave and the errno they fail with, by POSIX (and the Linux VFS's order of checks), under
//! a driver's declared [`Semantics`].
//!
//! Paths are resolved like `openat2(RESOLVE_IN_ROOT)` then an `*at` call on the last
//! component: every parent symlink is followed inside the root, the last component never.
//! Operations on two paths (rename, link) resolve both parents before the call.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::path::{RelPath, is_within, join, parent_and_name};
use super::resolve::{Lookup, Node, OnMissing, Resolved, Walker};
use super::semantics::Semantics;
use super::tree::{FileData, Ino, Inode, Kind, Meta, Timespec, Tree};

/// The errnos the model predicts (values are Linux's).
pub mod errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const ENXIO: i32 = 6;
    pub const EXDEV: i32 = 18;
    pub const ENOTDIR: i32 = 20;
    pub const EISDIR: i32 = 21;
    pub const EINVAL: i32 = 22;
    pub const ELOOP: i32 = 40;
    pub const ENOTEMPTY: i32 = 39;
    pub const EEXIST: i32 = 17;
    pub const EOPNOTSUPP: i32 = 95;
}
use errno::*;

/// One operation on the merged view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// open(O_CREAT|O_EXCL|O_NOFOLLOW), write `data`, fchmod(mode).
    Create {
        path: RelPath,
        data: Vec<u8>,
        mode: u32,
    },
    /// open(O_WRONLY|O_NOFOLLOW), pwrite(data, offset).
    WriteAt {
        path: RelPath,
        offset: u64,
        data: Vec<u8>,
    },
    /// open(O_WRONLY|O_APPEND|O_NOFOLLOW), write(data).
    Append { path: RelPath, data: Vec<u8> },
    /// open(O_WRONLY|O_NOFOLLOW), ftruncate(len).
    Truncate { path: RelPath, len: u64 },
    /// chmod of the inode itself (never through a symlink).
    Chmod { path: RelPath, mode: u32 },
    /// fchownat(AT_SYMLINK_NOFOLLOW).
    Chown { path: RelPath, uid: u32, gid: u32 },
    /// utimensat(AT_SYMLINK_NOFOLLOW), mtime (and atime) set.
    SetMtime { path: RelPath, mtime: Timespec },
    /// lsetxattr.
    SetXattr {
        path: RelPath,
        key: String,
        value: Vec<u8>,
    },
    /// unlinkat.
    Unlink { path: RelPath },
    /// unlinkat(AT_REMOVEDIR).
    Rmdir { path: RelPath },
    /// mkdirat, then chmod(mode).
    Mkdir { path: RelPath, mode: u32 },
    /// renameat.
    Rename { from: RelPath, to: RelPath },
    /// linkat (no follow).
    Link { from: RelPath, to: RelPath },
    /// symlinkat.
    Symlink { target: String, path: RelPath },
    /// mknodat, then chmod(mode). A char device 0:0 (overlayfs's whiteout) is refused with
    /// EPERM: overlayfs refuses to make it in a view, and no layer can hold one (import
    /// refuses it), so no view may gain one.
    Mknod {
        path: RelPath,
        node: Special,
        mode: u32,
    },
}

/// What mknod makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Special {
    Fifo,
    Char { major: u32, minor: u32 },
}

impl Special {
    /// The whiteout device of overlayfs (char 0:0).
    pub fn is_whiteout_device(&self) -> bool {
        *self == Special::Char { major: 0, minor: 0 }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Create { path, data, mode } => {
                write!(f, "create {path} ({} bytes, {mode:04o})", data.len())
            }
            Op::WriteAt { path, offset, data } => {
                write!(f, "write {path} at {offset} ({} bytes)", data.len())
            }
            Op::Append { path, data } => write!(f, "append {path} ({} bytes)", data.len()),
            Op::Truncate { path, len } => write!(f, "truncate {path} to {len}"),
            Op::Chmod { path, mode } => write!(f, "chmod {mode:04o} {path}"),
            Op::Chown { path, uid, gid } => write!(f, "chown {uid}:{gid} {path}"),
            Op::SetMtime { path, mtime } => write!(f, "touch -m {mtime} {path}"),
            Op::SetXattr { path, key, value } => {
                write!(f, "setxattr {key}={} {path}", hex::encode(value))
            }
            Op::Unlink { path } => write!(f, "unlink {path}"),
            Op::Rmdir { path } => write!(f, "rmdir {path}"),
            Op::Mkdir { path, mode } => write!(f, "mkdir -m {mode:04o} {path}"),
            Op::Rename { from, to } => write!(f, "rename {from} {to}"),
            Op::Link { from, to } => write!(f, "link {from} {to}"),
            Op::Symlink { target, path } => write!(f, "symlink {target} {path}"),
            Op::Mknod { path, node, mode } => match node {
                Special::Fifo => write!(f, "mknod -m {mode:04o} {path} p"),
                Special::Char { major, minor } => {
                    write!(f, "mknod -m {mode:04o} {path} c {major} {minor}")
                }
            },
        }
    }
}

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It worked. `touched`: the path of an inode whose mtime the kernel set to "now"; the
    /// model cannot know the time, so the caller copies it from the real view.
    Done { touched: Option<RelPath> },
    /// It failed with this errno.
    Failed(i32),
    /// Not run: a data operation on a device or fifo (opening one has side effects).
    Skipped,
}

impl Outcome {
    fn done() -> Self {
        Outcome::Done { touched: None }
    }

    fn touched(p: &str) -> Self {
        Outcome::Done {
            touched: Some(p.to_string()),
        }
    }
}

/// A mounted view's state as the model sees it: the tree, and which inodes still live in a
/// lower layer (for copy-up and directory-rename semantics).
#[derive(Clone, Debug)]
pub struct Writable {
    pub tree: Tree,
    lower: HashSet<Ino>,
    /// Lower inodes a change has copied up already.
    up: HashSet<Ino>,
    /// Where the last operation split a hard link by copying one name up (a new inode at
    /// the same name).
    splits: Vec<RelPath>,
    sem: Semantics,
}

type Res<T> = Result<T, i32>;

impl Writable {
    /// The view of `tree` (the merged layers) with a fresh writable layer.
    pub fn new(tree: Tree, sem: Semantics) -> Self {
        let lower = tree.iter().filter_map(|(p, _)| tree.ino(p)).collect();
        // A driver that keeps hard links through copy-up has every lower file with several
        // names whole in its writable layer before any change (fuse-overlayfs gets them put
        // there at mount: it would copy one name up alone), so no change copies them up.
        let up = if sem.hardlinks_kept {
            tree.hardlink_groups()
                .iter()
                .filter_map(|g| g.first().and_then(|p| tree.ino(p)))
                .collect()
        } else {
            HashSet::new()
        };
        Writable {
            tree,
            lower,
            up,
            splits: Vec::new(),
            sem,
        }
    }

    /// The real path of `path`'s parent directory and `path`'s last name.
    fn parent(&self, path: &str) -> Res<(RelPath, String)> {
        let (parent, name) = parent_and_name(path).ok_or(EINVAL)?;
        Ok((self.resolve_dir(parent)?, name.to_string()))
    }

    /// Resolves directory `path` inside the root, following every symlink.
    fn resolve_dir(&self, path: &str) -> Res<RelPath> {
        resolve_dir(&self.tree, &mut Walker::new(OnMissing::Fail), path)
    }

    /// The real path of `path` (its last component not followed), which must exist.
    fn existing(&self, path: &str) -> Res<RelPath> {
        let (dir, name) = self.parent(path)?;
        let full = join(&dir, &name);
        if self.tree.get(&full).is_none() {
            return Err(ENOENT);
        }
        Ok(full)
    }

    /// Gives `full` an inode of its own before it changes, when the driver splits hard links
    /// on copy-up and the inode still lives in a lower layer.
    fn copy_up(&mut self, full: &str) {
        if self.sem.hardlinks_kept {
            return;
        }
        let Some(ino) = self.tree.ino(full) else {
            return;
        };
        let Some(inode) = self.tree.inode(ino).cloned() else {
            return;
        };
        if inode.kind.is_dir() || !self.lower.contains(&ino) {
            return;
        }
        self.tree.insert(full, inode);
        self.splits.push(full.to_string());
    }

    /// Copies up the lower entries on the way to `full` (the root is always upper), and
    /// `full` itself when `itself`: a change there needs them in the writable layer. Only
    /// attributes can change, and only where the driver declares that its copies lose some:
    /// a regular file not owned by 0:0 what chown(2) drops (setuid; setgid with group exec),
    /// a symlink its owner, mtime and xattrs, a directory on the way its mtime. Returns true
    /// when `full`'s mtime became the time of the copy.
    fn copy_up_attrs(&mut self, full: &str, itself: bool) -> bool {
        if self.sem.copy_up_keeps_setid
            && self.sem.copy_up_keeps_symlink_attrs
            && self.sem.copy_up_keeps_parent_mtime
        {
            return false;
        }
        let mut paths: Vec<String> = super::ancestors(full)
            .into_iter()
            .map(str::to_string)
            .collect();
        if itself {
            paths.push(full.to_string());
        }
        let mut touched = false;
        for p in paths.iter().map(String::as_str) {
            let Some(ino) = self.tree.ino(p) else {
                continue;
            };
            if !self.lower.contains(&ino) || !self.up.insert(ino) {
                continue;
            }
            // The copy is made in its parent directory: that directory shows the copy's time.
            if !self.sem.copy_up_keeps_parent_mtime
                && let Some(d) = self.tree.get_mut(parent_and_name(p).map_or("", |(d, _)| d))
            {
                d.meta.mtime = Timespec::UNKNOWN;
            }
            let Some(i) = self.tree.get_mut(p) else {
                continue;
            };
            match i.kind {
                Kind::Dir if p != full && !self.sem.copy_up_keeps_parent_mtime => {
                    i.meta.mtime = Timespec::UNKNOWN;
                }
                Kind::Symlink { .. } if !self.sem.copy_up_keeps_symlink_attrs => {
                    i.meta.uid = 0;
                    i.meta.gid = 0;
                    i.meta.xattrs.clear();
                    touched = p == full;
                }
                Kind::File(_)
                    if !self.sem.copy_up_keeps_setid && (i.meta.uid, i.meta.gid) != (0, 0) =>
                {
                    i.meta.mode &= !0o4000;
                    if i.meta.mode & 0o2010 == 0o2010 {
                        i.meta.mode &= !0o2000;
                    }
                }
                _ => {}
            }
        }
        touched
    }

    /// The metadata of a new inode made in directory `dir` by root: mode as given, uid 0,
    /// and the directory's group when it is setgid (0 otherwise).
    fn new_meta(&self, dir: &str, mode: u32, file: bool) -> Meta {
        let mut m = Meta::mode(mode & 0o7777);
        if let Some(d) = self.tree.get(dir)
            && d.meta.mode & 0o2000 != 0
            && (file || self.sem.setgid_dirs_pass_group)
        {
            m.gid = d.meta.gid;
        }
        m
    }

    fn kind(&self, full: &str) -> Option<Kind> {
        self.tree.get(full).map(|i| i.kind.clone())
    }

    /// Applies `op`; the tree changes only when it succeeds.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        self.splits.clear();
        match self.try_apply(op) {
            Ok(o) => o,
            Err(e) => Outcome::Failed(e),
        }
    }

    /// Where the last [`Writable::apply`] split a hard link: a copy of the inode at the same
    /// name, made by the driver (the directory's entries did not change).
    pub fn splits(&self) -> &[RelPath] {
        &self.splits
    }

    fn try_apply(&mut self, op: &Op) -> Res<Outcome> {
        match op {
            Op::Create { path, data, mode } => {
                let (dir, name) = self.parent(path)?;
                let full = join(&dir, &name);
                if self.tree.get(&full).is_some() {
                    return Err(EEXIST);
                }
                self.copy_up_attrs(&full, false);
                let meta = self.new_meta(&dir, *mode, true);
                self.tree.insert(
                    &full,
                    Inode {
                        kind: Kind::File(FileData::from_bytes(data.clone())),
                        meta,
                    },
                );
                Ok(Outcome::touched(&full))
            }
            Op::WriteAt { path, offset, data } => self.write(path, |b| {
                let end = *offset as usize + data.len();
                if b.len() < end {
                    b.resize(end, 0);
                }
                b[*offset as usize..end].copy_from_slice(data);
            }),
            Op::Append { path, data } => self.write(path, |b| b.extend_from_slice(data)),
            Op::Truncate { path, len } => self.write(path, |b| b.resize(*len as usize, 0)),
            Op::Chmod { path, mode } => {
                let full = self.existing(path)?;
                if matches!(self.kind(&full), Some(Kind::Symlink { .. })) {
                    return Err(EOPNOTSUPP);
                }
                self.copy_up_attrs(&full, true);
                self.copy_up(&full);
                if let Some(i) = self.tree.get_mut(&full) {
                    i.meta.mode = mode & 0o7777;
                }
                Ok(Outcome::done())
            }
            Op::Chown { path, uid, gid } => {
                let full = self.existing(path)?;
                let touched = self.copy_up_attrs(&full, true);
                self.copy_up(&full);
                if let Some(i) = self.tree.get_mut(&full) {
                    i.meta.uid = *uid;
                    i.meta.gid = *gid;
                    if !i.kind.is_dir() {
                        // chown(2) drops setuid, setgid-with-group-exec and file capabilities,
                        // for root too.
                        i.meta.mode &= !0o4000;
                        if i.meta.mode & 0o2010 == 0o2010 {
                            i.meta.mode &= !0o2000;
                        }
                        i.meta.xattrs.remove("security.capability");
                    }
                }
                Ok(if touched {
                    Outcome::touched(&full)
                } else {
                    Outcome::done()
                })
            }
            Op::SetMtime { path, mtime } => {
                let full = self.existing(path)?;
                self.copy_up_attrs(&full, true);
                self.copy_up(&full);
                if let Some(i) = self.tree.get_mut(&full) {
                    i.meta.mtime = *mtime;
                }
                Ok(Outcome::done())
            }
            Op::SetXattr { path, key, value } => {
                let full = self.existing(path)?;
                if !matches!(self.kind(&full), Some(Kind::File(_) | Kind::Dir)) {
                    return Err(EPERM); // user.* xattrs exist only on files and directories
                }
                self.copy_up_attrs(&full, true);
                self.copy_up(&full);
                if let Some(i) = self.tree.get_mut(&full) {
                    i.meta.xattrs.insert(key.clone(), value.clone());
                }
                Ok(Outcome::done())
            }
            Op::Unlink { path } => {
                let full = self.existing(path)?;
                if matches!(self.kind(&full), Some(Kind::Dir)) {
                    return Err(EISDIR);
                }
                self.copy_up_attrs(&full, false);
                self.tree.remove_subtree(&full);
                Ok(Outcome::done())
            }
            Op::Rmdir { path } => {
                let full = self.existing(path)?;
                if !matches!(self.kind(&full), Some(Kind::Dir)) {
                    return Err(ENOTDIR);
                }
                if !self.tree.children(&full).is_empty() {
                    return Err(ENOTEMPTY);
                }
                self.copy_up_attrs(&full, false);
                self.tree.remove_subtree(&full);
                Ok(Outcome::done())
            }
            Op::Mkdir { path, mode } => {
                let (dir, name) = self.parent(path)?;
                let full = join(&dir, &name);
                if self.tree.get(&full).is_some() {
                    return Err(EEXIST);
                }
                self.copy_up_attrs(&full, false);
                let meta = self.new_meta(&dir, *mode, false);
                self.tree.insert(
                    &full,
                    Inode {
                        kind: Kind::Dir,
                        meta,
                    },
                );
                Ok(Outcome::done())
            }
            Op::Rename { from, to } => self.rename(from, to),
            Op::Link { from, to } => {
                // Both parents are resolved (in the root) before linkat runs.
                let (sdir, sname) = self.parent(from)?;
                let (dir, name) = self.parent(to)?;
                let src = join(&sdir, &sname);
                if self.tree.get(&src).is_none() {
                    return Err(ENOENT);
                }
                let dst = join(&dir, &name);
                if self.tree.get(&dst).is_some() {
                    return Err(EEXIST);
                }
                if matches!(self.kind(&src), Some(Kind::Dir)) {
                    return Err(EPERM);
                }
                let touched = self.copy_up_attrs(&src, true);
                self.copy_up_attrs(&dst, false);
                self.copy_up(&src);
                let ino = self.tree.ino(&src).ok_or(ENOENT)?;
                self.tree.link(&dst, ino);
                Ok(if touched {
                    Outcome::touched(&dst)
                } else {
                    Outcome::done()
                })
            }
            Op::Symlink { target, path } => {
                let (dir, name) = self.parent(path)?;
                let full = join(&dir, &name);
                if self.tree.get(&full).is_some() {
                    return Err(EEXIST);
                }
                self.copy_up_attrs(&full, false);
                let meta = self.new_meta(&dir, 0o777, false);
                self.tree.insert(
                    &full,
                    Inode {
                        kind: Kind::Symlink {
                            target: target.clone(),
                        },
                        meta,
                    },
                );
                Ok(Outcome::touched(&full))
            }
            Op::Mknod { path, node, mode } => {
                let (dir, name) = self.parent(path)?;
                let full = join(&dir, &name);
                if self.tree.get(&full).is_some() {
                    return Err(EEXIST);
                }
                if node.is_whiteout_device() {
                    return Err(EPERM);
                }
                self.copy_up_attrs(&full, false);
                let meta = self.new_meta(&dir, *mode, false);
                let kind = match *node {
                    Special::Fifo => Kind::Fifo,
                    Special::Char { major, minor } => Kind::CharDev { major, minor },
                };
                self.tree.insert(&full, Inode { kind, meta });
                Ok(Outcome::touched(&full))
            }
        }
    }

    /// A data change to a regular file.
    fn write(&mut self, path: &str, change: impl FnOnce(&mut Vec<u8>)) -> Res<Outcome> {
        let full = self.existing(path)?;
        match self.kind(&full) {
            Some(Kind::Dir) => return Err(EISDIR),
            Some(Kind::Symlink { .. }) => return Err(ELOOP), // O_NOFOLLOW
            Some(Kind::File(_)) => {}
            _ => return Ok(Outcome::Skipped),
        }
        self.copy_up_attrs(&full, true);
        self.copy_up(&full);
        let Some(i) = self.tree.get_mut(&full) else {
            return Err(ENOENT);
        };
        let Kind::File(d) = &i.kind else {
            return Err(EINVAL);
        };
        let Some(bytes) = &d.bytes else {
            return Err(EINVAL); // the model was built without file contents
        };
        let mut b = bytes.as_ref().clone();
        change(&mut b);
        i.kind = Kind::File(FileData::from_bytes(b));
        // A write by root keeps setuid bits (CAP_FSETID) but always drops file capabilities.
        i.meta.xattrs.remove("security.capability");
        Ok(Outcome::touched(&full))
    }

    fn rename(&mut self, from: &str, to: &str) -> Res<Outcome> {
        let (sdir, sname) = self.parent(from)?;
        let (ddir, dname) = self.parent(to)?;
        let src = join(&sdir, &sname);
        let dst = join(&ddir, &dname);
        let skind = self.kind(&src).ok_or(ENOENT)?;
        if src == dst {
            return Ok(Outcome::done());
        }
        // lock_rename's traps: the source may not be an ancestor of the target...
        if is_within(&ddir, &src) {
            return Err(EINVAL);
        }
        // ...nor the target an ancestor of the source.
        if is_within(&sdir, &dst) {
            return Err(ENOTEMPTY);
        }
        let dkind = self.kind(&dst);
        if let Some(dk) = &dkind {
            let same = self.tree.ino(&src) == self.tree.ino(&dst);
            // Two names of one inode: nothing to do. Where hard links split on copy-up, two
            // names of a lower inode are two inodes to the VFS, and the rename happens.
            let split = !self.sem.hardlinks_kept
                && self.tree.ino(&src).is_some_and(|i| self.lower.contains(&i));
            if same && !split {
                return Ok(Outcome::done());
            }
            match (skind.is_dir(), dk.is_dir()) {
                (true, false) => return Err(ENOTDIR),
                (false, true) => return Err(EISDIR),
                _ => {}
            }
        }
        if skind.is_dir()
            && !self.sem.dir_rename
            && self.tree.ino(&src).is_some_and(|i| self.lower.contains(&i))
        {
            return Err(EXDEV);
        }
        if dkind.as_ref().is_some_and(Kind::is_dir) && !self.tree.children(&dst).is_empty() {
            return Err(ENOTEMPTY);
        }
        let touched = self.copy_up_attrs(&src, true);
        self.copy_up_attrs(&dst, false);
        self.copy_up(&src);
        self.tree.remove_subtree(&dst);
        self.tree.rename_subtree(&src, &dst);
        Ok(if touched {
            Outcome::touched(&dst)
        } else {
            Outcome::done()
        })
    }
}

/// The model's tree as a namespace to resolve in (read-only: lookups never create).
struct InTree<'a>(&'a Tree);

impl Lookup for InTree<'_> {
    type Dir = ();
    type Error = ();

    fn root(&mut self) -> Result<(), ()> {
        Ok(())
    }

    fn node(&mut self, _: &(), at: &str, name: &str, _: Option<&str>) -> Result<Node, ()> {
        Ok(match self.0.get(&join(at, name)).map(|i| &i.kind) {
            None => Node::Missing,
            Some(Kind::Dir) => Node::Dir,
            Some(Kind::Symlink { target }) => Node::Symlink(target.clone()),
            Some(_) => Node::Other,
        })
    }

    fn enter(&mut self, _: &(), _: &str, _: &str) -> Result<(), ()> {
        Ok(())
    }

    fn make_dir(&mut self, _: &(), _: &str, _: &str, _: bool) -> Result<(), ()> {
        Err(())
    }
}

/// The real path of directory `path` in `tree`, or the errno a lookup fails with.
fn resolve_dir(tree: &Tree, w: &mut Walker, path: &str) -> Res<RelPath> {
    match w.dir(&mut InTree(tree), path) {
        Ok(Resolved::Dir { path, .. }) => Ok(path),
        Ok(Resolved::NotFound | Resolved::Outside) | Err(()) => Err(ENOENT),
        Ok(Resolved::NotDir) => Err(ENOTDIR),
        Ok(Resolved::Loop) => Err(ELOOP),
    }
}

/// What reading `path` in a view returns, by the model: every symlink followed inside the
/// root, the last one included (`open(O_RDONLY)` under `RESOLVE_IN_ROOT`). The content when
/// the model holds it, `None` when it knows only the digest; else the errno.
pub fn read(tree: &Tree, path: &str) -> Res<Option<Vec<u8>>> {
    let mut w = Walker::new(OnMissing::Fail);
    let mut path = path.to_string();
    loop {
        let (parent, name) = match parent_and_name(path.trim_end_matches('/')) {
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => return Err(EISDIR),
        };
        let dir = resolve_dir(tree, &mut w, &parent)?;
        if name == ".." || name == "." {
            // The walk ends on a directory either way.
            resolve_dir(tree, &mut w, &path)?;
            return Err(EISDIR);
        }
        let full = join(&dir, &name);
        match tree.get(&full).map(|i| &i.kind) {
            None => return Err(ENOENT),
            Some(Kind::File(d)) => return Ok(d.bytes.as_ref().map(|b| b.as_ref().clone())),
            Some(Kind::Dir) => return Err(EISDIR),
            Some(Kind::Symlink { target }) => {
                if !w.follow() {
                    return Err(ELOOP);
                }
                path = if target.starts_with('/') {
                    target.clone()
                } else {
                    format!("{dir}/{target}")
                };
            }
            Some(_) => return Err(EINVAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileData;

    fn base() -> Tree {
        let mut t = Tree::default();
        t.insert(
            "d",
            Inode {
                kind: Kind::Dir,
                meta: Meta::mode(0o755),
            },
        );
        let ino = t.insert(
            "d/f",
            Inode {
                kind: Kind::File(FileData::from_bytes(b"abc".to_vec())),
                meta: Meta::mode(0o644),
            },
        );
        t.link("d/g", ino);
        t.insert(
            "l",
            Inode {
                kind: Kind::Symlink {
                    target: "/d".into(),
                },
                meta: Meta::mode(0o777),
            },
        );
        t
    }

    #[test]
    fn writes_through_a_parent_symlink_resolve_inside_the_root() {
        let mut w = Writable::new(base(), Semantics::oci());
        assert!(matches!(
            w.apply(&Op::Append {
                path: "l/f".into(),
                data: b"d".to_vec()
            }),
            Outcome::Done { .. }
        ));
        let Kind::File(d) = &w.tree.get("d/g").unwrap().kind else {
            panic!()
        };
        assert_eq!(d.bytes.as_deref().map(Vec::as_slice), Some(&b"abcd"[..]));
    }

    #[test]
    fn copies_lose_setid_bits_and_symlink_attributes_only_when_declared() {
        let mut t = Tree::default();
        let mut m = Meta::mode(0o4755);
        m.gid = 1;
        t.insert(
            "suid",
            Inode {
                kind: Kind::File(FileData::from_bytes(b"x".to_vec())),
                meta: m,
            },
        );
        let mut l = Meta::mode(0o777);
        l.uid = 7;
        l.mtime = Timespec::new(5, 0);
        t.insert(
            "l",
            Inode {
                kind: Kind::Symlink { target: "x".into() },
                meta: l,
            },
        );
        let fuse = Semantics {
            copy_up_keeps_setid: false,
            copy_up_keeps_symlink_attrs: false,
            ..Semantics::oci()
        };
        let set = |path: &str| Op::SetMtime {
            path: path.into(),
            mtime: Timespec::new(9, 0),
        };
        for (sem, mode, uid) in [(Semantics::oci(), 0o4755, 7), (fuse, 0o755, 0)] {
            let mut w = Writable::new(t.clone(), sem);
            w.apply(&set("suid"));
            w.apply(&Op::Rename {
                from: "l".into(),
                to: "l2".into(),
            });
            assert_eq!(w.tree.get("suid").unwrap().meta.mode, mode);
            assert_eq!(w.tree.get("l2").unwrap().meta.uid, uid);
        }
    }

    #[test]
    fn a_parent_copied_up_loses_its_mtime_only_when_declared() {
        let mut t = Tree::default();
        for d in ["a", "a/b", "c"] {
            let mut m = Meta::mode(0o755);
            m.mtime = Timespec::new(5, 0);
            t.insert(
                d,
                Inode {
                    kind: Kind::Dir,
                    meta: m,
                },
            );
        }
        let lossy = Semantics {
            copy_up_keeps_parent_mtime: false,
            ..Semantics::oci()
        };
        for (sem, a) in [
            (Semantics::oci(), Timespec::new(5, 0)),
            (lossy, Timespec::UNKNOWN),
        ] {
            let mut w = Writable::new(t.clone(), sem);
            w.apply(&Op::Create {
                path: "a/b/new".into(),
                data: Vec::new(),
                mode: 0o644,
            });
            // A directory copied up for its own change keeps its time either way.
            w.apply(&Op::Chmod {
                path: "c".into(),
                mode: 0o700,
            });
            assert_eq!(w.tree.get("a").unwrap().meta.mtime, a);
            assert_eq!(w.tree.get("c").unwrap().meta.mtime, Timespec::new(5, 0));
        }
    }

    #[test]
    fn copy_up_splits_hard_links_only_when_declared() {
        let split = Semantics {
            hardlinks_kept: false,
            ..Semantics::oci()
        };
        let mut w = Writable::new(base(), split);
        w.apply(&Op::Append {
            path: "d/f".into(),
            data: b"x".to_vec(),
        });
        assert!(w.tree.hardlink_groups().is_empty());
        let mut w = Writable::new(base(), Semantics::oci());
        w.apply(&Op::Append {
            path: "d/f".into(),
            data: b"x".to_vec(),
        });
        assert_eq!(w.tree.hardlink_groups().len(), 1);
    }

    #[test]
    fn rename_errors_follow_the_vfs_order() {
        let mut w = Writable::new(base(), Semantics::oci());
        assert_eq!(
            w.apply(&Op::Rename {
                from: "d".into(),
                to: "d/sub".into()
            }),
            Outcome::Failed(EINVAL)
        );
        assert_eq!(
            w.apply(&Op::Rename {
                from: "d/f".into(),
                to: "d".into()
            }),
            Outcome::Failed(ENOTEMPTY)
        );
        assert_eq!(
            w.apply(&Op::Rename {
                from: "d/f".into(),
                to: "d/g".into()
            }),
            Outcome::done()
        );
        assert_eq!(
            w.apply(&Op::Rename {
                from: "nope".into(),
                to: "x".into()
            }),
            Outcome::Failed(ENOENT)
        );
        let no_rename = Semantics {
            dir_rename: false,
            ..Semantics::oci()
        };
        let mut w = Writable::new(base(), no_rename);
        assert_eq!(
            w.apply(&Op::Rename {
                from: "d".into(),
                to: "e".into()
            }),
            Outcome::Failed(EXDEV)
        );
        w.apply(&Op::Mkdir {
            path: "new".into(),
            mode: 0o755,
        });
        assert_eq!(
            w.apply(&Op::Rename {
                from: "new".into(),
                to: "e".into()
            }),
            Outcome::done()
        );
    }

    #[test]
    fn mknod_makes_fifos_and_devices_and_refuses_the_whiteout_device() {
        let mut w = Writable::new(base(), Semantics::oci());
        let mknod = |path: &str, node| Op::Mknod {
            path: path.into(),
            node,
            mode: 0o640,
        };
        let null = Special::Char { major: 1, minor: 3 };
        assert!(matches!(
            w.apply(&mknod("l/p", Special::Fifo)),
            Outcome::Done { .. }
        ));
        assert!(matches!(w.apply(&mknod("n", null)), Outcome::Done { .. }));
        assert_eq!(w.tree.get("d/p").unwrap().kind, Kind::Fifo);
        assert_eq!(w.tree.get("d/p").unwrap().meta.mode, 0o640);
        assert_eq!(
            w.tree.get("n").unwrap().kind,
            Kind::CharDev { major: 1, minor: 3 }
        );
        assert_eq!(w.apply(&mknod("n", Special::Fifo)), Outcome::Failed(EEXIST));
        let whiteout = Special::Char { major: 0, minor: 0 };
        assert_eq!(w.apply(&mknod("z", whiteout)), Outcome::Failed(EPERM));
        assert!(w.tree.get("z").is_none());
        // EEXIST is found first, as the VFS looks the name up before the filesystem's mknod.
        assert_eq!(w.apply(&mknod("d", whiteout)), Outcome::Failed(EEXIST));
        assert_eq!(w.apply(&mknod("x/y", null)), Outcome::Failed(ENOENT));
        assert_eq!(mknod("a/b", null).to_string(), "mknod -m 0640 a/b c 1 3");
    }

    #[test]
    fn chown_drops_setuid_and_capabilities() {
        let mut t = Tree::default();
        let mut m = Meta::mode(0o6755);
        m.xattrs.insert("security.capability".into(), vec![1]);
        t.insert(
            "f",
            Inode {
                kind: Kind::File(FileData::from_bytes(vec![])),
                meta: m,
            },
        );
        let mut w = Writable::new(t, Semantics::oci());
        w.apply(&Op::Chown {
            path: "f".into(),
            uid: 1,
            gid: 1,
        });
        let i = w.tree.get("f").unwrap();
        assert_eq!(i.meta.mode, 0o755);
        assert!(i.meta.xattrs.is_empty());
    }
}

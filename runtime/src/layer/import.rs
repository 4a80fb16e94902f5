//! Safe import of one layer tar into an empty directory, in overlayfs's lower-layer form.
//!
//! - Every name is checked: no absolute names, no `..`, no entry whose parent is a symlink or a
//!   non-directory of the same layer, no hard link to a name outside the layer, no invalid
//!   whiteout, no overlayfs-private xattr, no repeated non-directory path (OCI forbids it).
//! - Everything is created relative to the layer directory with `RESOLVE_BENEATH` and
//!   `RESOLVE_NO_SYMLINKS`, so even a check missed could not write outside it.
//! - Whiteouts become char devices 0:0; a deleted-and-recreated or opaque directory gets
//!   `trusted.overlay.opaque=y`. The change set keeps the OCI form for the model.
//! - The tar must end with its end-of-archive blocks: a tar cut at an entry boundary is
//!   truncated, not shorter.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode};

use super::name::{Name, classify};
use super::tarread::{Member, TarKind, TarReader};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::fsutil::{self, OVERLAY_OPAQUE_XATTR, ioe, open_dir, open_dir_beneath};
use crate::model::{
    Change, ChangeSet, Entry, EntryKind, FileData, Kind, Meta, RelPath, Timespec, join,
    parent_and_name,
};

/// A layer written into its directory.
#[derive(Debug)]
pub struct ImportedLayer {
    /// The layer's entries in tar order, in OCI form.
    pub changes: ChangeSet,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Length of the uncompressed tar.
    pub tar_size: u64,
    /// Where the layer directory holds a whiteout device (overlayfs lists one in a directory
    /// that is not merged with another layer; the overlay driver copes at mount time).
    pub whiteout_devices: Vec<RelPath>,
}

/// What the layer holds at a path, for the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    Dir,
    ImpliedDir,
    Symlink,
    Other,
}

struct Importer<'a> {
    label: &'a Path,
    /// The layer directory written (named by errors that are its own: out of room).
    dest: &'a Path,
    root: OwnedFd,
    held: HashMap<RelPath, Held>,
    dir_mtimes: BTreeMap<RelPath, Timespec>,
    root_meta: Option<Meta>,
    parent_cache: Option<(RelPath, OwnedFd)>,
    whiteout_devices: Vec<RelPath>,
}

/// Reads the layer tar from `reader` and writes it into the empty directory `dest`.
/// `label` names the source in errors. On error `dest` holds a partial layer: the caller
/// (the store) removes it.
pub fn import_tar(reader: impl Read, label: &Path, dest: &Path) -> Result<ImportedLayer> {
    let mut hr = HashingReader::new(reader);
    let mut imp = Importer {
        label,
        dest,
        root: open_dir(dest)?,
        held: HashMap::new(),
        dir_mtimes: BTreeMap::new(),
        root_meta: None,
        parent_cache: None,
        whiteout_devices: Vec::new(),
    };
    let mut changes = Vec::new();
    let mut tr = TarReader::new(&mut hr);
    let mut last: Option<String> = None;
    loop {
        let member = tr.next_member().map_err(|e| match (&last, e.kind()) {
            // Reading the source also wrote it somewhere (a staged blob), and that failed.
            _ if crate::error::is_write_failed(&e) => Error::io("read", label, e),
            (None, std::io::ErrorKind::InvalidData) => {
                imp.archive_err(format!("not a tar archive ({e})"))
            }
            (_, std::io::ErrorKind::UnexpectedEof) => imp.archive_err(format!("truncated: {e}")),
            (Some(l), _) => imp.archive_err(format!("corrupt after entry {l:?}: {e}")),
            (None, _) => imp.archive_err(format!("unreadable: {e}")),
        })?;
        let Some(member) = member else { break };
        let raw = String::from_utf8(member.name.clone())
            .map_err(|e| imp.bad(&String::from_utf8_lossy(e.as_bytes()), "name is not UTF-8"))?;
        if let Some(c) = imp.entry(&raw, &member, &mut tr.data())? {
            changes.push(c);
        }
        last = Some(raw);
    }
    drop(tr);
    let (diff_id, tar_size) = hr.finish().map_err(|e| {
        if crate::error::is_write_failed(&e) {
            Error::io("read", label, e)
        } else {
            imp.archive_err(format!("reading past the archive: {e}"))
        }
    })?;
    let changes = ChangeSet { changes };
    imp.apply_deletions(&changes)?;
    imp.finish_dirs()?;
    Ok(ImportedLayer {
        changes,
        diff_id,
        tar_size,
        whiteout_devices: imp.whiteout_devices,
    })
}

impl Importer<'_> {
    fn archive_err(&self, reason: String) -> Error {
        Error::BadArchive {
            path: self.label.to_path_buf(),
            reason,
        }
    }

    fn bad(&self, entry: &str, reason: impl Into<String>) -> Error {
        Error::BadEntry {
            source_path: self.label.to_path_buf(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    fn io(&self, op: &'static str, path: &str, e: std::io::Error) -> Error {
        Error::io(op, at_path(self.label, self.dest, path, &e), e)
    }

    /// Handles one tar entry; returns its change, if it is part of the change set.
    fn entry(&mut self, raw: &str, m: &Member, data: &mut dyn Read) -> Result<Option<Change>> {
        let name = classify(raw).map_err(|r| self.bad(raw, r))?;
        let meta = self.meta(raw, m)?;
        match name {
            Name::AufsMeta => Ok(None),
            Name::Whiteout(p) => {
                self.check_parents(raw, &p)?;
                Ok(Some(Change::Whiteout { path: p }))
            }
            Name::Opaque(p) => {
                self.check_parents(raw, &join(&p, "x"))?;
                if matches!(self.held.get(&p), Some(Held::Symlink | Held::Other)) {
                    return Err(self.bad(raw, "opaque marker inside a non-directory of this layer"));
                }
                Ok(Some(Change::Opaque { path: p }))
            }
            Name::Entry(p) => {
                let kind = self.create(raw, &p, m, data, &meta)?;
                Ok(Some(Change::Entry(Entry {
                    path: p,
                    kind,
                    meta,
                })))
            }
        }
    }

    /// The metadata of a member (its PAX records already applied by the reader).
    fn meta(&self, raw: &str, m: &Member) -> Result<Meta> {
        for x in m.xattrs.keys() {
            if x.starts_with(fsutil::OVERLAY_XATTR_PREFIX) || x.starts_with("user.overlay.") {
                return Err(self.bad(raw, format!("xattr {x} is reserved for overlayfs")));
            }
        }
        Ok(Meta {
            mode: m.mode,
            uid: u32::try_from(m.uid).map_err(|_| self.bad(raw, "uid out of range"))?,
            gid: u32::try_from(m.gid).map_err(|_| self.bad(raw, "gid out of range"))?,
            mtime: m.mtime,
            xattrs: m.xattrs.clone(),
        })
    }

    /// Checks every parent of `path` is a directory of this layer (or not in it yet).
    fn check_parents(&self, raw: &str, path: &str) -> Result<()> {
        let mut prefix = String::new();
        let comps: Vec<&str> = path.split('/').collect();
        for c in &comps[..comps.len().saturating_sub(1)] {
            prefix = join(&prefix, c);
            match self.held.get(&prefix) {
                Some(Held::Symlink) => {
                    return Err(self.bad(
                        raw,
                        format!("written through a symlink: {prefix:?} is a symlink in this layer"),
                    ));
                }
                Some(Held::Other) => {
                    return Err(self.bad(
                        raw,
                        format!("parent {prefix:?} is not a directory in this layer"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Opens the parent directory of `path`, creating implied directories.
    fn parent_fd(&mut self, raw: &str, path: &str) -> Result<BorrowedFd<'_>> {
        self.check_parents(raw, path)?;
        let (parent, _) = parent_and_name(path).unwrap_or(("", ""));
        let hit = self.parent_cache.as_ref().is_some_and(|(p, _)| p == parent);
        if !hit {
            let mut prefix = String::new();
            for c in parent.split('/').filter(|c| !c.is_empty()) {
                let next = join(&prefix, c);
                if !self.held.contains_key(&next) {
                    let pfd = open_dir_beneath(self.root.as_fd(), &prefix)
                        .map_err(|e| self.io("open", &prefix, e))?;
                    match rfs::mkdirat(&pfd, c, Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(self.io("mkdir", &next, ioe(e))),
                    }
                    // Exactly 0755 root:root: not the umask's mode, nor the setgid bit and
                    // group a setgid parent would pass on.
                    fsutil::set_meta_at(pfd.as_fd(), c, &Kind::Dir, &Meta::implied_dir())
                        .map_err(|e| self.io("set metadata", &next, e))?;
                    self.held.insert(next.clone(), Held::ImpliedDir);
                    self.dir_mtimes.insert(next.clone(), Timespec::default());
                }
                prefix = next;
            }
            let fd = open_dir_beneath(self.root.as_fd(), parent)
                .map_err(|e| self.io("open", parent, e))?;
            self.parent_cache = Some((parent.to_string(), fd));
        }
        match &self.parent_cache {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Err(self.io("open", parent, std::io::Error::other("parent cache empty"))),
        }
    }

    fn create(
        &mut self,
        raw: &str,
        path: &str,
        m: &Member,
        data: &mut dyn Read,
        meta: &Meta,
    ) -> Result<EntryKind> {
        let etype = m.kind;
        if path.is_empty() {
            if etype != TarKind::Directory {
                return Err(self.bad(raw, "the root entry must be a directory"));
            }
            self.root_meta = Some(meta.clone());
            return Ok(EntryKind::Dir);
        }
        let existing = self.held.get(path).copied();
        let is_dir = etype == TarKind::Directory;
        match existing {
            Some(Held::Dir | Held::ImpliedDir) if is_dir => {}
            Some(_) => {
                return Err(self.bad(raw, "duplicate entry (an OCI layer must not repeat a path)"));
            }
            None => {}
        }
        let (_, name) = parent_and_name(path).unwrap_or(("", path));
        let name = name.to_string();
        let label = self.label.to_path_buf();
        let dest = self.dest;
        let at = |op: &'static str, e: std::io::Error| {
            let p = at_path(&label, dest, path, &e);
            Error::io(op, p, e)
        };
        let kind = match etype {
            TarKind::Regular => {
                let size = m.size;
                let dir = self.parent_fd(raw, path)?;
                let mut f = fsutil::create_file_at(dir, &name).map_err(|e| at("create", e))?;
                let digest = fsutil::write_sparse(data, &mut f, size).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        Error::BadArchive {
                            path: label.clone(),
                            reason: format!("truncated inside entry {raw:?}"),
                        }
                    } else {
                        at("write", e)
                    }
                })?;
                fsutil::set_meta_fd(f.as_fd(), meta).map_err(|e| at("set metadata", e))?;
                EntryKind::File(FileData {
                    size,
                    digest,
                    bytes: None,
                })
            }
            TarKind::Directory => {
                let dir = self.parent_fd(raw, path)?;
                if existing.is_none() {
                    rfs::mkdirat(dir, name.as_str(), Mode::from_raw_mode(0o700))
                        .map_err(|e| at("mkdir", ioe(e)))?;
                } else {
                    // The same directory again: its attributes are replaced, xattrs included.
                    fsutil::drop_other_xattrs(dir, &name, &meta.xattrs)
                        .map_err(|e| at("remove xattrs", e))?;
                }
                let k = Kind::Dir;
                let m = Meta {
                    mtime: Timespec::default(),
                    ..meta.clone()
                };
                fsutil::set_meta_at(dir, &name, &k, &m).map_err(|e| at("set metadata", e))?;
                self.dir_mtimes.insert(path.to_string(), meta.mtime);
                self.held.insert(path.to_string(), Held::Dir);
                return Ok(EntryKind::Dir);
            }
            TarKind::Symlink => {
                let target = link_name(m).map_err(|r| self.bad(raw, r))?;
                let dir = self.parent_fd(raw, path)?;
                rfs::symlinkat(target.as_str(), dir, name.as_str())
                    .map_err(|e| at("symlink", ioe(e)))?;
                let k = Kind::Symlink {
                    target: target.clone(),
                };
                fsutil::set_meta_at(dir, &name, &k, meta).map_err(|e| at("set metadata", e))?;
                self.held.insert(path.to_string(), Held::Symlink);
                return Ok(EntryKind::Symlink { target });
            }
            TarKind::HardLink => {
                let target = link_name(m).map_err(|r| self.bad(raw, r))?;
                let t = match classify(&target) {
                    Ok(Name::Entry(t)) if !t.is_empty() => t,
                    _ => {
                        return Err(
                            self.bad(raw, format!("hard link to {target:?}, outside the layer"))
                        );
                    }
                };
                match self.held.get(&t) {
                    // A hard link may name any non-directory, a symlink included.
                    Some(Held::Other | Held::Symlink) => {}
                    Some(_) => {
                        return Err(self.bad(
                            raw,
                            format!("hard link to {target:?}, which is a directory"),
                        ));
                    }
                    None => {
                        return Err(self.bad(
                            raw,
                            format!(
                                "hard link to {target:?}, which is not in this layer (before it)"
                            ),
                        ));
                    }
                }
                let root = self.root.try_clone().map_err(|e| at("dup", e))?;
                let dir = self.parent_fd(raw, path)?;
                rfs::linkat(&root, t.as_str(), dir, name.as_str(), AtFlags::empty())
                    .map_err(|e| at("link", ioe(e)))?;
                EntryKind::HardLink { target: t }
            }
            TarKind::CharDev | TarKind::BlockDev | TarKind::Fifo => {
                let (major, minor) = (m.dev_major, m.dev_minor);
                let k = match etype {
                    TarKind::CharDev => Kind::CharDev { major, minor },
                    TarKind::BlockDev => Kind::BlockDev { major, minor },
                    _ => Kind::Fifo,
                };
                if k == (Kind::CharDev { major: 0, minor: 0 }) {
                    return Err(self.bad(
                        raw,
                        "a char device 0:0 is overlayfs's whiteout form; use a .wh. entry",
                    ));
                }
                let dir = self.parent_fd(raw, path)?;
                fsutil::mknod_at(dir, &name, &k).map_err(|e| at("mknod", e))?;
                fsutil::set_meta_at(dir, &name, &k, meta).map_err(|e| at("set metadata", e))?;
                EntryKind::from_kind(&k)
            }
        };
        self.held.insert(path.to_string(), Held::Other);
        Ok(kind)
    }

    /// Writes whiteouts and opaque markers in overlayfs's form, once every entry is in.
    fn apply_deletions(&mut self, changes: &ChangeSet) -> Result<()> {
        let opaque: BTreeSet<&str> = changes
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Opaque { path } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        // First every directory a whiteout or marker implies, so that a whiteout of a name
        // this layer holds as a directory (`.wh.c` with `c/.wh.a`) turns it opaque.
        for c in &changes.changes {
            match c {
                Change::Opaque { path } => {
                    self.parent_fd(path, &join(path, "x"))?;
                }
                Change::Whiteout { path } => {
                    self.parent_fd(path, path)?;
                }
                Change::Entry(_) => {}
            }
        }
        for c in &changes.changes {
            match c {
                Change::Opaque { path } => {
                    self.mark_opaque(path)?;
                }
                Change::Whiteout { path } => {
                    let covered = opaque
                        .iter()
                        .any(|d| crate::model::is_within(path, d) && path != d);
                    match self.held.get(path.as_str()) {
                        Some(Held::Dir | Held::ImpliedDir) => self.mark_opaque(path)?,
                        Some(_) => {}
                        None if covered => {
                            // An opaque directory already hides every lower name: a whiteout
                            // inside it would only confuse overlayfs.
                            self.parent_fd(path, path)?;
                        }
                        None => {
                            let (_, name) = parent_and_name(path).unwrap_or(("", path));
                            let name = name.to_string();
                            let (label, dest) = (self.label, self.dest);
                            let dir = self.parent_fd(path, path)?;
                            fsutil::make_whiteout_at(dir, &name).map_err(|e| {
                                let p = at_path(label, dest, path, &e);
                                Error::io("mknod whiteout", p, e)
                            })?;
                            self.held.insert(path.clone(), Held::Other);
                            self.whiteout_devices.push(path.clone());
                        }
                    }
                }
                Change::Entry(_) => {}
            }
        }
        Ok(())
    }

    fn mark_opaque(&self, dir: &str) -> Result<()> {
        let (parent, name) = parent_and_name(dir).unwrap_or(("", "."));
        let pfd =
            open_dir_beneath(self.root.as_fd(), parent).map_err(|e| self.io("open", parent, e))?;
        fsutil::set_xattr(pfd.as_fd(), name, OVERLAY_OPAQUE_XATTR, b"y")
            .map_err(|e| self.io("set opaque xattr", dir, e))
    }

    /// Sets directory mtimes, deepest first, now that nothing more is created inside them.
    fn finish_dirs(&mut self) -> Result<()> {
        self.parent_cache = None;
        for (path, mtime) in self.dir_mtimes.iter().rev() {
            let (parent, name) = parent_and_name(path).unwrap_or(("", "."));
            let pfd = open_dir_beneath(self.root.as_fd(), parent)
                .map_err(|e| self.io("open", parent, e))?;
            fsutil::set_mtime_at(pfd.as_fd(), name, *mtime)
                .map_err(|e| self.io("set mtime", path, e))?;
        }
        let root_meta = self.root_meta.clone().unwrap_or_else(Meta::implied_dir);
        fsutil::set_meta_at(self.root.as_fd(), ".", &Kind::Dir, &root_meta)
            .map_err(|e| self.io("set metadata", "", e))
    }
}

/// The path an error about entry `path` names: the entry in the source, except when the
/// layer directory ran out of room: then the file being written there.
fn at_path(label: &Path, dest: &Path, path: &str, e: &std::io::Error) -> PathBuf {
    if crate::error::is_no_space(e) {
        dest.join(path)
    } else {
        label.join(path)
    }
}

/// The target of a link entry.
fn link_name(m: &Member) -> std::result::Result<String, &'static str> {
    let l = String::from_utf8(m.link.clone()).map_err(|_| "link target is not UTF-8")?;
    if l.is_empty() {
        return Err("link with an empty target");
    }
    Ok(l)
}

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
use tar::EntryType;

use super::name::{Name, classify};
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
    root: OwnedFd,
    held: HashMap<RelPath, Held>,
    dir_mtimes: BTreeMap<RelPath, Timespec>,
    root_meta: Option<Meta>,
    parent_cache: Option<(RelPath, OwnedFd)>,
}

/// Reads the layer tar from `reader` and writes it into the empty directory `dest`.
/// `label` names the source in errors. On error `dest` holds a partial layer: the caller
/// (the store) removes it.
pub fn import_tar(reader: impl Read, label: &Path, dest: &Path) -> Result<ImportedLayer> {
    let mut hr = HashingReader::new(reader);
    let mut imp = Importer {
        label,
        root: open_dir(dest)?,
        held: HashMap::new(),
        dir_mtimes: BTreeMap::new(),
        root_meta: None,
        parent_cache: None,
    };
    let mut changes = Vec::new();
    {
        let mut archive = tar::Archive::new(&mut hr);
        let entries = archive
            .entries()
            .map_err(|e| imp.archive_err(format!("not a tar archive: {}", one_line(&e))))?;
        let mut last = String::from("(start of archive)");
        for entry in entries {
            let mut entry = entry.map_err(|e| {
                if last.starts_with('(') {
                    imp.archive_err("not a tar archive (no valid tar header at its start)".into())
                } else {
                    imp.archive_err(format!(
                        "truncated or corrupt after entry {last:?}: {}",
                        one_line(&e)
                    ))
                }
            })?;
            let raw = String::from_utf8(entry.path_bytes().into_owned()).map_err(|e| {
                imp.bad(&String::from_utf8_lossy(e.as_bytes()), "name is not UTF-8")
            })?;
            if let Some(c) = imp.entry(&raw, &mut entry)? {
                changes.push(c);
            }
            last = raw;
        }
    }
    if hr.hit_eof() {
        return Err(
            imp.archive_err("truncated: the archive ends without its end-of-archive blocks".into())
        );
    }
    let (diff_id, tar_size) = hr
        .finish()
        .map_err(|e| imp.archive_err(format!("reading past the archive: {e}")))?;
    let changes = ChangeSet { changes };
    imp.apply_deletions(&changes)?;
    imp.finish_dirs()?;
    Ok(ImportedLayer {
        changes,
        diff_id,
        tar_size,
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
        Error::io(op, PathBuf::from(self.label).join(path), e)
    }

    /// Handles one tar entry; returns its change, if it is part of the change set.
    fn entry<R: Read>(
        &mut self,
        raw: &str,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<Option<Change>> {
        let name = classify(raw).map_err(|r| self.bad(raw, r))?;
        let etype = entry.header().entry_type();
        if etype == EntryType::XGlobalHeader {
            return Ok(None);
        }
        let meta = self.meta(raw, entry)?;
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
                let kind = self.create(raw, &p, etype, entry, &meta)?;
                Ok(Some(Change::Entry(Entry {
                    path: p,
                    kind,
                    meta,
                })))
            }
        }
    }

    /// The metadata in the header and its PAX records.
    fn meta<R: Read>(&self, raw: &str, entry: &mut tar::Entry<'_, R>) -> Result<Meta> {
        let h = entry.header();
        let mode = h
            .mode()
            .map_err(|e| self.bad(raw, format!("bad mode: {e}")))?
            & 0o7777;
        let uid = h
            .uid()
            .map_err(|e| self.bad(raw, format!("bad uid: {e}")))?;
        let gid = h
            .gid()
            .map_err(|e| self.bad(raw, format!("bad gid: {e}")))?;
        let sec = h
            .mtime()
            .map_err(|e| self.bad(raw, format!("bad mtime: {e}")))?;
        let mut meta = Meta {
            mode,
            uid: u32::try_from(uid).map_err(|_| self.bad(raw, "uid out of range"))?,
            gid: u32::try_from(gid).map_err(|_| self.bad(raw, "gid out of range"))?,
            mtime: Timespec::new(sec as i64, 0),
            xattrs: BTreeMap::new(),
        };
        let pax = entry
            .pax_extensions()
            .map_err(|e| self.bad(raw, format!("bad PAX header: {e}")))?;
        if let Some(pax) = pax {
            for rec in pax {
                let rec = rec.map_err(|e| self.bad(raw, format!("bad PAX record: {e}")))?;
                let key = rec
                    .key()
                    .map_err(|_| self.bad(raw, "PAX key is not UTF-8"))?;
                if key == "mtime" {
                    let v = rec
                        .value()
                        .map_err(|_| self.bad(raw, "PAX mtime is not UTF-8"))?;
                    meta.mtime = parse_pax_time(v)
                        .ok_or_else(|| self.bad(raw, format!("bad PAX mtime {v:?}")))?;
                } else if let Some(x) = key.strip_prefix("SCHILY.xattr.") {
                    if x.starts_with(fsutil::OVERLAY_XATTR_PREFIX) || x.starts_with("user.overlay.")
                    {
                        return Err(self.bad(raw, format!("xattr {x} is reserved for overlayfs")));
                    }
                    meta.xattrs
                        .insert(x.to_string(), rec.value_bytes().to_vec());
                }
            }
        }
        Ok(meta)
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
                    match rfs::mkdirat(&pfd, c, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(self.io("mkdir", &next, ioe(e))),
                    }
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

    fn create<R: Read>(
        &mut self,
        raw: &str,
        path: &str,
        etype: EntryType,
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
    ) -> Result<EntryKind> {
        if path.is_empty() {
            if etype != EntryType::Directory {
                return Err(self.bad(raw, "the root entry must be a directory"));
            }
            self.root_meta = Some(meta.clone());
            return Ok(EntryKind::Dir);
        }
        let existing = self.held.get(path).copied();
        let is_dir = etype == EntryType::Directory;
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
        let at = |op: &'static str, e: std::io::Error| Error::io(op, label.join(path), e);
        let kind = match etype {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let size = entry.size();
                let dir = self.parent_fd(raw, path)?;
                let mut f = fsutil::create_file_at(dir, &name).map_err(|e| at("create", e))?;
                let digest = fsutil::write_sparse(&mut *entry, &mut f, size).map_err(|e| {
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
            EntryType::Directory => {
                let dir = self.parent_fd(raw, path)?;
                if existing.is_none() {
                    rfs::mkdirat(dir, name.as_str(), Mode::from_raw_mode(0o700))
                        .map_err(|e| at("mkdir", ioe(e)))?;
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
            EntryType::Symlink => {
                let target = link_name(entry).map_err(|r| self.bad(raw, r))?;
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
            EntryType::Link => {
                let target = link_name(entry).map_err(|r| self.bad(raw, r))?;
                let t = match classify(&target) {
                    Ok(Name::Entry(t)) if !t.is_empty() => t,
                    _ => {
                        return Err(
                            self.bad(raw, format!("hard link to {target:?}, outside the layer"))
                        );
                    }
                };
                match self.held.get(&t) {
                    Some(Held::Other) => {}
                    Some(_) => {
                        return Err(
                            self.bad(raw, format!("hard link to {target:?}, which is not a file"))
                        );
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
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let k = match etype {
                    EntryType::Char => Kind::CharDev { major, minor },
                    EntryType::Block => Kind::BlockDev { major, minor },
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
            other => return Err(self.bad(raw, format!("unsupported entry type {other:?}"))),
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
        for c in &changes.changes {
            match c {
                Change::Opaque { path } => {
                    self.parent_fd(path, &join(path, "x"))?;
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
                            let label = self.label;
                            let dir = self.parent_fd(path, path)?;
                            fsutil::make_whiteout_at(dir, &name)
                                .map_err(|e| Error::io("mknod whiteout", label.join(path), e))?;
                            self.held.insert(path.clone(), Held::Other);
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

/// An error message of the tar crate on one short line (it may quote raw header bytes).
fn one_line(e: &dyn std::fmt::Display) -> String {
    let s: String = e
        .to_string()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match s.find(" when getting") {
        Some(i) => s[..i].to_string(),
        None => s.chars().take(160).collect(),
    }
}

/// The target of a link entry.
fn link_name<R: Read>(entry: &tar::Entry<'_, R>) -> std::result::Result<String, &'static str> {
    let l = entry.link_name_bytes().ok_or("link without a target")?;
    let l = String::from_utf8(l.into_owned()).map_err(|_| "link target is not UTF-8")?;
    if l.is_empty() {
        return Err("link with an empty target");
    }
    Ok(l)
}

/// Parses a PAX time `SECONDS[.FRACTION]` (possibly negative).
fn parse_pax_time(v: &str) -> Option<Timespec> {
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (s, frac) = v.split_once('.').unwrap_or((v, ""));
    let sec: i64 = s.parse().ok()?;
    if !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: u32 = digits.parse().ok()?;
    Some(if neg {
        if nsec == 0 {
            Timespec::new(-sec, 0)
        } else {
            Timespec::new(-sec - 1, 1_000_000_000 - nsec)
        }
    } else {
        Timespec::new(sec, nsec)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse_with_and_without_fractions() {
        assert_eq!(
            parse_pax_time("1700000000.123456789"),
            Some(Timespec::new(1_700_000_000, 123_456_789))
        );
        assert_eq!(parse_pax_time("5.5"), Some(Timespec::new(5, 500_000_000)));
        assert_eq!(parse_pax_time("7"), Some(Timespec::new(7, 0)));
        assert_eq!(
            parse_pax_time("-1.25"),
            Some(Timespec::new(-2, 750_000_000))
        );
        assert_eq!(parse_pax_time("x"), None);
    }
}

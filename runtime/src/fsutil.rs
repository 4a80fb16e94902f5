//! Low-level filesystem steps shared by import, the copy driver, commit and scan.
//!
//! Everything works relative to a directory fd and never follows a symlink in the last
//! component, so a layer can never make strata write outside the directory it works in.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, SeekFrom, Stat,
    Timespec as RTimespec, Timestamps,
};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::model::{Kind, Meta, Timespec};

/// The xattr overlayfs uses to mark a directory opaque in a lower layer.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The prefix of every xattr overlayfs keeps for itself.
pub const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// Converts a rustix errno into `io::Error`.
pub fn ioe(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Opens directory `path` (following symlinks: the caller names a directory it trusts).
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open directory", path, ioe(e)))
}

/// How often an `openat2` lookup is tried again when the kernel refuses it with EAGAIN:
/// with `RESOLVE_BENEATH` or `RESOLVE_IN_ROOT`, a `..` resolved while any rename or mount
/// happens on the system makes it give up (openat2(2)), and parallel mounts do that.
const EAGAIN_RETRIES: usize = 100;

/// `openat2(dir, rel, flags, resolve)`, again while the kernel says EAGAIN.
pub fn openat2(
    dir: BorrowedFd<'_>,
    rel: &str,
    flags: OFlags,
    resolve: ResolveFlags,
) -> io::Result<OwnedFd> {
    let rel = if rel.is_empty() { "." } else { rel };
    let mut tries = 0;
    loop {
        match rfs::openat2(dir, rel, flags, Mode::empty(), resolve) {
            Err(e) if e == rustix::io::Errno::AGAIN && tries < EAGAIN_RETRIES => tries += 1,
            r => return r.map_err(ioe),
        }
    }
}

/// Opens directory `rel` under `dir` without following any symlink and without leaving `dir`.
pub fn open_dir_beneath(dir: BorrowedFd<'_>, rel: &str) -> io::Result<OwnedFd> {
    openat2(
        dir,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
}

/// [`open_dir_beneath`] with `O_PATH`: for `*at` lookups and stats only. The filesystem's
/// open is never called (a FUSE daemon may read a whole directory to open it).
pub fn open_path_beneath(dir: BorrowedFd<'_>, rel: &str) -> io::Result<OwnedFd> {
    openat2(
        dir,
        rel,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Opens directory `rel` under `root`, resolving symlinks as if `root` were `/`
/// (a layer's `lib -> /usr/lib` lands in `root/usr/lib`, never on the host).
pub fn open_dir_in_root(root: BorrowedFd<'_>, rel: &str) -> io::Result<OwnedFd> {
    openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// `lstat` of `name` in `dir`.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Stat> {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(ioe)
}

/// The path through `/proc/self/fd` that names `name` inside the directory open as `dir`;
/// the `l*xattr` calls on it do not follow `name` if it is a symlink.
pub fn proc_path(dir: BorrowedFd<'_>, name: &str) -> String {
    format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), name)
}

/// The file type bits of a stat.
pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Modification time of a stat.
pub fn mtime_of(st: &Stat) -> Timespec {
    Timespec::new(st.st_mtime, st.st_mtime_nsec as u32)
}

/// Change time of a stat.
pub fn ctime_of(st: &Stat) -> Timespec {
    Timespec::new(st.st_ctime, st.st_ctime_nsec as u32)
}

/// The names of every xattr at `path` (not following a symlink); none where the filesystem
/// has no xattrs.
fn xattr_names(path: &str) -> io::Result<Vec<String>> {
    let mut list = vec![0u8; 1024];
    let n = loop {
        match rfs::llistxattr(path, &mut list[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let need = rfs::llistxattr(path, &mut [0u8; 0][..]).map_err(ioe)?;
                list.resize(need.max(list.len() * 2), 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(ioe(e)),
        }
    };
    Ok(list[..n]
        .split(|b| *b == 0)
        .filter(|k| !k.is_empty())
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect())
}

/// Reads every xattr of `name` in `dir` (not following a symlink), skipping overlayfs's own.
pub fn read_xattrs(dir: BorrowedFd<'_>, name: &str) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let path = proc_path(dir, name);
    let mut out = BTreeMap::new();
    for key in xattr_names(&path)? {
        if key.starts_with(OVERLAY_XATTR_PREFIX) || key.starts_with("user.overlay.") {
            continue;
        }
        let mut val = vec![0u8; 256];
        let len = loop {
            match rfs::lgetxattr(path.as_str(), key.as_str(), &mut val[..]) {
                Ok(n) => break n,
                Err(rustix::io::Errno::RANGE) => {
                    let need = rfs::lgetxattr_query(path.as_str(), key.as_str()).map_err(ioe)?;
                    val.resize(need.max(val.len() * 2), 0);
                }
                Err(rustix::io::Errno::NODATA) => break usize::MAX,
                Err(e) => return Err(ioe(e)),
            }
        };
        if len != usize::MAX {
            val.truncate(len);
            out.insert(key, val);
        }
    }
    Ok(out)
}

/// Removes overlayfs's own `trusted.overlay.*` xattrs of `name` in `dir` (not following a
/// symlink), but those `keep` names: what a kernel mount leaves on its upper directory for
/// itself (origin, impure, uuid) means nothing once that directory is another mount's lower.
pub fn remove_overlay_xattrs(dir: BorrowedFd<'_>, name: &str, keep: &[&str]) -> io::Result<()> {
    let path = proc_path(dir, name);
    for key in xattr_names(&path)? {
        if key.starts_with(OVERLAY_XATTR_PREFIX) && !keep.contains(&key.as_str()) {
            match rfs::lremovexattr(path.as_str(), key.as_str()) {
                Ok(()) | Err(rustix::io::Errno::NODATA) => {}
                Err(e) => return Err(ioe(e)),
            }
        }
    }
    Ok(())
}

/// Reads one xattr of `name` in `dir`; `None` when it is not set.
pub fn get_xattr(dir: BorrowedFd<'_>, name: &str, key: &str) -> io::Result<Option<Vec<u8>>> {
    let path = proc_path(dir, name);
    let mut val = vec![0u8; 64];
    match rfs::lgetxattr(path.as_str(), key, &mut val[..]) {
        Ok(n) => {
            val.truncate(n);
            Ok(Some(val))
        }
        Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => Ok(None),
        Err(rustix::io::Errno::RANGE) => {
            // The size query (rustix's lgetxattr answers 0 for an empty buffer).
            let need = rfs::lgetxattr_query(path.as_str(), key).map_err(ioe)?;
            let mut val = vec![0u8; need];
            let n = rfs::lgetxattr(path.as_str(), key, &mut val[..]).map_err(ioe)?;
            val.truncate(n);
            Ok(Some(val))
        }
        Err(e) => Err(ioe(e)),
    }
}

/// Sets xattr `key` on `name` in `dir` without following a symlink.
pub fn set_xattr(dir: BorrowedFd<'_>, name: &str, key: &str, value: &[u8]) -> io::Result<()> {
    let path = proc_path(dir, name);
    rfs::lsetxattr(path.as_str(), key, value, rfs::XattrFlags::empty()).map_err(ioe)
}

/// Removes every xattr of `name` in `dir` that `keep` does not list (overlayfs's own stay).
pub fn drop_other_xattrs(
    dir: BorrowedFd<'_>,
    name: &str,
    keep: &BTreeMap<String, Vec<u8>>,
) -> io::Result<()> {
    let path = proc_path(dir, name);
    for key in read_xattrs(dir, name)?.keys() {
        if !keep.contains_key(key) {
            rfs::lremovexattr(path.as_str(), key.as_str()).map_err(ioe)?;
        }
    }
    Ok(())
}

/// Reads the kind and metadata of `name` in `dir`; file content is hashed.
pub fn read_inode(dir: BorrowedFd<'_>, name: &str, st: &Stat) -> io::Result<(Kind, Meta)> {
    let kind = match file_type(st) {
        FileType::RegularFile => {
            let f = File::from(
                rfs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(ioe)?,
            );
            let (digest, size) = Digest::of_reader(io::BufReader::with_capacity(1 << 16, f))?;
            Kind::File(crate::model::FileData {
                size,
                digest,
                bytes: None,
            })
        }
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink {
            target: read_link(dir, name)?,
        },
        FileType::CharacterDevice => Kind::CharDev {
            major: rfs::major(st.st_rdev),
            minor: rfs::minor(st.st_rdev),
        },
        FileType::BlockDevice => Kind::BlockDev {
            major: rfs::major(st.st_rdev),
            minor: rfs::minor(st.st_rdev),
        },
        FileType::Fifo => Kind::Fifo,
        other => {
            return Err(io::Error::other(format!("unsupported file type {other:?}")));
        }
    };
    let meta = Meta {
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: mtime_of(st),
        xattrs: read_xattrs(dir, name)?,
    };
    Ok((kind, meta))
}

/// The target of symlink `name` in `dir`.
pub fn read_link(dir: BorrowedFd<'_>, name: &str) -> io::Result<String> {
    let t = rfs::readlinkat(dir, name, Vec::new()).map_err(ioe)?;
    t.into_string()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "symlink target is not UTF-8"))
}

/// What tells one directory from another made later at the same path: its inode number
/// and birth time (inode numbers are reused at once when a directory is removed). On a
/// filesystem without birth times the time is zero.
pub type DirIdentity = (u64, i64, u32);

/// The identity of `name` in `dir` (not following a symlink).
pub fn dir_identity(dir: BorrowedFd<'_>, name: &str) -> io::Result<DirIdentity> {
    let name = if name.is_empty() { "." } else { name };
    let st = rfs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        rfs::StatxFlags::INO | rfs::StatxFlags::BTIME,
    )
    .map_err(ioe)?;
    let born = if st.stx_mask & rfs::StatxFlags::BTIME.bits() != 0 {
        (st.stx_btime.tv_sec, st.stx_btime.tv_nsec)
    } else {
        (0, 0)
    };
    Ok((st.stx_ino, born.0, born.1))
}

/// The names in directory `dir`, sorted, without `.` and `..`.
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<String>> {
    Ok(list_dir_typed(dir)?.into_iter().map(|(n, _)| n).collect())
}

/// The names in directory `dir` with their type as readdir gives it (`None` where the
/// filesystem does not say), sorted by name.
pub fn list_dir_typed(dir: BorrowedFd<'_>) -> io::Result<Vec<(String, Option<FileType>)>> {
    let mut d = Dir::read_from(dir).map_err(ioe)?;
    let mut names = Vec::new();
    while let Some(ent) = d.read() {
        let ent = ent.map_err(ioe)?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file name is not UTF-8"))?;
        let ft = ent.file_type();
        names.push((name, (ft != FileType::Unknown).then_some(ft)));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

/// The type of `name` in `dir`: from readdir when it said, else from lstat.
fn type_of(dir: BorrowedFd<'_>, name: &str, known: Option<FileType>) -> io::Result<FileType> {
    match known {
        Some(t) => Ok(t),
        None => lstat_at(dir, name).map(|st| file_type(&st)),
    }
}

/// Removes `name` in `dir` and everything under it, never following a symlink.
/// A missing name is not an error.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let ft = match lstat_at(dir, name) {
        Ok(st) => file_type(&st),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if ft == FileType::Directory {
        let sub = open_dir_beneath(dir, name)?;
        clear_dir(sub.as_fd())?;
        rfs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(ioe)
    } else {
        rfs::unlinkat(dir, name, AtFlags::empty()).map_err(ioe)
    }
}

/// Removes everything inside directory `dir`, keeping the directory. Any depth: the walk
/// keeps its own stack ([`walk_tree`]).
pub fn clear_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    walk_tree(
        dir,
        |step| match step {
            Step::Entry { dir, name, ft, .. } => {
                if type_of(dir, name, ft)? == FileType::Directory {
                    return Ok(Next::Descend);
                }
                rfs::unlinkat(dir, name, AtFlags::empty()).map_err(ioe)?;
                Ok(Next::Skip)
            }
            Step::Leave { dir, name, .. } => {
                rfs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(ioe)?;
                Ok(Next::Skip)
            }
        },
        |_, _, e| e,
    )
}

/// One step of [`walk_tree`].
pub enum Step<'a> {
    /// `name` in directory `dir`, at `path` under the walk's root; `ft` is its type when
    /// readdir said.
    Entry {
        dir: BorrowedFd<'a>,
        path: &'a str,
        name: &'a str,
        ft: Option<FileType>,
    },
    /// Every entry of the directory `name` in `dir` (at `path`) has been visited.
    Leave {
        dir: BorrowedFd<'a>,
        path: &'a str,
        name: &'a str,
    },
}

/// What [`walk_tree`] does after an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Skip,
    /// Walk into it (a directory), then report [`Step::Leave`] for it.
    Descend,
}

/// Open directory fds a walk keeps at most (besides the root it was given).
const WALK_OPEN_DIRS: usize = 64;

enum WalkFd {
    Root,
    Open(OwnedFd),
    Closed,
}

struct WalkFrame {
    fd: WalkFd,
    path: String,
    names: std::vec::IntoIter<(String, Option<FileType>)>,
    id: (u64, u64),
}

/// Walks the tree under `root` depth-first, each directory's names in sorted order, never
/// following a symlink: `visit` sees every entry and says whether to descend into it. The
/// walk keeps an explicit stack (no recursion, any depth) and at most [`WALK_OPEN_DIRS`]
/// directory fds: an ancestor whose fd was closed is reopened as `..` of its child and must
/// be the same directory (device and inode) as before, else the walk fails (something moved
/// it meanwhile). `err` turns a failed step of the walk itself (`op`, path) into `E`.
pub fn walk_tree<E>(
    root: BorrowedFd<'_>,
    mut visit: impl FnMut(Step<'_>) -> Result<Next, E>,
    err: impl Fn(&'static str, &str, io::Error) -> E,
) -> Result<(), E> {
    let ident = |fd: BorrowedFd<'_>| rfs::fstat(fd).map(|st| (st.st_dev, st.st_ino)).map_err(ioe);
    let mut stack = vec![WalkFrame {
        fd: WalkFd::Root,
        path: String::new(),
        names: list_dir_typed(root)
            .map_err(|e| err("read directory", "", e))?
            .into_iter(),
        id: ident(root).map_err(|e| err("stat", "", e))?,
    }];
    // Frames 1..lowest_open have their fd closed; lowest_open.. are open.
    let mut lowest_open = 1;
    fn fd_of<'a>(root: BorrowedFd<'a>, f: &'a WalkFrame) -> BorrowedFd<'a> {
        match &f.fd {
            WalkFd::Open(fd) => fd.as_fd(),
            // Closed frames are never the ones whose fd is asked for.
            WalkFd::Root | WalkFd::Closed => root,
        }
    }
    loop {
        let top = stack.len() - 1;
        if let Some((name, ft)) = stack[top].names.next() {
            let path = crate::model::join(&stack[top].path, &name);
            let dir = fd_of(root, &stack[top]);
            let next = visit(Step::Entry {
                dir,
                path: &path,
                name: &name,
                ft,
            })?;
            if next == Next::Skip {
                continue;
            }
            let sub = open_dir_beneath(dir, &name).map_err(|e| err("open directory", &path, e))?;
            let id = ident(sub.as_fd()).map_err(|e| err("stat", &path, e))?;
            let names = list_dir_typed(sub.as_fd())
                .map_err(|e| err("read directory", &path, e))?
                .into_iter();
            stack.push(WalkFrame {
                fd: WalkFd::Open(sub),
                path,
                names,
                id,
            });
            if stack.len() - lowest_open > WALK_OPEN_DIRS {
                stack[lowest_open].fd = WalkFd::Closed;
                lowest_open += 1;
            }
            continue;
        }
        if top == 0 {
            return Ok(());
        }
        let Some(frame) = stack.pop() else {
            return Ok(());
        };
        let parent = top - 1;
        if parent >= 1 && parent < lowest_open {
            let child = fd_of(root, &frame);
            let up = openat2(
                child,
                "..",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                ResolveFlags::empty(),
            )
            .map_err(|e| err("open directory", &stack[parent].path, e))?;
            let id = ident(up.as_fd()).map_err(|e| err("stat", &stack[parent].path, e))?;
            if id != stack[parent].id {
                return Err(err(
                    "walk",
                    &stack[parent].path,
                    io::Error::other("the directory moved during the walk"),
                ));
            }
            stack[parent].fd = WalkFd::Open(up);
            lowest_open = parent;
        }
        let name = frame.path.rsplit('/').next().unwrap_or(&frame.path);
        visit(Step::Leave {
            dir: fd_of(root, &stack[parent]),
            path: &frame.path,
            name,
        })?;
    }
}

/// [`open_dir_beneath`] for a relative path of any length: one longer than a lookup takes
/// (PATH_MAX) is opened a piece at a time, each piece beneath the last.
pub fn open_dir_beneath_long(dir: BorrowedFd<'_>, rel: &str) -> io::Result<OwnedFd> {
    const PIECE: usize = 2048;
    if rel.len() <= PIECE {
        return open_dir_beneath(dir, rel);
    }
    let mut cur: Option<OwnedFd> = None;
    let mut rest = rel;
    while !rest.is_empty() {
        let cut = if rest.len() <= PIECE {
            rest.len()
        } else {
            // '/' is ASCII: a cut there is a char boundary.
            rest.as_bytes()[..PIECE]
                .iter()
                .rposition(|&b| b == b'/')
                .filter(|&i| i > 0)
                .unwrap_or(rest.len())
        };
        let (piece, tail) = rest.split_at(cut);
        let base = cur.as_ref().map(|f| f.as_fd()).unwrap_or(dir);
        cur = Some(open_dir_beneath(base, piece)?);
        rest = tail.trim_start_matches('/');
    }
    match cur {
        Some(fd) => Ok(fd),
        None => open_dir_beneath(dir, ""),
    }
}

/// [`remove_tree`] on `threads` threads: the directories two levels down are removed in
/// parallel (unlinks in different directories do not contend), then what is left. For big
/// trees on a filesystem that copies in memory, where removal is all CPU.
pub fn remove_tree_parallel(path: &Path, threads: usize) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::Usage(format!(
            "refusing to remove {}",
            path.display()
        )));
    };
    let err = |e| Error::io("remove", path, e);
    let top = match open_dir_beneath(open_dir(parent)?.as_fd(), &name.to_string_lossy()) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(e)),
    };
    // The directories two levels down, each with its parent; what lies higher is unlinked
    // here when it is no directory.
    let mut jobs: Vec<(std::sync::Arc<OwnedFd>, String)> = Vec::new();
    for (n, t) in list_dir_typed(top.as_fd()).map_err(err)? {
        let is_dir = match t {
            Some(t) => t == FileType::Directory,
            None => file_type(&lstat_at(top.as_fd(), &n).map_err(err)?) == FileType::Directory,
        };
        if !is_dir {
            rfs::unlinkat(top.as_fd(), n.as_str(), AtFlags::empty()).map_err(|e| err(ioe(e)))?;
            continue;
        }
        let sub = std::sync::Arc::new(open_dir_beneath(top.as_fd(), &n).map_err(err)?);
        for (c, ct) in list_dir_typed(sub.as_fd()).map_err(err)? {
            if ct.is_some_and(|t| t != FileType::Directory) {
                rfs::unlinkat(sub.as_fd(), c.as_str(), AtFlags::empty())
                    .map_err(|e| err(ioe(e)))?;
            } else {
                jobs.push((std::sync::Arc::clone(&sub), c));
            }
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_err: std::sync::Mutex<Option<io::Error>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((dir, n)) = jobs.get(i) else { return };
                    if let Err(e) = remove_all_at(dir.as_fd(), n)
                        && let Ok(mut slot) = first_err.lock()
                    {
                        slot.get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = first_err.lock().ok().and_then(|mut e| e.take()) {
        return Err(err(e));
    }
    drop(jobs);
    drop(top);
    remove_tree(path)
}

/// Removes `path` and everything under it (for directories strata owns, e.g. in its store).
pub fn remove_tree(path: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::Usage(format!(
            "refusing to remove {}",
            path.display()
        )));
    };
    let dir = open_dir(parent)?;
    remove_all_at(dir.as_fd(), &name.to_string_lossy()).map_err(|e| Error::io("remove", path, e))
}

fn to_rts(t: Timespec) -> RTimespec {
    RTimespec {
        tv_sec: t.sec,
        tv_nsec: t.nsec as _,
    }
}

/// Sets owner, mode, xattrs and mtime of `name` in `dir`, in the order that keeps them all
/// (chown clears setuid and file capabilities, so it comes first; mtime comes last).
pub fn set_meta_at(dir: BorrowedFd<'_>, name: &str, kind: &Kind, meta: &Meta) -> io::Result<()> {
    rfs::chownat(
        dir,
        name,
        Some(rfs::Uid::from_raw(meta.uid)),
        Some(rfs::Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(ioe)?;
    if !matches!(kind, Kind::Symlink { .. }) {
        // chmodat follows symlinks; `name` is known here not to be one.
        rfs::chmodat(dir, name, Mode::from_raw_mode(meta.mode), AtFlags::empty()).map_err(ioe)?;
    }
    for (k, v) in &meta.xattrs {
        set_xattr(dir, name, k, v)?;
    }
    set_mtime_at(dir, name, meta.mtime)
}

/// Sets owner, mode, xattrs and mtime through an open file.
pub fn set_meta_fd(fd: BorrowedFd<'_>, meta: &Meta) -> io::Result<()> {
    rfs::fchown(
        fd,
        Some(rfs::Uid::from_raw(meta.uid)),
        Some(rfs::Gid::from_raw(meta.gid)),
    )
    .map_err(ioe)?;
    rfs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(ioe)?;
    set_xattrs_and_mtime_fd(fd, meta)
}

/// The xattrs and then the mtime of `meta` (last: setting the others may change it).
fn set_xattrs_and_mtime_fd(fd: BorrowedFd<'_>, meta: &Meta) -> io::Result<()> {
    for (k, v) in &meta.xattrs {
        rfs::fsetxattr(fd, k.as_str(), v, rfs::XattrFlags::empty()).map_err(ioe)?;
    }
    set_mtime_fd(fd, meta.mtime)
}

/// [`set_meta_fd`] of a file made with owner, group and mode `made` (`st_mode & 0o7777`),
/// leaving out the chown and the chmod that would change nothing. A chown that happens is
/// followed by the chmod (it clears setuid and setgid bits).
pub fn set_meta_fd_over(fd: BorrowedFd<'_>, meta: &Meta, made: (u32, u32, u32)) -> io::Result<()> {
    let (uid, gid, mode) = made;
    let chown = (uid, gid) != (meta.uid, meta.gid);
    if chown {
        rfs::fchown(
            fd,
            Some(rfs::Uid::from_raw(meta.uid)),
            Some(rfs::Gid::from_raw(meta.gid)),
        )
        .map_err(ioe)?;
    }
    if chown || mode != meta.mode & 0o7777 {
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(ioe)?;
    }
    set_xattrs_and_mtime_fd(fd, meta)
}

/// Sets the mtime (atime too, to the same value) of `name` in `dir`, not following symlinks.
pub fn set_mtime_at(dir: BorrowedFd<'_>, name: &str, t: Timespec) -> io::Result<()> {
    let ts = Timestamps {
        last_access: to_rts(t),
        last_modification: to_rts(t),
    };
    let name = if name.is_empty() { "." } else { name };
    rfs::utimensat(dir, name, &ts, AtFlags::SYMLINK_NOFOLLOW).map_err(ioe)
}

/// Sets the mtime (and atime) of an open file.
pub fn set_mtime_fd(fd: BorrowedFd<'_>, t: Timespec) -> io::Result<()> {
    let ts = Timestamps {
        last_access: to_rts(t),
        last_modification: to_rts(t),
    };
    rfs::futimens(fd, &ts).map_err(ioe)
}

/// Creates a device node or fifo `name` in `dir`.
pub fn mknod_at(dir: BorrowedFd<'_>, name: &str, kind: &Kind) -> io::Result<()> {
    let (ft, dev) = match kind {
        Kind::CharDev { major, minor } => (FileType::CharacterDevice, rfs::makedev(*major, *minor)),
        Kind::BlockDev { major, minor } => (FileType::BlockDevice, rfs::makedev(*major, *minor)),
        Kind::Fifo => (FileType::Fifo, 0),
        _ => return Err(io::Error::other("mknod of a non-device")),
    };
    rfs::mknodat(dir, name, ft, Mode::from_raw_mode(0o600), dev).map_err(ioe)
}

/// Creates the overlayfs whiteout (a char device 0:0) `name` in `dir`.
pub fn make_whiteout_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    mknod_at(dir, name, &Kind::CharDev { major: 0, minor: 0 })
}

/// True when a stat is overlayfs's whiteout form (a char device 0:0).
pub fn is_whiteout(st: &Stat) -> bool {
    file_type(st) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Creates a new empty file `name` in `dir` for writing (fails if the name exists).
pub fn create_file_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<File> {
    create_file_mode_at(dir, name, 0o600)
}

/// [`create_file_at`] with permission bits `mode` (less the umask); the file is open for
/// writing whatever they say.
pub fn create_file_mode_at(dir: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<File> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode & 0o777),
    )
    .map_err(ioe)?;
    Ok(File::from(fd))
}

/// Opens `name` in `dir` for reading, not following a symlink.
pub fn open_file_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<File> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(ioe)?;
    Ok(File::from(fd))
}

/// The block size holes are detected in when writing file data.
const HOLE_BLOCK: usize = 4096;

/// Writes `size` bytes from `src` into `dst`, leaving all-zero 4 KiB blocks as holes so sparse
/// files stay sparse. Returns the sha256 of the data.
pub fn write_sparse(mut src: impl Read, dst: &mut File, size: u64) -> io::Result<Digest> {
    let mut hw = HashingWriter::new(io::sink());
    let mut buf = vec![0u8; 1 << 16];
    let mut left = size;
    let mut pos: u64 = 0;
    let mut pending_hole = false;
    while left > 0 {
        let want = buf.len().min(left as usize);
        src.read_exact(&mut buf[..want])?;
        hw.write_all(&buf[..want])?;
        for chunk in buf[..want].chunks(HOLE_BLOCK) {
            if chunk.iter().all(|b| *b == 0) {
                pending_hole = true;
            } else {
                if pending_hole {
                    rfs::seek(&*dst, SeekFrom::Start(pos)).map_err(ioe)?;
                    pending_hole = false;
                }
                dst.write_all(chunk)?;
            }
            pos += chunk.len() as u64;
        }
        left -= want as u64;
    }
    if pending_hole {
        rfs::ftruncate(&*dst, size).map_err(ioe)?;
    }
    Ok(hw.finish().0)
}

/// How file data was copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyMethod {
    /// FICLONE: the destination shares the source's extents (reflink).
    Reflink,
    /// copy_file_range over the data segments, holes kept.
    CopyFileRange,
    /// read and write, holes kept.
    ReadWrite,
}

/// Copies all of `src` (of length `size`) into the empty file `dst`: reflink when the
/// filesystem allows, else copy_file_range of each data segment (holes stay holes), else
/// read/write. `allow_reflink` false skips the clone attempt.
pub fn copy_data(src: &File, dst: &File, size: u64, allow_reflink: bool) -> io::Result<CopyMethod> {
    if size == 0 {
        return Ok(CopyMethod::CopyFileRange);
    }
    if allow_reflink && rfs::ioctl_ficlone(dst, src).is_ok() {
        return Ok(CopyMethod::Reflink);
    }
    if size <= SMALL_FILE {
        // Holes in a small file are not worth two seeks and a truncate.
        return copy_whole(src, dst, size);
    }
    let mut method = CopyMethod::CopyFileRange;
    let mut pos: u64 = 0;
    while pos < size {
        let data = match rfs::seek(src, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(_) => pos,
        };
        let hole = match rfs::seek(src, SeekFrom::Hole(data)) {
            Ok(h) => h.min(size),
            Err(_) => size,
        };
        let mut off_in = data;
        let mut off_out = data;
        while off_in < hole {
            let want = (hole - off_in).min(1 << 30) as usize;
            let n = if method == CopyMethod::CopyFileRange {
                match rfs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), want) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "source shrank while copying",
                        ));
                    }
                    Ok(n) => n,
                    Err(
                        rustix::io::Errno::XDEV
                        | rustix::io::Errno::NOSYS
                        | rustix::io::Errno::INVAL
                        | rustix::io::Errno::OPNOTSUPP,
                    ) => {
                        method = CopyMethod::ReadWrite;
                        continue;
                    }
                    Err(e) => return Err(ioe(e)),
                }
            } else {
                let n = copy_range_rw(src, dst, off_in, want)?;
                off_in += n as u64;
                off_out += n as u64;
                n
            };
            debug_assert!(n > 0);
        }
        pos = hole;
    }
    rfs::ftruncate(dst, size).map_err(ioe)?;
    Ok(method)
}

/// Files up to this size are copied whole, without looking for holes.
const SMALL_FILE: u64 = 64 << 10;

/// copy_file_range of all `size` bytes (read/write where it is refused).
fn copy_whole(src: &File, dst: &File, size: u64) -> io::Result<CopyMethod> {
    let (mut off_in, mut off_out) = (0u64, 0u64);
    while off_in < size {
        let want = (size - off_in) as usize;
        match rfs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), want) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "source shrank while copying",
                ));
            }
            Ok(_) => {}
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::OPNOTSUPP,
            ) => {
                while off_in < size {
                    let n = copy_range_rw(src, dst, off_in, (size - off_in) as usize)?;
                    off_in += n as u64;
                }
                return Ok(CopyMethod::ReadWrite);
            }
            Err(e) => return Err(ioe(e)),
        }
    }
    Ok(CopyMethod::CopyFileRange)
}

fn copy_range_rw(src: &File, dst: &File, off: u64, len: usize) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len.min(1 << 20)];
    let n = src.read_at(&mut buf, off)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "source shrank while copying",
        ));
    }
    dst.write_all_at(&buf[..n], off)?;
    Ok(n)
}

/// A C string for a path, for the few calls that want one.
pub fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Usage(format!("{}: path holds a NUL byte", p.display())))
}

/// Opens `name` in `dir` as an `O_PATH` fd (for *at calls on it), not following a symlink.
pub fn open_path_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(ioe)
}

/// An exclusive flock(2) on a file or directory, held until dropped (or the process dies:
/// the kernel releases it, so a lock nobody holds is how a crashed holder is recognised).
#[derive(Debug)]
pub struct Flock(#[allow(dead_code)] File);

impl Flock {
    /// Waits for the lock on the lock file `path` (created when missing).
    pub fn wait(path: &Path) -> Result<Flock> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open lock", path, e))?;
        Self::lock(f, path)
    }

    /// Waits for the lock on the existing file or directory `path` (never created: a
    /// missing one is an ENOENT error).
    pub fn wait_existing(path: &Path) -> Result<Flock> {
        let f = File::open(path).map_err(|e| Error::io("open lock", path, e))?;
        Self::lock(f, path)
    }

    fn lock(f: File, path: &Path) -> Result<Flock> {
        rfs::flock(&f, rfs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io("lock", path, ioe(e)))?;
        Ok(Flock(f))
    }

    /// The lock on the existing file or directory `path` if nobody holds it, else `None`
    /// (also when `path` is gone; nothing is created).
    pub fn try_take(path: &Path) -> Result<Option<Flock>> {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open lock", path, e)),
        };
        match rfs::flock(&f, rfs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Flock(f))),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::io("lock", path, ioe(e))),
        }
    }

    /// True while the locked file or directory still has a name (a directory another
    /// process removed before this lock was taken has none).
    pub fn still_linked(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.0.metadata().is_ok_and(|m| m.nlink() > 0)
    }

    /// True when a live process holds the lock on `path`.
    pub fn is_held(path: &Path) -> Result<bool> {
        if !path.exists() {
            return Ok(false);
        }
        Ok(Self::try_take(path)?.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_xattr_reads_a_value_longer_than_its_first_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let d = open_dir(dir.path()).unwrap();
        drop(create_file_at(d.as_fd(), "f").unwrap());
        for len in [1usize, 63, 64, 65, 200, 1000] {
            let value: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            if let Err(e) = set_xattr(d.as_fd(), "f", "user.long", &value) {
                println!("skipped: user xattrs on {}: {e}", dir.path().display());
                return;
            }
            assert_eq!(
                get_xattr(d.as_fd(), "f", "user.long").unwrap(),
                Some(value.clone())
            );
            assert_eq!(read_xattrs(d.as_fd(), "f").unwrap()["user.long"], value);
        }
    }

    #[test]
    fn a_walk_of_a_deep_chain_keeps_few_fds_and_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut fd = open_dir(dir.path()).unwrap();
        let depth = 500;
        for _ in 0..depth {
            rfs::mkdirat(fd.as_fd(), "d", Mode::from_raw_mode(0o755)).unwrap();
            rfs::mkdirat(fd.as_fd(), "e", Mode::from_raw_mode(0o755)).unwrap();
            fd = open_dir_beneath(fd.as_fd(), "d").unwrap();
        }
        drop(fd);
        let open_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let before = open_fds();
        let root = open_dir(dir.path()).unwrap();
        let (mut entries, mut leaves, mut most) = (0, 0, 0);
        walk_tree(
            root.as_fd(),
            |step| {
                most = most.max(open_fds());
                Ok::<_, io::Error>(match step {
                    Step::Entry { .. } => {
                        entries += 1;
                        Next::Descend
                    }
                    Step::Leave { .. } => {
                        leaves += 1;
                        Next::Skip
                    }
                })
            },
            |_, _, e| e,
        )
        .unwrap();
        assert_eq!((entries, leaves), (2 * depth, 2 * depth));
        // Other test threads open fds too: a bound well under the depth is what counts.
        assert!(
            most < before + WALK_OPEN_DIRS + 40,
            "{most} fds open (before {before})"
        );
        clear_dir(root.as_fd()).unwrap();
        assert!(list_dir(root.as_fd()).unwrap().is_empty());
    }

    #[test]
    fn write_sparse_keeps_content_and_leaves_holes() {
        let dir = tempfile::tempdir().unwrap();
        let d = open_dir(dir.path()).unwrap();
        let mut data = vec![0u8; 1 << 20];
        data[0] = 1;
        data[(1 << 20) - 1] = 2;
        let mut f = create_file_at(d.as_fd(), "sparse").unwrap();
        let digest = write_sparse(&data[..], &mut f, data.len() as u64).unwrap();
        assert_eq!(digest, Digest::of(&data));
        let back = std::fs::read(dir.path().join("sparse")).unwrap();
        assert_eq!(back, data);
        let st = lstat_at(d.as_fd(), "sparse").unwrap();
        assert!(
            (st.st_blocks as u64) * 512 < data.len() as u64 / 2,
            "blocks {}",
            st.st_blocks
        );
    }

    #[test]
    fn copy_data_copies_a_sparse_file_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let d = open_dir(dir.path()).unwrap();
        let mut data = vec![0u8; 3 << 20];
        data[5] = 7;
        data[(2 << 20) + 9] = 9;
        let mut f = create_file_at(d.as_fd(), "src").unwrap();
        write_sparse(&data[..], &mut f, data.len() as u64).unwrap();
        drop(f);
        let src = open_file_at(d.as_fd(), "src").unwrap();
        let dst = create_file_at(d.as_fd(), "dst").unwrap();
        copy_data(&src, &dst, data.len() as u64, false).unwrap();
        assert_eq!(std::fs::read(dir.path().join("dst")).unwrap(), data);
    }
}

//! The operations of [`crate::model::ops::Op`] done for real on a mounted view, with the same
//! path rules as the model: the parent resolved inside the view's root
//! (`openat2(RESOLVE_IN_ROOT)`, so no symlink of a layer can reach the host), then one `*at`
//! call on the last name, never following it. Used by the property tests and by the
//! conformance catalog (`strata check`).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

use crate::fsutil::{self, lstat_at, mtime_of, open_dir_in_root, proc_path};
use crate::model::ops::{Op, Outcome, Special, errno};
use crate::model::{Timespec, parent_and_name};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec as RTimespec, Timestamps};

type Res<T> = Result<T, i32>;

fn code(e: rustix::io::Errno) -> i32 {
    e.raw_os_error()
}

fn io_code(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(errno::EINVAL)
}

/// The directory holding `path` (resolved inside `root`) and the last name.
fn parent(root: BorrowedFd<'_>, path: &str) -> Res<(OwnedFd, String)> {
    let (dir, name) = parent_and_name(path).ok_or(errno::EINVAL)?;
    let fd = open_dir_in_root(root, dir).map_err(io_code)?;
    Ok((fd, name.to_string()))
}

fn open_at(dir: BorrowedFd<'_>, name: &str, flags: OFlags) -> Res<File> {
    rfs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map(File::from)
    .map_err(code)
}

/// True when `name` is a device or fifo: opening one has side effects, so data operations
/// skip it (the model says the same).
fn special(dir: BorrowedFd<'_>, name: &str) -> bool {
    lstat_at(dir, name).is_ok_and(|st| {
        matches!(
            FileType::from_raw_mode(st.st_mode),
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket
        )
    })
}

fn ts(t: Timespec) -> RTimespec {
    RTimespec {
        tv_sec: t.sec,
        tv_nsec: t.nsec as _,
    }
}

/// Runs `op` on the view whose root directory is open as `root`.
pub fn run(root: BorrowedFd<'_>, op: &Op) -> Outcome {
    match try_run(root, op) {
        Ok(o) => o,
        Err(e) => Outcome::Failed(e),
    }
}

fn try_run(root: BorrowedFd<'_>, op: &Op) -> Res<Outcome> {
    let done = Outcome::Done { touched: None };
    let touched = |p: &str| Outcome::Done {
        touched: Some(p.to_string()),
    };
    match op {
        Op::Create { path, data, mode } => {
            let (dir, name) = parent(root, path)?;
            let mut f = open_at(
                dir.as_fd(),
                &name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
            )?;
            f.write_all(data).map_err(io_code)?;
            rfs::fchmod(&f, Mode::from_raw_mode(*mode)).map_err(code)?;
            Ok(touched(path))
        }
        Op::WriteAt { path, offset, data } => {
            let (dir, name) = parent(root, path)?;
            if special(dir.as_fd(), &name) {
                return Ok(Outcome::Skipped);
            }
            let f = open_at(dir.as_fd(), &name, OFlags::WRONLY)?;
            f.write_all_at(data, *offset).map_err(io_code)?;
            Ok(touched(path))
        }
        Op::Append { path, data } => {
            let (dir, name) = parent(root, path)?;
            if special(dir.as_fd(), &name) {
                return Ok(Outcome::Skipped);
            }
            let mut f = open_at(dir.as_fd(), &name, OFlags::WRONLY | OFlags::APPEND)?;
            f.write_all(data).map_err(io_code)?;
            Ok(touched(path))
        }
        Op::Truncate { path, len } => {
            let (dir, name) = parent(root, path)?;
            if special(dir.as_fd(), &name) {
                return Ok(Outcome::Skipped);
            }
            let f = open_at(dir.as_fd(), &name, OFlags::WRONLY)?;
            rfs::ftruncate(&f, *len).map_err(code)?;
            Ok(touched(path))
        }
        Op::Chmod { path, mode } => {
            let (dir, name) = parent(root, path)?;
            // fchmodat2(AT_SYMLINK_NOFOLLOW): a symlink's mode cannot change (EOPNOTSUPP);
            // anything else is changed through an O_PATH fd to the inode itself.
            let fd = rfs::openat(
                dir.as_fd(),
                name.as_str(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(code)?;
            let st = rfs::fstat(&fd).map_err(code)?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                return Err(errno::EOPNOTSUPP);
            }
            let p = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
            rfs::chmod(p.as_str(), Mode::from_raw_mode(*mode)).map_err(code)?;
            Ok(done)
        }
        Op::Chown { path, uid, gid } => {
            let (dir, name) = parent(root, path)?;
            rfs::chownat(
                dir.as_fd(),
                name.as_str(),
                Some(rfs::Uid::from_raw(*uid)),
                Some(rfs::Gid::from_raw(*gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(code)?;
            Ok(done)
        }
        Op::SetMtime { path, mtime } => {
            let (dir, name) = parent(root, path)?;
            let t = Timestamps {
                last_access: ts(*mtime),
                last_modification: ts(*mtime),
            };
            rfs::utimensat(dir.as_fd(), name.as_str(), &t, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(code)?;
            Ok(done)
        }
        Op::SetXattr { path, key, value } => {
            let (dir, name) = parent(root, path)?;
            let p = proc_path(dir.as_fd(), &name);
            rfs::lsetxattr(p.as_str(), key.as_str(), value, rfs::XattrFlags::empty())
                .map_err(code)?;
            Ok(done)
        }
        Op::Unlink { path } => {
            let (dir, name) = parent(root, path)?;
            rfs::unlinkat(dir.as_fd(), name.as_str(), AtFlags::empty()).map_err(code)?;
            Ok(done)
        }
        Op::Rmdir { path } => {
            let (dir, name) = parent(root, path)?;
            rfs::unlinkat(dir.as_fd(), name.as_str(), AtFlags::REMOVEDIR).map_err(code)?;
            Ok(done)
        }
        Op::Mkdir { path, mode } => {
            let (dir, name) = parent(root, path)?;
            rfs::mkdirat(dir.as_fd(), name.as_str(), Mode::from_raw_mode(0o700)).map_err(code)?;
            // The new directory is not a symlink: chmod may follow the name.
            rfs::chmodat(
                dir.as_fd(),
                name.as_str(),
                Mode::from_raw_mode(*mode),
                AtFlags::empty(),
            )
            .map_err(code)?;
            Ok(done)
        }
        Op::Rename { from, to } => {
            let (sdir, sname) = parent(root, from)?;
            let (ddir, dname) = parent(root, to)?;
            rfs::renameat(sdir.as_fd(), sname.as_str(), ddir.as_fd(), dname.as_str())
                .map_err(code)?;
            Ok(done)
        }
        Op::Link { from, to } => {
            let (sdir, sname) = parent(root, from)?;
            let (ddir, dname) = parent(root, to)?;
            rfs::linkat(
                sdir.as_fd(),
                sname.as_str(),
                ddir.as_fd(),
                dname.as_str(),
                AtFlags::empty(),
            )
            .map_err(code)?;
            Ok(done)
        }
        Op::Symlink { target, path } => {
            let (dir, name) = parent(root, path)?;
            rfs::symlinkat(target.as_str(), dir.as_fd(), name.as_str()).map_err(code)?;
            Ok(touched(path))
        }
        Op::Mknod { path, node, mode } => {
            let (dir, name) = parent(root, path)?;
            let (ft, dev) = match *node {
                Special::Fifo => (FileType::Fifo, 0),
                Special::Char { major, minor } => {
                    (FileType::CharacterDevice, rfs::makedev(major, minor))
                }
            };
            rfs::mknodat(
                dir.as_fd(),
                name.as_str(),
                ft,
                Mode::from_raw_mode(0o600),
                dev,
            )
            .map_err(code)?;
            // The new node is not a symlink, and chmod does not open it.
            rfs::chmodat(
                dir.as_fd(),
                name.as_str(),
                Mode::from_raw_mode(*mode),
                AtFlags::empty(),
            )
            .map_err(code)?;
            Ok(touched(path))
        }
    }
}

/// One operation done by [`run_all`]: what it did and the clock around it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Done {
    pub outcome: Outcome,
    /// CLOCK_REALTIME_COARSE before the operation and CLOCK_REALTIME after it, as
    /// [`crate::conformance::timed`] reads them: every time it stamped lies between.
    pub before: Timespec,
    pub after: Timespec,
}

/// Runs `ops` in order on the view whose root is open as `root`, each with the clock read
/// around it (for a process of its own, such as a container's, whose caller models them).
pub fn run_all(root: BorrowedFd<'_>, ops: &[Op]) -> Vec<Done> {
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let (outcome, w) = crate::conformance::timed(i, || run(root, op));
            Done {
                outcome,
                before: w.before,
                after: w.after,
            }
        })
        .collect()
}

/// The mtime of `path` in the view (its last component not followed), for the model to
/// take over where the kernel chose "now".
pub fn mtime(root: BorrowedFd<'_>, path: &str) -> Option<Timespec> {
    let (dir, name) = parent(root, path).ok()?;
    lstat_at(dir.as_fd(), &name).ok().map(|st| mtime_of(&st))
}

/// Reads the regular file `path`, every symlink on the way (the last one too) resolved inside
/// the view's root. Anything but a regular file is refused without being opened for reading
/// (a device or fifo could block or have side effects): EISDIR for a directory, EINVAL else.
pub fn read(root: BorrowedFd<'_>, path: &str) -> Result<Vec<u8>, i32> {
    use std::io::Read;
    let fd = fsutil::openat2(
        root,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        rfs::ResolveFlags::IN_ROOT | rfs::ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(io_code)?;
    let st = rfs::fstat(&fd).map_err(code)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {}
        FileType::Directory => return Err(errno::EISDIR),
        _ => return Err(errno::EINVAL),
    }
    // Reopen the inode the O_PATH fd names (no path lookup again).
    let p = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let mut f = rfs::open(
        p.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map(File::from)
    .map_err(code)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out).map_err(io_code)?;
    Ok(out)
}

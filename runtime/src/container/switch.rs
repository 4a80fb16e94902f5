//! Switching the root: pivot_root, MS_MOVE + chroot, or plain chroot. Runs in the child,
//! in its private mount namespace, with the root already bound on itself and set up.
//!
//! Each step is one system call with its own [`Step`], so a failure names exactly what the
//! kernel refused; each carries a one-line comment saying why it is there.
//!
//! - `pivot_root`: the runc/LXC `pivot_root(".", ".")` trick (no put_old directory needed):
//!   the old root ends up stacked on the new one and is detached. When the kernel refuses
//!   with EINVAL (the current root cannot be pivoted: initramfs, or a chroot that is not a
//!   mount point), the child falls back to `move` and says why (runc#4434 and bubblewrap#592
//!   ask for this; moby falls back to chroot).
//! - `move`: detach (or, failing that, cover) the host /proc and /sys, then MS_MOVE the root
//!   onto / and chroot into it (what runc, crun and youki do for --no-pivot).
//! - `chroot`: plain chroot. NOT an isolation boundary: the host mount tree, /proc and /sys
//!   included, stays in the container's mount namespace and a process with CAP_SYS_CHROOT can
//!   walk out of a chroot.

use std::fmt;
use std::os::fd::OwnedFd;
use std::str::FromStr;

use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags, mount, mount_move, unmount};
use rustix::process::{chdir, chroot, fchdir, pivot_root};
use serde::Serialize;

use super::process::{Fail, Step, rx};
use crate::error::{Error, Result};

/// How the container's root is switched.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Switch {
    PivotRoot = 1,
    Move = 2,
    Chroot = 3,
}

impl Switch {
    pub const ALL: [Switch; 3] = [Switch::PivotRoot, Switch::Move, Switch::Chroot];

    pub fn name(self) -> &'static str {
        match self {
            Switch::PivotRoot => "pivot_root",
            Switch::Move => "move",
            Switch::Chroot => "chroot",
        }
    }

    /// False for chroot: the host's mounts stay reachable from inside.
    pub fn is_isolation_boundary(self) -> bool {
        !matches!(self, Switch::Chroot)
    }

    /// The warning to print with chroot.
    pub const CHROOT_WARNING: &'static str = "--switch chroot is not an isolation boundary: the host mount tree (its /proc and /sys included) stays in the container's mount namespace and CAP_SYS_CHROOT can leave a chroot";

    pub(crate) fn from_u32(n: u32) -> Option<Switch> {
        Switch::ALL.into_iter().find(|s| *s as u32 == n)
    }
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Switch {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Switch::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "unknown root switch {s:?} (known: pivot_root, move, chroot)"
                ))
            })
    }
}

/// What the switch did.
pub struct Done {
    pub used: Switch,
    /// Non-zero when pivot_root failed with it and `move` was used instead.
    pub pivot_errno: i32,
}

/// Switches the root to the directory open as `root`; afterwards cwd and / are that root.
pub fn switch_root(how: Switch, root: &OwnedFd) -> std::result::Result<Done, Fail> {
    // Every switch starts inside the new root, so "." names it.
    rx(Step::EnterRoot, fchdir(root))?;
    match how {
        Switch::PivotRoot => match pivot() {
            Ok(()) => Ok(Done {
                used: Switch::PivotRoot,
                pivot_errno: 0,
            }),
            Err((Step::PivotRoot, e)) if e == libc::EINVAL => {
                move_root()?;
                Ok(Done {
                    used: Switch::Move,
                    pivot_errno: e,
                })
            }
            Err(f) => Err(f),
        },
        Switch::Move => move_root().map(|()| Done {
            used: Switch::Move,
            pivot_errno: 0,
        }),
        Switch::Chroot => {
            // Only the root directory changes; the mount tree stays as it is.
            rx(Step::Chroot, chroot(c"."))?;
            // Leave no cwd outside the new root.
            rx(Step::ChdirRoot, chdir(c"/"))?;
            Ok(Done {
                used: Switch::Chroot,
                pivot_errno: 0,
            })
        }
    }
}

fn pivot() -> std::result::Result<(), Fail> {
    // new_root = put_old = ".": the old root is stacked on top of the new one at "/".
    rx(Step::PivotRoot, pivot_root(c".", c"."))?;
    // The top of "." is now the old root: detach it with everything under it. It is private
    // already (/ was made rprivate before any mount), so nothing propagates to the host.
    rx(Step::DetachOldRoot, unmount(c".", UnmountFlags::DETACH))?;
    // Re-enter the new root by name, so the cwd is not whatever "." last named.
    rx(Step::ChdirRoot, chdir(c"/"))
}

fn move_root() -> std::result::Result<(), Fail> {
    // With MS_MOVE the host tree stays beneath the new root: take its /proc and /sys out of
    // the namespace so they cannot be reached (or used to permit new proc mounts).
    hide(c"/proc", Step::HideHostProc)?;
    hide(c"/sys", Step::HideHostSys)?;
    // Put the root filesystem (the mount at ".") on top of "/".
    rx(Step::MoveRoot, mount_move(c".", c"/"))?;
    // Make the moved mount this process's root directory.
    rx(Step::Chroot, chroot(c"."))?;
    // Leave no cwd outside the new root.
    rx(Step::ChdirRoot, chdir(c"/"))
}

/// Detaches the mount at `path`; where that is refused (not a mount point, or locked in a
/// user namespace) covers it with an empty read-only tmpfs, as crun and youki do.
fn hide(path: &std::ffi::CStr, step: Step) -> std::result::Result<(), Fail> {
    match unmount(path, UnmountFlags::DETACH) {
        // Nothing there to hide.
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::INVAL | Errno::PERM) => rx(
            step,
            mount(
                c"tmpfs",
                path,
                c"tmpfs",
                MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                c"size=4k,mode=000",
            ),
        ),
        Err(e) => Err((step, e.raw_os_error())),
    }
}

/// Checks that "/" and the working directory are both the root filesystem open as `root`
/// (CVE-2024-21626: a cwd left on the host is an escape).
pub fn verify_root(root: &OwnedFd) -> std::result::Result<(), Fail> {
    let want = rx(Step::VerifyRoot, rustix::fs::fstat(root))?;
    let slash = rx(Step::VerifyRoot, rustix::fs::stat(c"/"))?;
    let cwd = rx(Step::VerifyRoot, rustix::fs::stat(c"."))?;
    let same = |a: &rustix::fs::Stat| a.st_dev == want.st_dev && a.st_ino == want.st_ino;
    if !same(&slash) || !same(&cwd) {
        return Err((Step::VerifyRoot, libc::EXDEV));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for s in Switch::ALL {
            assert_eq!(s.name().parse::<Switch>().unwrap(), s);
            assert_eq!(Switch::from_u32(s as u32), Some(s));
        }
        let e = "pivot".parse::<Switch>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown root switch \"pivot\" (known: pivot_root, move, chroot)"
        );
        assert!(!Switch::Chroot.is_isolation_boundary());
    }
}

//! Storage drivers: one file each, one trait.
//!
//! A driver turns a stack of stored layers into a merged view at a target directory, with a
//! fresh writable layer on top, and turns that writable layer back into an OCI layer tar.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::commit::CommitOptions;
use crate::error::{Error, Result};
use crate::model::{Meta, Semantics};
use crate::store::StoredLayer;

pub mod btrfs;
pub mod chain;
pub mod copy;
pub mod fuse;
pub mod overlay;
pub mod overlay2;

pub use btrfs::Btrfs;
pub use copy::Copy;
pub use fuse::FuseOverlay;
pub use overlay::{Overlay, OverlayApi};
pub use overlay2::Overlay2;

/// What a driver promises where union filesystems are known to differ. Tests check each
/// promise; the conformance matrix shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// rename(2) of a directory that came from a lower layer works (false: it fails with EXDEV).
    pub dir_rename: bool,
    /// Hard links to a lower file stay one inode after one of the names is written.
    pub hardlinks_kept: bool,
    /// A lower file keeps its st_ino when it is copied up.
    pub stable_ino: bool,
    /// Commit reads only the writable layer (no tree compare).
    pub native_diff: bool,
    /// An entry under a lower layer's symlink (`lib -> usr/lib`, then `lib/x`) lands behind the
    /// symlink, as the model says; false: the layer's directory hides the symlink.
    pub follows_lower_symlinks: bool,
    /// A directory a layer only implies (no tar entry of its own) keeps the attributes of the
    /// same directory below, as the model says; false: it shows 0755 root:root, mtime 0.
    pub implied_dirs_keep_lower_attrs: bool,
    /// A lower regular file keeps its setuid and setgid bits when a change copies it up;
    /// false: a copy not owned by 0:0 loses what chown(2) drops.
    pub copy_up_keeps_setid: bool,
    /// A lower symlink keeps owner, mtime and xattrs when a change copies it up; false: its
    /// copy is 0:0, with the time of the copy as mtime and no xattrs.
    pub copy_up_keeps_symlink_attrs: bool,
    /// A lower directory copied up on the way to a change below it keeps its mtime; false:
    /// it shows the time of the copy.
    pub copy_up_keeps_parent_mtime: bool,
    /// A directory, symlink, device or fifo made in a setgid directory takes its group, as a
    /// regular file does; false: the creator's group (regular files still take the directory's).
    pub setgid_dirs_pass_group: bool,
    /// A stack mounts where a layer's symlink loops and a higher layer has a directory with
    /// directories in it at its path; false: the driver refuses such a stack.
    pub mounts_symlink_loops_under_dirs: bool,
    /// open(O_CREAT) makes a file whose name begins with `.wh.` (no layer can hold such a
    /// name, so commit refuses it); false: it fails with EINVAL (the driver keeps the prefix
    /// for its own whiteouts; mkdir, symlink, link, rename and mknod still make such names).
    pub creates_whiteout_names: bool,
    /// The most layers one mount can stack, if bounded.
    pub max_layers: Option<usize>,
}

impl Capabilities {
    /// A driver that follows the OCI rules and POSIX everywhere, with no native diff and no
    /// layer bound: each driver names only where it differs (`..Capabilities::OCI`).
    pub const OCI: Capabilities = Capabilities {
        dir_rename: true,
        hardlinks_kept: true,
        stable_ino: true,
        native_diff: false,
        follows_lower_symlinks: true,
        implied_dirs_keep_lower_attrs: true,
        copy_up_keeps_setid: true,
        copy_up_keeps_symlink_attrs: true,
        copy_up_keeps_parent_mtime: true,
        setgid_dirs_pass_group: true,
        mounts_symlink_loops_under_dirs: true,
        creates_whiteout_names: true,
        max_layers: None,
    };

    /// The model semantics a view of this driver is checked against: the OCI rules with
    /// exactly the declared divergences.
    pub fn semantics(&self) -> Semantics {
        Semantics {
            follow_lower_symlinks: self.follows_lower_symlinks,
            implied_dirs_keep_lower_attrs: self.implied_dirs_keep_lower_attrs,
            dir_rename: self.dir_rename,
            hardlinks_kept: self.hardlinks_kept,
            copy_up_keeps_setid: self.copy_up_keeps_setid,
            copy_up_keeps_symlink_attrs: self.copy_up_keeps_symlink_attrs,
            copy_up_keeps_parent_mtime: self.copy_up_keeps_parent_mtime,
            setgid_dirs_pass_group: self.setgid_dirs_pass_group,
            mounts_symlink_loops_under_dirs: self.mounts_symlink_loops_under_dirs,
        }
    }
}

/// One mount as a driver sees it.
#[derive(Clone, Debug)]
pub struct MountView {
    /// Layers, lowest first.
    pub layers: Vec<StoredLayer>,
    /// A directory owned by this mount alone (its writable layer lives here).
    pub scratch: PathBuf,
    /// The directory that shows the merged view.
    pub target: PathBuf,
}

impl MountView {
    /// The store this mount belongs to: its scratch directory is `ROOT/mounts/<id>`.
    pub fn store_root(&self) -> Result<&Path> {
        self.scratch
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| Error::Driver {
                driver: "mount".into(),
                reason: format!("{}: not in a store", self.scratch.display()),
            })
    }

    /// The attributes the merged root takes: the topmost layer root entry's, else 0755 root.
    pub fn root_meta(&self) -> Meta {
        self.layers
            .iter()
            .rev()
            .find_map(|l| l.info.root.clone())
            .unwrap_or_else(Meta::implied_dir)
    }

    /// The layer directories as overlay lowerdirs, topmost first (overlayfs's order), for the
    /// drivers that stack the store's layer directories (overlay, fuse-overlayfs).
    ///
    /// An opaque root hides every layer below it (and kernel overlayfs ignores the opaque
    /// xattr on a layer's root directory), so those layers are left out.
    ///
    /// overlayfs refuses the same directory twice in one stack (ELOOP), yet images repeat
    /// layers (the empty layer above all). A lookup stops at the topmost layer holding a
    /// name, so a lower copy of a layer that also sits higher can never show: each layer is
    /// stacked once, at its topmost place, and the view is the same.
    pub fn lower_dirs(&self) -> Vec<PathBuf> {
        let from = self
            .layers
            .iter()
            .rposition(|l| l.info.root_opaque)
            .unwrap_or(0);
        let mut seen = std::collections::HashSet::new();
        self.layers[from..]
            .iter()
            .rev()
            .filter(|l| seen.insert(l.info.diff_id))
            .map(|l| l.fs())
            .collect()
    }
}

/// A storage driver.
pub trait Driver: Send + Sync {
    /// The name users pick it by (`--driver NAME`).
    fn name(&self) -> &'static str;

    /// What it promises where union filesystems differ.
    fn capabilities(&self) -> Capabilities;

    /// `Ok` when it can mount here, else the reason it cannot.
    fn availability(&self) -> std::result::Result<(), String>;

    /// [`Driver::availability`] for a store at `store_root` (a driver may need its store on
    /// a particular filesystem, as btrfs does).
    fn availability_in(&self, store_root: &Path) -> std::result::Result<(), String> {
        let _ = store_root;
        self.availability()
    }

    /// Makes `view.target` show the merged layers with a fresh writable layer on top.
    /// On error nothing stays mounted (the caller removes `view.scratch`).
    fn mount(&self, view: &MountView) -> Result<()>;

    /// Undoes [`Driver::mount`]; the caller then removes `view.scratch`.
    fn unmount(&self, view: &MountView) -> Result<()>;

    /// Writes the writable layer's changes to `out` as an OCI layer tar.
    fn commit(&self, view: &MountView, opts: &CommitOptions, out: &mut dyn Write) -> Result<()>;
}

static OVERLAY: Overlay = Overlay {
    api: OverlayApi::Auto,
};
static OVERLAY2: Overlay2 = Overlay2 {
    api: OverlayApi::Auto,
};
static COPY: Copy = Copy { reflink: true };
static BTRFS: Btrfs = Btrfs;
static FUSE_OVERLAY: FuseOverlay = FuseOverlay;

/// Every driver strata knows, available or not.
pub fn all() -> Vec<&'static dyn Driver> {
    vec![&OVERLAY, &OVERLAY2, &COPY, &BTRFS, &FUSE_OVERLAY]
}

/// aufs is no driver of strata's, but `strata drivers` lists it: `Ok` when the running kernel
/// has it (`/proc/filesystems`), else why not. strata never mounts it.
pub fn aufs_availability() -> std::result::Result<(), String> {
    if kernel_has_fs("aufs") {
        Ok(())
    } else {
        Err("aufs: not in this kernel; mainline Linux never merged it".into())
    }
}

/// The names of every driver, for messages.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|d| d.name()).collect()
}

/// The driver called `name`.
pub fn by_name(name: &str) -> Result<&'static dyn Driver> {
    all().into_iter().find(|d| d.name() == name).ok_or_else(|| {
        Error::Usage(format!(
            "unknown driver {name:?} (known: {})",
            names().join(", ")
        ))
    })
}

/// Fails unless the process may mount (root or CAP_SYS_ADMIN in its user namespace).
pub(crate) fn need_mount_privilege() -> std::result::Result<(), String> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err("needs root (CAP_SYS_ADMIN) to mount".into())
    }
}

/// The path of program `name` on PATH, or in the sbin directories (root's tools live there
/// and a test's PATH may lack them).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// True when the running kernel lists `fs` in /proc/filesystems.
pub(crate) fn kernel_has_fs(fs: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| s.lines().any(|l| l.split_whitespace().last() == Some(fs)))
        .unwrap_or(false)
}

pub(crate) fn driver_err(driver: &str, reason: impl Into<String>) -> Error {
    Error::Driver {
        driver: driver.to_string(),
        reason: reason.into(),
    }
}

/// Unmounts `target` (no lazy detach: a busy mount is an error the user should see). EBUSY
/// is retried for a moment first: while another thread of this process forks a child, the
/// child holds a copy of every open fd (close-on-exec ones too) until its exec, and one of
/// them may be in the mount.
pub(crate) fn umount(target: &Path) -> Result<()> {
    let mut tries = 0;
    loop {
        match nix::mount::umount2(target, nix::mount::MntFlags::empty()) {
            Err(nix::errno::Errno::EBUSY) if tries < UMOUNT_BUSY_TRIES => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            r => return r.map_err(|e| Error::io("unmount", target, std::io::Error::from(e))),
        }
    }
}

/// EBUSY retries of [`umount`], 2 ms apart.
const UMOUNT_BUSY_TRIES: u32 = 50;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oci_capabilities_are_the_oci_semantics() {
        assert_eq!(Capabilities::OCI.semantics(), Semantics::oci());
    }
}

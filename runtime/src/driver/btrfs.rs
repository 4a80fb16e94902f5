//! btrfs: each prefix of a stack is a read-only subvolume holding the layers up to it, each
//! mount a writable snapshot of the top one (like Docker's btrfs graph driver).
//!
//! ```text
//! ROOT/btrfs/                      must be on btrfs: the store on btrfs, or a btrfs mounted here
//! ROOT/btrfs/lock                  flock(2) held while chains are checked and built
//! ROOT/btrfs/chains/<chain-id>     read-only subvolume: layers L0..Ln applied, n = its depth
//! ROOT/btrfs/chains/<chain-id>.json  its record (written last: a chain without one is a
//!                                  crash's leftover, removed and rebuilt)
//! ROOT/btrfs/mounts/<mount-id>     a mount's writable snapshot, bind-mounted on the target
//! ```
//!
//! The chain id is the OCI ChainID of the layers' diff-ids, so every stack that shares a
//! lower part shares its subvolumes. A chain is made by snapshotting its parent chain and
//! applying one layer's change set on top with the copy driver's materializer (whiteouts and
//! opaque markers first, parents through symlinks in the root, directory over directory
//! keeps its children; mtimes of untouched directories kept), then made read-only. A mount
//! costs one snapshot and one bind mount once its chain exists. Unmount deletes the snapshot,
//! with any subvolume the container made inside it (moby/moby#9939).
//!
//! Snapshots and subvolumes are made with the btrfs ioctls (no process per layer). Commit is
//! the copy driver's tree diff: the snapshot compared with the model of the stack.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::FileType;
use serde::{Deserialize, Serialize};

use super::copy::{Base, Copy};
use super::{Capabilities, Driver, MountView, driver_err, kernel_has_fs, need_mount_privilege};
use crate::commit::{self, CommitOptions};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsutil::{self, DirIdentity, file_type, list_dir_typed, lstat_at, open_dir};
use crate::loopfs::{BTRFS_SUPER_MAGIC, fs_magic};
use crate::model::{self, RelPath};
use crate::store::{StoredLayer, now_secs, read_json, write_json};

const NAME: &str = "btrfs";

/// The btrfs driver.
#[derive(Clone, Copy, Debug)]
pub struct Btrfs;

/// What a chain subvolume holds, recorded beside it once it is complete.
#[derive(Debug, Serialize, Deserialize)]
struct ChainRecord {
    chain_id: Digest,
    /// Diff-ids, lowest first.
    layers: Vec<Digest>,
    /// The identity of every directory in it (a snapshot keeps inode numbers and birth
    /// times): the tree diff uses them to see a directory replaced whole.
    dirs: BTreeMap<RelPath, DirIdentity>,
    built_at: u64,
}

/// The OCI ChainID of each prefix of `layers`: ChainID(L0) = DiffID(L0),
/// ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)).
pub fn chain_ids(layers: &[StoredLayer]) -> Vec<Digest> {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.info.diff_id).collect();
    super::chain::chain_ids_of(&diff_ids)
}

/// The btrfs part of a store under `root`.
pub fn state_dir(store_root: &Path) -> PathBuf {
    store_root.join("btrfs")
}

/// The store root of a mount: its scratch directory is `ROOT/mounts/<id>`.
fn store_root(view: &MountView) -> Result<&Path> {
    view.scratch
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| driver_err(NAME, format!("{}: not in a store", view.scratch.display())))
}

fn mount_id(view: &MountView) -> Result<String> {
    view.scratch
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| driver_err(NAME, format!("{}: no mount id", view.scratch.display())))
}

/// A filesystem's name for a statfs magic number, for messages.
fn fs_name(magic: i64) -> String {
    match magic {
        0xef53 => "ext4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x794c_7630 => "overlayfs".into(),
        0x6573_5546 => "fuse".into(),
        0x0102_1997 => "9p".into(),
        0x6969 => "nfs".into(),
        m => format!("a filesystem of type {m:#x}"),
    }
}

/// `Ok` when the driver's state directory under `store_root` is on btrfs (made if the
/// store root itself is).
fn check_store(store_root: &Path) -> std::result::Result<(), String> {
    let dir = state_dir(store_root);
    let probe = if dir.exists() { &dir } else { store_root };
    let magic = fs_magic(probe).map_err(|e| format!("statfs {}: {e}", probe.display()))?;
    if magic == BTRFS_SUPER_MAGIC {
        return Ok(());
    }
    Err(format!(
        "{} is on {}, not btrfs: put the store root on btrfs, or mount a btrfs at {}",
        probe.display(),
        fs_name(magic),
        dir.display()
    ))
}

impl Btrfs {
    fn snapshot_path(view: &MountView) -> Result<PathBuf> {
        Ok(state_dir(store_root(view)?)
            .join("mounts")
            .join(mount_id(view)?))
    }

    /// Makes sure the chain subvolume of every prefix of `layers` exists; returns the top
    /// one's path.
    fn ensure_chain(&self, base: &Path, layers: &[StoredLayer]) -> Result<PathBuf> {
        let chains = base.join("chains");
        for d in [&chains, &base.join("mounts")] {
            // The layout, on first use.
            std::fs::create_dir_all(d).map_err(|e| Error::io("create", d, e))?;
        }
        let ids = chain_ids(layers);
        let top = ids
            .last()
            .ok_or_else(|| driver_err(NAME, "no layers to mount"))?;
        let path = |id: &Digest| chains.join(id.hex());
        let record = |id: &Digest| chains.join(format!("{}.json", id.hex()));
        // The common case, without the lock: the chain is there.
        if record(top).exists() {
            return Ok(path(top));
        }
        let _lock = crate::fsutil::Flock::wait(&base.join("lock"))?;
        // The longest prefix already built (under the lock: no one is building it now).
        let mut have = None;
        for (i, id) in ids.iter().enumerate().rev() {
            if record(id).exists() {
                have = Some(i);
                break;
            }
        }
        let chains_fd = open_dir(&chains)?;
        for i in have.map_or(0, |h| h + 1)..ids.len() {
            let id = &ids[i];
            let name = id.hex();
            // A subvolume without its record: a build a crash cut short.
            if lstat_at(chains_fd.as_fd(), &name).is_ok() {
                delete_subvolume(chains_fd.as_fd(), &name, &path(id))?;
            }
            let dest = path(id);
            let populated = match i {
                0 => {
                    // The bottom of the chain: an empty subvolume.
                    subvol_create(chains_fd.as_fd(), &name)
                        .map_err(|e| Error::io("create subvolume", &dest, e))?;
                    Base::Empty
                }
                _ => {
                    let parent = open_dir(&path(&ids[i - 1]))?;
                    // The chain below, as a writable snapshot to apply this layer onto.
                    snapshot(parent.as_fd(), chains_fd.as_fd(), &name)
                        .map_err(|e| Error::io("snapshot subvolume", &dest, e))?;
                    Base::Populated
                }
            };
            let built = Copy { reflink: true }
                .apply_layers(std::slice::from_ref(&layers[i]), &dest, populated)
                .and_then(|(dirs, _)| {
                    let fd = open_dir(&dest)?;
                    // Read-only from now on: every mount of this chain shares it.
                    set_readonly(fd.as_fd())
                        .map_err(|e| Error::io("make subvolume read-only", &dest, e))?;
                    let r = ChainRecord {
                        chain_id: *id,
                        layers: layers[..=i].iter().map(|l| l.info.diff_id).collect(),
                        dirs,
                        built_at: now_secs(),
                    };
                    // The record last: it says the chain is whole.
                    write_json(&record(id), &r)
                });
            if let Err(e) = built {
                let _ = delete_subvolume(chains_fd.as_fd(), &name, &dest);
                return Err(e);
            }
        }
        Ok(path(top))
    }
}

impl Driver for Btrfs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::OCI
    }

    fn availability(&self) -> std::result::Result<(), String> {
        if !kernel_has_fs("btrfs") {
            return Err("the kernel has no btrfs filesystem (modprobe btrfs)".into());
        }
        need_mount_privilege()
    }

    fn availability_in(&self, store_root: &Path) -> std::result::Result<(), String> {
        self.availability()?;
        check_store(store_root)
    }

    fn mount(&self, view: &MountView) -> Result<()> {
        let root = store_root(view)?;
        check_store(root).map_err(|reason| driver_err(NAME, reason))?;
        let base = state_dir(root);
        let chain = self.ensure_chain(&base, &view.layers)?;
        let snap = Self::snapshot_path(view)?;
        let mounts = open_dir(&base.join("mounts"))?;
        let id = mount_id(view)?;
        let src = open_dir(&chain)?;
        // The mount's writable layer: a snapshot of the whole stack.
        snapshot(src.as_fd(), mounts.as_fd(), &id)
            .map_err(|e| Error::io("snapshot subvolume", &snap, e))?;
        // The target shows the snapshot.
        let bound = nix::mount::mount(
            Some(&snap),
            &view.target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        );
        if let Err(e) = bound {
            let _ = delete_subvolume(mounts.as_fd(), &id, &snap);
            return Err(driver_err(
                NAME,
                format!("bind {} on {}: {e}", snap.display(), view.target.display()),
            ));
        }
        Ok(())
    }

    fn unmount(&self, view: &MountView) -> Result<()> {
        let unmounted = super::umount(&view.target);
        match &unmounted {
            // Not mounted (a reboot, a manual umount): the snapshot still goes.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {}
            Err(_) => return unmounted,
            Ok(()) => {}
        }
        let snap = Self::snapshot_path(view)?;
        let mounts = snap.parent().map(Path::to_path_buf).unwrap_or_default();
        match open_dir(&mounts) {
            Ok(fd) => delete_subvolume(fd.as_fd(), &mount_id(view)?, &snap)?,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        unmounted
    }

    fn commit(&self, view: &MountView, opts: &CommitOptions, out: &mut dyn Write) -> Result<()> {
        let snap = Self::snapshot_path(view)?;
        let base = state_dir(store_root(view)?);
        let top = chain_ids(&view.layers)
            .pop()
            .ok_or_else(|| driver_err(NAME, "no layers"))?;
        let record: ChainRecord =
            read_json(&base.join("chains").join(format!("{}.json", top.hex())))?;
        let mut sets = Vec::with_capacity(view.layers.len());
        for l in &view.layers {
            sets.push(l.changes()?);
        }
        let lower = model::apply(&sets)?;
        let mut dirs = record.dirs;
        // The snapshot's root is the mount's own (it cannot be replaced).
        let root = open_dir(&snap)?;
        dirs.insert(
            String::new(),
            fsutil::dir_identity(root.as_fd(), ".").map_err(|e| Error::io("stat", &snap, e))?,
        );
        let items = crate::diff::tree_diff(&lower, &view.root_meta(), &dirs, &snap)?;
        commit::write(items, &snap, opts, out)
    }
}

/// Finds, and unless `dry_run` deletes, what a crash left in the btrfs part of the store
/// under `store_root` (`strata gc`): a mount's snapshot whose mount directory (and so its
/// record) is gone, a chain subvolume without its record (a build cut short) and a chain
/// record's temporary; chains are looked at only while no build holds the chain lock.
/// `found` gets each one's kind, path, why it is a leftover, and the outcome of its removal
/// (`None` with `dry_run`).
pub fn gc_leftovers(
    store_root: &Path,
    dry_run: bool,
    found: &mut dyn FnMut(&'static str, PathBuf, &'static str, Option<Result<()>>),
) -> Result<()> {
    let base = state_dir(store_root);
    if !matches!(fs_magic(&base), Ok(BTRFS_SUPER_MAGIC)) {
        return Ok(());
    }
    const SUBVOLUME: &str = "btrfs-subvolume";
    let mut subvolume = |dir: &Path, name: &str, why: &'static str| {
        let path = dir.join(name);
        let r = (!dry_run)
            .then(|| open_dir(dir).and_then(|fd| delete_subvolume(fd.as_fd(), name, &path)));
        found(SUBVOLUME, path, why, r);
    };
    let mounts = base.join("mounts");
    if let Ok(fd) = open_dir(&mounts) {
        for (name, _) in list_dir_typed(fd.as_fd()).map_err(|e| Error::io("read", &mounts, e))? {
            // The mount directory is made (and locked) before its snapshot, and removed
            // after it: a snapshot without one is nobody's.
            if !store_root.join("mounts").join(&name).exists() {
                subvolume(&mounts, &name, "btrfs snapshot of a mount without a record");
            }
        }
    }
    let chains = base.join("chains");
    let Ok(fd) = open_dir(&chains) else {
        return Ok(());
    };
    let Some(_building) = crate::fsutil::Flock::try_take(&base.join("lock"))? else {
        return Ok(());
    };
    let mut temps = Vec::new();
    for (name, _) in list_dir_typed(fd.as_fd()).map_err(|e| Error::io("read", &chains, e))? {
        if name.contains(".tmp-") {
            temps.push(name);
            continue;
        }
        if Digest::parse(&name).is_none() || chains.join(format!("{name}.json")).exists() {
            continue;
        }
        let is_subvolume = lstat_at(fd.as_fd(), &name).is_ok_and(|st| {
            file_type(&st) == FileType::Directory && st.st_ino == BTRFS_FIRST_FREE_OBJECTID
        });
        if is_subvolume {
            subvolume(&chains, &name, "btrfs chain subvolume without its record");
        }
    }
    for name in temps {
        let path = chains.join(&name);
        let r = (!dry_run)
            .then(|| std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e)));
        found(
            "btrfs-temp",
            path,
            "temporary of a chain record never renamed",
            r,
        );
    }
    Ok(())
}

// The btrfs ioctls (linux/btrfs.h): magic 0x94, argument structs of 4096 bytes.
const BTRFS_IOC_SNAP_DESTROY: libc::c_ulong = 0x5000_940f;
const BTRFS_IOC_SNAP_CREATE_V2: libc::c_ulong = 0x5000_9417;
const BTRFS_IOC_SUBVOL_CREATE_V2: libc::c_ulong = 0x5000_9418;
const BTRFS_IOC_SUBVOL_GETFLAGS: libc::c_ulong = 0x8008_9419;
const BTRFS_IOC_SUBVOL_SETFLAGS: libc::c_ulong = 0x4008_941a;
const BTRFS_SUBVOL_RDONLY: u64 = 1 << 1;
/// The inode number of every subvolume's root directory.
const BTRFS_FIRST_FREE_OBJECTID: u64 = 256;
const SUBVOL_NAME_MAX: usize = 4039;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; 4088],
}

/// `struct btrfs_ioctl_vol_args_v2` (the qgroup union unused).
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; SUBVOL_NAME_MAX + 1],
}

fn name_bytes(name: &str, max: usize) -> io::Result<&[u8]> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > max || b.contains(&0) || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a subvolume name"),
        ));
    }
    Ok(b)
}

/// Issues a btrfs ioctl.
///
/// SAFETY (of the callers): `arg` points to a live value of the struct `req` reads/writes.
unsafe fn ioctl(fd: BorrowedFd<'_>, req: libc::c_ulong, arg: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: see above; `fd` is open for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn v2_args(name: &str) -> io::Result<Box<VolArgsV2>> {
    let b = name_bytes(name, SUBVOL_NAME_MAX)?;
    let mut a = Box::new(VolArgsV2 {
        fd: 0,
        transid: 0,
        flags: 0,
        unused: [0; 4],
        name: [0; SUBVOL_NAME_MAX + 1],
    });
    a.name[..b.len()].copy_from_slice(b);
    Ok(a)
}

/// Creates the empty subvolume `name` in directory `dir`.
fn subvol_create(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let mut a = v2_args(name)?;
    // SAFETY: SUBVOL_CREATE_V2 reads a `btrfs_ioctl_vol_args_v2`, alive in `a`.
    unsafe {
        ioctl(
            dir,
            BTRFS_IOC_SUBVOL_CREATE_V2,
            (&mut *a as *mut VolArgsV2).cast(),
        )
    }
}

/// Snapshots the subvolume open as `src` to the writable subvolume `name` in directory `dir`.
fn snapshot(src: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let mut a = v2_args(name)?;
    a.fd = i64::from(src.as_raw_fd());
    // SAFETY: SNAP_CREATE_V2 reads a `btrfs_ioctl_vol_args_v2`, alive in `a`.
    unsafe {
        ioctl(
            dir,
            BTRFS_IOC_SNAP_CREATE_V2,
            (&mut *a as *mut VolArgsV2).cast(),
        )
    }
}

/// Sets the read-only flag of the subvolume open as `subvol`.
fn set_readonly(subvol: BorrowedFd<'_>) -> io::Result<()> {
    let mut flags: u64 = 0;
    // SAFETY: GETFLAGS writes one u64, alive in `flags`.
    unsafe {
        ioctl(
            subvol,
            BTRFS_IOC_SUBVOL_GETFLAGS,
            (&mut flags as *mut u64).cast(),
        )
    }?;
    flags |= BTRFS_SUBVOL_RDONLY;
    // SAFETY: SETFLAGS reads one u64, alive in `flags`.
    unsafe {
        ioctl(
            subvol,
            BTRFS_IOC_SUBVOL_SETFLAGS,
            (&mut flags as *mut u64).cast(),
        )
    }
}

/// Deletes subvolume `name` in directory `dir` (`path` names it in errors). A subvolume made
/// inside it (by a container) is deleted first; a missing one is not an error.
fn delete_subvolume(dir: BorrowedFd<'_>, name: &str, path: &Path) -> Result<()> {
    match destroy(dir, name) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        // Subvolumes inside it: find them, delete them, then it.
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
            let sub = fsutil::open_dir_beneath(dir, name)
                .map_err(|e| Error::io("open subvolume", path, e))?;
            delete_nested(sub.as_fd(), path)?;
            destroy(dir, name).map_err(|e| Error::io("delete subvolume", path, e))
        }
        Err(e) => Err(Error::io("delete subvolume", path, e)),
    }
}

/// Deletes every subvolume below directory `dir` (deepest first).
fn delete_nested(dir: BorrowedFd<'_>, path: &Path) -> Result<()> {
    for (name, known) in list_dir_typed(dir).map_err(|e| Error::io("read directory", path, e))? {
        if known.is_some_and(|t| t != FileType::Directory) {
            continue;
        }
        let st = lstat_at(dir, &name).map_err(|e| Error::io("stat", path.join(&name), e))?;
        if file_type(&st) != FileType::Directory {
            continue;
        }
        if st.st_ino == BTRFS_FIRST_FREE_OBJECTID {
            delete_subvolume(dir, &name, &path.join(&name))?;
        } else {
            let sub = fsutil::open_dir_beneath(dir, &name)
                .map_err(|e| Error::io("open", path.join(&name), e))?;
            delete_nested(sub.as_fd(), &path.join(&name))?;
        }
    }
    Ok(())
}

/// BTRFS_IOC_SNAP_DESTROY of `name` in `dir`.
fn destroy(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let b = name_bytes(name, 4087)?;
    let mut a = Box::new(VolArgs {
        fd: 0,
        name: [0; 4088],
    });
    a.name[..b.len()].copy_from_slice(b);
    // SAFETY: SNAP_DESTROY reads a `btrfs_ioctl_vol_args`, alive in `a`.
    unsafe {
        ioctl(
            dir,
            BTRFS_IOC_SNAP_DESTROY,
            (&mut *a as *mut VolArgs).cast(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        // _IOW(0x94, nr, 4096-byte struct) and _IOR/_IOW(0x94, nr, u64).
        let iow = |nr: u64, size: u64| (1u64 << 30) | (size << 16) | (0x94 << 8) | nr;
        let ior = |nr: u64, size: u64| (2u64 << 30) | (size << 16) | (0x94 << 8) | nr;
        assert_eq!(std::mem::size_of::<VolArgs>(), 4096);
        assert_eq!(std::mem::size_of::<VolArgsV2>(), 4096);
        assert_eq!(BTRFS_IOC_SNAP_DESTROY, iow(15, 4096));
        assert_eq!(BTRFS_IOC_SNAP_CREATE_V2, iow(23, 4096));
        assert_eq!(BTRFS_IOC_SUBVOL_CREATE_V2, iow(24, 4096));
        assert_eq!(BTRFS_IOC_SUBVOL_GETFLAGS, ior(25, 8));
        assert_eq!(BTRFS_IOC_SUBVOL_SETFLAGS, iow(26, 8));
    }

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let layer = |d: Digest| StoredLayer {
            info: crate::store::LayerInfo {
                diff_id: d,
                tar_size: 0,
                entries: 0,
                root: None,
                root_opaque: false,
                whiteouts: Vec::new(),
                source: String::new(),
                imported_at: 0,
            },
            dir: PathBuf::new(),
        };
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let ids = chain_ids(&[layer(a), layer(b)]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::of(format!("{a} {b}").as_bytes()));
    }
}

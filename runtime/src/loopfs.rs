//! Loop-mounted filesystem images: a sparse image file, mkfs, a loop device, a mount, and a
//! guard that undoes it all when dropped (also on error and on panic), so a plain ext4 host
//! can still test the btrfs driver and reflink copies on btrfs or xfs.
//!
//! The loop device is set up with the loop ioctls rather than `mount -o loop`: each step then
//! fails with its own error (no free device, no device node, a refused configure), it costs no
//! process, and the device is configured with `LO_FLAGS_AUTOCLEAR`, so the kernel detaches it
//! when its last user goes: the mount, or, when the mount fails, the fd closed right here. No
//! path leaves a loop device behind.
//!
//! ```text
//! IMAGE            sparse file of the requested size (removed on drop)
//! MOUNTPOINT       where the filesystem is mounted (made if missing, removed if made)
//! ```

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::driver::{find_program, kernel_has_fs};

/// A filesystem a loop image can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsType {
    /// btrfs: subvolumes, snapshots, reflinks.
    Btrfs,
    /// xfs with `-m reflink=1`: reflinks.
    Xfs,
    /// ext4: a plain disk filesystem (for what tmpfs lacks on older kernels, such as
    /// `user.*` xattrs before Linux 6.6).
    Ext4,
}

impl FsType {
    /// The kernel's name for it (`/proc/filesystems`, mount(2)).
    pub fn name(self) -> &'static str {
        match self {
            FsType::Btrfs => "btrfs",
            FsType::Xfs => "xfs",
            FsType::Ext4 => "ext4",
        }
    }

    fn mkfs(self) -> &'static str {
        match self {
            FsType::Btrfs => "mkfs.btrfs",
            FsType::Xfs => "mkfs.xfs",
            FsType::Ext4 => "mkfs.ext4",
        }
    }

    /// The Debian package holding its mkfs.
    fn package(self) -> &'static str {
        match self {
            FsType::Btrfs => "btrfs-progs",
            FsType::Xfs => "xfsprogs",
            FsType::Ext4 => "e2fsprogs",
        }
    }

    /// `-K`: no discard of a fresh sparse file (pointless, and slow on some hosts).
    fn mkfs_args(self) -> &'static [&'static str] {
        match self {
            FsType::Btrfs => &["-q", "-f", "-K"],
            FsType::Xfs => &["-q", "-f", "-K", "-m", "reflink=1"],
            FsType::Ext4 => &["-q", "-F", "-E", "nodiscard"],
        }
    }

    /// statfs(2) f_type of a mounted filesystem of this type.
    pub fn magic(self) -> i64 {
        match self {
            FsType::Btrfs => BTRFS_SUPER_MAGIC,
            FsType::Xfs => XFS_SUPER_MAGIC,
            FsType::Ext4 => EXT4_SUPER_MAGIC,
        }
    }

    /// The smallest image mkfs accepts with its defaults (rounded up).
    pub fn min_size(self) -> u64 {
        match self {
            FsType::Btrfs => 128 << 20,
            FsType::Xfs => 320 << 20,
            FsType::Ext4 => 16 << 20,
        }
    }
}

/// statfs magic numbers (linux/magic.h).
pub const BTRFS_SUPER_MAGIC: i64 = 0x9123_683e;
pub const XFS_SUPER_MAGIC: i64 = 0x5846_5342;
pub const EXT4_SUPER_MAGIC: i64 = 0xef53;

/// The filesystem type (statfs f_type) of the filesystem holding `path`.
pub fn fs_magic(path: &Path) -> io::Result<i64> {
    let st = rustix::fs::statfs(path).map_err(crate::fsutil::ioe)?;
    Ok(st.f_type as i64)
}

// The loop ioctls (linux/loop.h).
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;

/// `struct loop_info64`.
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// A mounted loop image. Dropping it unmounts the filesystem (the loop device detaches
/// itself), removes the image file and the mount point if this made it.
#[derive(Debug)]
pub struct LoopFs {
    fs: FsType,
    image: PathBuf,
    mountpoint: PathBuf,
    device: PathBuf,
    made_mountpoint: bool,
}

/// What is missing on this machine for a loop image of `fs`, if anything (nothing is made).
pub fn check(fs: FsType) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err(format!(
            "a loop-mounted {} needs root (loop devices, mount)",
            fs.name()
        ));
    }
    if !kernel_has_fs(fs.name()) {
        return Err(format!(
            "the kernel has no {} filesystem (/proc/filesystems; modprobe {})",
            fs.name(),
            fs.name()
        ));
    }
    if find_program(fs.mkfs()).is_none() {
        return Err(format!(
            "{} is not installed (apt-get install {})",
            fs.mkfs(),
            fs.package()
        ));
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err("no loop devices here (/dev/loop-control is missing; modprobe loop)".into());
    }
    Ok(())
}

impl LoopFs {
    /// Makes a `size`-byte sparse image `DIR/NAME.img` holding a fresh `fs` and mounts it on
    /// `DIR/NAME` (`NAME` is the filesystem's name).
    pub fn in_dir(fs: FsType, dir: &Path, size: u64) -> Result<LoopFs, String> {
        LoopFs::create(
            fs,
            &dir.join(format!("{}.img", fs.name())),
            size,
            &dir.join(fs.name()),
        )
    }

    /// Makes the sparse image `image` (which must not exist) of `size` bytes, puts a fresh
    /// `fs` on it and mounts it on `mountpoint` (made when missing). The error names the step
    /// and what is missing.
    pub fn create(
        fs: FsType,
        image: &Path,
        size: u64,
        mountpoint: &Path,
    ) -> Result<LoopFs, String> {
        check(fs)?;
        let size = size.max(fs.min_size());
        let img = image.display();
        // The image: a new file, never someone else's.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(image)
            .map_err(|e| format!("create loop image {img}: {e}"))?;
        // Sparse: only what the filesystem writes takes space.
        let sized = file.set_len(size);
        drop(file);
        let cleanup_image = |msg: String| {
            let _ = std::fs::remove_file(image);
            msg
        };
        sized.map_err(|e| cleanup_image(format!("size loop image {img}: {e}")))?;
        // The filesystem, made on the file itself (no device needed yet).
        mkfs(fs, image).map_err(cleanup_image)?;
        // A loop device backed by the image, detached by the kernel when unused.
        let (device, loop_fd) = attach(image).map_err(cleanup_image)?;
        let made_mountpoint = !mountpoint.exists();
        if made_mountpoint {
            // The mount point, when the caller has not made it.
            std::fs::create_dir(mountpoint).map_err(|e| {
                cleanup_image(format!("create mount point {}: {e}", mountpoint.display()))
            })?;
        }
        let guard = LoopFs {
            fs,
            image: image.to_path_buf(),
            mountpoint: mountpoint.to_path_buf(),
            device: device.clone(),
            made_mountpoint,
        };
        // The mount: it holds the loop device from here on.
        nix::mount::mount(
            Some(&device),
            mountpoint,
            Some(fs.name()),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| {
            format!(
                "mount {} ({} on {img}) on {}: {e}",
                device.display(),
                fs.name(),
                mountpoint.display()
            )
        })?;
        // Our fd goes: with autoclear, the device now lives exactly as long as the mount.
        drop(loop_fd);
        // The mount is what was asked for (not something else already mounted there).
        match fs_magic(mountpoint) {
            Ok(m) if m == fs.magic() => Ok(guard),
            Ok(m) => Err(format!(
                "{}: mounted, but statfs says type {m:#x}, not {}",
                mountpoint.display(),
                fs.name()
            )),
            Err(e) => Err(format!("statfs {}: {e}", mountpoint.display())),
        }
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The image file.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// The loop device (`/dev/loopN`).
    pub fn device(&self) -> &Path {
        &self.device
    }

    pub fn fs_type(&self) -> FsType {
        self.fs
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        use nix::mount::{MntFlags, umount2};
        // Unmount: the last user of the loop device, which then detaches (autoclear).
        if let Err(nix::errno::Errno::EBUSY) = umount2(&self.mountpoint, MntFlags::empty()) {
            // Still busy (an open file, a mount inside): detach it from the tree now; the
            // filesystem and the loop device go when the last user does.
            let _ = umount2(&self.mountpoint, MntFlags::MNT_DETACH);
        }
        // The image: its blocks are free once the device lets go of it.
        let _ = std::fs::remove_file(&self.image);
        if self.made_mountpoint {
            let _ = std::fs::remove_dir(&self.mountpoint);
        }
    }
}

/// Runs mkfs on the image file.
fn mkfs(fs: FsType, image: &Path) -> Result<(), String> {
    let prog = find_program(fs.mkfs()).ok_or_else(|| {
        format!(
            "{} is not installed (apt-get install {})",
            fs.mkfs(),
            fs.package()
        )
    })?;
    let out = Command::new(&prog)
        .args(fs.mkfs_args())
        .arg(image)
        .output()
        .map_err(|e| format!("run {}: {e}", prog.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(format!(
        "{} {} failed ({}): {}",
        fs.mkfs(),
        image.display(),
        out.status,
        last.trim()
    ))
}

/// Issues one ioctl whose argument is an integer or a pointer.
///
/// SAFETY (of the callers): `arg` is what `req` expects: an integer, or a pointer to a live
/// value of the ioctl's struct.
unsafe fn ioctl(fd: &impl AsRawFd, req: libc::c_ulong, arg: libc::c_ulong) -> io::Result<i32> {
    // SAFETY: see above; the fd is open for the duration of the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Attaches `image` to a free loop device with autoclear; returns the device and its open fd
/// (the device is detached when that fd closes, unless something mounted it meanwhile).
fn attach(image: &Path) -> Result<(PathBuf, OwnedFd), String> {
    // The control device hands out free loop devices.
    let ctl = File::open("/dev/loop-control")
        .map_err(|e| format!("open /dev/loop-control: {e} (no loop devices here?)"))?;
    // The image, opened once for every attempt.
    let backing = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(image)
        .map_err(|e| format!("open loop image {}: {e}", image.display()))?;
    let mut last = String::new();
    // Another process may take the free device between GET_FREE and configure: retry.
    for _ in 0..8 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument.
        let n = unsafe { ioctl(&ctl, LOOP_CTL_GET_FREE, 0) }
            .map_err(|e| format!("/dev/loop-control: LOOP_CTL_GET_FREE: {e}"))?;
        let device = PathBuf::from(format!("/dev/loop{n}"));
        // The device node (udev or devtmpfs makes it; a bare /dev may lack it).
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&device)
            .map_err(|e| format!("open {}: {e}", device.display()))?;
        match configure(&dev, &backing, image) {
            Ok(()) => return Ok((device, OwnedFd::from(dev))),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                last = format!("{}: busy", device.display());
            }
            Err(e) => {
                return Err(format!(
                    "attach {} to {}: {e}",
                    image.display(),
                    device.display()
                ));
            }
        }
    }
    Err(format!(
        "attach {}: no loop device stayed free ({last})",
        image.display()
    ))
}

/// Binds the device to the image with autoclear: LOOP_CONFIGURE (Linux 5.8), else the older
/// LOOP_SET_FD then LOOP_SET_STATUS64.
fn configure(dev: &File, backing: &File, image: &Path) -> io::Result<()> {
    let mut info = LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: LO_FLAGS_AUTOCLEAR,
        lo_file_name: [0; LO_NAME_SIZE],
        lo_crypt_name: [0; LO_NAME_SIZE],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    };
    let name = image.as_os_str().as_encoded_bytes();
    let n = name.len().min(LO_NAME_SIZE - 1);
    info.lo_file_name[..n].copy_from_slice(&name[..n]);
    let config = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: 0,
        info,
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`, which `config` is, alive here.
    match unsafe {
        ioctl(
            dev,
            LOOP_CONFIGURE,
            &config as *const LoopConfig as libc::c_ulong,
        )
    } {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY)) => {
            // SAFETY: LOOP_SET_FD takes the backing file's fd as an integer.
            unsafe { ioctl(dev, LOOP_SET_FD, backing.as_raw_fd() as libc::c_ulong) }?;
            // SAFETY: LOOP_SET_STATUS64 reads a `struct loop_info64`, alive here.
            unsafe {
                ioctl(
                    dev,
                    LOOP_SET_STATUS64,
                    &info as *const LoopInfo64 as libc::c_ulong,
                )
            }
            .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn loop_devices() -> String {
        std::fs::read_dir("/sys/block")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
                    .filter_map(|e| {
                        std::fs::read_to_string(e.path().join("loop/backing_file")).ok()
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_loop_image_is_made_mounted_and_gone_after_drop() {
        for fs in [FsType::Btrfs, FsType::Xfs] {
            if let Err(why) = check(fs) {
                eprintln!("SKIPPED loop {}: {why}", fs.name());
                continue;
            }
            crate::sandbox::private_mount_namespace().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let l = LoopFs::in_dir(fs, dir.path(), 0).unwrap();
            assert_eq!(fs_magic(l.path()).unwrap(), fs.magic());
            std::fs::write(l.path().join("f"), "x").unwrap();
            let image = l.image().to_path_buf();
            assert!(loop_devices().contains(&*image.to_string_lossy()));
            drop(l);
            assert!(!image.exists());
            assert!(!dir.path().join(fs.name()).exists());
            assert!(
                !loop_devices().contains(&*image.to_string_lossy()),
                "the loop device stayed: {}",
                loop_devices()
            );
        }
    }

    #[test]
    fn a_failed_mount_leaves_no_loop_device_and_no_image() {
        if let Err(why) = check(FsType::Btrfs) {
            eprintln!("SKIPPED loop failure: {why}");
            return;
        }
        crate::sandbox::private_mount_namespace().unwrap();
        let dir = tempfile::tempdir().unwrap();
        // A mount point that is a file: mount(2) refuses after the device is attached.
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let image = dir.path().join("b.img");
        let err = LoopFs::create(FsType::Btrfs, &image, 0, &file).unwrap_err();
        assert!(err.contains("mount /dev/loop"), "{err}");
        assert!(!image.exists());
        assert!(!loop_devices().contains(&*image.to_string_lossy()));
        // An image path that exists is refused, never overwritten.
        let err = LoopFs::create(FsType::Btrfs, &file, 0, dir.path()).unwrap_err();
        assert!(err.contains("create loop image"), "{err}");
        assert!(file.exists());
    }
}

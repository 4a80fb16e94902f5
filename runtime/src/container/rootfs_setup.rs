//! The container's own filesystems inside its root: /proc, a minimal /dev (device nodes,
//! devpts with ptmx, /dev/shm) and a read-only /sys.
//!
//! Runs in the child, after its mount namespace is private and before the root switch. The
//! rule (runc CVE-2019-19921, CVE-2021-30465, CVE-2026-41579, crun CVE-2026-47766, each a
//! mount target swapped for a symlink between check and use): every mount target is opened relative to an fd of the root
//! with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
//! RESOLVE_NO_XDEV)` and each filesystem is made with the new mount API and attached onto
//! that fd (`move_mount` with `MOVE_MOUNT_T_EMPTY_PATH`): no path is looked up twice, no
//! symlink is ever followed, nothing can land outside the root. An image whose /proc, /dev
//! or /sys is a symlink or not a directory is refused here (strata's init layer normally
//! replaces them with plain directories first, as Docker's init layer does).

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::fs::{CWD, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags, fsconfig_create,
    fsconfig_set_string, fsmount, fsopen, move_mount, open_tree,
};

use super::process::{Child, ChildSpan, Fail, Step, ck, errno, rx};

/// How /dev and /sys are made.
#[derive(Clone, Copy, Debug, Default)]
pub struct SetupPlan {
    /// Device nodes are bind mounts of the host's (in a user namespace mknod is refused).
    pub bind_devices: bool,
    /// /sys is a read-only recursive bind of the host's (a user namespace without its own
    /// network namespace may not mount sysfs).
    pub bind_sys: bool,
}

/// Character devices every container gets (OCI runtime spec, "Default Devices").
const DEVICES: [(&CStr, &CStr, u32, u32); 6] = [
    (c"null", c"/dev/null", 1, 3),
    (c"zero", c"/dev/zero", 1, 5),
    (c"full", c"/dev/full", 1, 7),
    (c"random", c"/dev/random", 1, 8),
    (c"urandom", c"/dev/urandom", 1, 9),
    (c"tty", c"/dev/tty", 5, 0),
];

/// The conventional /dev symlinks.
const DEV_LINKS: [(&CStr, &CStr); 5] = [
    (c"ptmx", c"pts/ptmx"),
    (c"fd", c"/proc/self/fd"),
    (c"stdin", c"/proc/self/fd/0"),
    (c"stdout", c"/proc/self/fd/1"),
    (c"stderr", c"/proc/self/fd/2"),
];

const NOSUID_NODEV_NOEXEC: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_NOSUID
    .union(MountAttrFlags::MOUNT_ATTR_NODEV)
    .union(MountAttrFlags::MOUNT_ATTR_NOEXEC);

/// Binds the root on itself (pivot_root needs a mount point, and every later mount hangs
/// off this bind), opens it, and mounts /proc, /dev and /sys in it. Returns the root's fd.
pub fn prepare(c: &mut Child, t0: u64) -> Result<OwnedFd, Fail> {
    let plan = c.plan;
    let target = plan.target.as_c_str();
    // The target is strata's own directory under --root (never an image path): a bind of it
    // on itself makes it a mount point of its own.
    // SAFETY: mount(2) with valid C strings.
    ck(Step::BindRoot, unsafe {
        libc::mount(
            target.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    })?;
    if !c.root_private {
        // / could not be made rprivate: make this bind, and all that will hang off it, private.
        // SAFETY: mount(2) changing propagation only.
        ck(Step::Propagation, unsafe {
            libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        })?;
    }
    // Opened after the bind, so the fd is the top of the stack at the target.
    let root = rx(
        Step::OpenRoot,
        rustix::fs::open(
            target,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ),
    )?;
    let t = c.span(ChildSpan::BindRoot, t0);

    let proc_dir = resolve_dir(&root, c"proc", Step::ResolveProc)?;
    let proc = new_fs(c"proc", &[], NOSUID_NODEV_NOEXEC, Step::MountProc)?;
    attach(&proc, &proc_dir, Step::MountProc)?;
    let t = c.span(ChildSpan::MountProc, t);

    let dev_dir = resolve_dir(&root, c"dev", Step::ResolveDev)?;
    let dev = new_fs(
        c"tmpfs",
        &[(c"mode", c"755"), (c"size", c"65536k")],
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        Step::MountDev,
    )?;
    attach(&dev, &dev_dir, Step::MountDev)?;
    // `dev` now names the root of the attached tmpfs: everything below is made in it.
    devices(&dev, plan.setup.bind_devices)?;
    mkdir(&dev, c"pts", 0o755, Step::MountDevpts)?;
    let pts = new_fs(
        c"devpts",
        &[(c"ptmxmode", c"0666"), (c"mode", c"0620")],
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        Step::MountDevpts,
    )?;
    attach_at(&pts, &dev, c"pts", Step::MountDevpts)?;
    // POSIX shared memory: a sticky directory on /dev's tmpfs (64 MiB with /dev), one
    // superblock fewer to make and tear down per container than a tmpfs of its own.
    mkdir(&dev, c"shm", 0o1777, Step::MountShm)?;
    let t = c.span(ChildSpan::MountDev, t);

    let sys_dir = resolve_dir(&root, c"sys", Step::ResolveSys)?;
    let ro = NOSUID_NODEV_NOEXEC | MountAttrFlags::MOUNT_ATTR_RDONLY;
    let sys = if plan.setup.bind_sys {
        bind_tree(c"/sys", true, ro, Step::MountSys)?
    } else {
        new_fs(c"sysfs", &[], ro, Step::MountSys)?
    };
    attach(&sys, &sys_dir, Step::MountSys)?;
    c.span(ChildSpan::MountSys, t);
    volumes(c, &root)?;
    c.span(ChildSpan::Mounts, t0);
    Ok(root)
}

/// Mounts the volumes: each mount point opened inside the root (symlinks resolved as if the
/// root were /, never to a host path), each filesystem made detached and attached by fd.
fn volumes(c: &mut Child, root: &OwnedFd) -> Result<(), Fail> {
    for (i, v) in c.plan.volumes.iter().enumerate() {
        c.report.detail = i as u32;
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if v.is_dir {
            flags |= OFlags::DIRECTORY;
        }
        let at = rx(
            Step::ResolveVolume,
            rustix::fs::openat2(
                root,
                v.target.as_c_str(),
                flags,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ),
        )?;
        let ro = if v.readonly {
            MountAttrFlags::MOUNT_ATTR_RDONLY
        } else {
            MountAttrFlags::empty()
        };
        let m = match &v.source {
            Some(src) => bind_tree(src, true, ro, Step::MountVolume)?,
            None => {
                let opts: Vec<(&CStr, &CStr)> = v
                    .tmpfs_opts
                    .iter()
                    .map(|(k, v)| (k.as_c_str(), v.as_c_str()))
                    .collect();
                new_fs(
                    c"tmpfs",
                    &opts,
                    MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV | ro,
                    Step::MountVolume,
                )?
            }
        };
        attach(&m, &at, Step::MountVolume)?;
    }
    c.report.detail = 0;
    Ok(())
}

/// Opens directory `name` of the root without following any symlink and without leaving the
/// root's mount; creates it (0755) when the image has none.
fn resolve_dir(root: &OwnedFd, name: &CStr, step: Step) -> Result<OwnedFd, Fail> {
    let open = || {
        rustix::fs::openat2(
            root,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::NO_XDEV,
        )
    };
    match open() {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) => {
            // mkdirat never follows a symlink in its last component (EEXIST instead).
            mkdir(root, name, 0o755, step)?;
            rx(step, open())
        }
        Err(e) => Err((step, e.raw_os_error())),
    }
}

fn mkdir(dir: &OwnedFd, name: &CStr, mode: u32, step: Step) -> Result<(), Fail> {
    rx(
        step,
        rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode)),
    )
}

/// A new detached filesystem of type `fstype` with string options `opts`.
fn new_fs(
    fstype: &CStr,
    opts: &[(&CStr, &CStr)],
    attrs: MountAttrFlags,
    step: Step,
) -> Result<OwnedFd, Fail> {
    let fs = rx(step, fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC))?;
    for (k, v) in opts {
        rx(step, fsconfig_set_string(&fs, *k, *v))?;
    }
    rx(step, fsconfig_create(&fs))?;
    rx(step, fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs))
}

/// A detached copy of the host tree at `path` (recursive or not) with `attrs` set.
fn bind_tree(
    path: &CStr,
    recursive: bool,
    attrs: MountAttrFlags,
    step: Step,
) -> Result<OwnedFd, Fail> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = rx(step, open_tree(CWD, path, flags))?;
    if !attrs.is_empty() {
        set_attrs(&tree, attrs, recursive, step)?;
    }
    Ok(tree)
}

/// mount_setattr(2) on a detached tree (rustix has no wrapper).
fn set_attrs(
    tree: &OwnedFd,
    attrs: MountAttrFlags,
    recursive: bool,
    step: Step,
) -> Result<(), Fail> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let a = MountAttr {
        attr_set: attrs.bits() as u64,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: a valid fd, an empty path and a correctly sized attribute block.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &a as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 { Err((step, errno())) } else { Ok(()) }
}

/// Attaches the detached mount `m` onto the directory open as `dir`.
fn attach(m: &OwnedFd, dir: &OwnedFd, step: Step) -> Result<(), Fail> {
    rx(
        step,
        move_mount(
            m,
            c"",
            dir,
            c"",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        ),
    )
}

/// Attaches `m` onto `name` in `dir` (a directory strata just made on its own tmpfs).
fn attach_at(m: &OwnedFd, dir: &OwnedFd, name: &CStr, step: Step) -> Result<(), Fail> {
    rx(
        step,
        move_mount(m, c"", dir, name, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH),
    )
}

/// The device nodes (mknod, or binds of the host's in a user namespace) and symlinks.
fn devices(dev: &OwnedFd, bind: bool) -> Result<(), Fail> {
    for (name, host, major, minor) in DEVICES {
        if bind {
            // An empty file to bind onto, then the host node, cloned and attached by fd.
            let f = rx(
                Step::Devices,
                rustix::fs::openat(
                    dev,
                    name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o666),
                ),
            )?;
            drop(f);
            let node = bind_tree(host, false, MountAttrFlags::empty(), Step::Devices)?;
            attach_at(&node, dev, name, Step::Devices)?;
        } else {
            // SAFETY: mknodat relative to our own tmpfs with a valid C string.
            ck(Step::Devices, unsafe {
                libc::mknodat(
                    dev.as_fd().as_raw_fd(),
                    name.as_ptr(),
                    libc::S_IFCHR | 0o666,
                    libc::makedev(major, minor),
                )
            })?;
        }
    }
    for (name, target) in DEV_LINKS {
        rx(Step::Devices, rustix::fs::symlinkat(target, dev, name))?;
    }
    Ok(())
}

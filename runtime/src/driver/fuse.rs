//! fuse-overlayfs: the external binary, over the same lower directories as the overlay driver
//! (the chain layout of [`super::chain`], in overlayfs's lower form: whiteouts are char
//! devices 0:0, opaque directories carry `trusted.overlay.opaque=y`, which it reads as root),
//! with a fresh upper and work directory per mount.
//!
//! Its options are one argv string, not a mount(2) page: the limit is the kernel's
//! MAX_ARG_STRLEN (128 KiB) for that string, and fuse-overlayfs itself has none (2000 layers
//! mount). The lowerdirs are given relative to the store's root to fit the most.
//! It runs in the foreground as this process's child (own process group), so unmounting
//! (umount2(2), no fusermount3 process) can reap it; a daemon another process started is
//! reaped by its parent or init.
//!
//! fuse-overlayfs 1.10 (Debian 12) differs from kernel overlayfs in places the property suite
//! found. Where the driver can make the view right, it does:
//! - `writeback=0,timeout=0`, so the view shows the times and owners its upper directory
//!   keeps (see [`OPTIONS`]);
//! - device nodes, fifos and setuid/setgid directories the stack shows are put in the upper
//!   directory before the mount, so fuse-overlayfs never copies them up (it would make the
//!   first an empty regular file and drop the bits of the second);
//! - a shim of opaque directories, with a whiteout for each name they hide, ends a
//!   directory's merge at a lower non-directory or whiteout, and below each opaque directory;
//! - every name of a lower hard link is looked up after the mount, so st_nlink counts them
//!   all; commit takes a file the view shows with several names as the view shows it, with
//!   the names the view still links to it.
//!
//! The rest is declared in its capabilities: a lower directory cannot be renamed (EXDEV); a
//! copied-up regular file not owned by 0:0 loses setuid/setgid as chown(2) drops them; a
//! copied-up symlink becomes root's, with the copy's time; a directory, symlink or device
//! made in a setgid directory gets the creator's group; open(O_CREAT) of a `.wh.` name fails
//! (EINVAL); a stack with a symlink loop under a higher directory holding a directory is
//! refused (1.10 cannot list it). What the layers imply is cached per layer under
//! `ROOT/fuse-overlayfs/`.
//!
//! Commit reads the upper directory like the overlay driver does. fuse-overlayfs writes
//! whiteouts as char devices 0:0 (as root), marks an opaque directory with
//! `trusted.overlay.opaque=y` and also with the sentinels `.wh..wh..opq` (a file) and
//! `.wh..opq` (a whiteout), and keeps `user.fuseoverlayfs.*` xattrs on what it copied up.
//! Where mknod is refused it writes whiteouts as `.wh.NAME` files; both forms are read.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Stat};
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use super::{
    Capabilities, Driver, MountView, chain, driver_err, find_program, kernel_has_fs,
    need_mount_privilege, umount,
};
use crate::commit::{self, CommitOptions, Item, ItemKind};
use crate::diff::{UpperForm, upper_items};
use crate::error::{Error, Result};
use crate::fsutil::{self, OVERLAY_OPAQUE_XATTR};
use crate::model::{Change, EntryKind, Kind, Meta, RelPath, join, parent_and_name};
use crate::store::{StoredLayer, read_json, write_json};

const NAME: &str = "fuse-overlayfs";
const BINARY: &str = "fuse-overlayfs";
/// statfs f_type of a FUSE filesystem.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
/// The kernel's limit on one argv string (MAX_ARG_STRLEN: 32 pages), NUL included.
const MAX_ARG_STRLEN: usize = 32 * 4096;
/// A lower directory relative to the store's root: `overlay/chains/<64 hex>/fs` (the longer
/// of it and `layers/sha256/<64 hex>/fs`) and a `:`.
const LOWER_BYTES: usize = "overlay/chains/".len() + 64 + 3 + 1;
/// Room kept for `lowerdir=`, the upper and work directories (absolute, up to 2 KiB each)
/// and the other options.
const OPTION_ROOM: usize = 2 * 2048 + 64;
/// The most layers whose option string always fits in one argv string.
const ARGV_MAX_LAYERS: usize = (MAX_ARG_STRLEN - 1 - OPTION_ROOM) / LOWER_BYTES;
/// The most layers one mount stacks: the lower directories of the chain layout are made over
/// kernel overlayfs mounts of the chain below, so the kernel's 500 bound them, below what one
/// argv string holds.
pub const MAX_LAYERS: usize = if ARGV_MAX_LAYERS < super::overlay::MAX_LAYERS {
    ARGV_MAX_LAYERS
} else {
    super::overlay::MAX_LAYERS
};

/// Options every strata fuse-overlayfs mount sets, so the view shows what its upper directory
/// holds (what a commit or a remount shows), both found by the property suite:
/// - `writeback=0`: with the kernel's writeback cache a file written through the view shows
///   the kernel's time of the write while its upper copy keeps the later time the daemon
///   wrote it at;
/// - `timeout=0`: with cached attributes a renamed or hard-linked lower symlink goes on
///   showing its lower owner and mtime, while fuse-overlayfs copied it up as root, now;
/// - `dev,suid`: a FUSE mount is `nodev,nosuid` unless asked, and a root filesystem needs its
///   device nodes (`/dev/null`) and setuid programs to work, as on kernel overlayfs.
const OPTIONS: &str = "writeback=0,timeout=0,dev,suid";
/// The daemon's pid and output, in the mount's scratch directory.
const PID: &str = "fuse-overlayfs.pid";
const LOG: &str = "fuse-overlayfs.log";
/// How long a mount may take to appear.
const MOUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sleeps until the mount table changes (`mountinfo` polled for POLLPRI) or `nap` passes;
/// without `mountinfo`, sleeps `nap`.
fn wait_for_mount_change(mountinfo: Option<&std::fs::File>, nap: std::time::Duration) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let Some(f) = mountinfo else {
        std::thread::sleep(nap);
        return;
    };
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: i64::from(nap.subsec_nanos()),
    };
    let mut fds = [PollFd::new(f, PollFlags::PRI)];
    if poll(&mut fds, Some(&timeout)).is_err() {
        std::thread::sleep(nap);
    }
}

/// Waits (briefly) for the mount's daemon to exit and reaps it, when it is this process's
/// child; a daemon another process started is reaped by its own parent or init.
fn reap(view: &MountView) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let Some(pid) = std::fs::read_to_string(view.scratch.join(PID))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let pid = nix::unistd::Pid::from_raw(pid);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(std::time::Duration::from_millis(1)),
            // Gone (reaped now), or not this process's child.
            _ => return,
        }
    }
}

/// The xattr fuse-overlayfs sets on a copied-up entry: the lower path it came from.
const ORIGIN_XATTR: &str = "user.fuseoverlayfs.origin";
/// The record of what [`precopy`] made, in the mount's scratch directory.
const PRECOPIED: &str = "precopied.json";

/// How fuse-overlayfs writes its upper directory.
const FUSE_FORM: UpperForm = UpperForm {
    opaque_xattrs: &[OVERLAY_OPAQUE_XATTR, "user.fuseoverlayfs.opaque"],
    opaque_sentinels: true,
    whiteout_files: true,
    private_xattrs: &["user.fuseoverlayfs."],
};

/// The fuse-overlayfs driver.
#[derive(Clone, Copy, Debug)]
pub struct FuseOverlay;

impl FuseOverlay {
    fn upper(view: &MountView) -> PathBuf {
        view.scratch.join("upper")
    }

    fn work(view: &MountView) -> PathBuf {
        view.scratch.join("work")
    }

    /// The directory the lowerdirs are given relative to (the store's root), and the
    /// lowerdirs, topmost first.
    fn lowers(view: &MountView, dirs: &[PathBuf]) -> (Option<PathBuf>, Vec<String>) {
        let base = view.store_root().ok().map(Path::to_path_buf);
        let rel = dirs
            .iter()
            .map(
                |d| match base.as_ref().and_then(|b| d.strip_prefix(b).ok()) {
                    Some(r) => r.display().to_string(),
                    None => d.display().to_string(),
                },
            )
            .collect();
        (base, rel)
    }
}

impl Driver for FuseOverlay {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dir_rename: false,
            native_diff: true,
            copy_up_keeps_setid: false,
            copy_up_keeps_symlink_attrs: false,
            copy_up_keeps_parent_mtime: false,
            setgid_dirs_pass_group: false,
            mounts_symlink_loops_under_dirs: false,
            creates_whiteout_names: false,
            max_layers: Some(MAX_LAYERS),
            ..Capabilities::OCI
        }
    }

    fn availability(&self) -> std::result::Result<(), String> {
        if find_program(BINARY).is_none() {
            return Err(format!(
                "{BINARY} is not installed (apt-get install fuse-overlayfs)"
            ));
        }
        if !Path::new("/dev/fuse").exists() {
            return Err("/dev/fuse is missing (modprobe fuse)".into());
        }
        if !kernel_has_fs("fuse") {
            return Err("the kernel has no fuse filesystem (modprobe fuse)".into());
        }
        need_mount_privilege()
    }

    fn mount(&self, view: &MountView) -> Result<()> {
        if view.layers.is_empty() {
            return Err(driver_err(NAME, "no layers to mount"));
        }
        // The lower directories are the chain layout's, as the overlay driver's.
        let view = &chain::chained(view)?;
        let binary = find_program(BINARY)
            .ok_or_else(|| driver_err(NAME, format!("{BINARY} is not installed")))?;
        let (upper, work) = (Self::upper(view), Self::work(view));
        for d in [&upper, &work] {
            // The mount's own writable layer and fuse-overlayfs's work directory.
            std::fs::create_dir(d).map_err(|e| Error::io("create", d, e))?;
        }
        let notes = notes_of(view)?;
        refuse_symlink_loops(view, &notes)?;
        let lower_dirs = fuse_lowers(view, &notes)?;
        let made = precopy(&notes, &lower_dirs, &upper)?;
        if !made.is_empty() {
            write_json(&view.scratch.join(PRECOPIED), &made)?;
        }
        // The merged root shows the upper root's attributes: give it the stack's (after the
        // entries made in it, which moved its mtime).
        let root = view.root_meta();
        let ufd = fsutil::open_dir(&upper)?;
        fsutil::set_meta_at(ufd.as_fd(), ".", &Kind::Dir, &root)
            .map_err(|e| Error::io("set metadata", &upper, e))?;
        drop(ufd);
        let (cwd, lowers) = Self::lowers(view, &lower_dirs);
        let special = |p: &str| p.contains([',', ':', '\\', '\n']);
        if let Some(bad) = lowers
            .iter()
            .map(String::as_str)
            .chain([
                upper.to_string_lossy().as_ref(),
                work.to_string_lossy().as_ref(),
            ])
            .find(|p| special(p))
        {
            return Err(driver_err(
                NAME,
                format!("{bad}: a path with ',', ':' or '\\' cannot be a fuse-overlayfs option"),
            ));
        }
        let opts = format!(
            "{OPTIONS},lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            upper.display(),
            work.display()
        );
        if opts.len() >= MAX_ARG_STRLEN {
            return Err(driver_err(
                NAME,
                format!(
                    "{} layers need a {}-byte option string, more than one argv string may hold ({MAX_ARG_STRLEN})",
                    lowers.len(),
                    opts.len()
                ),
            ));
        }
        // Until it serves the target, the target's device is the directory's own.
        let before = rustix::fs::stat(&view.target)
            .map_err(|e| Error::io("stat", &view.target, fsutil::ioe(e)))?
            .st_dev;
        let log_path = view.scratch.join(LOG);
        let log =
            std::fs::File::create(&log_path).map_err(|e| Error::io("create", &log_path, e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::io("dup", &log_path, e))?;
        let mut cmd = Command::new(&binary);
        // Foreground (-f): the daemon is this process's child, so the unmount can reap it;
        // in a process group of its own, so a ^C meant for strata does not end the mount.
        cmd.arg("-f").arg("-o").arg(&opts).arg(&view.target);
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        cmd.process_group(0);
        if let Some(dir) = &cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| driver_err(NAME, format!("run {}: {e}", binary.display())))?;
        let pid_path = view.scratch.join(PID);
        std::fs::write(&pid_path, child.id().to_string())
            .map_err(|e| Error::io("write", &pid_path, e))?;
        // Mounted once the target is a FUSE filesystem on a device of its own. The mount
        // table wakes a poll(2) of mountinfo when it changes, so the check runs as the mount
        // appears instead of after a nap; the nap only bounds the wait for a daemon that
        // fails before mounting.
        let mountinfo = std::fs::File::open("/proc/self/mountinfo").ok();
        let deadline = std::time::Instant::now() + MOUNT_TIMEOUT;
        let mut nap = std::time::Duration::from_micros(50);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(&log_path).unwrap_or_default();
                let why: Vec<&str> = err
                    .lines()
                    .filter(|l| !l.contains("unknown argument ignored"))
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                return Err(driver_err(
                    NAME,
                    format!(
                        "mount on {} failed ({status}): {}",
                        view.target.display(),
                        why.join("; ")
                    ),
                ));
            }
            let dev = rustix::fs::stat(&view.target).map(|st| st.st_dev);
            if dev.is_ok_and(|d| d != before)
                && crate::loopfs::fs_magic(&view.target).is_ok_and(|m| m == FUSE_SUPER_MAGIC)
            {
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(driver_err(
                    NAME,
                    format!(
                        "{} did not mount {} within {} s (see {})",
                        binary.display(),
                        view.target.display(),
                        MOUNT_TIMEOUT.as_secs(),
                        log_path.display()
                    ),
                ));
            }
            wait_for_mount_change(mountinfo.as_ref(), nap);
            nap = (nap * 2).min(std::time::Duration::from_millis(5));
        }
        if let Err(e) = look_up_lower_links(view, &notes) {
            if umount(&view.target).is_ok() {
                reap(view);
            }
            return Err(e);
        }
        Ok(())
    }

    fn unmount(&self, view: &MountView) -> Result<()> {
        // As root a FUSE mount goes with umount2 (no fusermount3 process); the daemon then
        // reads ENODEV from /dev/fuse and exits.
        let r = umount(&view.target);
        if r.is_ok()
            || matches!(
                r.as_ref().map_err(Error::raw_os_error),
                Err(Some(libc::EINVAL))
            )
        {
            reap(view);
        }
        r
    }

    fn commit(&self, view: &MountView, opts: &CommitOptions, out: &mut dyn Write) -> Result<()> {
        let view = &chain::chained(view)?;
        let upper = Self::upper(view);
        let mut items = upper_items(view, &upper, &FUSE_FORM)?;
        drop_precopied(view, &upper, &mut items)?;
        // The data of names added for the view's hard links is read through the view.
        let data_root = if link_lower_names(view, &upper, &mut items)? {
            &view.target
        } else {
            &upper
        };
        commit::write(items, data_root, opts, out)
    }
}

/// fuse-overlayfs shows every name of a lower hard-linked file as one inode, before and
/// after changes to it, but copies the inode up under one of its names only, and a rename of
/// another name copies it again: the upper directory splits what the view shows as one file
/// (other names with old data or times). So every upper non-directory the view shows with
/// several names is committed as the view shows it (attributes and, by the caller, data read
/// through the view), keyed by its view inode; the lower file's other names the view still
/// links to it join the commit as hard links, with their parents. Returns whether any entry
/// is to be read through the view.
fn link_lower_names(view: &MountView, upper: &Path, items: &mut Vec<Item>) -> Result<bool> {
    let target = fsutil::open_dir(&view.target)?;
    let ufd = fsutil::open_dir(upper)?;
    let mut lowers: Option<(Vec<PathBuf>, Vec<OwnedFd>)> = None;
    let present: HashSet<String> = items.iter().map(|i| i.path().to_string()).collect();
    let mut layer_links: HashMap<PathBuf, HashMap<u64, Vec<RelPath>>> = HashMap::new();
    let mut extra = Vec::new();
    let mut from_view = false;
    let mut view_stat = StatBeneath::new(target.as_fd());
    for item in items.iter_mut() {
        let Item::Entry {
            path,
            kind,
            meta,
            inode,
            ..
        } = item
        else {
            continue;
        };
        if *kind == ItemKind::Dir {
            continue;
        }
        // Where it was copied up from (a rename moves it), as fuse-overlayfs records it.
        let origin = origin_of(ufd.as_fd(), path);
        // Only a copy of a lower file (it has an origin) or a file with several names in the
        // upper dir (`inode` is set) can have more names in the view; a lookup in the view is
        // a daemon round trip (and a walk of the directory), so new files are not looked at.
        if inode.is_none() && origin.is_none() {
            continue;
        }
        let Ok(seen) = view_stat.stat(path) else {
            continue;
        };
        if seen.st_nlink <= 1 {
            continue;
        }
        // A file with several names in the view: the view is the truth for it (its upper
        // copies may be split, with stale data or times, between names).
        let (parent, name) = parent_and_name(path).unwrap_or(("", path));
        let dir = fsutil::open_dir_beneath(target.as_fd(), parent)
            .map_err(|e| Error::io("open", view.target.join(parent), e))?;
        if let Item::Entry {
            kind: k, meta: m, ..
        } = commit::item_at(dir.as_fd(), name, path, &seen, &view.target)?
        {
            *kind = k;
            *meta = m;
        }
        let key = (seen.st_dev, seen.st_ino);
        *inode = Some(key);
        from_view = true;
        if lowers.is_none() {
            let dirs = fuse_lowers(view, &notes_of(view)?)?;
            let fds = dirs
                .iter()
                .map(|d| fsutil::open_dir(d))
                .collect::<Result<Vec<_>>>()?;
            lowers = Some((dirs, fds));
        }
        let Some((dirs, fds)) = &lowers else { continue };
        let origin = origin.unwrap_or_else(|| path.clone());
        let Some((layer, lower_ino)) = lower_file(dirs, fds, &origin) else {
            continue;
        };
        if !layer_links.contains_key(&layer) {
            let mut names = HashMap::new();
            let fd = fsutil::open_dir(&layer)?;
            linked_names(fd.as_fd(), "", &layer, &mut names)?;
            layer_links.insert(layer.clone(), names);
        }
        let names = layer_links
            .get(&layer)
            .and_then(|m| m.get(&lower_ino))
            .cloned()
            .unwrap_or_default();
        for q in names {
            if q == *path || present.contains(&q) || extra.iter().any(|e: &Item| e.path() == q) {
                continue;
            }
            let same = view_stat
                .stat(&q)
                .is_ok_and(|st| (st.st_dev, st.st_ino) == key);
            if same {
                extra.push(Item::Entry {
                    path: q,
                    kind: kind.clone(),
                    meta: meta.clone(),
                    inode: Some(key),
                    parent_only: false,
                });
            }
        }
    }
    if extra.is_empty() {
        return Ok(from_view);
    }
    // Every added name's parents, as parents, where the upper directory had none.
    let mut have = present;
    let mut parents = Vec::new();
    for e in &extra {
        let mut p = e.path();
        while let Some((parent, _)) = parent_and_name(p) {
            if parent.is_empty() || !have.insert(parent.to_string()) {
                break;
            }
            let (_, meta) = commit::inode_at(target.as_fd(), parent, &view.target)?;
            parents.push(Item::dir(parent, meta).as_parent());
            p = parent;
        }
    }
    items.extend(extra);
    items.extend(parents);
    Ok(true)
}

/// What the driver needs to know of a layer, read once from its change set and cached under
/// `ROOT/fuse-overlayfs/layers/<diff-id>.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LayerNotes {
    /// The names of each hard-linked file (its hard links and the entry they link to).
    links: Vec<Vec<RelPath>>,
    /// Device nodes, fifos and setuid/setgid directories (with the hard links to them):
    /// what fuse-overlayfs 1.10 would copy up wrongly.
    precopy: Vec<RelPath>,
    /// Every directory of the layer, its entries' parents included.
    dirs: Vec<RelPath>,
    /// Its opaque directories.
    opaque: Vec<RelPath>,
    /// Its symlinks.
    symlinks: Vec<RelPath>,
    /// Its symlinks that loop ([`crate::model::symlink_loops`]).
    symlink_loops: Vec<RelPath>,
}

/// The notes of every layer of a mount (each read once).
type Notes = HashMap<crate::digest::Digest, LayerNotes>;

fn notes_of(view: &MountView) -> Result<Notes> {
    let mut out = Notes::new();
    let Some(cache) = cache_dir(view) else {
        return Ok(out);
    };
    for l in &view.layers {
        if let std::collections::hash_map::Entry::Vacant(v) = out.entry(l.info.diff_id) {
            v.insert(layer_notes(l, &cache)?);
        }
    }
    Ok(out)
}

/// fuse-overlayfs 1.10 cannot list a stack where a layer's symlink loops and a higher layer
/// has a directory holding a directory at its path (ENOMEM from every listing of the root):
/// such a stack is refused, as the capabilities declare (and the model, given them).
fn refuse_symlink_loops(view: &MountView, notes: &Notes) -> Result<()> {
    let of = |l: &StoredLayer| notes.get(&l.info.diff_id);
    for (i, layer) in view.layers.iter().enumerate() {
        let Some(n) = of(layer) else { continue };
        for path in &n.symlink_loops {
            let prefix = format!("{path}/");
            let covered = view.layers[i + 1..].iter().filter_map(of).any(|h| {
                h.dirs
                    .iter()
                    .any(|d| d.strip_prefix(&prefix).is_some_and(|r| !r.is_empty()))
            });
            if covered {
                return Err(driver_err(
                    NAME,
                    format!(
                        "layer {} ({}) has a symlink loop at {path:?} and a higher layer a directory with directories in it there: fuse-overlayfs 1.10 cannot list such a stack (ENOMEM), so it is not mounted",
                        i, layer.info.diff_id
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Where the layer notes are kept: the scratch directory is `ROOT/mounts/<id>`.
fn cache_dir(view: &MountView) -> Option<PathBuf> {
    let root = view.scratch.parent().and_then(Path::parent)?;
    Some(root.join("fuse-overlayfs").join("layers"))
}

fn layer_notes(layer: &StoredLayer, cache: &Path) -> Result<LayerNotes> {
    let record = cache.join(format!("{}.json", layer.info.diff_id.hex()));
    if let Ok(notes) = read_json(&record) {
        return Ok(notes);
    }
    // A name -> the name it links to (a link to a link joins the same file).
    let mut target_of: HashMap<RelPath, RelPath> = HashMap::new();
    let mut precopy = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    let mut opaque = Vec::new();
    let mut symlinks = Vec::new();
    let changes = layer.changes()?;
    let symlink_loops = crate::model::symlink_loops(&changes);
    for c in changes.changes {
        let path = match &c {
            Change::Entry(e) => e.path.as_str(),
            Change::Whiteout { path } | Change::Opaque { path } => path.as_str(),
        };
        let mut p = path;
        while let Some((parent, _)) = parent_and_name(p) {
            if parent.is_empty() || !dirs.insert(parent.to_string()) {
                break;
            }
            p = parent;
        }
        if let Change::Opaque { path } = &c
            && !path.is_empty()
        {
            dirs.insert(path.clone());
            opaque.push(path.clone());
        }
        let Change::Entry(e) = c else { continue };
        if matches!(e.kind, EntryKind::Dir) && !e.path.is_empty() {
            dirs.insert(e.path.clone());
        }
        match e.kind {
            EntryKind::Symlink { .. } => symlinks.push(e.path),
            EntryKind::HardLink { target } => {
                target_of.insert(e.path, target);
            }
            EntryKind::CharDev { .. } | EntryKind::BlockDev { .. } | EntryKind::Fifo => {
                precopy.insert(e.path);
            }
            EntryKind::Dir if e.meta.mode & 0o6000 != 0 => {
                precopy.insert(e.path);
            }
            _ => {}
        }
    }
    let mut groups: HashMap<RelPath, Vec<RelPath>> = HashMap::new();
    for name in target_of.keys() {
        let f = first_name(&target_of, name);
        if precopy.contains(&f) {
            precopy.insert(name.clone());
        }
        groups
            .entry(f.clone())
            .or_insert_with(|| vec![f])
            .push(name.clone());
    }
    let notes = LayerNotes {
        links: groups.into_values().collect(),
        precopy: precopy.into_iter().collect(),
        dirs: dirs.into_iter().collect(),
        opaque,
        symlinks,
        symlink_loops,
    };
    // The cache, on first use (made when missing; a lost race writes the same thing).
    std::fs::create_dir_all(cache).map_err(|e| Error::io("create", cache, e))?;
    write_json(&record, &notes)?;
    Ok(notes)
}

/// The name a chain of hard links ends at (the entry that made the file).
fn first_name(target_of: &HashMap<RelPath, RelPath>, name: &RelPath) -> RelPath {
    let mut n = name;
    for _ in 0..=target_of.len() {
        match target_of.get(n) {
            Some(t) => n = t,
            None => break,
        }
    }
    n.clone()
}

/// fuse-overlayfs reports a lower hard-linked file's st_nlink as the number of its names it
/// has looked up so far (fuse-overlayfs#435): the first name stat'ed shows 1, so `tar`,
/// `cp -a` and strata's own scan take it for a file of its own. Looking every such name up
/// once, right after the mount, makes the count whole before anyone else looks (while the
/// kernel keeps the inode: an evicted one is counted afresh).
fn look_up_lower_links(view: &MountView, notes: &Notes) -> Result<()> {
    #[cfg(feature = "mutants")]
    crate::mutant!(FuseNoLinkLookups, return Ok(()));
    let target = fsutil::open_dir(&view.target)?;
    for layer in notes.values() {
        for group in &layer.links {
            for name in group {
                // The lookup is the point; a name a higher layer hides simply fails.
                let _ = stat_beneath(target.as_fd(), name);
            }
        }
    }
    Ok(())
}

/// The lower directories fuse-overlayfs stacks, topmost first: [`MountView::lower_dirs`],
/// each followed by the shim its directories need, if any.
///
/// fuse-overlayfs 1.10 merges a directory with the same directory further down even across
/// a layer that replaced it with a file (kernel overlayfs stops there): `b/a` in one layer,
/// a file `b` above it, a directory `b` above that, and a lookup of `b/a` finds the lowest
/// one (a listing of `b` does not, until that lookup); so does a whiteout `b` in between.
/// A shim, a directory holding only an
/// opaque, empty `b`, stacked right below the top `b`, ends the merge where overlayfs would.
/// And where a lower layer has a symlink loop (`c -> c`) at the path of a higher layer's
/// directory holding a directory, fuse-overlayfs fails every listing of the root with ENOMEM:
/// a shim below that directory keeps it from looking at the symlink.
/// And with `timeout=0`, a rename into an ancestor (`rename a/a/b a/a`) finds a name an
/// opaque directory hides (and the view shows it from then on), where a whiteout holds: a
/// shim also goes below every opaque directory of a layer, and each shim holds a whiteout
/// for every name the layers below it have in its directories.
/// Shims are kept under `ROOT/fuse-overlayfs/shims/<sha256 of their paths and whiteouts>`.
fn fuse_lowers(view: &MountView, notes: &Notes) -> Result<Vec<PathBuf>> {
    let dirs = view.lower_dirs();
    let Some(cache) = cache_dir(view) else {
        return Ok(dirs);
    };
    let by_dir: HashMap<PathBuf, &LayerNotes> = view
        .layers
        .iter()
        .filter_map(|l| notes.get(&l.info.diff_id).map(|n| (l.fs(), n)))
        .collect();
    // path -> the positions (topmost first) of the layers holding it as a directory.
    let mut holders: BTreeMap<RelPath, Vec<usize>> = BTreeMap::new();
    for (pos, d) in dirs.iter().enumerate() {
        let Some(layer) = by_dir.get(d) else { continue };
        for p in &layer.dirs {
            holders.entry(p.clone()).or_default().push(pos);
        }
    }
    let fds = dirs
        .iter()
        .map(|d| fsutil::open_dir(d))
        .collect::<Result<Vec<_>>>()?;
    // position -> the paths whose merge must end right below it.
    let mut cuts: BTreeMap<usize, BTreeSet<RelPath>> = BTreeMap::new();
    for (path, pos) in &holders {
        'pairs: for pair in pos.windows(2) {
            for fd in &fds[pair[0] + 1..pair[1]] {
                match stat_beneath(fd.as_fd(), path) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {}
                    Err(_) => continue,
                }
                // A non-directory here (or at a parent), a whiteout included: overlayfs
                // stops the merge. (1.10 ends a listing at a whiteout, not a lookup.)
                cuts.entry(pair[0]).or_default().insert(path.clone());
                break 'pairs;
            }
        }
    }
    // A directory over a lower symlink: its merge ends at the symlink.
    for (pos, d) in dirs.iter().enumerate() {
        let Some(layer) = by_dir.get(d) else { continue };
        for link in &layer.symlinks {
            let above = holders
                .get(link)
                .and_then(|h| h.iter().rev().find(|&&p| p < pos).copied());
            if let Some(h) = above {
                cuts.entry(h).or_default().insert(link.clone());
            }
        }
    }
    // A layer's opaque directory, with layers below it.
    for (pos, d) in dirs.iter().enumerate().take(dirs.len().saturating_sub(1)) {
        let Some(layer) = by_dir.get(d) else { continue };
        for p in &layer.opaque {
            cuts.entry(pos).or_default().insert(p.clone());
        }
    }
    if cuts.is_empty() {
        return Ok(dirs);
    }
    let shims = cache
        .parent()
        .map(|p| p.join("shims"))
        .unwrap_or_else(|| cache.join("shims"));
    let mut out = Vec::with_capacity(dirs.len() + cuts.len());
    for (pos, d) in dirs.iter().enumerate() {
        out.push(d.clone());
        if let Some(paths) = cuts.get(&pos) {
            let hidden = hidden_names(&dirs[pos + 1..], &fds[pos + 1..], paths)?;
            out.push(shim(&shims, paths, &hidden)?);
        }
    }
    Ok(out)
}

/// The names the layer directories `below` (and their open `fds`) hold in each of the
/// directories `paths`, those the shim has a directory at (one of `paths` or a parent of
/// one) left out.
fn hidden_names(
    below: &[PathBuf],
    fds: &[OwnedFd],
    paths: &BTreeSet<RelPath>,
) -> Result<BTreeSet<RelPath>> {
    let mut out = BTreeSet::new();
    for p in paths {
        for (layer, fd) in below.iter().zip(fds) {
            // A layer without the directory (or with a non-directory there) hides nothing.
            let Ok(dir) = fsutil::open_dir_beneath(fd.as_fd(), p) else {
                continue;
            };
            let names = fsutil::list_dir(dir.as_fd())
                .map_err(|e| Error::io("list lower directory", layer.join(p), e))?;
            for name in names {
                let full = join(p, &name);
                let prefix = format!("{full}/");
                if !paths.iter().any(|q| *q == full || q.starts_with(&prefix)) {
                    out.insert(full);
                }
            }
        }
    }
    Ok(out)
}

/// The shim directory holding `paths` as opaque directories, with a whiteout at each of
/// `whiteouts` (made once).
fn shim(shims: &Path, paths: &BTreeSet<RelPath>, whiteouts: &BTreeSet<RelPath>) -> Result<PathBuf> {
    let list: Vec<&str> = paths.iter().map(String::as_str).collect();
    let mut key = list.join("\n");
    for w in whiteouts {
        key.push_str("\n.wh.");
        key.push_str(w);
    }
    let id = crate::digest::Digest::of(key.as_bytes()).hex();
    let dir = shims.join(&id);
    if dir.exists() {
        return Ok(dir);
    }
    let tmp = shims.join(format!("tmp-{}", crate::store::unique_id()));
    let build = || -> Result<()> {
        for p in &list {
            let full = tmp.join(p);
            // The directory and its parents (plain: only the last one is opaque).
            std::fs::create_dir_all(&full).map_err(|e| Error::io("create", &full, e))?;
        }
        let fd = fsutil::open_dir(&tmp)?;
        for p in &list {
            let (parent, name) = parent_and_name(p).unwrap_or(("", p));
            let pd = fsutil::open_dir_beneath(fd.as_fd(), parent)
                .map_err(|e| Error::io("open", tmp.join(parent), e))?;
            // Opaque: nothing of the layers below shows through it.
            fsutil::set_xattr(pd.as_fd(), name, OVERLAY_OPAQUE_XATTR, b"y")
                .map_err(|e| Error::io("set opaque xattr", tmp.join(p), e))?;
        }
        for w in whiteouts {
            let (parent, name) = parent_and_name(w).unwrap_or(("", w));
            let pd = fsutil::open_dir_beneath(fd.as_fd(), parent)
                .map_err(|e| Error::io("open", tmp.join(parent), e))?;
            // What the opaque directory hides, hidden once more where a rename looks.
            fsutil::make_whiteout_at(pd.as_fd(), name)
                .map_err(|e| Error::io("make whiteout", tmp.join(w), e))?;
        }
        Ok(())
    };
    if let Err(e) = build() {
        let _ = fsutil::remove_tree(&tmp);
        return Err(e);
    }
    // Into place whole; another mount may have made the same one meanwhile.
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = fsutil::remove_tree(&tmp);
        if !dir.exists() {
            return Err(Error::io("store shim", &dir, e));
        }
    }
    Ok(dir)
}

/// One entry put in the upper directory before the mount, as it was made.
#[derive(Debug, Serialize, Deserialize)]
struct Precopied {
    path: RelPath,
    ino: u64,
    ctime: (i64, u32),
}

/// Where a lookup in the lower stack ends.
struct Found {
    /// Index of the lower directory holding the entry.
    layer: usize,
    st: Stat,
    /// Each parent directory (top down) and the index of the topmost layer holding it.
    parents: Vec<(RelPath, usize)>,
}

/// Looks `path` up in `lowers` (topmost first) as overlayfs does: the topmost layer holding
/// a name decides; a whiteout ends the search; directories merge down to an opaque one.
fn lookup(lowers: &[OwnedFd], path: &str) -> Option<Found> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut layers: Vec<usize> = (0..lowers.len()).collect();
    let mut cur = RelPath::new();
    let mut parents = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        let p = join(&cur, c);
        let mut dirs = Vec::new();
        let mut hit = None;
        for &l in &layers {
            let Ok(st) = stat_beneath(lowers[l].as_fd(), &p) else {
                continue;
            };
            if fsutil::is_whiteout(&st) {
                break;
            }
            if fsutil::file_type(&st) != FileType::Directory {
                if dirs.is_empty() {
                    hit = Some((l, st));
                }
                break;
            }
            if dirs.is_empty() {
                hit = Some((l, st));
            }
            dirs.push(l);
            let (parent, name) = parent_and_name(&p).unwrap_or(("", &p));
            let opaque = fsutil::open_dir_beneath(lowers[l].as_fd(), parent)
                .ok()
                .and_then(|d| fsutil::get_xattr(d.as_fd(), name, OVERLAY_OPAQUE_XATTR).ok())
                .flatten();
            if opaque.as_deref() == Some(b"y") {
                break;
            }
        }
        if i + 1 == comps.len() {
            return hit.map(|(layer, st)| Found { layer, st, parents });
        }
        let top = *dirs.first()?;
        parents.push((p.clone(), top));
        layers = dirs;
        cur = p;
    }
    None
}

/// fuse-overlayfs 1.10 copies a device node or fifo up as an empty regular file (and fails
/// the call that copied it with EIO), a setuid or setgid directory up without those bits, and
/// one name of a lower hard-linked file up alone (the view goes on showing the other names as
/// the same inode until the copied name is removed; then they show the lower file again, its
/// old owner and mode). So before the mount, every such entry the stack shows -- every name of
/// a file with several names -- is put in the upper directory as it is, hard links kept, with
/// its parents (attributes as the stack shows them): fuse-overlayfs then never copies them.
/// Commit leaves out what is still as it was made. Returns what was made.
fn precopy(notes: &Notes, paths: &[PathBuf], upper: &Path) -> Result<Vec<Precopied>> {
    let wanted: BTreeSet<&RelPath> = notes
        .values()
        .flat_map(|n| n.precopy.iter().chain(n.links.iter().flatten()))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let lowers = paths
        .iter()
        .map(|p| fsutil::open_dir(p))
        .collect::<Result<Vec<_>>>()?;
    let found: Vec<(&RelPath, Found)> = wanted
        .iter()
        .filter_map(|&p| lookup(&lowers, p).map(|f| (p, f)))
        .collect();
    // The names the stack shows of each lower file: a file the stack shows under one name
    // only is copied up by fuse-overlayfs as any file is.
    let mut names: HashMap<(usize, u64), usize> = HashMap::new();
    for (_, f) in &found {
        *names.entry((f.layer, f.st.st_ino)).or_default() += 1;
    }
    let ufd = fsutil::open_dir(upper)?;
    let at = |p: &str| upper.join(p);
    // Directories made, with the layer whose attributes they take.
    let mut dirs: BTreeMap<RelPath, usize> = BTreeMap::new();
    let mut files: Vec<RelPath> = Vec::new();
    let mut first_of: HashMap<(usize, u64), RelPath> = HashMap::new();
    for (path, found) in found {
        let ft = fsutil::file_type(&found.st);
        let key = (found.layer, found.st.st_ino);
        let special = matches!(
            ft,
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo
        );
        let linked = matches!(ft, FileType::RegularFile | FileType::Symlink)
            && names.get(&key).is_some_and(|&n| n > 1);
        let setid_dir = ft == FileType::Directory && found.st.st_mode & 0o6000 != 0;
        if !special && !linked && !setid_dir {
            continue; // a higher layer shows something else there
        }
        let mut chain = found.parents.clone();
        if setid_dir {
            chain.push((path.clone(), found.layer));
        }
        for (p, l) in chain {
            if dirs.contains_key(&p) {
                continue;
            }
            // A directory in the writable layer as the stack shows it (attributes below).
            rustix::fs::mkdirat(
                ufd.as_fd(),
                p.as_str(),
                rustix::fs::Mode::from_raw_mode(0o700),
            )
            .map_err(|e| Error::io("create", at(&p), fsutil::ioe(e)))?;
            dirs.insert(p, l);
        }
        if setid_dir {
            continue;
        }
        let (parent, name) = parent_and_name(path).unwrap_or(("", path));
        let dir = fsutil::open_dir_beneath(ufd.as_fd(), parent)
            .map_err(|e| Error::io("open", at(parent), e))?;
        if let Some(first) = first_of.get(&key) {
            // Another name of the same lower file: a hard link, as below.
            rustix::fs::linkat(
                ufd.as_fd(),
                first.as_str(),
                dir.as_fd(),
                name,
                rustix::fs::AtFlags::empty(),
            )
            .map_err(|e| Error::io("link", at(path), fsutil::ioe(e)))?;
        } else {
            let lower = &paths[found.layer];
            let src = fsutil::open_dir_beneath(lowers[found.layer].as_fd(), parent)
                .map_err(|e| Error::io("open", lower.join(parent), e))?;
            copy_entry(src.as_fd(), dir.as_fd(), name, &found.st)
                .map_err(|e| Error::io("copy", at(path), e))?;
            first_of.insert(key, path.clone());
        }
        files.push(path.clone());
    }
    // Directory attributes last, deepest first (making children moved their mtimes).
    for (p, l) in dirs.iter().rev() {
        let (parent, name) = parent_and_name(p).unwrap_or(("", p));
        let src = fsutil::open_dir_beneath(lowers[*l].as_fd(), parent)
            .map_err(|e| Error::io("open", paths[*l].join(parent), e))?;
        let (_, meta) = commit::inode_at(src.as_fd(), name, &paths[*l].join(parent))?;
        let dir = fsutil::open_dir_beneath(ufd.as_fd(), parent)
            .map_err(|e| Error::io("open", at(parent), e))?;
        fsutil::set_meta_at(dir.as_fd(), name, &Kind::Dir, &meta)
            .map_err(|e| Error::io("set metadata", at(p), e))?;
    }
    let mut made = Vec::new();
    for p in dirs.keys().chain(&files) {
        let st = stat_beneath(ufd.as_fd(), p).map_err(|e| Error::io("stat", at(p), e))?;
        let c = fsutil::ctime_of(&st);
        made.push(Precopied {
            path: p.clone(),
            ino: st.st_ino,
            ctime: (c.sec, c.nsec),
        });
    }
    Ok(made)
}

/// Makes `name` in `dir` as `name` (stat `st`) in `src` is: a device node or fifo, a
/// regular file (its data copied, reflinked where the filesystem can) or a symlink, with its
/// owner, mode, xattrs and mtime.
fn copy_entry(
    src: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    name: &str,
    st: &Stat,
) -> std::io::Result<()> {
    let meta = Meta {
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: fsutil::mtime_of(st),
        xattrs: fsutil::read_xattrs(src, name)?,
    };
    let kind = match fsutil::file_type(st) {
        FileType::RegularFile => {
            let from = fsutil::open_file_at(src, name)?;
            let to = fsutil::create_file_at(dir, name)?;
            fsutil::copy_data(&from, &to, st.st_size as u64, true)?;
            return fsutil::set_meta_fd(to.as_fd(), &meta);
        }
        FileType::Symlink => {
            let target = fsutil::read_link(src, name)?;
            rustix::fs::symlinkat(target.as_str(), dir, name).map_err(fsutil::ioe)?;
            Kind::Symlink { target }
        }
        _ => {
            let (kind, _) = fsutil::read_inode(src, name, st)?;
            fsutil::mknod_at(dir, name, &kind)?;
            kind
        }
    };
    fsutil::set_meta_at(dir, name, &kind, &meta)
}

/// Leaves out of `items` the entries [`precopy`] made that are as it made them, then the
/// directories kept only as parents that no longer hold anything committed.
fn drop_precopied(view: &MountView, upper: &Path, items: &mut Vec<Item>) -> Result<()> {
    let record = view.scratch.join(PRECOPIED);
    if !record.exists() {
        return Ok(());
    }
    let made: Vec<Precopied> = read_json(&record)?;
    let ufd = fsutil::open_dir(upper)?;
    let untouched: HashSet<&str> = made
        .iter()
        .filter(|m| {
            stat_beneath(ufd.as_fd(), &m.path).is_ok_and(|st| {
                let c = fsutil::ctime_of(&st);
                fsutil::file_type(&st) != FileType::Directory
                    && st.st_ino == m.ino
                    && (c.sec, c.nsec) == m.ctime
            })
        })
        .map(|m| m.path.as_str())
        .collect();
    items.retain(|i| !(matches!(i, Item::Entry { .. }) && untouched.contains(i.path())));
    let needed: Vec<String> = items
        .iter()
        .filter(|i| {
            !matches!(
                i,
                Item::Entry {
                    parent_only: true,
                    ..
                }
            )
        })
        .map(|i| i.path().to_string())
        .collect();
    items.retain(|i| match i {
        Item::Entry {
            parent_only: true,
            path,
            ..
        } => needed
            .iter()
            .any(|n| n != path && crate::model::is_within(n, path)),
        _ => true,
    });
    Ok(())
}

/// The lower path an upper entry was copied up from (`user.fuseoverlayfs.origin`).
fn origin_of(upper: BorrowedFd<'_>, path: &str) -> Option<RelPath> {
    let (parent, name) = parent_and_name(path).unwrap_or(("", path));
    let dir = fsutil::open_dir_beneath(upper, parent).ok()?;
    let v = fsutil::get_xattr(dir.as_fd(), name, ORIGIN_XATTR).ok()??;
    let v = v.strip_suffix(&[0]).unwrap_or(&v);
    let s = String::from_utf8(v.to_vec()).ok()?;
    let s = s.trim_start_matches('/').to_string();
    (!s.is_empty()).then_some(s)
}

/// lstat of `path` under `root`, not following symlinks on the way.
fn stat_beneath(root: BorrowedFd<'_>, path: &str) -> std::io::Result<rustix::fs::Stat> {
    let (parent, name) = parent_and_name(path).unwrap_or(("", path));
    let dir = fsutil::open_path_beneath(root, parent)?;
    fsutil::lstat_at(dir.as_fd(), name)
}

/// [`stat_beneath`] of many paths in order, the last parent kept open: each lookup of a
/// directory in the view makes fuse-overlayfs 1.10 go through all of it, so opening the
/// parent again for each of n files in one directory cost O(n^2) (46 s to commit 10,000 new
/// files in one directory).
struct StatBeneath<'a> {
    root: BorrowedFd<'a>,
    last: Option<(RelPath, OwnedFd)>,
}

impl<'a> StatBeneath<'a> {
    fn new(root: BorrowedFd<'a>) -> Self {
        StatBeneath { root, last: None }
    }

    fn stat(&mut self, path: &str) -> std::io::Result<rustix::fs::Stat> {
        let (parent, name) = parent_and_name(path).unwrap_or(("", path));
        if self.last.as_ref().is_none_or(|(p, _)| p != parent) {
            let fd = fsutil::open_path_beneath(self.root, parent)?;
            self.last = Some((parent.to_string(), fd));
        }
        match &self.last {
            Some((_, dir)) => fsutil::lstat_at(dir.as_fd(), name),
            None => Err(std::io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }
}

/// The layer directory the view's `path` comes from, when a lower non-directory, and its
/// inode number there: the topmost layer holding the name decides.
fn lower_file(lowers: &[PathBuf], fds: &[OwnedFd], path: &str) -> Option<(PathBuf, u64)> {
    let found = lookup(fds, path)?;
    if fsutil::file_type(&found.st) == FileType::Directory {
        return None;
    }
    Some((lowers[found.layer].clone(), found.st.st_ino))
}

/// Every name under `dir` of a non-directory with several names, by inode number.
fn linked_names(
    dir: BorrowedFd<'_>,
    rel: &str,
    root: &Path,
    out: &mut HashMap<u64, Vec<RelPath>>,
) -> Result<()> {
    for name in fsutil::list_dir(dir).map_err(|e| Error::io("read directory", root.join(rel), e))? {
        let path = join(rel, &name);
        let st =
            fsutil::lstat_at(dir, &name).map_err(|e| Error::io("stat", root.join(&path), e))?;
        if fsutil::file_type(&st) == FileType::Directory {
            let sub = fsutil::open_dir_beneath(dir, &name)
                .map_err(|e| Error::io("open", root.join(&path), e))?;
            linked_names(sub.as_fd(), &path, root, out)?;
        } else if st.st_nlink > 1 {
            out.entry(st.st_ino).or_default().push(path);
        }
    }
    Ok(())
}

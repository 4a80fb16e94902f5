//! Kernel overlayfs over the chain layout ([`super::chain`]): each layer's lowerdir is made
//! in the context of the layers below it (as containerd's overlayfs snapshotter does), so the
//! view is exactly the image: entries under a lower symlink land behind it, a directory a
//! layer only implies keeps the attributes below. Each mount gets a fresh upper and work
//! directory. The kernel mechanics here are shared with [`super::overlay2`], which stacks the
//! store's per-layer directories as Docker's overlay2 does.
//!
//! The mount uses mount(2) while its option string fits in one page, and the new mount API
//! (fsopen, fsconfig `lowerdir+`, fsmount, move_mount) beyond, up to the kernel's 500 layers.
//! It mounts with `redirect_dir=off,index=off,metacopy=off` so the upper directory alone is a
//! complete diff (no redirects, no metadata-only copies): renaming a lower directory fails with
//! EXDEV and a hard link to a lower file splits when one name is written. Both are declared.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, fsconfig_create,
    fsconfig_set_string, fsmount, fsopen, move_mount,
};

use super::{
    Capabilities, Driver, MountView, chain, driver_err, kernel_has_fs, need_mount_privilege, umount,
};
use crate::commit::{self, CommitOptions};
use crate::diff::upper::{KERNEL_OVERLAY, upper_items};
use crate::error::{Error, Result};
use crate::fsutil::{self, list_dir, lstat_at, open_dir, open_dir_beneath};
use crate::model::{Kind, parent_and_name};

/// The kernel's limit on lower layers (`OVL_MAX_STACK`).
pub const MAX_LAYERS: usize = 500;
/// mount(2) copies at most one page of options.
const OPTION_PAGE: usize = 4096;
/// Options every strata overlay mount sets, so the upper directory is a complete diff.
const FIXED_OPTIONS: [(&str, &str); 3] = [
    ("redirect_dir", "off"),
    ("index", "off"),
    ("metacopy", "off"),
];

/// Which mount API to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayApi {
    /// mount(2) while the options fit one page, else the new API.
    Auto,
    /// Always mount(2) (fails beyond one page of options).
    Legacy,
    /// Always fsopen/fsconfig(`lowerdir+`)/fsmount/move_mount.
    NewApi,
}

/// The kernel overlayfs driver.
#[derive(Clone, Copy, Debug)]
pub struct Overlay {
    pub api: OverlayApi,
}

impl Overlay {
    pub(crate) fn upper(view: &MountView) -> PathBuf {
        view.scratch.join("upper")
    }

    pub(crate) fn work(view: &MountView) -> PathBuf {
        view.scratch.join("work")
    }

    /// The mount(2) option string.
    pub fn legacy_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> String {
        let lower: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let mut s = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        for (k, v) in FIXED_OPTIONS {
            s.push_str(&format!(",{k}={v}"));
        }
        s
    }
}

/// How many layers of the store at `store_root` fit in one page of mount(2) options: the
/// bottom layer's store directory and chain directories above it (`overlay/chains/<id>/fs`),
/// with a mount's upper and work directories, as the driver writes them.
pub fn page_layers(store_root: &Path) -> usize {
    let hex = "0".repeat(64);
    let bottom = store_root.join("layers/sha256").join(&hex).join("fs");
    let chain = store_root.join("overlay/chains").join(&hex).join("fs");
    let scratch = store_root.join("mounts").join(crate::store::unique_id());
    let (upper, work) = (scratch.join("upper"), scratch.join("work"));
    let mut lowers = vec![bottom];
    while lowers.len() <= MAX_LAYERS {
        lowers.push(chain.clone());
        if Overlay::legacy_options(&lowers, &upper, &work).len() >= OPTION_PAGE {
            return lowers.len() - 1;
        }
    }
    MAX_LAYERS
}

/// Mounts overlayfs at `target` over `lowers` (topmost first) with `upper` and `work`, by
/// mount(2) while the options fit one page and the new mount API beyond.
pub(crate) fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<()> {
    mount_with(OverlayApi::Auto, lowers, upper, work, target)
}

fn mount_with(
    api: OverlayApi,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<()> {
    let opts = Overlay::legacy_options(lowers, upper, work);
    let fits = opts.len() < OPTION_PAGE
        && !opts.contains(['\\', '\n'])
        && !lowers
            .iter()
            .chain([&upper.to_path_buf(), &work.to_path_buf()])
            .any(|p| p.display().to_string().contains([',', ':']));
    match api {
        OverlayApi::Legacy if opts.len() >= OPTION_PAGE => Err(driver_err(
            "overlay",
            format!(
                "{} layers need {} bytes of mount(2) options, more than one page ({OPTION_PAGE}); the new mount API has no such limit",
                lowers.len(),
                opts.len()
            ),
        )),
        OverlayApi::Legacy => mount_legacy(&opts, target),
        OverlayApi::Auto if fits => mount_legacy(&opts, target),
        OverlayApi::Auto if !lowerdir_plus() => mount_legacy_by_fd(lowers, upper, work, target),
        OverlayApi::Auto | OverlayApi::NewApi => mount_new_api(lowers, upper, work, target),
    }
}

/// Whether this kernel's overlay mounts `lowerdir+` stacks (Linux 6.8+), probed once by a
/// real (detached) mount.
fn lowerdir_plus() -> bool {
    static PROBED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROBED
        .get_or_init(|| crate::probe::lowerdir_plus_mounts(&std::env::temp_dir()).unwrap_or(true))
}

/// mount(2) with each lower directory named by an O_PATH descriptor (`/proc/thread-self/fd/N`:
/// this thread's, some 25 bytes where a store path takes 100 or more): how a kernel without `lowerdir+` stacks
/// more layers than their paths fit in one page of options. The descriptors close once
/// mounted (overlay holds the directories itself).
fn mount_legacy_by_fd(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    use rustix::fs::{Mode, OFlags, open};
    let mut fds = Vec::with_capacity(lowers.len());
    for l in lowers {
        let fd = open(
            l,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| driver_err("overlay", format!("open {}: {e}", l.display())))?;
        fds.push(fd);
    }
    let short: Vec<PathBuf> = fds
        .iter()
        .map(|fd| PathBuf::from(format!("/proc/thread-self/fd/{}", fd.as_raw_fd())))
        .collect();
    let opts = Overlay::legacy_options(&short, upper, work);
    if opts.len() >= OPTION_PAGE {
        return Err(driver_err(
            "overlay",
            format!(
                "{} layers need {} bytes of mount(2) options even by descriptor, more than one \
                 page ({OPTION_PAGE}), and this kernel's overlay mounts no `lowerdir+` stack \
                 (Linux 6.8+)",
                lowers.len(),
                opts.len()
            ),
        ));
    }
    let r = mount_legacy(&opts, target);
    drop(fds);
    r
}

fn mount_legacy(opts: &str, target: &Path) -> Result<()> {
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts),
    )
    .map_err(|e| driver_err("overlay", format!("mount on {}: {e}", target.display())))
}

fn mount_new_api(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    // The filesystem context collects the options one by one: no page limit.
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| driver_err("overlay", format!("fsopen: {e}")))?;
    let fail = |what: String, e: rustix::io::Errno| {
        let log = read_fs_log(fs.as_fd());
        driver_err("overlay", format!("{what}: {e}{log}"))
    };
    fsconfig_set_string(&fs, "source", "overlay").map_err(|e| fail("fsconfig source".into(), e))?;
    for (i, l) in lowers.iter().enumerate() {
        fsconfig_set_string(&fs, "lowerdir+", l.as_path())
            .map_err(|e| fail(format!("fsconfig lowerdir+ #{} {}", i + 1, l.display()), e))?;
    }
    fsconfig_set_string(&fs, "upperdir", upper).map_err(|e| fail("fsconfig upperdir".into(), e))?;
    fsconfig_set_string(&fs, "workdir", work).map_err(|e| fail("fsconfig workdir".into(), e))?;
    for (k, v) in FIXED_OPTIONS {
        fsconfig_set_string(&fs, k, v).map_err(|e| fail(format!("fsconfig {k}"), e))?;
    }
    fsconfig_create(&fs).map_err(|e| fail("fsconfig create".into(), e))?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| fail("fsmount".into(), e))?;
    // Attach the detached mount at the target.
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| {
        driver_err(
            "overlay",
            format!("move_mount to {}: {e}", target.display()),
        )
    })
}

/// Mounts `view` (its layers the lowerdirs to stack) with a fresh upper and work directory.
pub(crate) fn mount_view(api: OverlayApi, view: &MountView) -> Result<()> {
    if view.layers.is_empty() {
        return Err(driver_err("overlay", "no layers to mount"));
    }
    if view.layers.len() > MAX_LAYERS {
        return Err(driver_err(
            "overlay",
            format!(
                "{} layers exceed the kernel's limit of {MAX_LAYERS} lower layers (OVL_MAX_STACK)",
                view.layers.len()
            ),
        ));
    }
    let (upper, work) = (Overlay::upper(view), Overlay::work(view));
    for d in [&upper, &work] {
        std::fs::create_dir(d).map_err(|e| Error::io("create", d, e))?;
    }
    // The merged root shows the upper root's attributes: give it the stack's.
    let root = view.root_meta();
    let ufd = open_dir(&upper)?;
    fsutil::set_meta_at(ufd.as_fd(), ".", &Kind::Dir, &root)
        .map_err(|e| Error::io("set metadata", &upper, e))?;
    mount_with(api, &view.lower_dirs(), &upper, &work, &view.target)?;
    if let Err(e) = hide_unmerged_whiteouts(view) {
        let _ = umount(&view.target);
        return Err(e);
    }
    Ok(())
}

/// Commits the upper directory of a mount of `view` (its layers the stacked lowerdirs).
pub(crate) fn commit_view(
    view: &MountView,
    opts: &CommitOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let upper = Overlay::upper(view);
    let items = upper_items(view, &upper, &KERNEL_OVERLAY)?;
    commit::write(items, &upper, opts, out)
}

/// overlayfs filters whiteouts out of a directory's listing only when the directory is merged
/// from several layers; in a directory only one layer holds, a whiteout is listed (and cannot
/// be stat'ed). Copying such a directory up (a chown to its own owner) makes it merged with
/// the upper layer, and the whiteouts disappear. Commit leaves such unchanged directories out.
pub(crate) fn hide_unmerged_whiteouts(view: &MountView) -> Result<()> {
    let mut by_dir: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for l in &view.layers {
        for w in &l.info.whiteouts {
            let (dir, name) = parent_and_name(w).unwrap_or(("", w));
            by_dir.entry(dir).or_default().insert(name);
        }
    }
    by_dir.remove(""); // the root is always merged with the upper layer
    if by_dir.is_empty() {
        return Ok(());
    }
    let root = open_dir(&view.target)?;
    for (dir, names) in by_dir {
        let Ok(fd) = open_dir_beneath(root.as_fd(), dir) else {
            continue;
        };
        let listed = list_dir(fd.as_fd())
            .map_err(|e| Error::io("read directory", view.target.join(dir), e))?;
        let exposed = listed
            .iter()
            .any(|n| names.contains(n.as_str()) && lstat_at(fd.as_fd(), n).is_err());
        if exposed {
            let st = lstat_at(fd.as_fd(), ".")
                .map_err(|e| Error::io("stat", view.target.join(dir), e))?;
            let (uid, gid) = (
                rustix::fs::Uid::from_raw(st.st_uid),
                rustix::fs::Gid::from_raw(st.st_gid),
            );
            rustix::fs::fchown(&fd, Some(uid), Some(gid))
                .map_err(|e| Error::io("copy up (chown)", view.target.join(dir), fsutil::ioe(e)))?;
        }
    }
    Ok(())
}

/// The filesystem context's error log, when the kernel left one.
fn read_fs_log(fs: std::os::fd::BorrowedFd<'_>) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        out.push_str(" (");
        out.push_str(String::from_utf8_lossy(&buf[..n]).trim());
        out.push(')');
    }
    out
}

impl Driver for Overlay {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dir_rename: false,
            hardlinks_kept: false,
            native_diff: true,
            max_layers: Some(MAX_LAYERS),
            ..Capabilities::OCI
        }
    }

    fn availability(&self) -> std::result::Result<(), String> {
        if !kernel_has_fs("overlay") {
            return Err("the kernel has no overlay filesystem (modprobe overlay)".into());
        }
        need_mount_privilege()
    }

    fn mount(&self, view: &MountView) -> Result<()> {
        mount_view(self.api, &chain::chained(view)?)
    }

    fn unmount(&self, view: &MountView) -> Result<()> {
        umount(&view.target)
    }

    fn commit(&self, view: &MountView, opts: &CommitOptions, out: &mut dyn Write) -> Result<()> {
        commit_view(&chain::chained(view)?, opts, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_layers_is_the_last_count_whose_options_fit_one_page() {
        for root in [
            "/var/lib/strata",
            "/tmp/a-much-longer-store-root/for/strata/tests",
        ] {
            let root = Path::new(root);
            let n = page_layers(root);
            assert!(n > 1 && n < MAX_LAYERS, "{n}");
            let hex = "0".repeat(64);
            let lowers = |k: usize| -> Vec<PathBuf> {
                let mut v = vec![root.join("layers/sha256").join(&hex).join("fs")];
                v.extend((1..k).map(|_| root.join("overlay/chains").join(&hex).join("fs")));
                v
            };
            let scratch = root.join("mounts").join(crate::store::unique_id());
            let (u, w) = (scratch.join("upper"), scratch.join("work"));
            assert!(Overlay::legacy_options(&lowers(n), &u, &w).len() < OPTION_PAGE);
            assert!(Overlay::legacy_options(&lowers(n + 1), &u, &w).len() >= OPTION_PAGE);
        }
    }
}

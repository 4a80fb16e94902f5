//! The native diff: an overlay-style upper directory read as a layer's changes, for drivers
//! whose writable layer holds only what changed (kernel overlayfs, fuse-overlayfs). The two
//! write the same form with small differences, described by an [`UpperForm`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Stat};

use crate::commit::{self, Item};
use crate::driver::MountView;
use crate::error::{Error, Result};
use crate::fsutil::{
    self, Next, OVERLAY_OPAQUE_XATTR, Step, file_type, lstat_at, open_dir, open_dir_beneath,
};
use crate::model::{Meta, join, parent_and_name};
use crate::tarw::WHITEOUT_PREFIX;

/// How a driver marks whiteouts and opaque directories in its upper directory.
#[derive(Clone, Copy, Debug)]
pub struct UpperForm {
    /// xattrs that mark a directory opaque when set to `y`.
    pub opaque_xattrs: &'static [&'static str],
    /// `.wh..wh..opq` (a file) or `.wh..opq` (a whiteout device: "`.wh..opq` is deleted", the
    /// same sentinel in device form) inside a directory marks it opaque.
    pub opaque_sentinels: bool,
    /// A regular empty file `.wh.NAME` is a whiteout of NAME (made where mknod is refused).
    pub whiteout_files: bool,
    /// Prefixes of xattrs the driver keeps for itself on upper files, never committed.
    pub private_xattrs: &'static [&'static str],
}

/// Kernel overlayfs as strata mounts it: whiteouts are char devices 0:0, opaque directories
/// carry `trusted.overlay.opaque=y` (its other `trusted.overlay.*` xattrs are never read).
pub const KERNEL_OVERLAY: UpperForm = UpperForm {
    opaque_xattrs: &[OVERLAY_OPAQUE_XATTR],
    opaque_sentinels: false,
    whiteout_files: false,
    private_xattrs: &[],
};

/// The opaque sentinel file.
const OPAQUE_FILE: &str = ".wh..wh..opq";
/// The opaque sentinel as a whiteout device.
const OPAQUE_DEVICE: &str = ".wh..opq";

/// The commit items of the upper directory `upper` of `view`: the root when its attributes
/// differ from the stack's, then everything below.
pub fn upper_items(view: &MountView, upper: &Path, form: &UpperForm) -> Result<Vec<Item>> {
    let ufd = open_dir(upper)?;
    let mut items = Vec::new();
    let root = view.root_meta();
    let (_, mut upper_root) = commit::inode_at(ufd.as_fd(), ".", upper)?;
    strip_private(&mut upper_root, form);
    if commit::meta_changed(&root, &upper_root) {
        items.push(Item::dir("", upper_root));
    }
    walk_upper(view, ufd.as_fd(), "", upper, form, &mut items)?;
    Ok(items)
}

fn strip_private(meta: &mut Meta, form: &UpperForm) {
    if !form.private_xattrs.is_empty() {
        meta.xattrs
            .retain(|k, _| !form.private_xattrs.iter().any(|p| k.starts_with(p)));
    }
}

/// True when directory `name` in `dir` is marked opaque.
fn is_opaque(dir: BorrowedFd<'_>, name: &str, path: &Path, form: &UpperForm) -> Result<bool> {
    for key in form.opaque_xattrs {
        let v = fsutil::get_xattr(dir, name, key).map_err(|e| Error::io("read xattr", path, e))?;
        if v.as_deref() == Some(b"y") {
            return Ok(true);
        }
    }
    if !form.opaque_sentinels {
        return Ok(false);
    }
    let sub = open_dir_beneath(dir, name).map_err(|e| Error::io("open directory", path, e))?;
    let file =
        lstat_at(sub.as_fd(), OPAQUE_FILE).is_ok_and(|st| file_type(&st) == FileType::RegularFile);
    let dev = lstat_at(sub.as_fd(), OPAQUE_DEVICE).is_ok_and(|st| fsutil::is_whiteout(&st));
    Ok(file || dev)
}

/// What an upper entry is: a whiteout (of which name), a sentinel to skip, or an entry.
enum Seen<'a> {
    Whiteout(&'a str),
    Sentinel,
    Entry,
}

fn classify<'a>(name: &'a str, st: &Stat, form: &UpperForm) -> Seen<'a> {
    let device_whiteout = fsutil::is_whiteout(st);
    if form.opaque_sentinels
        && ((name == OPAQUE_FILE && file_type(st) == FileType::RegularFile)
            || (name == OPAQUE_DEVICE && device_whiteout))
    {
        return Seen::Sentinel;
    }
    if device_whiteout {
        #[cfg(feature = "mutants")]
        crate::mutant!(UpperDropsWhiteout, return Seen::Sentinel);
        return Seen::Whiteout(name);
    }
    if form.whiteout_files
        && file_type(st) == FileType::RegularFile
        && st.st_size == 0
        && let Some(target) = name.strip_prefix(WHITEOUT_PREFIX)
        && !target.is_empty()
        && !target.starts_with(WHITEOUT_PREFIX)
    {
        return Seen::Whiteout(target);
    }
    Seen::Entry
}

/// Turns the upper directory into commit items: whiteouts, opaque markers (only where a
/// lower directory exists to hide), entries; a directory copied up only to hold a changed
/// child is a parent, not a change.
fn walk_upper(
    view: &MountView,
    dir: BorrowedFd<'_>,
    rel: &str,
    upper: &Path,
    form: &UpperForm,
    items: &mut Vec<Item>,
) -> Result<()> {
    debug_assert!(rel.is_empty());
    // An explicit stack, not recursion: any depth the kernel allows works.
    fsutil::walk_tree(
        dir,
        |step| {
            let Step::Entry {
                dir, path, name, ..
            } = step
            else {
                return Ok(Next::Skip);
            };
            let descend = upper_entry(view, dir, name, path, upper, form, items)?;
            Ok(if descend { Next::Descend } else { Next::Skip })
        },
        |op, path, e| Error::io(op, upper.join(path), e),
    )
}

/// The items of upper entry `name` in `dir` (at `path`); true when it is a directory to walk.
fn upper_entry(
    view: &MountView,
    dir: BorrowedFd<'_>,
    name: &str,
    path: &str,
    upper: &Path,
    form: &UpperForm,
    items: &mut Vec<Item>,
) -> Result<bool> {
    let at = |p: &str| upper.join(p);
    let rel = parent_and_name(path).map(|(p, _)| p).unwrap_or("");
    let st = lstat_at(dir, name).map_err(|e| Error::io("stat", at(path), e))?;
    match classify(name, &st, form) {
        Seen::Sentinel => return Ok(false),
        Seen::Whiteout(target) => {
            // fuse-overlayfs leaves a whiteout where a name it made is removed, though
            // nothing below had it (`mkdir d; rmdir d`): no change, nothing to commit.
            let path = join(rel, target);
            if lower_has(view, &path)? {
                items.push(Item::Whiteout { path });
            }
            return Ok(false);
        }
        Seen::Entry => {}
    }
    let mut item = commit::item_at(dir, name, path, &st, upper)?;
    if let Item::Entry { meta, .. } = &mut item {
        strip_private(meta, form);
    }
    if file_type(&st) != FileType::Directory {
        items.push(item);
        return Ok(false);
    }
    let opaque = is_opaque(dir, name, &at(path), form)?;
    let lower = lower_dir(view, path)?;
    let meta = match &item {
        Item::Entry { meta, .. } => meta.clone(),
        _ => Meta::implied_dir(),
    };
    // A directory copied up only to hold a changed child is unchanged itself.
    let same = lower
        .as_ref()
        .is_some_and(|l| !commit::meta_changed(l, &meta));
    items.push(if same && !opaque {
        item.as_parent()
    } else {
        item
    });
    if opaque && lower.is_some() {
        items.push(Item::Opaque {
            path: path.to_string(),
            meta,
        });
    }
    Ok(true)
}

/// True when the layers below show something at `path`.
fn lower_has(view: &MountView, path: &str) -> Result<bool> {
    Ok(lower_node(view, path)?.is_some())
}

/// What the layers below show at `path`, as overlayfs merges them: the topmost layer holding
/// it (not as a whiteout) decides; a whiteout or non-directory on the way, or an opaque
/// directory on the way in a higher layer, hides everything lower. The layer's directory
/// holding it, and its stat.
fn lower_node(view: &MountView, path: &str) -> Result<Option<(std::path::PathBuf, OwnedFd, Stat)>> {
    // Components one at a time (no list of them: a commit asks this for every directory of
    // a chain that may be 10,000 deep, and the lower layers usually end after a few).
    for l in view.layers.iter().rev() {
        let fs = l.fs();
        let mut dir = open_dir(&fs)?;
        let mut hidden_below = false;
        let mut comps = path.split('/');
        let mut cur = comps.next();
        // The byte length of the components entered so far.
        let mut entered = 0;
        let mut last = None;
        while let Some(c) = cur {
            let next = comps.next();
            if next.is_none() {
                last = Some(c);
                break;
            }
            match lstat_at(dir.as_fd(), c) {
                Ok(st) if file_type(&st) == FileType::Directory => {
                    let opaque = fsutil::get_xattr(dir.as_fd(), c, OVERLAY_OPAQUE_XATTR)
                        .map_err(|e| Error::io("read xattr", fs.join(c), e))?;
                    hidden_below |= opaque.as_deref() == Some(b"y");
                    dir = open_dir_beneath(dir.as_fd(), c)
                        .map_err(|e| Error::io("open directory", fs.join(c), e))?;
                    entered = if entered == 0 {
                        c.len()
                    } else {
                        entered + 1 + c.len()
                    };
                    cur = next;
                }
                // A whiteout or non-directory on the way: nothing below shows there.
                Ok(_) => return Ok(None),
                Err(_) => break,
            }
        }
        if let Some(name) = last
            && let Ok(st) = lstat_at(dir.as_fd(), name)
        {
            if fsutil::is_whiteout(&st) {
                return Ok(None);
            }
            return Ok(Some((fs.join(&path[..entered]), dir, st)));
        }
        if hidden_below {
            return Ok(None);
        }
    }
    Ok(None)
}

/// The attributes of the directory the layers below show at `path`, if a directory.
pub fn lower_dir(view: &MountView, path: &str) -> Result<Option<Meta>> {
    let Some((at, dir, st)) = lower_node(view, path)? else {
        return Ok(None);
    };
    if file_type(&st) != FileType::Directory {
        return Ok(None);
    }
    let (_, name) = parent_and_name(path).unwrap_or(("", "."));
    let (_, meta) = commit::inode_at(dir.as_fd(), name, &at)?;
    Ok(Some(meta))
}

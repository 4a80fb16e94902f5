//! The chain layout of the overlay-style drivers (overlay, fuse-overlayfs): each layer's lower
//! directory is made in the context of the layers below it, as containerd's overlayfs
//! snapshotter does, so the stacked view is exactly the image.
//!
//! ```text
//! ROOT/overlay/lock                    flock(2) held while chains are checked and built
//! ROOT/overlay/chains/<chain-id>/fs    the lower directory of stack position n > 0
//! ROOT/overlay/chains/<chain-id>/chain.json  its record
//! ROOT/overlay/chains/.build-<chain-id>-<pid>  a build under way (a crash's leftover is
//!                                      removed by the next build)
//! ```
//!
//! Position 0 is the layer's own store directory (nothing lies below it, so extracting it
//! alone is already right). Position n > 0 is made by mounting kernel overlayfs with the
//! chain's directories 0..n-1 as lowers and a fresh upper directory, and applying layer n's
//! change set onto that mount with the copy driver's materializer: paths resolve through the
//! lower symlinks inside the root, an implied directory is the lower directory copied up with
//! its attributes, deletions become the kernel's whiteouts and opaque directories. The upper
//! directory is then the chain directory, renamed into place whole (a crash leaves no half
//! made chain). The chain id is the OCI ChainID, so every stack with the same prefix shares
//! the directories, and a layer reused over a different base gets its own; the store's layer
//! (by diff-id) stays the source.
//!
//! Where applying the layer in context would make exactly the layer's own directory -- no
//! path of it resolves through a lower symlink, and no directory it only implies exists below
//! (whose attributes the chain would copy up) -- the chain records that (`chain.json`, no
//! `fs/`) and the position stacks the layer's store directory, as overlay2 does: a Docker-built
//! layer, whose tar names every parent, costs no copy.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::copy::{Base, Copy};
use super::overlay::{MAX_LAYERS, hide_unmerged_whiteouts, mount_overlay};
use super::{MountView, driver_err};
use crate::commit::{Item, ItemKind};
use crate::diff::upper::{KERNEL_OVERLAY, upper_items};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::model::{Change, ChangeSet, Entry, EntryKind, FileData, RelPath, ancestors};
use crate::store::{LayerInfo, StoredLayer, now_secs, write_json};

/// The chain part of a store under `store_root`.
pub fn state_dir(store_root: &Path) -> PathBuf {
    store_root.join("overlay")
}

/// `view` with its layers replaced by their chain directories (built where missing).
pub fn chained(view: &MountView) -> Result<MountView> {
    Ok(MountView {
        layers: chain_layers(view.store_root()?, &view.layers)?,
        ..view.clone()
    })
}

/// What a chain directory holds, recorded beside it.
#[derive(Debug, Serialize, Deserialize)]
struct ChainRecord {
    chain_id: Digest,
    /// Diff-ids, lowest first.
    layers: Vec<Digest>,
    built_at: u64,
}

/// The lower directories of `layers` (lowest first) in the chain layout, building the ones
/// missing. Each is returned as a [`StoredLayer`] whose `fs()` is the directory to stack and
/// whose `info` is the layer's, but for the diff-id, which is the chain id (so per-directory
/// caches key on it).
pub fn chain_layers(store_root: &Path, layers: &[StoredLayer]) -> Result<Vec<StoredLayer>> {
    if layers.is_empty() {
        return Err(driver_err("overlay", "no layers to mount"));
    }
    if layers.len() > MAX_LAYERS {
        return Err(driver_err(
            "overlay",
            format!(
                "{} layers exceed the kernel's limit of {MAX_LAYERS} lower layers (OVL_MAX_STACK)",
                layers.len()
            ),
        ));
    }
    let base = state_dir(store_root);
    let chains = base.join("chains");
    let ids = chain_ids_of(&layers.iter().map(|l| l.info.diff_id).collect::<Vec<_>>());
    let dir = |id: &Digest| chains.join(id.hex());
    let level = |i: usize| -> StoredLayer {
        let chain = dir(&ids[i]);
        // Position 0, and a chain that reuses its layer's own directory (it has no `fs/`),
        // stack the store's layer directory.
        if i == 0 || !chain.join("fs").exists() {
            return layers[i].clone();
        }
        StoredLayer {
            info: LayerInfo {
                diff_id: ids[i],
                // Deletions in a chain directory are the kernel's own, in merged directories.
                whiteouts: Vec::new(),
                root_opaque: false,
                ..layers[i].info.clone()
            },
            dir: chain,
        }
    };
    let built = |i: usize| i == 0 || dir(&ids[i]).join("chain.json").exists();
    // The common case, without the lock: every level is there.
    if (0..layers.len()).all(built) {
        return Ok((0..layers.len()).map(level).collect());
    }
    std::fs::create_dir_all(&chains).map_err(|e| Error::io("create", &chains, e))?;
    let _lock = crate::fsutil::Flock::wait(&base.join("lock"))?;
    remove_leftovers(&chains)?;
    for i in 1..layers.len() {
        if built(i) {
            continue;
        }
        let below: Vec<StoredLayer> = (0..i).map(level).collect();
        let rec = ChainRecord {
            chain_id: ids[i],
            layers: layers[..=i].iter().map(|l| l.info.diff_id).collect(),
            built_at: now_secs(),
        };
        build(&chains, &below, &layers[i], &rec)?;
    }
    Ok((0..layers.len()).map(level).collect())
}

/// Makes `chains/<id>`: `layer` applied over a mount of `lowers` (topmost first).
fn build(
    chains: &Path,
    below: &[StoredLayer],
    layer: &StoredLayer,
    rec: &ChainRecord,
) -> Result<()> {
    let changes = layer.changes()?;
    let lowers: Vec<PathBuf> = below.iter().rev().map(StoredLayer::fs).collect();
    let hex = rec.chain_id.hex();
    let tmp = chains.join(format!(".build-{hex}-{}", std::process::id()));
    let made = (|| {
        let (upper, work, merged) = (tmp.join("fs"), tmp.join("work"), tmp.join("merged"));
        for d in [&tmp, &upper, &work, &merged] {
            std::fs::create_dir(d).map_err(|e| Error::io("create", d, e))?;
        }
        let below = MountView {
            layers: below.to_vec(),
            scratch: tmp.clone(),
            target: merged.clone(),
        };
        let reused = {
            // The chain below, writable: the layer is applied as a container would write it.
            let _mounted = Mounted::new(&lowers, &upper, &work, &merged)?;
            // (Never a directory already in the stack: overlayfs refuses one twice, ELOOP.)
            let reused = !lowers.contains(&layer.fs()) && lands_as_extracted(&merged, &changes)?;
            if !reused {
                // A whiteout the kernel lists (in a directory one layer alone holds) would
                // stop the removal of that directory: merge such directories first, as a
                // mount does.
                hide_unmerged_whiteouts(&below)?;
                Copy { reflink: true }.apply_layers(
                    std::slice::from_ref(layer),
                    &merged,
                    Base::Populated,
                )?;
            }
            reused
        };
        if reused {
            // The layer's own directory is this position's: nothing to copy.
            for d in [&upper, &work, &merged] {
                fsutil::remove_tree(d)?;
            }
            write_json(&tmp.join("chain.json"), rec)?;
            let dest = chains.join(&hex);
            return std::fs::rename(&tmp, &dest).map_err(|e| Error::io("rename", &dest, e));
        }
        for d in [&work, &merged] {
            fsutil::remove_tree(d)?;
        }
        // Lower form: only the opaque marker of the kernel's bookkeeping stays (an origin
        // xattr makes fuse-overlayfs take another layer's inode number for the name).
        strip_build_xattrs(&upper)?;
        // What the chain directory holds, as a change set: the drivers' per-directory notes
        // (fuse-overlayfs's) read it as they read a stored layer's.
        write_json(&tmp.join("changes.json"), &changes_of(&below, &upper)?)?;
        write_json(&tmp.join("chain.json"), rec)?;
        // Whole or not at all: the rename publishes the chain.
        let dest = chains.join(&hex);
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io("rename", &dest, e))
    })();
    if made.is_err() {
        let _ = fsutil::remove_tree(&tmp);
    }
    made
}

/// True when `layer`, applied onto the view `merged` of the chain below, lands exactly as it
/// was extracted alone: every directory on the way to its entries, deletions and hard-link
/// targets is either the layer's own (explicit) directory, or missing below, or below only as
/// a non-directory the layer replaces. A lower symlink on the way (the path resolves through
/// it) or a lower directory the layer only implies (the chain copies its attributes up) makes
/// the chain directory differ from the layer's.
fn lands_as_extracted(merged: &Path, layer: &ChangeSet) -> Result<bool> {
    use std::collections::HashSet;
    let explicit: HashSet<&str> = layer
        .entries()
        .filter(|e| e.kind == EntryKind::Dir)
        .map(|e| e.path.as_str())
        .collect();
    // Directories whose lower contents the layer hides (nothing below shows through them).
    let mut hidden: HashSet<String> = HashSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    // `dirs`: the directories on the way, shortest first (each resolved only after its
    // parents are known not to be symlinks, so a plain lstat never follows one).
    let mut check = |dirs: Vec<&str>| -> Result<bool> {
        for d in dirs {
            if d.is_empty() || !seen.insert(d.to_string()) {
                continue;
            }
            if ancestors(d).iter().any(|p| hidden.contains(*p)) {
                hidden.insert(d.to_string());
                continue;
            }
            let at = merged.join(d);
            let st = match std::fs::symlink_metadata(&at) {
                Ok(st) => st,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    continue;
                }
                Err(e) => return Err(Error::io("stat", &at, e)),
            };
            let ft = st.file_type();
            if ft.is_dir() {
                if !explicit.contains(d) {
                    return Ok(false); // implied over a lower directory: its attributes
                }
            } else if ft.is_symlink() && !explicit.contains(d) {
                return Ok(false); // the path resolves through the symlink
            } else {
                hidden.insert(d.to_string()); // replaced by the layer's directory
            }
        }
        Ok(true)
    };
    for c in &layer.changes {
        let (dirs, more) = match c {
            Change::Entry(e) => {
                let target = match &e.kind {
                    EntryKind::HardLink { target } => Some(target.as_str()),
                    _ => None,
                };
                (ancestors(&e.path), target.map(ancestors))
            }
            Change::Whiteout { path } => (ancestors(path), None),
            Change::Opaque { path } => {
                let mut d = ancestors(path);
                d.push(path.as_str());
                (d, None)
            }
        };
        if !check(dirs)? || !check(more.unwrap_or_default())? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The change set a chain directory (an overlay upper directory over `below`) holds: its
/// entries, hard links by inode, whiteouts and opaque directories.
fn changes_of(below: &MountView, upper: &Path) -> Result<ChangeSet> {
    let mut first_name: HashMap<(u64, u64), RelPath> = HashMap::new();
    let mut changes = Vec::new();
    for item in upper_items(below, upper, &KERNEL_OVERLAY)? {
        changes.push(match item {
            Item::Whiteout { path } => Change::Whiteout { path },
            Item::Opaque { path, .. } => Change::Opaque { path },
            Item::Entry {
                path,
                kind,
                meta,
                inode,
                ..
            } => {
                if let Some(key) = inode {
                    if let Some(target) = first_name.get(&key) {
                        changes.push(Change::Entry(Entry {
                            path,
                            kind: EntryKind::HardLink {
                                target: target.clone(),
                            },
                            meta,
                        }));
                        continue;
                    }
                    first_name.insert(key, path.clone());
                }
                let kind = match kind {
                    ItemKind::File { .. } => {
                        let f = File::open(upper.join(&path))
                            .map_err(|e| Error::io("open", upper.join(&path), e))?;
                        let (digest, size) = Digest::of_reader(f)
                            .map_err(|e| Error::io("read", upper.join(&path), e))?;
                        EntryKind::File(FileData {
                            size,
                            digest,
                            bytes: None,
                        })
                    }
                    ItemKind::Dir => EntryKind::Dir,
                    ItemKind::Symlink(target) => EntryKind::Symlink { target },
                    ItemKind::CharDev(major, minor) => EntryKind::CharDev { major, minor },
                    ItemKind::BlockDev(major, minor) => EntryKind::BlockDev { major, minor },
                    ItemKind::Fifo => EntryKind::Fifo,
                };
                Change::Entry(Entry { path, kind, meta })
            }
        });
    }
    Ok(ChangeSet { changes })
}

/// Removes the xattrs the build mount left for itself on every inode under `fs`.
fn strip_build_xattrs(fs: &Path) -> Result<()> {
    let keep = [fsutil::OVERLAY_OPAQUE_XATTR];
    let root = fsutil::open_dir(fs)?;
    fsutil::remove_overlay_xattrs(root.as_fd(), ".", &keep)
        .map_err(|e| Error::io("remove xattrs", fs, e))?;
    let mut stack: Vec<(RelPath, OwnedFd)> = vec![(RelPath::new(), root)];
    while let Some((rel, dir)) = stack.pop() {
        let at = |n: &str| fs.join(crate::model::join(&rel, n));
        let entries = fsutil::list_dir_typed(dir.as_fd())
            .map_err(|e| Error::io("read directory", fs.join(&rel), e))?;
        for (name, ft) in entries {
            fsutil::remove_overlay_xattrs(dir.as_fd(), &name, &keep)
                .map_err(|e| Error::io("remove xattrs", at(&name), e))?;
            if ft == Some(rustix::fs::FileType::Directory) {
                let sub = fsutil::open_dir_beneath(dir.as_fd(), &name)
                    .map_err(|e| Error::io("open", at(&name), e))?;
                stack.push((crate::model::join(&rel, &name), sub));
            }
        }
    }
    Ok(())
}

/// Removes what builds a crash cut short left (under the lock: no build is under way).
fn remove_leftovers(chains: &Path) -> Result<()> {
    let entries = std::fs::read_dir(chains).map_err(|e| Error::io("read directory", chains, e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io("read directory", chains, e))?;
        if e.file_name().to_string_lossy().starts_with(".build-") {
            let p = e.path();
            // A build's merged mount dies with its process, but not with a crashed one.
            let _ = nix::mount::umount2(&p.join("merged"), nix::mount::MntFlags::MNT_DETACH);
            fsutil::remove_tree(&p)?;
        }
    }
    Ok(())
}

/// A build's overlay mount, unmounted when dropped (also when the build fails).
struct Mounted(PathBuf);

impl Mounted {
    fn new(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<Mounted> {
        mount_overlay(lowers, upper, work, target)?;
        Ok(Mounted(target.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = super::umount(&self.0);
    }
}

/// Removes every chain directory no stack in `keep` (each lowest first, by diff-id) uses:
/// what `image rm` and `image prune` leave no image or live mount needing. Returns the chain
/// ids removed and the bytes they held.
pub fn remove_unused(store_root: &Path, keep: &[Vec<Digest>]) -> Result<(Vec<String>, u64)> {
    let base = state_dir(store_root);
    let chains = base.join("chains");
    if !chains.exists() {
        return Ok((Vec::new(), 0));
    }
    // No chain is built while this runs.
    let _lock = crate::fsutil::Flock::wait(&base.join("lock"))?;
    let used: std::collections::HashSet<String> = keep
        .iter()
        .flat_map(|stack| chain_ids_of(stack))
        .map(|d| d.hex())
        .collect();
    let mut removed = Vec::new();
    let mut bytes = 0;
    let entries =
        std::fs::read_dir(&chains).map_err(|e| Error::io("read directory", &chains, e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io("read directory", &chains, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || used.contains(&name) {
            continue;
        }
        bytes += crate::image::records::du(&e.path());
        fsutil::remove_tree(&e.path())?;
        removed.push(name);
    }
    removed.sort();
    Ok((removed, bytes))
}

/// The OCI ChainID of each prefix of a stack of diff-ids: ChainID(L0) = DiffID(L0),
/// ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)).
pub fn chain_ids_of(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let id = match out.last() {
            None => *d,
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(id);
    }
    out
}

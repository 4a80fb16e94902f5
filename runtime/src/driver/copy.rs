//! Copy-merge (like Docker's vfs or containerd's native snapshotter): the stack is
//! materialized into one directory by applying each layer's change set in order, lowest first,
//! exactly as the OCI rules say: whiteouts and opaque markers first, then entries; parents
//! resolved through symlinks inside the root; directory over directory keeps its children.
//! File data is cloned (FICLONE) where the filesystem allows, else copied with
//! copy_file_range (holes stay holes), by worker threads while the tree is built. The data
//! of a file that a higher layer names again waits until that layer is applied, and is
//! dropped when the file is unlinked by then: a path rewritten in every layer of a deep stack
//! has its data copied once. The merged directory is bind-mounted on the target.
//!
//! Commit compares the tree with the stack's model ([`crate::diff::tree`]) by content and metadata (a same-size,
//! same-mtime rewrite is a change).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};

use super::{Capabilities, Driver, MountView, driver_err, need_mount_privilege, umount};
use crate::commit::{self, CommitOptions};
use crate::error::{Error, Result};
use crate::fsutil::{
    self, CopyMethod, DirIdentity, Next, Step, file_type, ioe, lstat_at, open_dir,
    open_dir_beneath, open_file_at,
};
use crate::model::resolve::{Lookup, Node, OnMissing, Resolved, Walker};
use crate::model::{
    self, Change, ChangeSet, Entry, EntryKind, Kind, Meta, RelPath, Timespec, join, parent_and_name,
};
use crate::store::{StoredLayer, read_json, write_json};

/// The copy-merge driver.
#[derive(Clone, Copy, Debug)]
pub struct Copy {
    /// Try FICLONE before copying data.
    pub reflink: bool,
}

impl Copy {
    fn merged(view: &MountView) -> PathBuf {
        view.scratch.join("merged")
    }

    fn dirs_record(view: &MountView) -> PathBuf {
        view.scratch.join("dirs.json")
    }

    /// Materializes `layers` into the empty directory `dest` and returns the inode number of
    /// every directory (the commit uses them to see a directory replaced whole), with counters.
    pub fn materialize(
        &self,
        layers: &[StoredLayer],
        dest: &Path,
    ) -> Result<(BTreeMap<RelPath, DirIdentity>, CopyStats)> {
        self.apply_layers(layers, dest, Base::Empty)
    }

    /// Applies `layers`, lowest first, to the tree at `dest`, which is empty
    /// ([`Base::Empty`]) or already holds the layers below them ([`Base::Populated`], e.g. a
    /// snapshot of the stack's lower part): entries the layers do not touch keep everything,
    /// mtimes included. Returns the identity of every directory afterwards, with counters.
    pub(crate) fn apply_layers(
        &self,
        layers: &[StoredLayer],
        dest: &Path,
        base: Base,
    ) -> Result<(BTreeMap<RelPath, DirIdentity>, CopyStats)> {
        let shared = Shared {
            reflink: AtomicBool::new(self.reflink),
            reflinked: AtomicU64::new(0),
            error: Mutex::new(None),
        };
        let (tx, rx) = mpsc::sync_channel::<Vec<DataJob>>(JOB_QUEUE);
        let rx = Mutex::new(rx);
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 4);
        let root = open_dir(dest)?;
        let root_meta = match base {
            Base::Empty => Meta::implied_dir(),
            // The root keeps what the layers below gave it unless a layer has a root entry.
            Base::Populated => commit::inode_at(root.as_fd(), ".", dest)?.1,
        };
        let mut m = Materializer {
            root,
            dest: dest.to_path_buf(),
            dir_mtimes: HashMap::new(),
            keep_mtimes: base == Base::Populated,
            jobs: Some(tx),
            batch: Vec::new(),
            batch_bytes: 0,
            parent_cache: None,
            root_meta,
            stats: CopyStats::default(),
            explicit_dirs: HashSet::new(),
            own: HashSet::new(),
            mode: OnMissing::Fail,
            shadowed: HashSet::new(),
            deferred: VecDeque::new(),
            layer_fs: None,
            dest_arc: Arc::from(dest),
        };
        // File data is copied by workers while this thread builds the tree: the structure
        // must be made in order, the bytes need not.
        let applied = std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| copy_worker(&rx, &shared));
            }
            let r = changesets(layers).and_then(|sets| {
                let mut shadowed = shadowed_files(&sets);
                for ((layer, changes), shadowed) in layers.iter().zip(&sets).zip(&mut shadowed) {
                    m.shadowed = std::mem::take(shadowed);
                    m.apply(layer, changes)?;
                    m.settle_deferred(false)?;
                }
                m.settle_deferred(true)?;
                m.flush()
            });
            m.jobs = None;
            r
        });
        applied?;
        if let Some(e) = shared.error.lock().ok().and_then(|mut e| e.take()) {
            return Err(e);
        }
        m.stats.reflinked = shared.reflinked.load(Ordering::Relaxed);
        let mut dirs = BTreeMap::new();
        let root = m.root.try_clone().map_err(|e| Error::io("dup", dest, e))?;
        m.finish_dirs(root.as_fd(), "", &mut dirs)?;
        fsutil::set_meta_at(m.root.as_fd(), ".", &Kind::Dir, &m.root_meta)
            .map_err(|e| Error::io("set metadata", dest, e))?;
        dirs.insert(
            String::new(),
            fsutil::dir_identity(m.root.as_fd(), ".").map_err(|e| Error::io("stat", dest, e))?,
        );
        Ok((dirs, m.stats))
    }
}

/// The change sets of `layers`, lowest first.
fn changesets(layers: &[StoredLayer]) -> Result<Vec<ChangeSet>> {
    layers.iter().map(StoredLayer::changes).collect()
}

/// For each layer, the paths of its regular files that a higher layer names again: an entry
/// or a whiteout at the same path, or a whiteout, an opaque marker or a non-directory at one
/// of its parents. Such a file is most likely gone by the end (a deep stack rewriting one
/// big file in every layer), so its data copy waits ([`Materializer::settle_deferred`]).
/// Only a hint: whether the file is still linked decides, so symlinks that move a path, or
/// a hard link of the same layer that keeps the data alive, cost a wait, never a wrong tree.
fn shadowed_files(sets: &[ChangeSet]) -> Vec<HashSet<RelPath>> {
    let mut out = vec![HashSet::new(); sets.len()];
    // Paths the layers above name, and those that take away what lies under them.
    let mut named: HashSet<&str> = HashSet::new();
    let mut cut: HashSet<&str> = HashSet::new();
    for (set, out) in sets.iter().zip(&mut out).rev() {
        if !named.is_empty() {
            for e in set.entries() {
                if matches!(e.kind, EntryKind::File(_))
                    && (named.contains(e.path.as_str())
                        || model::ancestors(&e.path).iter().any(|a| cut.contains(a)))
                {
                    out.insert(e.path.clone());
                }
            }
        }
        for c in &set.changes {
            match c {
                Change::Whiteout { path } | Change::Opaque { path } => {
                    named.insert(path);
                    cut.insert(path);
                }
                Change::Entry(e) => {
                    named.insert(&e.path);
                    if e.kind != EntryKind::Dir {
                        cut.insert(&e.path);
                    }
                }
            }
        }
    }
    out
}

/// At most this many data copies wait to see whether a higher layer removes their file
/// (each holds two open files).
const DEFERRED_MAX: usize = 128;

/// Batches of data copies waiting for a worker (each copy holds two open files).
const JOB_QUEUE: usize = 4;
/// A batch goes to the workers at this many files or bytes: handing over one small file at
/// a time costs more in wake-ups than copying it.
const BATCH_FILES: usize = 32;
const BATCH_BYTES: u64 = 4 << 20;

/// One file's data to copy, then its metadata to set (after the data: chown and writes clear
/// setuid bits and file capabilities).
///
/// The worker opens the source itself (in the directory the building thread opened once per
/// directory): the thread that builds the tree is the one a copy waits for.
struct DataJob {
    /// The source's parent directory in the layer, and the layer's directory (for errors).
    src_dir: Arc<OwnedFd>,
    layer_fs: Arc<Path>,
    dst: File,
    size: u64,
    meta: Meta,
    /// Owner, group and mode `dst` was made with.
    made: (u32, u32, u32),
    /// The path in the layer and in the tree, and the tree's root (for errors).
    rel: RelPath,
    dest: Arc<Path>,
}

/// What the copy workers share.
struct Shared {
    /// Try FICLONE; cleared after the first clone the filesystem refuses.
    reflink: AtomicBool,
    reflinked: AtomicU64,
    /// The first error a worker met.
    error: Mutex<Option<Error>>,
}

fn copy_worker(rx: &Mutex<mpsc::Receiver<Vec<DataJob>>>, shared: &Shared) {
    loop {
        let batch = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok(batch) = batch else { return };
        for job in batch {
            copy_one(job, shared);
        }
    }
}

/// Copies one file's data, then sets its metadata; the first error is kept for the caller.
fn copy_one(job: DataJob, shared: &Shared) {
    if shared.error.lock().map(|e| e.is_some()).unwrap_or(true) {
        return; // drain: the materialization has failed already
    }
    let reflink = shared.reflink.load(Ordering::Relaxed);
    let name = parent_and_name(&job.rel).map_or(job.rel.as_str(), |(_, n)| n);
    let result = open_file_at(job.src_dir.as_fd(), name)
        .map_err(|e| Error::io("open", job.layer_fs.join(&job.rel), e))
        .and_then(|src| {
            fsutil::copy_data(&src, &job.dst, job.size, reflink)
                .map_err(|e| Error::io("copy data", job.dest.join(&job.rel), e))
        })
        .and_then(|how| {
            if how == CopyMethod::Reflink {
                shared.reflinked.fetch_add(1, Ordering::Relaxed);
            } else if job.size > 0 {
                shared.reflink.store(false, Ordering::Relaxed);
            }
            fsutil::set_meta_fd_over(job.dst.as_fd(), &job.meta, job.made)
                .map_err(|e| Error::io("set metadata", job.dest.join(&job.rel), e))
        });
    if let Err(e) = result
        && let Ok(mut slot) = shared.error.lock()
    {
        slot.get_or_insert(e);
    }
}

/// What a materialization did.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct CopyStats {
    pub files: u64,
    pub bytes: u64,
    pub reflinked: u64,
    pub dirs: u64,
    pub other: u64,
    /// Files whose data was never copied: a higher layer removed them first.
    pub skipped: u64,
}

/// What the tree a materialization starts from holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Base {
    /// Nothing: an empty directory.
    Empty,
    /// The layers below the ones to apply, complete with every mtime.
    Populated,
}

struct Materializer {
    root: OwnedFd,
    dest: PathBuf,
    /// Directory inode -> the mtime it must end with. Only these directories' mtimes are set
    /// at the end: every directory this run made or was given an entry for, and (on a
    /// populated base) every existing directory whose children it changed, noted with the
    /// mtime it had before.
    dir_mtimes: HashMap<u64, Timespec>,
    /// The base was populated: note existing directories before changing their children.
    keep_mtimes: bool,
    /// Where file data copies go (dropped when the tree is built, so the workers end).
    jobs: Option<mpsc::SyncSender<Vec<DataJob>>>,
    /// Copies not yet handed over, and their bytes.
    batch: Vec<DataJob>,
    batch_bytes: u64,
    /// The directory the last entry's parent resolved to.
    parent_cache: Option<(String, Rc<OwnedFd>)>,
    root_meta: Meta,
    stats: CopyStats,
    /// The directories the layer being applied has entries for, by their paths in the layer.
    explicit_dirs: HashSet<RelPath>,
    /// The inode numbers of the non-directories the layer being applied made.
    own: HashSet<u64>,
    /// What the resolution under way does at a missing component.
    mode: OnMissing,
    /// The paths of the layer being applied whose files a higher layer names again
    /// ([`shadowed_files`]).
    shadowed: HashSet<RelPath>,
    /// Data copies of those files, oldest first, held until a higher layer has had its
    /// chance to unlink them.
    deferred: VecDeque<DataJob>,
    /// The directory of the layer being applied, shared by its data copies.
    layer_fs: Option<Arc<Path>>,
    /// `dest`, shared by the data copies.
    dest_arc: Arc<Path>,
}

impl Materializer {
    fn err(&self, op: &'static str, path: &str, e: io::Error) -> Error {
        Error::io(op, self.dest.join(path), e)
    }

    fn apply(&mut self, layer: &StoredLayer, changes: &ChangeSet) -> Result<()> {
        // Deletions below may take away a directory a cached resolution went through.
        self.parent_cache = None;
        self.layer_fs = None;
        self.own.clear();
        self.explicit_dirs = changes
            .entries()
            .filter(|e| e.kind == EntryKind::Dir)
            .map(|e| e.path.clone())
            .collect();
        // Deletions see only the lower layers.
        for c in &changes.changes {
            match c {
                Change::Opaque { path } => {
                    #[cfg(feature = "mutants")]
                    if crate::mutants::active(crate::mutants::Mutant::IgnoreOpaque) {
                        continue;
                    }
                    if let Some(dir) = self.resolve(path, OnMissing::Fail)? {
                        self.keep_mtime(dir.as_fd(), path)?;
                        fsutil::clear_dir(dir.as_fd())
                            .map_err(|e| self.err("clear opaque directory", path, e))?;
                    }
                }
                Change::Whiteout { path } => {
                    let (parent, name) = parent_and_name(path).unwrap_or(("", path));
                    if let Some(dir) = self.resolve(parent, OnMissing::Fail)? {
                        self.keep_mtime(dir.as_fd(), parent)?;
                        fsutil::remove_all_at(dir.as_fd(), name)
                            .map_err(|e| self.err("remove whited-out", path, e))?;
                    }
                }
                Change::Entry(_) => {}
            }
        }
        let src = open_dir(&layer.fs())?;
        let mut src_cache: Option<(String, Arc<OwnedFd>)> = None;
        for c in &changes.changes {
            match c {
                Change::Opaque { path } => {
                    self.resolve(path, OnMissing::CreateUntilSymlink)?;
                }
                Change::Whiteout { path } => {
                    let (parent, _) = parent_and_name(path).unwrap_or(("", ""));
                    self.resolve(parent, OnMissing::CreateUntilSymlink)?;
                }
                Change::Entry(e) => self.put(e, src.as_fd(), &mut src_cache, layer)?,
            }
        }
        #[cfg(feature = "mutants")]
        if crate::mutants::active(crate::mutants::Mutant::WhiteoutDeletesOwnLayer) {
            for c in &changes.changes {
                if let Change::Whiteout { path } = c {
                    let (parent, name) = parent_and_name(path).unwrap_or(("", path));
                    if let Some(dir) = self.resolve(parent, OnMissing::Fail)? {
                        let _ = fsutil::remove_all_at(dir.as_fd(), name);
                    }
                }
            }
        }
        Ok(())
    }

    /// Opens the directory `path` resolves to inside the root, by the model's one resolution
    /// rule ([`model::resolve`]). Where `on_missing` creates, missing components become
    /// implied directories (0755, root, mtime 0) and a non-directory in the way is replaced
    /// by one, as the model says.
    fn resolve(&mut self, path: &str, on_missing: OnMissing) -> Result<Option<OwnedFd>> {
        // The common case, no symlink on the way: every rule agrees, one syscall.
        match fsutil::openat2(
            self.root.as_fd(),
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => return Ok(Some(fd)),
            // Missing before any symlink: nothing to resolve through.
            Err(e)
                if on_missing == OnMissing::Fail
                    && matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) =>
            {
                return Ok(None);
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                ) => {}
            Err(e) => return Err(self.err("resolve", path, e)),
        }
        self.mode = on_missing;
        let walked = Walker::new(on_missing).dir(self, path);
        self.mode = OnMissing::Fail;
        match walked? {
            Resolved::Dir { dir, .. } => Ok(Some(dir)),
            // Only where an entry must be placed: a deletion whose path loops deletes nothing.
            Resolved::Loop if on_missing == OnMissing::Create => Err(Error::Model {
                path: path.to_string(),
                reason: "too many levels of symbolic links".into(),
            }),
            Resolved::Loop | Resolved::NotFound | Resolved::NotDir | Resolved::Outside => Ok(None),
        }
    }

    fn mkdir_implied(&mut self, dir: BorrowedFd<'_>, name: &str, path: &str) -> Result<()> {
        rfs::mkdirat(dir, name, Mode::from_raw_mode(0o755))
            .map_err(|e| self.err("mkdir", path, ioe(e)))?;
        let meta = Meta::implied_dir();
        fsutil::set_meta_at(dir, name, &Kind::Dir, &meta)
            .map_err(|e| self.err("set metadata", path, e))?;
        self.note_dir(dir, name, path, meta.mtime)
    }

    fn note_dir(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &str,
        path: &str,
        mtime: Timespec,
    ) -> Result<()> {
        let st = lstat_at(dir, name).map_err(|e| self.err("stat", path, e))?;
        self.dir_mtimes.insert(st.st_ino, mtime);
        self.stats.dirs += 1;
        Ok(())
    }

    /// On a populated base, notes the mtime directory `dir` has now, before this run changes
    /// its children (which moves it), unless it is noted already.
    fn keep_mtime(&mut self, dir: BorrowedFd<'_>, path: &str) -> Result<()> {
        if !self.keep_mtimes {
            return Ok(());
        }
        let st = rfs::fstat(dir).map_err(|e| self.err("stat", path, ioe(e)))?;
        self.dir_mtimes
            .entry(st.st_ino)
            .or_insert_with(|| fsutil::mtime_of(&st));
        Ok(())
    }

    /// Adds a data copy to the batch, handing the batch to the workers when it is full.
    fn queue(&mut self, job: DataJob) -> Result<()> {
        self.batch_bytes += job.size;
        self.batch.push(job);
        if self.batch.len() >= BATCH_FILES || self.batch_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Drops the deferred copies whose files a higher layer has unlinked (their data and
    /// metadata would never show) and queues the rest: all of them at the `end`, else the
    /// oldest beyond [`DEFERRED_MAX`].
    fn settle_deferred(&mut self, end: bool) -> Result<()> {
        let mut keep = VecDeque::with_capacity(self.deferred.len());
        let mut over = self.deferred.len().saturating_sub(DEFERRED_MAX);
        while let Some(job) = self.deferred.pop_front() {
            let st = rfs::fstat(&job.dst)
                .map_err(|e| Error::io("stat", job.dest.join(&job.rel), ioe(e)))?;
            if st.st_nlink == 0 {
                self.stats.skipped += 1;
                over = over.saturating_sub(1);
                continue;
            }
            if end || over > 0 {
                over = over.saturating_sub(1);
                self.queue(job)?;
            } else {
                keep.push_back(job);
            }
        }
        self.deferred = keep;
        Ok(())
    }

    /// Hands the pending copies to the workers.
    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let sent = self.jobs.as_ref().is_some_and(|tx| tx.send(batch).is_ok());
        if !sent {
            return Err(self.err("copy data", "", io::Error::other("copy workers are gone")));
        }
        Ok(())
    }

    /// The directory `parent` resolves to, from the cache when the last entry had the same
    /// parent (the common case: tar entries come grouped by directory). Every change an
    /// entry makes is in this directory, so its mtime is noted here.
    fn parent_dir(&mut self, parent: &str) -> Result<Rc<OwnedFd>> {
        if let Some((p, fd)) = &self.parent_cache
            && p == parent
        {
            return Ok(Rc::clone(fd));
        }
        let fd = self
            .resolve(parent, OnMissing::Create)?
            .ok_or_else(|| self.err("resolve", parent, io::ErrorKind::NotFound.into()))?;
        self.keep_mtime(fd.as_fd(), parent)?;
        let fd = Rc::new(fd);
        self.parent_cache = Some((parent.to_string(), Rc::clone(&fd)));
        Ok(fd)
    }

    /// Removes `name` in `dir` with everything under it. Every cached resolution may now be
    /// wrong (a directory on its path may be gone), so the cache goes too.
    fn remove(&mut self, dir: BorrowedFd<'_>, name: &str, path: &str) -> Result<()> {
        self.parent_cache = None;
        fsutil::remove_all_at(dir, name).map_err(|err| self.err("remove", path, err))
    }

    /// Makes `name` in `dir` with `make`; where the name is taken, removes what is there
    /// (with its subtree) and makes it again. Creating first saves a stat per entry.
    fn create<T>(
        &mut self,
        dir: &OwnedFd,
        name: &str,
        path: &str,
        what: &'static str,
        make: impl Fn() -> io::Result<T>,
    ) -> Result<T> {
        match make() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.remove(dir.as_fd(), name, path)?;
                make().map_err(|err| self.err(what, path, err))
            }
            r => r.map_err(|err| self.err(what, path, err)),
        }
    }

    fn put(
        &mut self,
        e: &Entry,
        src: BorrowedFd<'_>,
        src_cache: &mut Option<(String, Arc<OwnedFd>)>,
        layer: &StoredLayer,
    ) -> Result<()> {
        let Some((parent, name)) = parent_and_name(&e.path) else {
            self.root_meta = e.meta.clone();
            return Ok(());
        };
        // Shared with the cache, not duplicated: one fewer syscall pair per entry.
        let dir = self.parent_dir(parent)?;
        if let EntryKind::HardLink { target } = &e.kind {
            let (tparent, tname) = parent_and_name(target).unwrap_or(("", target));
            let tdir = self
                .resolve(tparent, OnMissing::Fail)?
                .ok_or_else(|| Error::Model {
                    path: e.path.clone(),
                    reason: format!("hard link target {target:?} does not exist"),
                })?;
            // As the model: the target must be this layer's own entry, not what a lower
            // layer holds where the name now resolves.
            if !lstat_at(tdir.as_fd(), tname).is_ok_and(|st| self.own.contains(&st.st_ino)) {
                return Err(Error::Model {
                    path: e.path.clone(),
                    reason: format!("hard link target {target:?} is no entry of this layer here"),
                });
            }
            let same = lstat_at(tdir.as_fd(), tname)
                .ok()
                .zip(lstat_at(dir.as_fd(), name).ok())
                .is_some_and(|(a, b)| a.st_ino == b.st_ino && a.st_dev == b.st_dev);
            let same_dir = rfs::fstat(&tdir)
                .ok()
                .zip(rfs::fstat(&dir).ok())
                .is_some_and(|(a, b)| a.st_ino == b.st_ino && a.st_dev == b.st_dev);
            if same && !(same_dir && tname == name) {
                return Ok(()); // the name is already this link
            }
            if same {
                // As the model: the link resolves to its own target.
                return Err(Error::Model {
                    path: e.path.clone(),
                    reason: format!("hard link resolves to its own target {target:?}"),
                });
            }
            #[cfg(feature = "mutants")]
            if crate::mutants::active(crate::mutants::Mutant::SplitHardLinks) {
                let _ = fsutil::remove_all_at(dir.as_fd(), name);
                return split_link_mutant(tdir.as_fd(), tname, dir.as_fd(), name)
                    .map_err(|err| self.err("copy", &e.path, err));
            }
            let made = self.create(&dir, name, &e.path, "link", || {
                rfs::linkat(tdir.as_fd(), tname, dir.as_fd(), name, AtFlags::empty()).map_err(ioe)
            });
            if made.is_ok() {
                self.note_own(dir.as_fd(), name, &e.path)?;
            }
            return made.map_err(|err| match err.raw_os_error() {
                // The name it replaced held the target: gone with it (the model refuses too).
                Some(libc::ENOENT) => Error::Model {
                    path: e.path.clone(),
                    reason: format!("hard link target {target:?} lies under the entry it replaces"),
                },
                _ => err,
            });
        }
        let Some(kind) = e.kind.to_kind() else {
            return Ok(());
        };
        match &kind {
            Kind::Dir => {
                match rfs::mkdirat(dir.as_fd(), name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::EXIST) => {
                        let st = lstat_at(dir.as_fd(), name)
                            .map_err(|err| self.err("stat", &e.path, err))?;
                        if file_type(&st) == FileType::Directory {
                            // Directory over directory: the attributes are replaced, xattrs
                            // included, the children stay.
                            fsutil::drop_other_xattrs(dir.as_fd(), name, &e.meta.xattrs)
                                .map_err(|err| self.err("remove xattrs", &e.path, err))?;
                        } else {
                            self.remove(dir.as_fd(), name, &e.path)?;
                            rfs::mkdirat(dir.as_fd(), name, Mode::from_raw_mode(0o700))
                                .map_err(|err| self.err("mkdir", &e.path, ioe(err)))?;
                        }
                    }
                    Err(err) => return Err(self.err("mkdir", &e.path, ioe(err))),
                }
                let m = Meta {
                    mtime: Timespec::default(),
                    ..e.meta.clone()
                };
                fsutil::set_meta_at(dir.as_fd(), name, &kind, &m)
                    .map_err(|err| self.err("set metadata", &e.path, err))?;
                self.note_dir(dir.as_fd(), name, &e.path, e.meta.mtime)?;
            }
            Kind::File(data) => {
                let src_dir = src_dir(src, src_cache, &e.path)
                    .map_err(|err| Error::io("open", layer.fs().join(&e.path), err))?;
                // Made with its permission bits (the umask may still take some): when owner
                // and mode come out right, the copy worker skips chown and chmod.
                let dst = self.create(&dir, name, &e.path, "create", || {
                    fsutil::create_file_mode_at(dir.as_fd(), name, e.meta.mode & 0o777)
                })?;
                let st = rfs::fstat(&dst).map_err(|err| self.err("stat", &e.path, ioe(err)))?;
                self.own.insert(st.st_ino);
                self.stats.files += 1;
                self.stats.bytes += data.size;
                let layer_fs = match &self.layer_fs {
                    Some(p) => Arc::clone(p),
                    None => {
                        let p: Arc<Path> = Arc::from(layer.fs());
                        self.layer_fs = Some(Arc::clone(&p));
                        p
                    }
                };
                let job = DataJob {
                    src_dir,
                    layer_fs,
                    dst,
                    size: data.size,
                    meta: e.meta.clone(),
                    made: (st.st_uid, st.st_gid, st.st_mode & 0o7777),
                    rel: e.path.clone(),
                    dest: Arc::clone(&self.dest_arc),
                };
                if self.shadowed.contains(&e.path) {
                    self.deferred.push_back(job);
                } else {
                    self.queue(job)?;
                }
            }
            Kind::Symlink { target } => {
                self.create(&dir, name, &e.path, "symlink", || {
                    rfs::symlinkat(target.as_str(), dir.as_fd(), name).map_err(ioe)
                })?;
                self.note_own(dir.as_fd(), name, &e.path)?;
                fsutil::set_meta_at(dir.as_fd(), name, &kind, &e.meta)
                    .map_err(|err| self.err("set metadata", &e.path, err))?;
                self.stats.other += 1;
            }
            Kind::CharDev { .. } | Kind::BlockDev { .. } | Kind::Fifo => {
                self.create(&dir, name, &e.path, "mknod", || {
                    fsutil::mknod_at(dir.as_fd(), name, &kind)
                })?;
                self.note_own(dir.as_fd(), name, &e.path)?;
                fsutil::set_meta_at(dir.as_fd(), name, &kind, &e.meta)
                    .map_err(|err| self.err("set metadata", &e.path, err))?;
                self.stats.other += 1;
            }
        }
        Ok(())
    }

    /// Notes `name` in `dir` as a non-directory this layer made.
    fn note_own(&mut self, dir: BorrowedFd<'_>, name: &str, path: &str) -> Result<()> {
        let st = lstat_at(dir, name).map_err(|err| self.err("stat", path, err))?;
        self.own.insert(st.st_ino);
        Ok(())
    }

    /// Sets the final mtime of every noted directory, deepest first (the others keep theirs:
    /// nothing changed in them), and records directory identities.
    fn finish_dirs(
        &self,
        dir: BorrowedFd<'_>,
        rel: &str,
        out: &mut BTreeMap<RelPath, DirIdentity>,
    ) -> Result<()> {
        debug_assert!(rel.is_empty());
        // An explicit stack, not recursion: any depth the kernel allows works.
        fsutil::walk_tree(
            dir,
            |step| match step {
                Step::Entry {
                    dir,
                    path,
                    name,
                    ft,
                } => {
                    if ft.is_some_and(|t| t != FileType::Directory) {
                        return Ok(Next::Skip);
                    }
                    let st = lstat_at(dir, name).map_err(|e| self.err("stat", path, e))?;
                    Ok(if file_type(&st) == FileType::Directory {
                        Next::Descend
                    } else {
                        Next::Skip
                    })
                }
                Step::Leave { dir, path, name } => {
                    let st = lstat_at(dir, name).map_err(|e| self.err("stat", path, e))?;
                    if let Some(mtime) = self.dir_mtimes.get(&st.st_ino).copied() {
                        fsutil::set_mtime_at(dir, name, mtime)
                            .map_err(|e| self.err("set mtime", path, e))?;
                    }
                    let id =
                        fsutil::dir_identity(dir, name).map_err(|e| self.err("stat", path, e))?;
                    out.insert(path.to_string(), id);
                    Ok(Next::Skip)
                }
            },
            |op, path, e| self.err(op, path, e),
        )
    }
}

/// The tree being materialized as a namespace for the one resolution rule.
impl Lookup for Materializer {
    type Dir = OwnedFd;
    type Error = Error;

    fn root(&mut self) -> Result<OwnedFd> {
        self.root.try_clone().map_err(|e| self.err("dup", "", e))
    }

    fn node(&mut self, dir: &OwnedFd, at: &str, name: &str, written: Option<&str>) -> Result<Node> {
        let next = join(at, name);
        let st = match lstat_at(dir.as_fd(), name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Node::Missing),
            Err(e) => return Err(self.err("stat", &next, e)),
        };
        // As the model: a deletion's implied parents never replace the layer's own entries.
        if self.mode == OnMissing::CreateUntilSymlink
            && file_type(&st) != FileType::Directory
            && self.own.contains(&st.st_ino)
        {
            return Ok(Node::Keep);
        }
        Ok(match file_type(&st) {
            FileType::Directory => Node::Dir,
            // This layer's own directory replaces a lower symlink at its path.
            FileType::Symlink if written.is_some_and(|w| self.explicit_dirs.contains(w)) => {
                Node::Other
            }
            FileType::Symlink => Node::Symlink(
                fsutil::read_link(dir.as_fd(), name).map_err(|e| self.err("readlink", &next, e))?,
            ),
            _ => Node::Other,
        })
    }

    fn enter(&mut self, dir: &OwnedFd, at: &str, name: &str) -> Result<OwnedFd> {
        open_dir_beneath(dir.as_fd(), name).map_err(|e| self.err("open", &join(at, name), e))
    }

    fn make_dir(&mut self, dir: &OwnedFd, at: &str, name: &str, replace: bool) -> Result<()> {
        let next = join(at, name);
        if replace
            && let Ok(st) = lstat_at(dir.as_fd(), name)
            && self.own.contains(&st.st_ino)
        {
            // As the model: the layer writes through its own file, reached by a lower symlink.
            return Err(Error::Model {
                path: next,
                reason: "an entry of this layer lies under it, reached through a lower symlink, but the layer itself holds a non-directory here".into(),
            });
        }
        self.keep_mtime(dir.as_fd(), at)?;
        if replace {
            self.parent_cache = None;
            fsutil::remove_all_at(dir.as_fd(), name).map_err(|e| self.err("remove", &next, e))?;
        }
        self.mkdir_implied(dir.as_fd(), name, &next)
    }
}

/// The directory of a layer's source file, reusing the previous entry's when it is the same.
fn src_dir(
    src: BorrowedFd<'_>,
    cache: &mut Option<(String, Arc<OwnedFd>)>,
    path: &str,
) -> io::Result<Arc<OwnedFd>> {
    let (parent, _) = parent_and_name(path).unwrap_or(("", path));
    if let Some((p, fd)) = cache
        && p == parent
    {
        return Ok(Arc::clone(fd));
    }
    let fd = Arc::new(open_dir_beneath(src, parent)?);
    *cache = Some((parent.to_string(), Arc::clone(&fd)));
    Ok(fd)
}

impl Driver for Copy {
    fn name(&self) -> &'static str {
        "copy"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::OCI
    }

    fn availability(&self) -> std::result::Result<(), String> {
        need_mount_privilege()
    }

    fn mount(&self, view: &MountView) -> Result<()> {
        let merged = Self::merged(view);
        std::fs::create_dir(&merged).map_err(|e| Error::io("create", &merged, e))?;
        let (dirs, _) = self.materialize(&view.layers, &merged)?;
        write_json(&Self::dirs_record(view), &dirs)?;
        // The merged tree lives in the store; the target shows it through a bind mount.
        nix::mount::mount(
            Some(&merged),
            &view.target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            driver_err(
                "copy",
                format!(
                    "bind {} on {}: {e}",
                    merged.display(),
                    view.target.display()
                ),
            )
        })
    }

    fn unmount(&self, view: &MountView) -> Result<()> {
        umount(&view.target)?;
        // The merged tree is as big as the image: removed here on the cores there are (the
        // caller's removal of the scratch directory finds it gone, or removes what is left
        // and reports what failed).
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let _ = fsutil::remove_tree_parallel(&Self::merged(view), threads);
        Ok(())
    }

    fn commit(&self, view: &MountView, opts: &CommitOptions, out: &mut dyn Write) -> Result<()> {
        let merged = Self::merged(view);
        let mut layers = Vec::with_capacity(view.layers.len());
        for l in &view.layers {
            layers.push(l.changes()?);
        }
        let lower = model::apply(&layers)?;
        let dirs: BTreeMap<RelPath, DirIdentity> = read_json(&Self::dirs_record(view))?;
        let items = crate::diff::tree_diff(&lower, &view.root_meta(), &dirs, &merged)?;
        commit::write(items, &merged, opts, out)
    }
}

/// Mutant (d): a hard link made as a separate copy of its target.
#[cfg(feature = "mutants")]
fn split_link_mutant(
    tdir: BorrowedFd<'_>,
    tname: &str,
    dir: BorrowedFd<'_>,
    name: &str,
) -> io::Result<()> {
    let src = open_file_at(tdir, tname)?;
    let st = lstat_at(tdir, tname)?;
    let dst = fsutil::create_file_at(dir, name)?;
    fsutil::copy_data(&src, &dst, st.st_size as u64, false)?;
    let meta = Meta {
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: fsutil::mtime_of(&st),
        xattrs: fsutil::read_xattrs(tdir, tname)?,
    };
    fsutil::set_meta_fd(dst.as_fd(), &meta)
}

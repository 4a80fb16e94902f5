//! Running the catalog: each case in its own thread, private mount namespace and directory on
//! a tmpfs, every driver in turn; each (driver, case) gets a status.
//!
//! For one driver and case: the layers are imported, mounted, the actions done with real
//! syscalls, the view scanned, the writable layer committed and imported back. Two questions:
//! 1. Does the driver do what the model predicts under its declared semantics (fresh view,
//!    each action's result, the view after, the commit read back onto the layers, the lower
//!    layers untouched)? No: **fail**, with the differences.
//! 2. Does the view meet the case's own (OCI) expectations: action results, view paths,
//!    commit entries? Yes: **pass**. No, but a declared divergence is in play (the driver's
//!    model differs from the OCI model for this case, and question 1 passed): **declared**.
//!    Otherwise **fail**.

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_reports::record::Status;
use strata_runtime::commit::CommitOptions;
use strata_runtime::conformance::{self, Checked, Finding, Options, switches};
use strata_runtime::container::InitLayer;
use strata_runtime::container::init_layer::FILES as INIT_FILES;
use strata_runtime::driver::Driver;
use strata_runtime::loopfs::{self, FsType, LoopFs};
use strata_runtime::model::{
    self, Change, ChangeSet, CompareOptions, Entry, EntryKind, FileData, Meta, MtimeCompare,
    Semantics, Tree,
};
use strata_runtime::store::{Store, StoredLayer};
use strata_runtime::{fsutil, ops_exec, sandbox};

use super::case::Case;
use super::expect::{self, Got, Miss, Show, Sim};
use super::tarlist;

/// The hostname of the init layer in init-layer cases.
pub const INIT_HOSTNAME: &str = "strata-check";
/// The resolv.conf of the init layer in init-layer cases.
pub const INIT_RESOLV: &[u8] = b"nameserver 192.0.2.53\n";

/// The filesystem every case's store lives on (type, mount options).
pub const WORKSPACE_FS: (&str, &str) = ("tmpfs", "size=4g,mode=0755");

/// One cell of the matrix.
#[derive(Clone, Debug)]
pub struct Cell {
    pub driver: String,
    pub case: String,
    pub status: Status,
    pub detail: Option<String>,
}

impl Cell {
    fn new(driver: &str, case: &str, status: Status, detail: Option<String>) -> Cell {
        Cell {
            driver: driver.to_string(),
            case: case.to_string(),
            status,
            detail,
        }
    }
}

/// A driver as the check sees it: runnable, or skipped with the reason.
#[derive(Clone)]
pub struct Lane {
    pub name: String,
    pub driver: &'static dyn Driver,
    pub skip: Option<String>,
    /// Its store must be on btrfs (subvolumes, snapshots): the case's store gets a
    /// directory of a loop-mounted btrfs at `ROOT/btrfs`.
    pub btrfs_store: bool,
}

/// Which drivers can run here, and why the others cannot.
pub fn lanes(drivers: &[&'static dyn Driver]) -> Vec<Lane> {
    drivers
        .iter()
        .map(|d| {
            let btrfs_store = d.name() == "btrfs";
            let skip = if !sandbox::is_root() {
                Some("needs root to mount (run strata check as root)".to_string())
            } else if let Err(why) = d.availability() {
                Some(format!("unavailable: {why}"))
            } else if btrfs_store {
                loopfs::check(FsType::Btrfs)
                    .err()
                    .map(|why| format!("needs a btrfs store: {why}"))
            } else {
                None
            };
            Lane {
                name: d.name().to_string(),
                driver: *d,
                skip,
                btrfs_store,
            }
        })
        .collect()
}

/// The size of the loop-mounted btrfs the btrfs driver's stores live on (sparse).
const BTRFS_SIZE: u64 = 4 << 30;
/// The size of the loop-mounted ext4 the stores move to when the tmpfs takes no `user.*`
/// xattrs (sparse).
const STORES_SIZE: u64 = 4 << 30;

/// Where the cases run: a tmpfs in a temporary directory, in the process's own private mount
/// namespace; unmounted and removed on drop.
pub struct Workspace {
    dir: PathBuf,
    tmpfs: PathBuf,
    mounted: bool,
    /// A btrfs on a loop device (its image on the tmpfs), when a lane needs one.
    btrfs: Option<LoopFs>,
    /// Where the cases' stores go: the tmpfs, or an ext4 on a loop device (its image on the
    /// tmpfs) when the tmpfs takes no `user.*` xattrs (Linux before 6.6), which the cases'
    /// layers and actions set.
    stores: PathBuf,
    ext4: Option<LoopFs>,
}

/// Whether a file in `dir` takes a `user.*` xattr (tmpfs does from Linux 6.6).
fn takes_user_xattrs(dir: &Path) -> Result<bool, String> {
    let probe = dir.join(".strata-xattr-probe");
    std::fs::write(&probe, b"").map_err(|e| format!("{}: create: {e}", probe.display()))?;
    let r = rustix::fs::setxattr(
        &probe,
        "user.strata-probe",
        b"1",
        rustix::fs::XattrFlags::empty(),
    );
    let _ = std::fs::remove_file(&probe);
    match r {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::OPNOTSUPP) => Ok(false),
        Err(e) => Err(format!("{}: set a user.* xattr: {e}", probe.display())),
    }
}

impl Workspace {
    /// Enters a private mount namespace (this thread and the threads it starts) and mounts
    /// the tmpfs.
    pub fn new() -> Result<Workspace, String> {
        sandbox::private_mount_namespace().map_err(|e| e.to_string())?;
        let dir = std::env::temp_dir().join(format!(
            "strata-check-{}",
            strata_runtime::store::unique_id()
        ));
        let tmpfs = dir.join("tmpfs");
        std::fs::create_dir_all(&tmpfs).map_err(|e| format!("{}: create: {e}", tmpfs.display()))?;
        let mut w = Workspace {
            dir,
            stores: tmpfs.clone(),
            tmpfs,
            mounted: false,
            btrfs: None,
            ext4: None,
        };
        nix::mount::mount(
            Some("tmpfs"),
            &w.tmpfs,
            Some(WORKSPACE_FS.0),
            nix::mount::MsFlags::empty(),
            Some(WORKSPACE_FS.1),
        )
        .map_err(|e| format!("{}: mount tmpfs: {e}", w.tmpfs.display()))?;
        w.mounted = true;
        if !takes_user_xattrs(&w.tmpfs)? {
            let ext4 = LoopFs::in_dir(FsType::Ext4, &w.tmpfs, STORES_SIZE).map_err(|e| {
                format!(
                    "{}: the tmpfs takes no user.* xattrs (before Linux 6.6) and no ext4 for the \
                     stores instead: {e}",
                    w.tmpfs.display()
                )
            })?;
            w.stores = ext4.path().to_path_buf();
            w.ext4 = Some(ext4);
        }
        Ok(w)
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        drop(self.btrfs.take());
        drop(self.ext4.take());
        if self.mounted {
            let _ = nix::mount::umount2(&self.tmpfs, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs every case on every lane, `jobs` cases at a time; cells in case order, then lane
/// order. Without root (or a workspace) every cell is a skip with the reason. `on_workspace`
/// sees the stores' directory while it is mounted (to describe its filesystem).
pub fn run_all(
    cases: &[Case],
    lanes: &[Lane],
    jobs: usize,
    on_workspace: &mut dyn FnMut(&Path),
) -> Vec<Cell> {
    let runnable = lanes.iter().any(|l| l.skip.is_none());
    let ws = if runnable && !cases.is_empty() {
        match Workspace::new() {
            Ok(w) => Some(w),
            Err(e) => {
                let why = format!("no workspace: {e}");
                return all_skipped(cases, lanes, Some(&why));
            }
        }
    } else {
        None
    };
    let Some(mut ws) = ws else {
        return all_skipped(cases, lanes, None);
    };
    on_workspace(&ws.stores);
    // One btrfs for every case of the lanes that need it; each case gets a directory of it.
    let mut lanes = lanes.to_vec();
    if lanes.iter().any(|l| l.btrfs_store && l.skip.is_none()) {
        match LoopFs::in_dir(FsType::Btrfs, &ws.tmpfs, BTRFS_SIZE) {
            Ok(fs) => ws.btrfs = Some(fs),
            Err(e) => {
                for l in lanes.iter_mut().filter(|l| l.btrfs_store) {
                    l.skip = Some(format!("needs a btrfs store: {e}"));
                }
            }
        }
    }
    let lanes = &lanes[..];
    let btrfs = ws.btrfs.as_ref().map(|b| b.path().to_path_buf());
    let results: Mutex<Vec<Option<Vec<Cell>>>> = Mutex::new(vec![None; cases.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let dir = ws.stores.join(format!("case-{i}"));
                    let btrfs_dir = btrfs.as_ref().map(|b| b.join(format!("case-{i}")));
                    // A thread per case: its mount namespace ends with it.
                    let cells = std::thread::scope(|s2| {
                        s2.spawn(|| run_case(case, lanes, &dir, btrfs_dir.as_deref()))
                            .join()
                            .unwrap_or_else(|p| {
                                let why = panic_text(&p);
                                lanes
                                    .iter()
                                    .map(|l| {
                                        Cell::new(
                                            &l.name,
                                            &case.id,
                                            Status::Fail,
                                            Some(why.clone()),
                                        )
                                    })
                                    .collect()
                            })
                    });
                    let _ = fsutil::remove_tree(&dir);
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(cells);
                    }
                }
            });
        }
    });
    drop(ws);
    let results = results.into_inner().unwrap_or_default();
    results.into_iter().flatten().flatten().collect()
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "?".into());
    format!("the check panicked: {msg}")
}

fn all_skipped(cases: &[Case], lanes: &[Lane], why: Option<&str>) -> Vec<Cell> {
    let mut out = Vec::new();
    for c in cases {
        for l in lanes {
            let reason = why
                .map(str::to_string)
                .or_else(|| l.skip.clone())
                .unwrap_or_else(|| "not run".into());
            out.push(Cell::new(&l.name, &c.id, Status::Skip, Some(reason)));
        }
    }
    out
}

/// The init layer of init-layer cases, and its change set with the file bytes (so the model
/// can write to its files).
fn init_layer(store: &Store) -> Result<(StoredLayer, ChangeSet), String> {
    let init = InitLayer {
        hostname: INIT_HOSTNAME.to_string(),
        resolv_conf: INIT_RESOLV.to_vec(),
    };
    let stored = init.stored(store).map_err(|e| e.to_string())?;
    let mut changes = Vec::new();
    for d in strata_runtime::container::init_layer::DIRS {
        changes.push(Change::Entry(Entry {
            path: d.to_string(),
            kind: EntryKind::Dir,
            meta: Meta::mode(0o755),
        }));
    }
    for (p, data) in [
        ("etc/hostname", format!("{INIT_HOSTNAME}\n").into_bytes()),
        ("etc/hosts", init.hosts().into_bytes()),
        ("etc/resolv.conf", INIT_RESOLV.to_vec()),
    ] {
        changes.push(Change::Entry(Entry {
            path: p.to_string(),
            kind: EntryKind::File(FileData::from_bytes(data)),
            meta: Meta::mode(0o644),
        }));
    }
    let ours = ChangeSet { changes };
    // The same entries as the stored layer's, or the model would check something else.
    let theirs = stored.changes().map_err(|e| e.to_string())?;
    let key = |c: &ChangeSet| -> Vec<String> {
        // JSON leaves out the bytes a change set read from the store does not keep.
        let mut v: Vec<String> = c
            .changes
            .iter()
            .map(|x| serde_json::to_string(x).unwrap_or_default())
            .collect();
        v.sort();
        v
    };
    if key(&ours) != key(&theirs) {
        return Err(
            "the init layer's entries are not the ones the check models (runtime changed?)".into(),
        );
    }
    Ok((stored, ours))
}

/// Runs one case on every lane, in a private mount namespace of this thread. `btrfs_dir`: a
/// directory to make on the workspace's btrfs for the lanes that need their store there.
fn run_case(case: &Case, lanes: &[Lane], dir: &Path, btrfs_dir: Option<&Path>) -> Vec<Cell> {
    let fail_all = |why: String| -> Vec<Cell> {
        lanes
            .iter()
            .map(|l| match &l.skip {
                Some(s) => Cell::new(&l.name, &case.id, Status::Skip, Some(s.clone())),
                None => Cell::new(&l.name, &case.id, Status::Fail, Some(why.clone())),
            })
            .collect()
    };
    if let Err(e) = sandbox::private_mount_namespace() {
        return fail_all(format!("private mount namespace: {e}"));
    }
    let store = match std::fs::create_dir_all(dir)
        .map_err(|e| format!("{}: create: {e}", dir.display()))
        .and_then(|()| Store::open(&dir.join("root")).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => return fail_all(e),
    };
    // Import.
    let mut layers = Vec::new();
    let mut import_err = None;
    for (i, l) in case.layers.iter().enumerate() {
        let r = l
            .to_tar()
            .map_err(|e| format!("layer {i}: tar: {e}"))
            .and_then(|tar| {
                store
                    .import_reader(&tar[..], Path::new(&format!("layer-{i}.tar")))
                    .map(|imp| imp.layer)
                    .map_err(|e| e.to_string())
            });
        match r {
            Ok(s) => layers.push(s),
            Err(e) => {
                import_err = Some(e);
                break;
            }
        }
    }
    match (&case.import_error, import_err) {
        (Some(want), Some(got)) => {
            let (status, detail) = if got.contains(want.as_str()) {
                (Status::Pass, None)
            } else {
                (
                    Status::Fail,
                    Some(format!("import failed, but not with {want:?}: {got}")),
                )
            };
            return lanes
                .iter()
                .map(|l| match &l.skip {
                    Some(s) => Cell::new(&l.name, &case.id, Status::Skip, Some(s.clone())),
                    None => Cell::new(&l.name, &case.id, status, detail.clone()),
                })
                .collect();
        }
        (Some(want), None) => {
            return fail_all(format!(
                "the layers imported, but the import must fail with {want:?}"
            ));
        }
        (None, Some(got)) => return fail_all(format!("import: {got}")),
        (None, None) => {}
    }
    let mut sets: Vec<ChangeSet> = case.layers.iter().map(|l| l.changeset()).collect();
    if case.init_layer {
        match init_layer(&store) {
            Ok((stored, set)) => {
                layers.push(stored);
                sets.push(set);
            }
            Err(e) => return fail_all(format!("init layer: {e}")),
        }
    }
    let oci = match expect::simulate(&sets, &Semantics::oci(), &case.steps) {
        Ok(s) => s,
        Err(e) => return fail_all(format!("catalog: the model refuses the layers: {e}")),
    };
    let contradictions = expect::self_check(case, &oci);
    if !contradictions.is_empty() {
        return fail_all(format!(
            "catalog: the OCI model contradicts {}:\n  {}",
            case.file,
            contradictions.join("\n  ")
        ));
    }
    let ctx = CaseCtx {
        case,
        store: &store,
        dir,
        layers: &layers,
        sets: &sets,
        oci: &oci,
    };
    let mut btrfs_bind: Option<PathBuf> = None;
    let mut cells: Vec<Cell> = lanes
        .iter()
        .map(|l| match &l.skip {
            Some(s) => Cell::new(&l.name, &case.id, Status::Skip, Some(s.clone())),
            None => {
                if l.btrfs_store && btrfs_bind.is_none() {
                    match bind_btrfs_store(&store, btrfs_dir) {
                        Ok(p) => btrfs_bind = Some(p),
                        Err(e) => {
                            return Cell::new(
                                &l.name,
                                &case.id,
                                Status::Skip,
                                Some(format!("needs a btrfs store: {e}")),
                            );
                        }
                    }
                }
                let (status, detail) = ctx.run_driver(l.driver);
                Cell::new(&l.name, &case.id, status, detail)
            }
        })
        .collect();
    if let Some(p) = btrfs_bind {
        let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    }
    // Whatever a driver left mounted is its failure; detach it so nothing stays.
    for (point, driver) in leftover_mounts(dir) {
        let _ = nix::mount::umount2(point.as_str(), nix::mount::MntFlags::MNT_DETACH);
        for c in cells.iter_mut().filter(|c| c.driver == driver) {
            let before = c
                .detail
                .take()
                .map(|d| format!("\n{d}"))
                .unwrap_or_default();
            c.status = Status::Fail;
            c.detail = Some(format!("left a mount behind at {point}{before}"));
        }
    }
    cells
}

/// Binds a fresh directory of the workspace's btrfs at `ROOT/btrfs` of `store`, where the
/// btrfs driver keeps its subvolumes; returns the mount point.
fn bind_btrfs_store(store: &Store, btrfs_dir: Option<&Path>) -> Result<PathBuf, String> {
    let src = btrfs_dir.ok_or("no loop-mounted btrfs in the workspace")?;
    let point = store.root().join("btrfs");
    for d in [src, point.as_path()] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: create: {e}", d.display()))?;
    }
    nix::mount::mount(
        Some(src),
        &point,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("bind {} on {}: {e}", src.display(), point.display()))?;
    Ok(point)
}

/// Mount points under `dir` in this thread's mount table, each with the driver whose target
/// (`mnt-DRIVER`) it is under.
fn leftover_mounts(dir: &Path) -> Vec<(String, String)> {
    let Ok(table) = sandbox::mountinfo() else {
        return Vec::new();
    };
    let prefix = format!("{}/", dir.display());
    let mut out: Vec<(String, String)> = table
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p.starts_with(&prefix))
        .map(|p| {
            let driver = p[prefix.len()..]
                .split('/')
                .next()
                .and_then(|c| c.strip_prefix("mnt-"))
                .unwrap_or("")
                .to_string();
            (p, driver)
        })
        .collect();
    // Deepest first, so a detach never hides another.
    out.sort_by_key(|b| std::cmp::Reverse(b.0.len()));
    out
}

struct CaseCtx<'a> {
    case: &'a Case,
    store: &'a Store,
    dir: &'a Path,
    layers: &'a [StoredLayer],
    sets: &'a [ChangeSet],
    oci: &'a Sim,
}

/// At most this many difference lines in a detail.
const MAX_LINES: usize = 40;

fn lines(title: &str, v: &[String]) -> String {
    let mut s = format!("{title}:");
    for l in v.iter().take(MAX_LINES) {
        s.push_str("\n  ");
        s.push_str(l);
    }
    if v.len() > MAX_LINES {
        s.push_str(&format!("\n  ... and {} more", v.len() - MAX_LINES));
    }
    s
}

impl CaseCtx<'_> {
    fn run_driver(&self, d: &'static dyn Driver) -> (Status, Option<String>) {
        let mut model_diffs = Vec::new();
        let mut expect_diffs = Vec::new();
        let view = match self.drive(d, &mut model_diffs, &mut expect_diffs) {
            Ok(v) => Some(v),
            Err(e) => {
                model_diffs.push(e);
                None
            }
        };
        let texts = |v: &[Miss]| v.iter().map(Miss::to_string).collect::<Vec<_>>();
        if !model_diffs.is_empty() {
            let mut detail = lines(
                &format!(
                    "differs from the model of {} (its declared semantics)",
                    d.name()
                ),
                &model_diffs,
            );
            if !expect_diffs.is_empty() {
                detail.push('\n');
                detail.push_str(&lines("and from the case", &texts(&expect_diffs)));
            }
            return (Status::Fail, Some(detail));
        }
        if expect_diffs.is_empty() {
            return (Status::Pass, None);
        }
        let Some(view) = view else {
            return (Status::Fail, Some(lines("no view", &texts(&expect_diffs))));
        };
        // The driver does what its model says. Each miss must be predicted by the OCI model
        // with one declared capability alone switched to the driver's value.
        let (named, unexplained) = self.explain(d, &expect_diffs, &view);
        if !unexplained.is_empty() {
            let mut detail = lines(
                "matches the driver's model but not the case, and no single declared \
                 capability explains",
                &texts(&unexplained),
            );
            if !named.is_empty() {
                let explained: Vec<Miss> = expect_diffs
                    .iter()
                    .filter(|m| !unexplained.iter().any(|u| u.text == m.text))
                    .cloned()
                    .collect();
                detail.push('\n');
                detail.push_str(&lines(
                    &format!("the rest is explained by {}", named.join("; ")),
                    &texts(&explained),
                ));
            }
            return (Status::Fail, Some(detail));
        }
        (
            Status::Declared,
            Some(lines(
                &format!("declared: {}", named.join("; ")),
                &texts(&expect_diffs),
            )),
        )
    }

    /// Which of `d`'s declared capabilities explain the misses (each named once, in
    /// declaration order), and the misses none explains. A capability explains a miss when
    /// the OCI model with only that capability switched predicts it: the same miss of an
    /// action or view check; for a commit check, the view's state at every path the miss is
    /// about, where the OCI model's differs.
    fn explain(
        &self,
        d: &'static dyn Driver,
        misses: &[Miss],
        view: &Tree,
    ) -> (Vec<String>, Vec<Miss>) {
        let runs: Vec<(String, Option<Sim>, Vec<Miss>)> = switches(&d.capabilities())
            .into_iter()
            .map(|sw| {
                let sim = expect::simulate(self.sets, &sw.semantics, &self.case.steps).ok();
                let ms = sim
                    .as_ref()
                    .map(|s| expect::misses(self.case, s))
                    .unwrap_or_default();
                (sw.describe(), sim, ms)
            })
            .collect();
        let mut used = vec![false; runs.len()];
        let mut unexplained = Vec::new();
        for m in misses {
            let mut any = false;
            for (i, (_, sim, ms)) in runs.iter().enumerate() {
                let Some(sim) = sim else { continue };
                let yes = match &m.got {
                    Got::Commit(paths) => {
                        !paths.is_empty()
                            && paths
                                .iter()
                                .all(|p| predicts_at(&sim.after, &self.oci.after, view, p))
                    }
                    _ => ms.iter().any(|x| m.predicted_by(x)),
                };
                if yes {
                    used[i] = true;
                    any = true;
                }
            }
            if !any {
                unexplained.push(m.clone());
            }
        }
        let named = runs
            .into_iter()
            .zip(used)
            .filter(|(_, u)| *u)
            .map(|((n, _, _), _)| n)
            .collect();
        (named, unexplained)
    }

    /// Runs the engine; pushes differences from the model and from the case; returns the
    /// view after the actions.
    fn drive(
        &self,
        d: &'static dyn Driver,
        model_diffs: &mut Vec<String>,
        expect_diffs: &mut Vec<Miss>,
    ) -> Result<Tree, String> {
        let name = d.name();
        let steps = &self.case.steps;
        let actions: Vec<_> = steps.iter().map(expect::action).collect();
        let main = self.dir.join(format!("mnt-{name}"));
        let target = |what: &str| -> Result<PathBuf, String> {
            if what != "main" {
                return Err(format!("strata check makes no {what} mount"));
            }
            std::fs::create_dir_all(&main)
                .map_err(|e| format!("{}: create: {e}", main.display()))?;
            Ok(main.clone())
        };
        let mut view_misses = Vec::new();
        let mut on_view = |view: &Tree, root: BorrowedFd<'_>| {
            let read = |p: &str| ops_exec::read(root, p).ok();
            view_misses = expect::check_view(&self.case.view, view, &read);
        };
        let opts = Options {
            commit: CommitOptions {
                exclude: if self.case.init_layer {
                    InitLayer::excluded()
                } else {
                    Vec::new()
                },
            },
            // Init-layer files are never committed.
            round_trip_ignore: if self.case.init_layer {
                INIT_FILES.iter().map(|s| s.to_string()).collect()
            } else {
                Vec::new()
            },
            isolation: false,
            remount: false,
            model_read: &expect::model_read,
            target: &target,
            on_view: Some(&mut on_view),
        };
        let checked = conformance::check(self.store, d, self.layers, self.sets, &actions, opts);
        let _ = std::fs::remove_dir(&main);
        let run = match checked? {
            Checked::Ran(run) => run,
            Checked::Refused { model, .. } => {
                return Err(format!("model of {name}: {model}"));
            }
        };
        for f in &run.findings {
            match f {
                Finding::Tree { stage, diffs, .. } => {
                    push_diffs(model_diffs, &stage.to_string(), diffs)
                }
                Finding::Action {
                    index, want, got, ..
                } => model_diffs.push(format!(
                    "action {index} ({}): the model says {}, the view did {}",
                    steps[*index],
                    want.show(),
                    got.show()
                )),
                Finding::Duplicates(d) => model_diffs.push(format!(
                    "commit: names more than once (X-13): {}",
                    d.join(", ")
                )),
            }
        }
        expect_diffs.extend(expect::check_steps(steps, &run.outs));
        expect_diffs.extend(view_misses);
        if let Some(c) = &self.case.commit {
            let items = tarlist::list(&run.tar)?;
            expect_diffs.extend(tarlist::check(c, &items));
        }
        Ok(run.view)
    }
}

/// True when `model` predicts `view`'s state at `path` (the subtree there, times aside: the
/// view's were checked against the driver's model) and the OCI model `oci` does not.
fn predicts_at(model: &Tree, oci: &Tree, view: &Tree, path: &str) -> bool {
    let at =
        |diffs: Vec<model::Mismatch>| diffs.into_iter().any(|m| model::is_within(&m.path, path));
    let mut no_times = expect::after_ops(Vec::new());
    no_times.mtime = MtimeCompare::Ignore;
    at(model.compare(oci, &CompareOptions::default())) && !at(model.compare(view, &no_times))
}

fn push_diffs(out: &mut Vec<String>, what: &str, diffs: &[model::Mismatch]) {
    out.extend(diffs.iter().map(|m| format!("{what}: {m}")));
}

//! The conformance loop, once: a driver's view of a layer stack checked against the model of
//! the stack under the driver's declared semantics. `strata check`, the property tests and
//! the runtime tests all run it.
//!
//! [`check`] mounts the stack, compares the fresh view with the model, does each action on
//! the view and on the model (the clock read around each bounds the times it stamps), scans
//! and compares the view after, commits the writable layer, imports the commit back and
//! compares the model of the layers plus the commit with the view, and checks that the lower
//! layers did not change. Optionally a second mount must see none of the first one's writes
//! (isolation) and a mount of the layers plus the commit must show the view (remount).
//!
//! Every difference from the model is a [`Finding`]; what the caller checks beyond the model
//! (a catalog case's own expectations) it checks on the [`Run`] it gets back.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use crate::commit::CommitOptions;
use crate::driver::Driver;
use crate::layer::tarread::TarReader;
use crate::model::ops::{Op, Outcome};
use crate::model::{self, ChangeSet, CompareOptions, Mismatch, MtimeCompare, RelPath, Tree};
use crate::store::{Store, StoredLayer};
use crate::{fsutil, mounts, ops_exec, scan};

use super::lower::scan_layer;
use super::round_trip::round_trip_diffs;
use super::times::Clocked;

/// One action on a view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// An operation ([`ops_exec::run`]).
    Op(Op),
    /// A read of a regular file, every symlink followed inside the root ([`ops_exec::read`]).
    Read(RelPath),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Op(op) => write!(f, "{op}"),
            Action::Read(p) => write!(f, "read {p}"),
        }
    }
}

/// What an action did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionOut {
    Op(Outcome),
    /// A read: the bytes (`None`: a file whose bytes the model does not hold), or the errno.
    Read(Result<Option<Vec<u8>>, i32>),
}

impl ActionOut {
    /// Same result, ignoring which path an operation touched and bytes the model lacks.
    pub fn same(&self, other: &ActionOut) -> bool {
        match (self, other) {
            (ActionOut::Op(Outcome::Done { .. }), ActionOut::Op(Outcome::Done { .. })) => true,
            (ActionOut::Read(Ok(None)), ActionOut::Read(Ok(_)))
            | (ActionOut::Read(Ok(_)), ActionOut::Read(Ok(None))) => true,
            _ => self == other,
        }
    }
}

/// Where in the loop a tree differs from what it must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The fresh view against the model.
    Fresh,
    /// The view after the actions against the model.
    After,
    /// A second mount, made before the actions, against the fresh model.
    Isolation,
    /// The model of the layers plus the commit against the view.
    RoundTrip,
    /// A mount of the layers plus the commit against the view.
    Remount,
    /// Lower layer `i` before and after.
    Lower(usize),
}

impl Stage {
    /// The property of the suite it checks (1 to 4).
    pub fn property(&self) -> u32 {
        match self {
            Stage::Fresh | Stage::After => 1,
            Stage::Lower(_) => 2,
            Stage::Isolation => 3,
            Stage::RoundTrip | Stage::Remount => 4,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Fresh => write!(f, "fresh view"),
            Stage::After => write!(f, "view after the actions"),
            Stage::Isolation => write!(f, "second mount (made before the actions)"),
            Stage::RoundTrip => write!(f, "commit round trip: model(layers + commit) vs the view"),
            Stage::Remount => write!(
                f,
                "commit round trip: a mount of layers + commit vs the view"
            ),
            Stage::Lower(i) => write!(f, "lower layer {i} changed"),
        }
    }
}

/// One way a driver's view differs from its model.
#[derive(Clone, Debug)]
pub enum Finding {
    /// A tree differs from what it must be (`expected` against `actual`).
    Tree {
        stage: Stage,
        diffs: Vec<Mismatch>,
        expected: Box<Tree>,
        actual: Box<Tree>,
    },
    /// Action `index` did not do what the model says.
    Action {
        index: usize,
        action: Action,
        want: ActionOut,
        got: ActionOut,
    },
    /// The commit names these paths more than once (OCI forbids it).
    Duplicates(Vec<String>),
}

impl Finding {
    /// The property of the suite it breaks (1 to 4).
    pub fn property(&self) -> u32 {
        match self {
            Finding::Tree { stage, .. } => stage.property(),
            Finding::Action { .. } => 1,
            Finding::Duplicates(_) => 4,
        }
    }
}

/// Reads a file of a model tree: its bytes (`None`: unknown to the model), or the errno.
pub type ModelRead<'a> = dyn Fn(&Tree, &str) -> Result<Option<Vec<u8>>, i32> + 'a;

/// Sees a view (its scan, its open root) while it is mounted.
pub type OnView<'a> = dyn for<'f> FnMut(&Tree, BorrowedFd<'f>) + 'a;

/// What to check besides the model, and how.
pub struct Options<'a> {
    /// How the commit is made (paths left out).
    pub commit: CommitOptions,
    /// Paths the round trip does not compare (what the commit leaves out by design).
    pub round_trip_ignore: Vec<RelPath>,
    /// A second mount, made before the actions, must see none of them.
    pub isolation: bool,
    /// A mount of the layers plus the commit must show the view.
    pub remount: bool,
    /// Reads a file in the model as [`ops_exec::read`] does on a view.
    pub model_read: &'a ModelRead<'a>,
    /// A fresh empty directory to mount on (`what`: `main`, `second`, `remount`).
    pub target: &'a dyn Fn(&str) -> Result<PathBuf, String>,
    /// Sees the view after the actions while it is mounted (the scan, the open root).
    pub on_view: Option<&'a mut OnView<'a>>,
}

/// What one driver did with a stack and actions.
#[derive(Clone, Debug)]
pub struct Run {
    /// Every difference from the model, in the order found.
    pub findings: Vec<Finding>,
    /// What the model says each action does, and what each did on the view.
    pub model_outs: Vec<ActionOut>,
    pub outs: Vec<ActionOut>,
    /// The model after the actions (its stamped times as the model last knew them).
    pub model: Tree,
    /// The view after the actions.
    pub view: Tree,
    /// The committed layer.
    pub tar: Vec<u8>,
}

/// The outcome of [`check`].
#[derive(Clone, Debug)]
pub enum Checked {
    /// The stack mounted and the loop ran.
    Ran(Box<Run>),
    /// The model refuses the stack under the driver's semantics, and so did the mount.
    Refused { model: String, mount: String },
}

/// The whole loop for driver `d` over `layers` (their change sets `sets`, lowest first) and
/// `actions`. `Err`: the loop could not go on (a mount, scan, commit or import failed; a
/// stack the model refuses mounted), one line.
pub fn check(
    store: &Store,
    d: &'static dyn Driver,
    layers: &[StoredLayer],
    sets: &[ChangeSet],
    actions: &[Action],
    opts: Options<'_>,
) -> Result<Checked, String> {
    let name = d.name();
    let sem = d.capabilities().semantics();
    let Options {
        commit,
        round_trip_ignore,
        isolation,
        remount,
        model_read,
        target,
        mut on_view,
    } = opts;
    let fresh_model = match model::apply_with(sets, &sem) {
        Ok(t) => t,
        Err(e) => {
            // A stack the model refuses must not mount either.
            let t = target("main")?;
            return match mounts::mount(store, d, layers.to_vec(), &t) {
                Ok(m) => {
                    let _ = m.unmount();
                    Err(format!("{name}: mounted a stack its model refuses ({e})"))
                }
                Err(why) => Ok(Checked::Refused {
                    model: e.to_string(),
                    mount: why.to_string(),
                }),
            };
        }
    };
    let scan_lowers = || -> Result<Vec<Tree>, String> {
        layers
            .iter()
            .map(|l| scan_layer(&l.fs()).map_err(|e| format!("scan lower layer: {e}")))
            .collect()
    };
    let lowers_before = scan_lowers()?;
    let view_of = |p: &std::path::Path| scan::scan(p).map_err(|e| format!("{name}: scan: {e}"));
    let mut findings = Vec::new();
    let mut tree_finding = |stage: Stage, expected: &Tree, actual: &Tree, diffs: Vec<Mismatch>| {
        if !diffs.is_empty() {
            findings.push(Finding::Tree {
                stage,
                diffs,
                expected: Box::new(expected.clone()),
                actual: Box::new(actual.clone()),
            });
        }
    };
    let mount = |what: &str, layers: Vec<StoredLayer>| {
        let t = target(what)?;
        mounts::mount(store, d, layers, &t).map_err(|e| format!("{name}: {what} mount: {e}"))
    };
    let a = mount("main", layers.to_vec())?;
    let b = if isolation {
        Some(mount("second", layers.to_vec())?)
    } else {
        None
    };
    // 1. The fresh view.
    let fresh = view_of(a.target())?;
    let all = CompareOptions::default();
    tree_finding(
        Stage::Fresh,
        &fresh_model,
        &fresh,
        fresh_model.compare(&fresh, &all),
    );
    // 2. The actions, on the view and on the model.
    let mut w = Clocked::new(fresh_model.clone(), sem);
    let root = fsutil::open_dir(a.target()).map_err(|e| format!("{name}: {e}"))?;
    let mut outs = Vec::new();
    let mut model_outs = Vec::new();
    let mut action_findings = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        let (want, got) = match action {
            Action::Op(op) => {
                let (want, got) = w.run(i, op, || ops_exec::run(root.as_fd(), op));
                (ActionOut::Op(want), ActionOut::Op(got))
            }
            Action::Read(p) => (
                ActionOut::Read(model_read(w.tree(), p)),
                ActionOut::Read(ops_exec::read(root.as_fd(), p).map(Some)),
            ),
        };
        if !want.same(&got) {
            action_findings.push(Finding::Action {
                index: i,
                action: action.clone(),
                want: want.clone(),
                got: got.clone(),
            });
        }
        outs.push(got);
        model_outs.push(want);
    }
    // 3. The view after.
    let view = view_of(a.target())?;
    let after = CompareOptions {
        mtime: MtimeCompare::All,
        ..all.clone()
    };
    let after_diffs = w.compare(&view, &after);
    if let Some(f) = on_view.as_mut() {
        f(&view, root.as_fd());
    }
    drop(root); // an open directory keeps the mount busy
    // 4. The commit, read back onto the layers, is the view.
    let mut tar = Vec::new();
    let committed = a.commit_with(&commit, &mut tar);
    let unmounted = a.unmount();
    committed.map_err(|e| format!("{name}: commit: {e}"))?;
    unmounted.map_err(|e| format!("{name}: unmount: {e}"))?;
    let dups = duplicates(&tar)?;
    let imported = store
        .import_reader(&tar[..], std::path::Path::new("commit.tar"))
        .map_err(|e| format!("{name}: the commit does not import: {e}"))?;
    let mut with_commit = sets.to_vec();
    with_commit.push(imported.layer.changes().map_err(|e| e.to_string())?);
    let remodel = model::apply_with(&with_commit, &sem)
        .map_err(|e| format!("{name}: model of the commit: {e}"))?;
    let rt_opts = CompareOptions {
        ignore: round_trip_ignore.clone(),
        ..after.clone()
    };
    let rt = round_trip_diffs(&remodel, &view, &tar, &rt_opts).map_err(|e| e.to_string())?;
    // 3. Isolation: the second mount saw none of it.
    let second = match b {
        Some(b) => {
            let seen = view_of(b.target())?;
            b.unmount()
                .map_err(|e| format!("{name}: unmount the second mount: {e}"))?;
            Some(seen)
        }
        None => None,
    };
    let again = if remount {
        let mut stack = layers.to_vec();
        stack.push(imported.layer.clone());
        let m = mount("remount", stack)?;
        let seen = view_of(m.target())?;
        m.unmount()
            .map_err(|e| format!("{name}: unmount the remount: {e}"))?;
        Some(seen)
    } else {
        None
    };
    // 2. The lower layers never change.
    let lowers_after = scan_lowers()?;
    tree_finding(Stage::After, w.tree(), &view, after_diffs);
    if let Some(seen) = &second {
        tree_finding(
            Stage::Isolation,
            &fresh_model,
            seen,
            fresh_model.compare(seen, &all),
        );
    }
    tree_finding(Stage::RoundTrip, &remodel, &view, rt);
    if let Some(seen) = &again {
        let diffs = round_trip_diffs(&view, seen, &tar, &rt_opts).map_err(|e| e.to_string())?;
        tree_finding(Stage::Remount, &view, seen, diffs);
    }
    for (i, (x, y)) in lowers_before.iter().zip(&lowers_after).enumerate() {
        tree_finding(Stage::Lower(i), x, y, x.compare(y, &all));
    }
    // Actions first after the fresh view: they explain what follows.
    let fresh_first = findings
        .iter()
        .position(|f| {
            !matches!(
                f,
                Finding::Tree {
                    stage: Stage::Fresh,
                    ..
                }
            )
        })
        .unwrap_or(findings.len());
    findings.splice(fresh_first..fresh_first, action_findings);
    if !dups.is_empty() {
        findings.push(Finding::Duplicates(dups));
    }
    Ok(Checked::Ran(Box::new(Run {
        findings,
        model_outs,
        outs,
        model: w.tree().clone(),
        view,
        tar,
    })))
}

/// Names a layer tar holds more than once (a directory's trailing `/` aside).
pub fn duplicates(tar: &[u8]) -> Result<Vec<String>, String> {
    let mut r = TarReader::new(tar);
    let mut seen = std::collections::BTreeSet::new();
    let mut dup = std::collections::BTreeSet::new();
    while let Some(m) = r.next_member().map_err(|e| format!("commit tar: {e}"))? {
        let n = String::from_utf8_lossy(&m.name)
            .trim_end_matches('/')
            .to_string();
        if !seen.insert(n.clone()) {
            dup.insert(n);
        }
    }
    Ok(dup.into_iter().collect())
}

//! The properties. Each takes a generated stack and operation sequence, runs it on every
//! available driver with real mounts and syscalls, and returns the first violation as a
//! readable message.
//!
//! 1. merged view == model (under the driver's declared semantics), before and after the
//!    operations, each operation failing exactly when and how the model says;
//! 2. lower layers never change;
//! 3. isolation: a second mount of the stack sees none of the first one's writes;
//! 4. commit round trip: model(lower layers + committed tar) == the view after the
//!    operations, and so is a fresh mount of the lower layers plus the committed layer;
//! 5. driver equivalence: where the models of two drivers agree, their views agree.

use std::fmt;
use std::os::fd::AsFd;

use strata_runtime::conformance::{Clocked, round_trip_diffs, scan_layer};
use strata_runtime::driver::{self, Driver};
use strata_runtime::model::ops::{Op, Outcome};
use strata_runtime::model::{self, ChangeSet, CompareOptions, Mismatch, MtimeCompare, Tree};
use strata_runtime::mounts;
use strata_runtime::ops_exec as exec;

use crate::stack::Stack;
use crate::world::{World, open_root, scan};

/// An operation sequence that prints one operation a line.
#[derive(Clone, PartialEq, Eq)]
pub struct Ops(pub Vec<Op>);

impl fmt::Debug for Ops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Operations:")?;
        for (i, op) in self.0.iter().enumerate() {
            writeln!(f, "  {i}: {op}")?;
        }
        Ok(())
    }
}

/// Every driver available on this machine, for the store of `w`; only those named in
/// `STRATA_DRIVERS` (`overlay,copy`) when it is set.
pub fn drivers(w: &World) -> Vec<&'static dyn Driver> {
    let wanted: Option<Vec<String>> = std::env::var("STRATA_DRIVERS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    if let Some(names) = &wanted {
        let known: Vec<&str> = driver::all().iter().map(|d| d.name()).collect();
        if let Some(bad) = names.iter().find(|n| !known.contains(&n.as_str())) {
            panic!(
                "STRATA_DRIVERS: unknown driver {bad:?} (known: {})",
                known.join(", ")
            );
        }
    }
    driver::all()
        .into_iter()
        .filter(|d| {
            wanted
                .as_ref()
                .is_none_or(|w| w.iter().any(|n| n == d.name()))
        })
        .filter(|d| d.availability_in(w.store.root()).is_ok())
        .collect()
}

/// Compares a view with its expected tree; the error lists every difference.
pub fn same_tree(
    what: &str,
    expected: &Tree,
    actual: &Tree,
    opts: &CompareOptions,
) -> Result<(), String> {
    no_diffs(what, expected, actual, &expected.compare(actual, opts))
}

/// Ok when `diffs` (between `expected` and `actual`) is empty; else the error lists them.
pub fn no_diffs(
    what: &str,
    expected: &Tree,
    actual: &Tree,
    diffs: &[Mismatch],
) -> Result<(), String> {
    if diffs.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{what}:\n  {}\nexpected:\n{}actual:\n{}",
        diffs
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n  "),
        expected.render(),
        actual.render()
    ))
}

fn same_outcome(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Done { .. }, Outcome::Done { .. }) => true,
        _ => a == b,
    }
}

/// Views after operations: everything, every mtime included (an operation's stamps are
/// checked against its clock window by [`Clocked::compare`]).
const AFTER_OPS: CompareOptions = CompareOptions {
    mtime: MtimeCompare::All,
    xattrs: true,
    hardlinks: true,
    ignore: Vec::new(),
};

/// Two drivers' views: the times operations stamped differ from mount to mount (each view's
/// were checked against its own clock windows), the rest must not.
const NO_TIMES: CompareOptions = CompareOptions {
    mtime: MtimeCompare::Ignore,
    xattrs: true,
    hardlinks: true,
    ignore: Vec::new(),
};

/// What one driver did with a case.
pub struct DriverRun {
    pub driver: &'static str,
    /// The model after the operations (None when the stack does not apply).
    pub model: Option<Tree>,
    /// The real view after the operations.
    pub view: Option<Tree>,
    /// What each operation did, by the model and for real.
    pub expected_outcomes: Vec<Outcome>,
    pub outcomes: Vec<Outcome>,
}

/// Properties 1 to 5 for one case on every driver.
pub fn union_properties(w: &World, stack: &Stack, ops: &Ops) -> Result<(), String> {
    let layers = w.import(stack)?;
    let sets: Vec<ChangeSet> = stack.fixtures().iter().map(|l| l.changeset()).collect();
    let lowers_before: Vec<Tree> = layers
        .iter()
        .map(|l| scan_layer(&l.fs()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut runs = Vec::new();
    for d in drivers(w) {
        runs.push(run_driver(w, d, &layers, &sets, ops)?);
    }
    // 2. The lower layers never change.
    for (i, (l, before)) in layers.iter().zip(&lowers_before).enumerate() {
        same_tree(
            &format!("property 2: layer {i} changed"),
            before,
            &scan_layer(&l.fs()).map_err(|e| e.to_string())?,
            &CompareOptions::default(),
        )?;
    }
    // 5. Where the models agree (no declared divergence came into play), the views agree.
    for pair in runs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if let (Some(ma), Some(mb), Some(va), Some(vb)) = (&a.model, &b.model, &a.view, &b.view)
            && ma.compare(mb, &AFTER_OPS).is_empty()
        {
            same_tree(
                &format!(
                    "property 5: {} and {} differ where their models agree",
                    a.driver, b.driver
                ),
                va,
                vb,
                &NO_TIMES,
            )?;
            let expected = a.expected_outcomes.iter().zip(&b.expected_outcomes);
            for (i, ((ea, eb), (oa, ob))) in
                expected.zip(a.outcomes.iter().zip(&b.outcomes)).enumerate()
            {
                // A declared divergence (EXDEV) may make the same operation fail differently.
                if same_outcome(ea, eb) && !same_outcome(oa, ob) {
                    return Err(format!(
                        "property 5: op {i}: {} gave {oa:?}, {} gave {ob:?}",
                        a.driver, b.driver
                    ));
                }
            }
        }
    }
    Ok(())
}

fn run_driver(
    w: &World,
    d: &'static dyn Driver,
    layers: &[strata_runtime::store::StoredLayer],
    sets: &[ChangeSet],
    ops: &Ops,
) -> Result<DriverRun, String> {
    let name = d.name();
    let sem = d.capabilities().semantics();
    let expected = match model::apply_with(sets, &sem) {
        Ok(t) => t,
        Err(e) => {
            // A stack the model cannot apply (a symlink loop under a new entry) must not mount.
            let r = mounts::mount(&w.store, d, layers.to_vec(), &w.target());
            return match r {
                Ok(_) => Err(format!("{name}: mounted a stack the model refuses ({e})")),
                Err(_) => Ok(DriverRun {
                    driver: name,
                    model: None,
                    view: None,
                    expected_outcomes: Vec::new(),
                    outcomes: Vec::new(),
                }),
            };
        }
    };
    let a = mounts::mount(&w.store, d, layers.to_vec(), &w.target())
        .map_err(|e| format!("{name}: mount: {e}"))?;
    let b = mounts::mount(&w.store, d, layers.to_vec(), &w.target())
        .map_err(|e| format!("{name}: second mount: {e}"))?;
    // 1. The fresh view is the model's.
    same_tree(
        &format!("property 1: {name}'s fresh view is not the model's"),
        &expected,
        &scan(a.target())?,
        &CompareOptions::default(),
    )?;
    // 1. Each operation does on the view what it does on the model.
    let mut model = Clocked::new(expected.clone(), sem);
    let root = open_root(a.target())?;
    let mut outcomes = Vec::new();
    let mut expected_outcomes = Vec::new();
    for (i, op) in ops.0.iter().enumerate() {
        let (want, got) = model.run(i, op, || exec::run(root.as_fd(), op));
        if !same_outcome(&want, &got) {
            return Err(format!(
                "property 1: {name}: op {i} ({op}): the model says {want:?}, the kernel did {got:?}"
            ));
        }
        outcomes.push(got);
        expected_outcomes.push(want);
    }
    drop(root); // an open directory would keep the mount busy
    let view = scan(a.target())?;
    no_diffs(
        &format!("property 1: {name}'s view after the operations is not the model's"),
        model.tree(),
        &view,
        &model.compare(&view, &AFTER_OPS),
    )?;
    // 3. The second mount saw none of it.
    same_tree(
        &format!("property 3: {name}'s second mount sees the first one's writes"),
        &expected,
        &scan(b.target())?,
        &CompareOptions::default(),
    )?;
    // 4. Commit round trip, through the model and through a fresh mount.
    let mut tar = Vec::new();
    a.commit_to(&mut tar)
        .map_err(|e| format!("{name}: commit: {e}"))?;
    let committed = w
        .import_tar(&tar)
        .map_err(|e| format!("{name}: the commit does not import: {e}"))?;
    let mut with_commit = sets.to_vec();
    with_commit.push(committed.changes().map_err(|e| e.to_string())?);
    let remodel = model::apply_with(&with_commit, &sem)
        .map_err(|e| format!("{name}: model of the commit: {e}"))?;
    let rt = |e: strata_runtime::Error| format!("{name}: {e}");
    no_diffs(
        &format!("property 4: {name}: model(lower layers + commit) is not the view"),
        &remodel,
        &view,
        &round_trip_diffs(&remodel, &view, &tar, &AFTER_OPS).map_err(rt)?,
    )?;
    let mut stack = layers.to_vec();
    stack.push(committed);
    let again = mounts::mount(&w.store, d, stack, &w.target())
        .map_err(|e| format!("{name}: remount with the commit: {e}"))?;
    let again_view = scan(again.target())?;
    no_diffs(
        &format!("property 4: {name}: a mount of lower layers + commit is not the view"),
        &view,
        &again_view,
        &round_trip_diffs(&view, &again_view, &tar, &AFTER_OPS).map_err(rt)?,
    )?;
    for m in [again, a, b] {
        m.unmount().map_err(|e| format!("{name}: unmount: {e}"))?;
    }
    Ok(DriverRun {
        driver: name,
        model: Some(model.tree().clone()),
        view: Some(view),
        expected_outcomes,
        outcomes,
    })
}

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
//! 5. driver equivalence: for every pair of drivers whose models agree, their views agree.

use std::fmt;

use strata_runtime::commit::CommitOptions;
use strata_runtime::conformance::{self, Action, ActionOut, Checked, Finding, Options};
use strata_runtime::driver::{self, Driver};
use strata_runtime::model::ops::{Op, Outcome};
use strata_runtime::model::{ChangeSet, CompareOptions, Mismatch, MtimeCompare, Tree};

use crate::stack::Stack;
use crate::world::World;

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
    // 1 to 4, for each driver (the lower layers are checked around each run).
    let mut runs = Vec::new();
    for d in drivers(w) {
        runs.push(run_driver(w, d, &layers, &sets, ops)?);
    }
    // 5. Where the models agree (no declared divergence came into play), the views agree:
    // every pair of drivers, not only neighbours (two drivers that each differ from a third
    // in a declared way may still have to agree with each other).
    for (a, b) in pairs(&runs) {
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

/// Every unordered pair of `v`'s items, each once.
pub fn pairs<T>(v: &[T]) -> impl Iterator<Item = (&T, &T)> {
    v.iter()
        .enumerate()
        .flat_map(move |(i, a)| v[i + 1..].iter().map(move |b| (a, b)))
}

fn run_driver(
    w: &World,
    d: &'static dyn Driver,
    layers: &[strata_runtime::store::StoredLayer],
    sets: &[ChangeSet],
    ops: &Ops,
) -> Result<DriverRun, String> {
    let name = d.name();
    let actions: Vec<Action> = ops.0.iter().cloned().map(Action::Op).collect();
    let target = |_: &str| -> Result<std::path::PathBuf, String> { Ok(w.target()) };
    // The properties make no reads: a read would be answered from the model's bytes.
    let model_read = |_: &Tree, _: &str| -> Result<Option<Vec<u8>>, i32> { Ok(None) };
    let opts = Options {
        commit: CommitOptions::default(),
        round_trip_ignore: Vec::new(),
        isolation: true,
        remount: true,
        model_read: &model_read,
        target: &target,
        on_view: None,
    };
    let run = match conformance::check(&w.store, d, layers, sets, &actions, opts)? {
        Checked::Ran(run) => run,
        // A stack the model cannot apply (a symlink loop under a new entry) did not mount.
        Checked::Refused { .. } => {
            return Ok(DriverRun {
                driver: name,
                model: None,
                view: None,
                expected_outcomes: Vec::new(),
                outcomes: Vec::new(),
            });
        }
    };
    if let Some(f) = run.findings.first() {
        return Err(describe(name, f));
    }
    let outcome = |o: &ActionOut| match o {
        ActionOut::Op(o) => o.clone(),
        ActionOut::Read(_) => Outcome::Skipped,
    };
    Ok(DriverRun {
        driver: name,
        model: Some(run.model.clone()),
        view: Some(run.view.clone()),
        expected_outcomes: run.model_outs.iter().map(outcome).collect(),
        outcomes: run.outs.iter().map(outcome).collect(),
    })
}

/// A finding of the engine as the property it breaks.
fn describe(name: &str, f: &Finding) -> String {
    let n = f.property();
    match f {
        Finding::Tree {
            stage,
            diffs,
            expected,
            actual,
        } => match no_diffs(
            &format!("property {n}: {name}: {stage}"),
            expected,
            actual,
            diffs,
        ) {
            Err(e) => e,
            Ok(()) => format!("property {n}: {name}: {stage}"),
        },
        Finding::Action {
            index,
            action,
            want,
            got,
        } => format!(
            "property {n}: {name}: op {index} ({action}): the model says {want:?}, the kernel did {got:?}"
        ),
        Finding::Duplicates(d) => format!(
            "property {n}: {name}: the commit names more than once: {}",
            d.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn property_5_compares_every_pair_of_drivers_once() {
        let names = ["overlay", "overlay2", "copy", "btrfs", "fuse-overlayfs"];
        let p: Vec<(&&str, &&str)> = super::pairs(&names).collect();
        assert_eq!(p.len(), 10);
        assert!(p.contains(&(&"overlay", &"fuse-overlayfs")));
        assert!(p.contains(&(&"overlay2", &"btrfs")));
        let mut seen: Vec<(&str, &str)> = p.iter().map(|(a, b)| (**a, **b)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 10);
        assert!(super::pairs(&names[..1]).next().is_none());
    }
}

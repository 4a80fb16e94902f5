//! What a case expects, checked against a tree and the outcomes of its steps; and the model's
//! run of a case (no I/O), under any semantics.

use strata_runtime::Digest;
use strata_runtime::conformance::Action;
use strata_runtime::model::ops::{Outcome, Writable};
use strata_runtime::model::{
    self, ChangeSet, CompareOptions, Kind, MtimeCompare, Semantics, Timespec, Tree,
};

use super::case::{Case, KindCheck, Step, ViewCheck, errno_name};
use super::show_bytes;

/// What one step did (the engine's [`ActionOut`]).
pub use strata_runtime::conformance::ActionOut as StepOut;

/// A step's result as a message shows it.
pub trait Show {
    /// Short text: `success`, `EXDEV`, `content "abc"`.
    fn show(&self) -> String;
}

impl Show for StepOut {
    fn show(&self) -> String {
        match self {
            StepOut::Op(Outcome::Done { .. }) => "success".into(),
            StepOut::Op(Outcome::Failed(e)) | StepOut::Read(Err(e)) => errno_name(*e),
            StepOut::Op(Outcome::Skipped) => "not run (a device or fifo)".into(),
            StepOut::Read(Ok(Some(b))) => format!("content {}", show_bytes(b)),
            StepOut::Read(Ok(None)) => "content (unknown to the model)".into(),
        }
    }
}

/// The engine's action for a case's step.
pub fn action(s: &Step) -> Action {
    match s {
        Step::Op { op, .. } => Action::Op(op.clone()),
        Step::Read { path, .. } => Action::Read(path.clone()),
    }
}

/// Compare options for views after operations: everything, every mtime included (the times
/// an operation stamps are checked against its clock window by
/// [`strata_runtime::conformance::Clocked::compare`]).
pub fn after_ops(ignore: Vec<String>) -> CompareOptions {
    CompareOptions {
        mtime: MtimeCompare::All,
        xattrs: true,
        hardlinks: true,
        ignore,
    }
}

/// The model's run of a case: each step's result, the view after.
#[derive(Clone, Debug)]
pub struct Sim {
    pub out: Vec<StepOut>,
    pub after: Tree,
}

/// Runs the case's steps on the model of `sets` under `sem`.
pub fn simulate(sets: &[ChangeSet], sem: &Semantics, steps: &[Step]) -> Result<Sim, String> {
    let fresh = model::apply_with(sets, sem).map_err(|e| e.to_string())?;
    let mut w = Writable::new(fresh, *sem);
    let out = steps.iter().map(|s| model_step(&mut w, s)).collect();
    Ok(Sim { out, after: w.tree })
}

/// One step on the model.
pub fn model_step(w: &mut Writable, s: &Step) -> StepOut {
    match s {
        Step::Op { op, .. } => StepOut::Op(w.apply(op)),
        Step::Read { path, .. } => StepOut::Read(model_read(&w.tree, path)),
    }
}

/// Reads `path` in the model as `ops_exec::read` does on a view: every symlink followed
/// inside the root.
pub fn model_read(t: &Tree, path: &str) -> Result<Option<Vec<u8>>, i32> {
    model::ops::read(t, path)
}

/// One way a run misses what the case expects: where, what was seen there, the message.
#[derive(Clone, Debug)]
pub struct Miss {
    /// Where: `action 3`, `etc/hosts: mode`, `commit entries`.
    pub key: String,
    /// What was seen there.
    pub got: Got,
    /// The message, one line.
    pub text: String,
}

/// What a miss saw, in a form two runs (a view and a model) can be compared by.
#[derive(Clone, Debug)]
pub enum Got {
    /// A step's result.
    Step(StepOut),
    /// A value as text.
    Text(String),
    /// A time the model cannot know (the time of a copy): any time.
    AnyTime,
    /// The commit differs at these paths of the view (none: it differs in order only).
    Commit(Vec<String>),
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Miss {
    /// True when `model`'s miss (the same check on a model's run) predicts this one: same
    /// place, same result. Commit misses are matched by the caller (they need the trees).
    pub fn predicted_by(&self, model: &Miss) -> bool {
        if self.key != model.key {
            return false;
        }
        match (&self.got, &model.got) {
            (Got::Step(a), Got::Step(b)) => a.same(b),
            (Got::Text(a), Got::Text(b)) => a == b,
            (Got::Text(_) | Got::AnyTime, Got::AnyTime) => true,
            _ => false,
        }
    }
}

/// Where the steps' results miss what the case says they must be.
pub fn check_steps(steps: &[Step], out: &[StepOut]) -> Vec<Miss> {
    let mut bad = Vec::new();
    for (i, (s, o)) in steps.iter().zip(out).enumerate() {
        let ok = match (s, o) {
            (Step::Op { expect: Ok(()), .. }, StepOut::Op(Outcome::Done { .. })) => true,
            (Step::Op { expect: Err(e), .. }, StepOut::Op(Outcome::Failed(g))) => e == g,
            (
                Step::Read {
                    expect: Ok(want), ..
                },
                StepOut::Read(Ok(got)),
            ) => got.as_ref().is_none_or(|g| g == want),
            (Step::Read { expect: Err(e), .. }, StepOut::Read(Err(g))) => e == g,
            _ => false,
        };
        if !ok {
            let want = match s {
                Step::Op { expect: Ok(()), .. } => "success".to_string(),
                Step::Op { expect: Err(e), .. } | Step::Read { expect: Err(e), .. } => {
                    errno_name(*e)
                }
                Step::Read { expect: Ok(c), .. } => format!("content {}", show_bytes(c)),
            };
            bad.push(Miss {
                key: format!("action {i}"),
                got: Got::Step(o.clone()),
                text: format!("action {i} ({s}): expected {want}, got {}", o.show()),
            });
        }
    }
    bad
}

/// Where `t` misses the case's view checks. `content` reads a file's bytes for messages.
pub fn check_view(
    checks: &[ViewCheck],
    t: &Tree,
    content: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Vec<Miss> {
    let mut bad = Vec::new();
    for c in checks {
        let shown = if c.path.is_empty() {
            "/"
        } else {
            c.path.as_str()
        };
        let node = t.get(&c.path);
        let Some(kind) = &c.kind else {
            if let Some(n) = node {
                bad.push(Miss {
                    key: format!("{shown}: kind"),
                    got: Got::Text(n.kind.name().into()),
                    text: format!("{shown}: expected absent, got a {}", n.kind.name()),
                });
            }
            continue;
        };
        let Some(n) = node else {
            let k = kind.as_ref().map_or("path", |k| k.name());
            bad.push(Miss {
                key: format!("{shown}: kind"),
                got: Got::Text("nothing".into()),
                text: format!("{shown}: expected a {k}, got nothing"),
            });
            continue;
        };
        let mut miss = |field: &str, want: String, got: String| {
            if want != got {
                bad.push(Miss {
                    key: format!("{shown}: {field}"),
                    got: if field == "mtime" && n.meta.mtime == Timespec::UNKNOWN {
                        Got::AnyTime
                    } else {
                        Got::Text(got.clone())
                    },
                    text: format!("{shown}: {field} expected {want} got {got}"),
                });
            }
        };
        if let Some(k) = kind {
            let got = n.kind.name();
            if k.name() != got {
                miss("kind", k.name().into(), got.into());
                continue;
            }
            match (k, &n.kind) {
                (KindCheck::Symlink(Some(want)), Kind::Symlink { target }) => {
                    miss("target", want.clone(), target.clone());
                }
                (KindCheck::CharDev(Some((a, b))), Kind::CharDev { major, minor })
                | (KindCheck::BlockDev(Some((a, b))), Kind::BlockDev { major, minor }) => {
                    miss("device", format!("{a}:{b}"), format!("{major}:{minor}"));
                }
                _ => {}
            }
        }
        if let Some(want) = &c.content {
            match &n.kind {
                Kind::File(d) => {
                    if d.size != want.len() as u64 || d.digest != Digest::of(want) {
                        let got = content(&c.path)
                            .map(|b| show_bytes(&b))
                            .unwrap_or_else(|| format!("{} bytes {:?}", d.size, d.digest));
                        miss("content", show_bytes(want), got);
                    }
                }
                other => miss("content", show_bytes(want), format!("a {}", other.name())),
            }
        }
        if let Some(m) = c.mode {
            miss("mode", format!("{m:04o}"), format!("{:04o}", n.meta.mode));
        }
        if let Some((u, g)) = c.owner {
            miss(
                "owner",
                format!("{u}:{g}"),
                format!("{}:{}", n.meta.uid, n.meta.gid),
            );
        }
        if let Some(m) = c.mtime {
            miss("mtime", m.to_string(), n.meta.mtime.to_string());
        }
        if let Some(x) = &c.xattrs {
            miss(
                "xattrs",
                super::tarlist::show_xattrs(x),
                super::tarlist::show_xattrs(&n.meta.xattrs),
            );
        }
        if let Some(want) = &c.children {
            let mut want = want.clone();
            want.sort();
            miss(
                "children",
                format!("[{}]", want.join(", ")),
                format!("[{}]", t.children(&c.path).join(", ")),
            );
        }
        if let Some(want) = &c.links {
            let mut want = want.clone();
            want.sort();
            miss(
                "hard links",
                format!("[{}]", want.join(", ")),
                format!("[{}]", t.links_of(&c.path).join(", ")),
            );
        }
    }
    bad
}

/// The case's own checks against the OCI model: a case the model contradicts is a catalog
/// (or model) error, reported on every driver.
pub fn self_check(case: &Case, oci: &Sim) -> Vec<String> {
    let mut bad = misses(case, oci);
    bad.retain(|m| !matches!(m.got, Got::Commit(_)));
    bad.iter().map(Miss::to_string).collect()
}

/// Where a model's run misses the case's action and view expectations (a model makes no
/// commit).
pub fn misses(case: &Case, sim: &Sim) -> Vec<Miss> {
    let mut bad = check_steps(&case.steps, &sim.out);
    let lookup = |p: &str| model_read(&sim.after, p).ok().flatten();
    bad.extend(check_view(&case.view, &sim.after, &lookup));
    bad
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_runtime::fixture::Layer;
    use strata_runtime::model::ops::errno;

    #[test]
    fn model_reads_follow_symlinks_inside_the_root() {
        let l = Layer::new()
            .dir("usr/lib")
            .file("usr/lib/x", "data")
            .symlink("lib", "/usr/lib")
            .symlink("up", "../../../lib/x")
            .symlink("loop", "loop");
        let t = model::apply(&[l.changeset()]).unwrap();
        assert_eq!(model_read(&t, "lib/x"), Ok(Some(b"data".to_vec())));
        assert_eq!(model_read(&t, "up"), Ok(Some(b"data".to_vec())));
        assert_eq!(model_read(&t, "usr/lib/x/y"), Err(errno::ENOTDIR));
        assert_eq!(model_read(&t, "usr"), Err(errno::EISDIR));
        assert_eq!(model_read(&t, "nope"), Err(errno::ENOENT));
        assert_eq!(model_read(&t, "loop"), Err(errno::ELOOP));
    }

    #[test]
    fn a_miss_is_predicted_only_by_the_same_miss_of_a_model() {
        let m = |key: &str, got: Got| Miss {
            key: key.into(),
            got,
            text: String::new(),
        };
        let exdev = m(
            "action 0",
            Got::Step(StepOut::Op(Outcome::Failed(errno::EXDEV))),
        );
        assert!(exdev.predicted_by(&exdev.clone()));
        let enoent = m(
            "action 0",
            Got::Step(StepOut::Op(Outcome::Failed(errno::ENOENT))),
        );
        assert!(!exdev.predicted_by(&enoent));
        assert!(!exdev.predicted_by(&m("action 1", exdev.got.clone())));
        let mode = m("d: mode", Got::Text("0755".into()));
        assert!(mode.predicted_by(&mode.clone()));
        assert!(!mode.predicted_by(&m("d: mode", Got::Text("0700".into()))));
        let time = m("d: mtime", Got::Text("5.000000000".into()));
        assert!(time.predicted_by(&m("d: mtime", Got::AnyTime)));
        assert!(!time.predicted_by(&m("d: mode", Got::AnyTime)));
        let commit = m("commit entries", Got::Commit(vec!["d".into()]));
        assert!(
            !commit.predicted_by(&commit.clone()),
            "commit misses need the trees"
        );
    }
}

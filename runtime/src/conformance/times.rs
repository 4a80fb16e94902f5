//! Times the model cannot know, bounded by the clock.
//!
//! An operation that creates, writes or changes the entries of a directory sets mtimes to the
//! kernel's "now"; the model cannot know that time, but it knows *which* inodes the operation
//! stamps, and the clock read before and after the operation bounds the value. [`Clocked`]
//! runs the model beside the real operations and records, per inode, the window of the last
//! operation that stamped it; [`Clocked::compare`] then checks every mtime of a view: exact
//! where the model knows it, inside the window where an operation stamped it. Nothing is
//! taken from the view under test.
//!
//! What stamps an inode, read off the model's tree before and after each operation:
//! - an inode made by it (at a path that did not exist: create, mkdir, symlink);
//! - the path the model says it touched (a write, a symlink copied up by a lossy driver);
//! - a directory whose entries changed (a name added, removed or pointing elsewhere);
//! - an mtime the model turned into [`Timespec::UNKNOWN`] (a driver's copy of a directory).
//!
//! An mtime the model itself changed to a known value (utimensat) is exact again.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::model::ops::{Op, Outcome, Writable};
use crate::model::{
    CompareOptions, Ino, Mismatch, MtimeCompare, RelPath, Semantics, Timespec, Tree, join,
};

/// Time ranges, each `(from, to)` inclusive.
pub type Ranges = Vec<(Timespec, Timespec)>;

/// The clock around one operation: every time the operation stamps lies in
/// `[before, after]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The operation's index.
    pub op: usize,
    /// CLOCK_REALTIME_COARSE before it (the kernel stamps with a time never below it).
    pub before: Timespec,
    /// CLOCK_REALTIME after it.
    pub after: Timespec,
    /// Other ranges also right: where the model says a lossy driver copies a directory
    /// ([`Timespec::UNKNOWN`]), the driver may have made that copy before (when the mount was
    /// made, or in an earlier operation), and the directory keeps the time it had.
    pub or_kept: Ranges,
}

impl Window {
    /// True when `t` lies in the window (or one of the kept ranges).
    pub fn holds(&self, t: Timespec) -> bool {
        let within = |(a, b): (Timespec, Timespec)| a <= t && t <= b;
        t != Timespec::UNKNOWN
            && (within((self.before, self.after)) || self.or_kept.iter().any(|r| within(*r)))
    }

    /// The ranges this window allows.
    fn ranges(&self) -> Ranges {
        let mut v = vec![(self.before, self.after)];
        v.extend(self.or_kept.iter().copied());
        v
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a time of action {} in [{}, {}]",
            self.op, self.before, self.after
        )?;
        for (a, b) in &self.or_kept {
            if a == b {
                write!(f, " or the time it had, {a}")?;
            } else {
                write!(f, " or the time it had, in [{a}, {b}]")?;
            }
        }
        Ok(())
    }
}

fn clock(id: libc::clockid_t) -> Timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; both clocks exist on every Linux strata runs on.
    unsafe { libc::clock_gettime(id, &mut ts) };
    Timespec::new(ts.tv_sec, ts.tv_nsec as u32)
}

/// Runs `f`, with the clock read around it.
pub fn timed<R>(op: usize, f: impl FnOnce() -> R) -> (R, Window) {
    let before = clock(libc::CLOCK_REALTIME_COARSE);
    let r = f();
    let after = clock(libc::CLOCK_REALTIME);
    (
        r,
        Window {
            op,
            before,
            after,
            or_kept: Vec::new(),
        },
    )
}

/// The model of a mounted view with the clock windows of the operations that stamped its
/// inodes.
#[derive(Clone, Debug)]
pub struct Clocked {
    pub model: Writable,
    stamps: BTreeMap<Ino, Window>,
}

impl Clocked {
    /// The view of `tree` (the merged layers) under `sem`, nothing done yet.
    pub fn new(tree: Tree, sem: Semantics) -> Self {
        Clocked {
            model: Writable::new(tree, sem),
            stamps: BTreeMap::new(),
        }
    }

    /// The model's tree.
    pub fn tree(&self) -> &Tree {
        &self.model.tree
    }

    /// Does `real` (operation `i` on the view) inside a clock window, then `op` on the model;
    /// returns what the model says and what `real` did.
    pub fn run<R>(&mut self, i: usize, op: &Op, real: impl FnOnce() -> R) -> (Outcome, R) {
        let (got, window) = timed(i, real);
        let before = self.model.tree.clone();
        let want = self.model.apply(op);
        if let Outcome::Done { touched } = &want {
            self.record(&before, touched.as_deref(), window);
        }
        (want, got)
    }

    /// `op` on the model, done for real elsewhere inside `window` (a process of its own, such
    /// as a container, read the clock around it); returns what the model says.
    pub fn apply_in(&mut self, op: &Op, window: Window) -> Outcome {
        let before = self.model.tree.clone();
        let want = self.model.apply(op);
        if let Outcome::Done { touched } = &want {
            self.record(&before, touched.as_deref(), window);
        }
        want
    }

    /// Records what the last operation stamped.
    fn record(&mut self, before: &Tree, touched: Option<&str>, w: Window) {
        let after = &self.model.tree;
        // Each stamped inode, with the ranges it may also keep (None: it must be in `w`).
        let mut stamped: Vec<(Ino, Option<Ranges>)> = Vec::new();
        if let Some(p) = touched
            && let Some(ino) = after.ino(p)
        {
            stamped.push((ino, None));
        }
        let entries = |t: &Tree| -> HashMap<Ino, BTreeMap<String, Ino>> {
            let mut m: HashMap<Ino, BTreeMap<String, Ino>> = HashMap::new();
            for (p, i) in t.iter() {
                if !i.kind.is_dir() {
                    continue;
                }
                let Some(dir) = t.ino(p) else { continue };
                let kids = t
                    .children(p)
                    .into_iter()
                    .filter_map(|n| t.ino(&join(p, &n)).map(|c| (n, c)))
                    .collect();
                m.insert(dir, kids);
            }
            m
        };
        let (was, now) = (entries(before), entries(after));
        let split: Vec<Ino> = self
            .model
            .splits()
            .iter()
            .filter_map(|p| after.ino(p))
            .filter(|i| before.inode(*i).is_none())
            .collect();
        for (dir, kids) in &now {
            let Some(old) = was.get(dir) else {
                stamped.push((*dir, None));
                continue;
            };
            // A name now on the copy that split a hard link at that very name: the driver
            // made the copy, the directory's entries did not change (its own copy-up rule,
            // UNKNOWN below, says what its mtime does).
            let same = |(n, i): (&String, &Ino)| {
                old.get(n) == Some(i) || (old.contains_key(n) && split.contains(i))
            };
            if old.len() != kids.len() || !kids.iter().all(same) {
                stamped.push((*dir, None));
            }
        }
        let mut copied: Vec<RelPath> = Vec::new();
        for (p, inode) in after.iter() {
            let Some(ino) = after.ino(p) else { continue };
            match before.inode(ino) {
                // New here (not a copy of what was at the same path: a split hard link).
                None if before.get(p).is_none() => stamped.push((ino, None)),
                None => {}
                Some(o) if o.meta.mtime != inode.meta.mtime => {
                    if inode.meta.mtime == Timespec::UNKNOWN {
                        // A copy made by a driver that makes it anew (of the directory, or in
                        // it): the time of the copy, unless it was made before and the
                        // directory kept its time.
                        let kept = self.kept(ino, o.meta.mtime);
                        stamped.push((ino, Some(kept)));
                        copied.push(p.clone());
                    } else {
                        self.stamps.remove(&ino); // set to a known time
                    }
                }
                Some(_) => {}
            }
        }
        for p in copied {
            // The model marks the copy once; a later copy must show as a change again.
            let old = before.get(&p).map(|i| i.meta.mtime);
            if let (Some(i), Some(t)) = (self.model.tree.get_mut(&p), old) {
                i.meta.mtime = t;
            }
        }
        // A change of the inode's own (None) outweighs a copy that may have kept its time.
        let mut by_ino: BTreeMap<Ino, Option<Ranges>> = BTreeMap::new();
        for (ino, kept) in stamped {
            let e = by_ino.entry(ino).or_insert_with(|| kept.clone());
            match (e.as_mut(), kept) {
                (_, None) => *e = None,
                (Some(v), Some(k)) => v.extend(k),
                (None, Some(_)) => {}
            }
        }
        for (ino, kept) in by_ino {
            let mut win = w.clone();
            win.or_kept = kept.unwrap_or_default();
            win.or_kept.sort();
            win.or_kept.dedup();
            self.stamps.insert(ino, win);
        }
    }

    /// The times inode `ino` may still show: its window if an operation stamped it, else the
    /// model's time `t`.
    fn kept(&self, ino: Ino, t: Timespec) -> Ranges {
        match self.stamps.get(&ino) {
            Some(w) => w.ranges(),
            None => vec![(t, t)],
        }
    }

    /// The window of the operation that last stamped the inode at `path`, if any.
    pub fn stamp(&self, path: &str) -> Option<Window> {
        self.model
            .tree
            .ino(path)
            .and_then(|i| self.stamps.get(&i).cloned())
    }

    /// Every difference between the model and `view`, mtimes of every inode compared: exact
    /// where the model knows them, inside the window of the operation that stamped them
    /// otherwise (whatever `opts.mtime` says).
    pub fn compare(&self, view: &Tree, opts: &CompareOptions) -> Vec<Mismatch> {
        let opts = CompareOptions {
            mtime: MtimeCompare::All,
            ..opts.clone()
        };
        let mut out = self.model.tree.compare(view, &opts);
        out.retain_mut(|m| {
            if m.field != "mtime" {
                return true;
            }
            let Some(w) = self.stamp(&m.path) else {
                return true;
            };
            match view.get(&m.path) {
                Some(v) if w.holds(v.meta.mtime) => false,
                _ => {
                    m.expected = w.to_string();
                    true
                }
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FileData, Inode, Kind, Meta};

    fn tree() -> Tree {
        let mut t = Tree::default();
        let mut m = Meta::mode(0o755);
        m.mtime = Timespec::new(5, 0);
        for d in ["a", "b"] {
            t.insert(
                d,
                Inode {
                    kind: Kind::Dir,
                    meta: m.clone(),
                },
            );
        }
        t.insert(
            "a/f",
            Inode {
                kind: Kind::File(FileData::from_bytes(b"x".to_vec())),
                meta: m,
            },
        );
        t
    }

    fn view_with(t: &Tree, times: &[(&str, Timespec)]) -> Tree {
        let mut v = t.clone();
        for (p, ts) in times {
            if let Some(i) = v.get_mut(p) {
                i.meta.mtime = *ts;
            }
        }
        v
    }

    #[test]
    fn a_copy_up_that_splits_a_hard_link_does_not_stamp_its_directory() {
        // overlay (hard links split on copy-up, parent times kept): `link a/f b/g` copies
        // a/f up; a/'s entries do not change, so a/ keeps its time; b/ gains a name. Renaming
        // the split copy over another name does stamp the destination directory.
        let split = Semantics {
            hardlinks_kept: false,
            ..Semantics::oci()
        };
        let mut c = Clocked::new(tree(), split);
        c.run(
            0,
            &Op::Link {
                from: "a/f".into(),
                to: "b/g".into(),
            },
            || (),
        );
        assert_eq!(c.stamp("a"), None);
        assert!(c.stamp("b").is_some());
        let mut c = Clocked::new(tree(), split);
        c.run(
            0,
            &Op::Create {
                path: "b/h".into(),
                data: b"h".to_vec(),
                mode: 0o644,
            },
            || (),
        );
        let w0 = c.stamp("b");
        c.run(
            1,
            &Op::Rename {
                from: "a/f".into(),
                to: "b/h".into(),
            },
            || (),
        );
        assert!(c.stamp("b").is_some_and(|w| Some(&w) != w0.as_ref()));
    }

    #[test]
    fn what_an_operation_stamps_must_lie_in_its_window_and_the_rest_is_exact() {
        let mut c = Clocked::new(tree(), Semantics::oci());
        let (o, ()) = c.run(
            0,
            &Op::Create {
                path: "a/new".into(),
                data: b"n".to_vec(),
                mode: 0o644,
            },
            || (),
        );
        assert_eq!(
            o,
            Outcome::Done {
                touched: Some("a/new".into())
            }
        );
        let w = c.stamp("a").unwrap();
        assert_eq!(c.stamp("a/new"), Some(w.clone()));
        assert_eq!(c.stamp("b"), None);
        assert_eq!(c.stamp("a/f"), None);
        let inside = Timespec::new(w.after.sec, 0).max(w.before);
        let good = view_with(c.tree(), &[("a", inside), ("a/new", w.after)]);
        assert!(c.compare(&good, &CompareOptions::default()).is_empty());
        // Before the window, after it, or a time the model knows changed: each a mismatch.
        let early = Timespec::new(w.before.sec - 1, 0);
        let bad = view_with(c.tree(), &[("a", early), ("a/new", inside), ("b", inside)]);
        let diffs = c.compare(&bad, &CompareOptions::default());
        let at: Vec<&str> = diffs.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(at, vec!["a", "b"], "{diffs:?}");
        assert!(diffs[0].expected.contains("action 0"), "{}", diffs[0]);
        // utimensat makes the time known again; a rename stamps both directories.
        c.run(
            1,
            &Op::SetMtime {
                path: "a".into(),
                mtime: Timespec::new(9, 0),
            },
            || (),
        );
        assert_eq!(c.stamp("a"), None);
        c.run(
            2,
            &Op::Rename {
                from: "a/f".into(),
                to: "b/f".into(),
            },
            || (),
        );
        assert_eq!(c.stamp("a").map(|w| w.op), Some(2));
        assert_eq!(c.stamp("b").map(|w| w.op), Some(2));
        assert_eq!(c.stamp("b/f"), None, "a renamed file keeps its time");
    }

    #[test]
    fn a_failed_operation_stamps_nothing() {
        let mut c = Clocked::new(tree(), Semantics::oci());
        let (o, ()) = c.run(
            0,
            &Op::Mkdir {
                path: "a".into(),
                mode: 0o755,
            },
            || (),
        );
        assert!(matches!(o, Outcome::Failed(_)));
        assert_eq!(c.stamp("a"), None);
        assert_eq!(c.stamp(""), None);
    }
}

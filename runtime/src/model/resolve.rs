//! In-root path resolution: the one rule every applier and check uses, generic over where the
//! names live (the model's tree, a real directory fd, a layer's own entries).
//!
//! The rule, as `openat2(RESOLVE_IN_ROOT)` and the flat layer appliers of Docker and
//! containerd resolve the parent of a tar entry:
//! - every component is looked up in the directory the walk has reached;
//! - a symlink met on the way is followed: a relative target continues from the symlink's
//!   directory, an absolute one restarts at the root;
//! - `..` goes to the parent directory, and stays at the root when already there (the walk never
//!   leaves the root);
//! - after [`MAX_SYMLINKS`] symlinks the walk is a loop (the kernel's ELOOP);
//! - a caller resolves only the *parent* of an entry: its last component is never followed,
//!   so a directory entry replaces a symlink at its own path instead of landing behind it.
//!
//! What happens at a missing component or a non-directory is the caller's choice
//! ([`OnMissing`]): fail (a lookup), make an implied directory there (a layer entry's parents),
//! or make them only along a path with no symlink in it (a whiteout's or opaque marker's
//! parents: a deletion under a symlink, dangling or not, creates nothing).

use super::path::{RelPath, join};

/// Symlinks one resolution follows before it counts as a loop (the kernel's limit, ELOOP).
pub const MAX_SYMLINKS: usize = 40;

/// What a name is, as far as a resolution needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// No such name.
    Missing,
    /// A directory: the walk enters it.
    Dir,
    /// A symlink to follow, with its target.
    Symlink(String),
    /// Anything else (a file, a device, or a symlink the caller chooses not to follow).
    Other,
    /// A non-directory the walk may neither enter nor replace, whatever [`OnMissing`] says
    /// (a layer's own entry, under a deletion's implied parents): the walk stops there.
    Keep,
}

/// What a walk does at a missing component or one that is not a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnMissing {
    /// Stop: the path does not resolve.
    Fail,
    /// Make an implied directory there (replacing a non-directory).
    Create,
    /// As [`OnMissing::Create`] along a path with no symlink; at a symlink, stop (it is not
    /// followed, so it cannot loop).
    CreateUntilSymlink,
}

/// A namespace a path is resolved in.
pub trait Lookup {
    /// A handle on a directory reached by the walk.
    type Dir;
    type Error;

    /// The root directory.
    fn root(&mut self) -> Result<Self::Dir, Self::Error>;

    /// What `name` in `dir` (whose real path is `at`) is. `written` is the path as the caller
    /// wrote it up to and including this component, when the component comes from that path
    /// and not from a symlink's target.
    fn node(
        &mut self,
        dir: &Self::Dir,
        at: &str,
        name: &str,
        written: Option<&str>,
    ) -> Result<Node, Self::Error>;

    /// Enters directory `name` in `dir`.
    fn enter(&mut self, dir: &Self::Dir, at: &str, name: &str) -> Result<Self::Dir, Self::Error>;

    /// Makes an implied directory `name` in `dir`, first removing the non-directory there when
    /// `replace`. Called only by the creating [`OnMissing`] modes.
    fn make_dir(
        &mut self,
        dir: &Self::Dir,
        at: &str,
        name: &str,
        replace: bool,
    ) -> Result<(), Self::Error>;

    /// Where an absolute symlink target leads: the root of this namespace (true), or out of it
    /// (false: the walk ends with [`Resolved::Outside`]), as for a layer directory whose
    /// absolute links point at the host.
    fn absolute_targets_inside(&self) -> bool {
        true
    }
}

/// Where a walk ended.
#[derive(Debug)]
pub enum Resolved<D> {
    /// The directory the path names, and its real path.
    Dir { dir: D, path: RelPath },
    /// A component is missing (ENOENT).
    NotFound,
    /// A component is not a directory (ENOTDIR).
    NotDir,
    /// Too many symlinks (ELOOP).
    Loop,
    /// An absolute symlink target led out of the namespace.
    Outside,
}

impl<D> Resolved<D> {
    /// The directory and its real path, when the walk reached one.
    pub fn found(self) -> Option<(D, RelPath)> {
        match self {
            Resolved::Dir { dir, path } => Some((dir, path)),
            _ => None,
        }
    }
}

/// One resolution: the symlink budget is shared by every [`Walker::dir`] call and
/// [`Walker::follow`] of the same walker, as one path lookup in the kernel shares it.
pub struct Walker {
    on_missing: OnMissing,
    followed: usize,
}

impl Walker {
    pub fn new(on_missing: OnMissing) -> Walker {
        Walker {
            on_missing,
            followed: 0,
        }
    }

    /// Counts one more symlink followed; false past [`MAX_SYMLINKS`].
    pub fn follow(&mut self) -> bool {
        self.followed += 1;
        self.followed <= MAX_SYMLINKS
    }

    /// Resolves `path` as a directory: every component, symlinks followed.
    pub fn dir<L: Lookup>(&mut self, l: &mut L, path: &str) -> Result<Resolved<L::Dir>, L::Error> {
        let root = l.root()?;
        // The directories walked through, root first: `..` pops one.
        let mut stack: Vec<(RelPath, L::Dir)> = vec![(RelPath::new(), root)];
        // Components still to walk, each with the written prefix it ends, if it was written.
        let mut queue: std::collections::VecDeque<(String, Option<String>)> =
            std::collections::VecDeque::new();
        let mut written = String::new();
        for c in components(path) {
            if c != ".." {
                written = join(&written, c);
            }
            queue.push_back((c.to_string(), (c != "..").then(|| written.clone())));
        }
        while let Some((c, written)) = queue.pop_front() {
            if c == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let Some((at, dir)) = stack.last() else {
                break;
            };
            let next = join(at, &c);
            let node = l.node(dir, at, &c, written.as_deref())?;
            match node {
                Node::Dir => {
                    let d = l.enter(dir, at, &c)?;
                    stack.push((next, d));
                }
                Node::Symlink(_) if self.on_missing == OnMissing::CreateUntilSymlink => {
                    return Ok(Resolved::NotDir);
                }
                Node::Keep => return Ok(Resolved::NotDir),
                Node::Symlink(target) => {
                    if !self.follow() {
                        return Ok(Resolved::Loop);
                    }
                    if target.starts_with('/') {
                        if !l.absolute_targets_inside() {
                            return Ok(Resolved::Outside);
                        }
                        stack.truncate(1);
                    }
                    let t: Vec<&str> = components(&target).collect();
                    for part in t.into_iter().rev() {
                        queue.push_front((part.to_string(), None));
                    }
                }
                Node::Missing | Node::Other => {
                    let create = match self.on_missing {
                        OnMissing::Fail => false,
                        OnMissing::Create => true,
                        OnMissing::CreateUntilSymlink => true,
                    };
                    if !create {
                        return Ok(if node == Node::Missing {
                            Resolved::NotFound
                        } else {
                            Resolved::NotDir
                        });
                    }
                    l.make_dir(dir, at, &c, node == Node::Other)?;
                    let d = l.enter(dir, at, &c)?;
                    stack.push((next, d));
                }
            }
        }
        match stack.pop() {
            Some((path, dir)) => Ok(Resolved::Dir { dir, path }),
            None => Ok(Resolved::NotFound),
        }
    }
}

/// The components of a path, `.` and empty ones dropped (`..` kept: the walk handles it).
fn components(p: &str) -> impl Iterator<Item = &str> {
    p.split('/').filter(|c| !c.is_empty() && *c != ".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Names and what they are, by real path: enough to test the walk alone.
    #[derive(Default)]
    struct Names {
        nodes: BTreeMap<String, Node>,
        made: Vec<String>,
        absolute_inside: bool,
    }

    impl Names {
        fn new(v: &[(&str, Node)]) -> Names {
            Names {
                nodes: v.iter().map(|(p, n)| (p.to_string(), n.clone())).collect(),
                made: Vec::new(),
                absolute_inside: true,
            }
        }
    }

    impl Lookup for Names {
        type Dir = ();
        type Error = ();
        fn root(&mut self) -> Result<(), ()> {
            Ok(())
        }
        fn node(&mut self, _: &(), at: &str, name: &str, _: Option<&str>) -> Result<Node, ()> {
            Ok(self
                .nodes
                .get(&join(at, name))
                .cloned()
                .unwrap_or(Node::Missing))
        }
        fn enter(&mut self, _: &(), _: &str, _: &str) -> Result<(), ()> {
            Ok(())
        }
        fn make_dir(&mut self, _: &(), at: &str, name: &str, _: bool) -> Result<(), ()> {
            let p = join(at, name);
            self.made.push(p.clone());
            self.nodes.insert(p, Node::Dir);
            Ok(())
        }
        fn absolute_targets_inside(&self) -> bool {
            self.absolute_inside
        }
    }

    fn path(r: Resolved<()>) -> Option<String> {
        r.found().map(|(_, p)| p)
    }

    fn link(t: &str) -> Node {
        Node::Symlink(t.into())
    }

    #[test]
    fn relative_absolute_and_climbing_symlinks_stay_inside_the_root() {
        let mut n = Names::new(&[
            ("usr", Node::Dir),
            ("usr/lib", Node::Dir),
            ("lib", link("usr/lib")),
            ("abs", link("/usr/lib/../lib")),
            ("esc", link("../../../usr")),
        ]);
        for (p, want) in [
            ("lib", "usr/lib"),
            ("abs", "usr/lib"),
            ("esc/lib", "usr/lib"),
            ("../../usr/./lib/", "usr/lib"),
        ] {
            let r = Walker::new(OnMissing::Fail).dir(&mut n, p).unwrap();
            assert_eq!(path(r).as_deref(), Some(want), "{p}");
        }
    }

    #[test]
    fn missing_and_non_directories_fail_or_are_made() {
        let mut n = Names::new(&[("f", Node::Other), ("dangling", link("/nowhere"))]);
        let fail = |n: &mut Names, p| Walker::new(OnMissing::Fail).dir(n, p).unwrap();
        assert!(matches!(fail(&mut n, "x/y"), Resolved::NotFound));
        assert!(matches!(fail(&mut n, "f/y"), Resolved::NotDir));
        assert!(matches!(fail(&mut n, "dangling"), Resolved::NotFound));
        // A deletion's parents: made where written, never at or behind a symlink.
        let r = Walker::new(OnMissing::CreateUntilSymlink)
            .dir(&mut n, "dangling/etc")
            .unwrap();
        assert!(matches!(r, Resolved::NotDir));
        assert!(n.made.is_empty());
        let r = Walker::new(OnMissing::CreateUntilSymlink)
            .dir(&mut n, "p/q")
            .unwrap();
        assert_eq!(path(r).as_deref(), Some("p/q"));
        // An entry's parents: made behind the symlink too, replacing a non-directory.
        let r = Walker::new(OnMissing::Create)
            .dir(&mut n, "dangling/etc")
            .unwrap();
        assert_eq!(path(r).as_deref(), Some("nowhere/etc"));
        let r = Walker::new(OnMissing::Create).dir(&mut n, "f/g").unwrap();
        assert_eq!(path(r).as_deref(), Some("f/g"));
    }

    #[test]
    fn loops_end_after_the_kernels_limit_shared_by_one_walker() {
        let mut n = Names::new(&[("a", link("b")), ("b", link("a"))]);
        assert!(matches!(
            Walker::new(OnMissing::Fail).dir(&mut n, "a").unwrap(),
            Resolved::Loop
        ));
        // A chain of exactly MAX_SYMLINKS links resolves; one more does not.
        let mut chain: Vec<(String, Node)> = (0..MAX_SYMLINKS)
            .map(|i| (format!("l{i}"), link(&format!("l{}", i + 1))))
            .collect();
        chain.push((format!("l{MAX_SYMLINKS}"), Node::Dir));
        let mut n = Names {
            nodes: chain.into_iter().collect(),
            ..Default::default()
        };
        let mut w = Walker::new(OnMissing::Fail);
        assert!(matches!(w.dir(&mut n, "l0").unwrap(), Resolved::Dir { .. }));
        assert!(!w.follow(), "the budget is spent");
    }

    #[test]
    fn absolute_targets_can_leave_a_namespace() {
        let mut n = Names::new(&[("a", link("/etc"))]);
        n.absolute_inside = false;
        assert!(matches!(
            Walker::new(OnMissing::Fail).dir(&mut n, "a").unwrap(),
            Resolved::Outside
        ));
    }

    #[test]
    fn written_prefixes_name_only_written_components() {
        struct Record(Vec<Option<String>>);
        impl Lookup for Record {
            type Dir = ();
            type Error = ();
            fn root(&mut self) -> Result<(), ()> {
                Ok(())
            }
            fn node(&mut self, _: &(), at: &str, n: &str, w: Option<&str>) -> Result<Node, ()> {
                self.0.push(w.map(str::to_string));
                Ok(if join(at, n) == "s" {
                    link("t/u")
                } else {
                    Node::Dir
                })
            }
            fn enter(&mut self, _: &(), _: &str, _: &str) -> Result<(), ()> {
                Ok(())
            }
            fn make_dir(&mut self, _: &(), _: &str, _: &str, _: bool) -> Result<(), ()> {
                Ok(())
            }
        }
        let mut r = Record(Vec::new());
        Walker::new(OnMissing::Fail).dir(&mut r, "s/x").unwrap();
        assert_eq!(
            r.0,
            vec![Some("s".into()), None, None, Some("s/x".into())],
            "s (written), t and u (from the target), x (written)"
        );
    }
}

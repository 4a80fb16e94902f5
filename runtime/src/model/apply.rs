//! The flat application of OCI change sets, lowest layer first (the rules are in `mod.rs`).

use std::collections::HashSet;

use super::changeset::{Change, ChangeSet, Entry, EntryKind};
use super::path::{RelPath, is_within, join, parent_and_name};
use super::resolve::{Lookup, Node, OnMissing, Resolved, Walker};
use super::semantics::Semantics;
use super::tree::{Inode, Kind, Meta, Tree};
use crate::error::{Error, Result};

/// The merged view of `layers`, lowest first, over an empty root (0755, 0:0, mtime 0), by the
/// OCI rules.
pub fn apply(layers: &[ChangeSet]) -> Result<Tree> {
    apply_with(layers, &Semantics::oci())
}

/// The merged view of `layers` as a driver with the given declared semantics shows it.
pub fn apply_with(layers: &[ChangeSet], sem: &Semantics) -> Result<Tree> {
    let mut tree = Tree::default();
    let mut landed = Vec::with_capacity(layers.len());
    for layer in layers {
        landed.push(apply_layer_landed(&mut tree, layer, sem)?.1);
    }
    // What a driver cannot mount depends on where each layer's entries land (the chain
    // layout stacks them there), not on the paths its tar names.
    super::semantics::refuse_unmountable(&landed, sem)?;
    Ok(tree)
}

/// Applies one layer on top of `tree` by the OCI rules.
pub fn apply_layer(tree: &mut Tree, layer: &ChangeSet) -> Result<()> {
    apply_layer_with(tree, layer, &Semantics::oci())
}

/// Applies one layer on top of `tree` with the given semantics.
pub fn apply_layer_with(tree: &mut Tree, layer: &ChangeSet, sem: &Semantics) -> Result<()> {
    apply_layer_traced(tree, layer, sem).map(|_| ())
}

/// [`apply_layer_with`], returning every implied directory the layer made, in order, even one
/// a later entry of the layer replaced (another applier restores the mtime of such a
/// directory's parent, or not: the independent checks need to know where they were).
pub fn apply_layer_traced(
    tree: &mut Tree,
    layer: &ChangeSet,
    sem: &Semantics,
) -> Result<Vec<RelPath>> {
    apply_layer_landed(tree, layer, sem).map(|(made, _)| made)
}

/// [`apply_layer_traced`], also returning the layer as it landed: each entry, whiteout and
/// opaque marker at its real path (resolved through the lower symlinks), in order; what
/// resolves nowhere is left out.
fn apply_layer_landed(
    tree: &mut Tree,
    layer: &ChangeSet,
    sem: &Semantics,
) -> Result<(Vec<RelPath>, ChangeSet)> {
    let explicit_dirs = layer
        .entries()
        .filter(|e| e.kind == EntryKind::Dir)
        .map(|e| e.path.clone())
        .collect();
    let mut a = Applier {
        tree,
        sem,
        explicit_dirs,
        mode: OnMissing::Fail,
        own: HashSet::new(),
        made: Vec::new(),
        landed: Vec::new(),
    };
    // Deletions see only the lower layers: they run before any entry of this layer lands.
    // Where this layer has its own directory on the way (`d/` over a lower symlink `d`),
    // nothing lower lies behind it: the walk stops there and deletes nothing.
    for change in &layer.changes {
        match change {
            Change::Opaque { path } => {
                if let Some(dir) = a.walk(path, OnMissing::Fail)?
                    && a.tree.get(&dir).is_some_and(|i| i.kind.is_dir())
                {
                    a.tree.clear_dir(&dir);
                    a.landed.push(Change::Opaque { path: dir });
                }
            }
            Change::Whiteout { path } => {
                let Some((parent, name)) = parent_and_name(path) else {
                    return Err(model_err(path, "a whiteout cannot delete the root"));
                };
                if let Some(dir) = a.walk(parent, OnMissing::Fail)? {
                    let full = join(&dir, name);
                    a.delete(&full);
                    a.landed.push(Change::Whiteout { path: full });
                }
            }
            Change::Entry(_) => {}
        }
    }
    // Entries in tar order. Whiteouts and opaque markers imply their parent directories, but
    // only along a path with no symlink (one under a symlink, dangling or not, creates
    // nothing: the deletion above already resolved through it).
    for change in &layer.changes {
        match change {
            Change::Opaque { path } => {
                if let Some(dir) = a.walk(path, OnMissing::CreateUntilSymlink)? {
                    a.landed.push(Change::Opaque { path: dir });
                }
            }
            Change::Whiteout { path } => {
                let (parent, name) = parent_and_name(path).unwrap_or(("", ""));
                if let Some(dir) = a.walk(parent, OnMissing::CreateUntilSymlink)? {
                    a.landed.push(Change::Whiteout {
                        path: join(&dir, name),
                    });
                }
            }
            Change::Entry(e) => a.put(e)?,
        }
    }
    let landed = ChangeSet {
        changes: std::mem::take(&mut a.landed),
    };
    Ok((a.made, landed))
}

fn model_err(path: &str, reason: impl Into<String>) -> Error {
    Error::Model {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn implied_dir() -> Inode {
    Inode {
        kind: Kind::Dir,
        meta: Meta::implied_dir(),
    }
}

/// One layer being applied.
struct Applier<'a> {
    tree: &'a mut Tree,
    sem: &'a Semantics,
    /// Directories this layer has its own entries for, by their paths in the layer.
    explicit_dirs: HashSet<RelPath>,
    /// What the walk under way does at a missing component.
    mode: OnMissing,
    /// Where this layer's own non-directories landed (real paths).
    own: HashSet<RelPath>,
    /// The implied directories made, in order.
    made: Vec<RelPath>,
    /// The layer's changes at their real paths.
    landed: Vec<Change>,
}

/// The tree as the layer being applied sees it, for the one resolution rule.
impl Lookup for Applier<'_> {
    type Dir = ();
    type Error = Error;

    fn root(&mut self) -> Result<()> {
        Ok(())
    }

    fn node(&mut self, _: &(), at: &str, name: &str, written: Option<&str>) -> Result<Node> {
        let next = join(at, name);
        // A deletion's implied parents never replace the layer's own entries (in the other
        // tar order the entry would replace them): nothing lies under a file to delete.
        if self.mode == OnMissing::CreateUntilSymlink
            && self.own.contains(&next)
            && self.tree.get(&next).is_some_and(|i| !i.kind.is_dir())
        {
            return Ok(Node::Keep);
        }
        Ok(match self.tree.get(&next).map(|i| &i.kind) {
            None => Node::Missing,
            Some(Kind::Dir) => Node::Dir,
            // This layer's own directory replaces a lower symlink at its path: nothing is
            // resolved through the symlink, whatever the order of the layer's entries.
            Some(Kind::Symlink { .. })
                if written.is_some_and(|w| self.explicit_dirs.contains(w)) =>
            {
                Node::Other
            }
            Some(Kind::Symlink { target }) if self.sem.follow_lower_symlinks => {
                Node::Symlink(target.clone())
            }
            Some(_) => Node::Other,
        })
    }

    fn enter(&mut self, _: &(), at: &str, name: &str) -> Result<()> {
        // A layer directory overlayfs shows is the layer's own, implied or not.
        let next = join(at, name);
        if self.mode != OnMissing::Fail
            && !self.sem.implied_dirs_keep_lower_attrs
            && !self.explicit_dirs.contains(&next)
            && let Some(i) = self.tree.get_mut(&next)
        {
            i.meta = Meta::implied_dir();
        }
        Ok(())
    }

    fn make_dir(&mut self, _: &(), at: &str, name: &str, replace: bool) -> Result<()> {
        let next = join(at, name);
        if replace && self.own.contains(&next) {
            // The layer writes through its own file, reached by a lower symlink: no applier
            // can (umoci and containerd fail with ENOTDIR), so the layer is refused.
            return Err(model_err(
                &next,
                "an entry of this layer lies under it, reached through a lower symlink, but the layer itself holds a non-directory here",
            ));
        }
        if replace {
            self.tree.remove_subtree(&next);
        }
        self.tree.insert(&next, implied_dir());
        self.made.push(next);
        Ok(())
    }
}

impl Applier<'_> {
    /// The real path of directory `path`, by the one resolution rule; `None` when it does not
    /// resolve (only where `on_missing` does not create).
    /// A loop is an error where an entry must be placed ([`OnMissing::Create`]); a deletion
    /// whose path does not resolve (dangling, through a non-directory, or a loop) deletes
    /// nothing.
    fn walk(&mut self, path: &str, on_missing: OnMissing) -> Result<Option<RelPath>> {
        self.mode = on_missing;
        let r = Walker::new(on_missing).dir(self, path);
        self.mode = OnMissing::Fail;
        match r? {
            Resolved::Dir { path, .. } => Ok(Some(path)),
            Resolved::Loop if on_missing == OnMissing::Create => {
                Err(model_err(path, "too many levels of symbolic links"))
            }
            Resolved::Loop | Resolved::NotFound | Resolved::NotDir | Resolved::Outside => Ok(None),
        }
    }

    /// Deletes `path` and everything under it.
    fn delete(&mut self, path: &str) {
        #[cfg(feature = "mutants")]
        if crate::mutants::active(crate::mutants::Mutant::DirWhiteoutKeepsChildren) {
            self.tree.remove_subtree_root_only(path);
            return;
        }
        self.tree.remove_subtree(path);
    }

    fn put(&mut self, e: &Entry) -> Result<()> {
        let Some((parent, name)) = parent_and_name(&e.path) else {
            // The root entry (`./`): only a directory, and only its attributes change.
            if e.kind != EntryKind::Dir {
                return Err(model_err("/", "the root entry must be a directory"));
            }
            if let Some(root) = self.tree.get_mut("") {
                root.meta = e.meta.clone();
            }
            return Ok(());
        };
        let dir = self.walk(parent, OnMissing::Create)?.unwrap_or_default();
        let full = join(&dir, name);
        self.landed.push(Change::Entry(Entry {
            path: full.clone(),
            ..e.clone()
        }));
        match &e.kind {
            EntryKind::HardLink { target } => {
                let Some((tparent, tname)) = parent_and_name(target) else {
                    return Err(model_err(&e.path, "hard link to the root"));
                };
                let missing = || {
                    model_err(
                        &e.path,
                        format!("hard link target {target:?} does not exist"),
                    )
                };
                let tdir = self.walk(tparent, OnMissing::Fail)?.ok_or_else(missing)?;
                let tfull = join(&tdir, tname);
                let Some(ino) = self.tree.ino(&tfull) else {
                    return Err(missing());
                };
                if !self.own.contains(&tfull) {
                    // The name resolves, but not to the layer's own entry any more (a later
                    // entry of the layer replaced it): a link across layers, which OCI forbids.
                    return Err(model_err(
                        &e.path,
                        format!("hard link target {target:?} is no entry of this layer here"),
                    ));
                }
                if self.tree.inode(ino).is_some_and(|i| i.kind.is_dir()) {
                    return Err(model_err(
                        &e.path,
                        format!("hard link target {target:?} is a directory"),
                    ));
                }
                if tfull == full {
                    // Through a symlink the link names its own target: an applier removes the
                    // name before linking, so the target is gone (umoci, containerd: ENOENT).
                    return Err(model_err(
                        &e.path,
                        format!("hard link resolves to its own target {target:?}"),
                    ));
                }
                if is_within(&tfull, &full) {
                    // Replacing `full` would delete the link's own target first.
                    return Err(model_err(
                        &e.path,
                        format!("hard link target {target:?} lies under the entry it replaces"),
                    ));
                }
                self.tree.remove_subtree(&full);
                self.tree.link(&full, ino);
                self.own.insert(full);
            }
            kind => {
                let Some(kind) = kind.to_kind() else {
                    return Ok(());
                };
                let existing_is_dir = self.tree.get(&full).map(|i| i.kind.is_dir());
                match existing_is_dir {
                    Some(true) if kind.is_dir() => {
                        if let Some(i) = self.tree.get_mut(&full) {
                            i.meta = e.meta.clone();
                        }
                    }
                    _ => {
                        self.tree.remove_subtree(&full);
                        if !kind.is_dir() {
                            self.own.insert(full.clone());
                        }
                        self.tree.insert(
                            &full,
                            Inode {
                                kind,
                                meta: e.meta.clone(),
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileData;

    // A tiny layer notation for the rules below.
    fn file(path: &str, content: &str) -> Change {
        Change::Entry(Entry {
            path: path.into(),
            kind: EntryKind::File(FileData::from_bytes(content.as_bytes().to_vec())),
            meta: Meta::mode(0o644),
        })
    }
    fn dir(path: &str, mode: u32) -> Change {
        Change::Entry(Entry {
            path: path.into(),
            kind: EntryKind::Dir,
            meta: Meta::mode(mode),
        })
    }
    fn symlink(path: &str, target: &str) -> Change {
        Change::Entry(Entry {
            path: path.into(),
            kind: EntryKind::Symlink {
                target: target.into(),
            },
            meta: Meta::mode(0o777),
        })
    }
    fn hardlink(path: &str, target: &str) -> Change {
        Change::Entry(Entry {
            path: path.into(),
            kind: EntryKind::HardLink {
                target: target.into(),
            },
            meta: Meta::mode(0o644),
        })
    }
    fn wh(path: &str) -> Change {
        Change::Whiteout { path: path.into() }
    }
    fn opq(path: &str) -> Change {
        Change::Opaque { path: path.into() }
    }
    fn layer(changes: Vec<Change>) -> ChangeSet {
        ChangeSet { changes }
    }
    fn content(t: &Tree, p: &str) -> Option<FileData> {
        match &t.get(p)?.kind {
            Kind::File(d) => Some(d.clone()),
            _ => None,
        }
    }
    fn is(t: &Tree, p: &str, s: &str) -> bool {
        content(t, p) == Some(FileData::from_bytes(s.as_bytes().to_vec()))
    }
    fn paths(t: &Tree) -> Vec<String> {
        t.iter()
            .map(|(p, _)| p.clone())
            .filter(|p| !p.is_empty())
            .collect()
    }

    #[test]
    fn p01_p02_the_topmost_layer_wins() {
        let t = apply(&[
            layer(vec![file("f", "from_l1")]),
            layer(vec![file("f", "from_l2")]),
            layer(vec![file("f", "from_l3")]),
        ])
        .unwrap();
        assert!(is(&t, "f", "from_l3"));
    }

    #[test]
    fn p03_directories_merge_names() {
        let t = apply(&[
            layer(vec![dir("shared", 0o755), file("shared/file1", "1")]),
            layer(vec![dir("shared", 0o755), file("shared/file2", "2")]),
        ])
        .unwrap();
        assert_eq!(t.children("shared"), vec!["file1", "file2"]);
    }

    #[test]
    fn p04_a_directory_takes_the_attributes_of_its_topmost_entry() {
        let mut lower = Meta::mode(0o700);
        lower.uid = 1;
        lower.xattrs.insert("user.a".into(), b"1".to_vec());
        let t = apply(&[
            layer(vec![Change::Entry(Entry {
                path: "d".into(),
                kind: EntryKind::Dir,
                meta: lower,
            })]),
            layer(vec![dir("d", 0o755)]),
        ])
        .unwrap();
        assert_eq!(t.get("d").unwrap().meta, Meta::mode(0o755));
    }

    #[test]
    fn p05_p06_a_non_directory_replaces_a_directory_and_back() {
        let t = apply(&[
            layer(vec![
                dir("x", 0o755),
                file("x/y", "y"),
                file("dir1", "a file"),
            ]),
            layer(vec![
                file("x", "file"),
                wh("dir1"),
                dir("dir1", 0o755),
                dir("dir1/dir2", 0o755),
                file("dir1/dir2/f1", "f"),
            ]),
        ])
        .unwrap();
        assert!(is(&t, "x", "file"));
        assert!(t.get("x/y").is_none());
        assert_eq!(t.children("dir1"), vec!["dir2"]);
    }

    #[test]
    fn x14_a_directory_over_a_directory_keeps_its_children() {
        let t = apply(&[
            layer(vec![dir("d", 0o700), file("d/keep", "k")]),
            layer(vec![dir("d", 0o711)]),
        ])
        .unwrap();
        assert!(is(&t, "d/keep", "k"));
        assert_eq!(t.get("d").unwrap().meta.mode, 0o711);
    }

    #[test]
    fn w09_w10_a_whiteout_deletes_a_lower_file_or_a_whole_subtree() {
        let t = apply(&[
            layer(vec![
                file("foo", "1"),
                file("foobar", "2"),
                dir("d1", 0o755),
                dir("d1/d2", 0o755),
                file("d1/d2/f1", "3"),
                file("d1-before", "4"),
            ]),
            layer(vec![wh("foobar"), wh("d1")]),
            layer(vec![]),
        ])
        .unwrap();
        assert_eq!(paths(&t), vec!["d1-before", "foo"]);
    }

    #[test]
    fn w14_whiteouts_of_dot_names_are_exact() {
        let base = layer(vec![
            file(".baz", "1"),
            file("baz", "2"),
            file("foobar", "3"),
        ]);
        let t = apply(&[base.clone(), layer(vec![wh("baz")])]).unwrap();
        assert_eq!(paths(&t), vec![".baz", "foobar"]);
        let t = apply(&[base, layer(vec![wh(".baz"), wh("foobar")])]).unwrap();
        assert_eq!(paths(&t), vec!["baz"]);
    }

    #[test]
    fn w15_whiteout_of_a_subdirectory_keeps_its_siblings() {
        let t = apply(&[
            layer(vec![
                dir("foo", 0o755),
                dir("foo/cde", 0o755),
                file("foo/cde/def", "1"),
                file("foo/cde/efg", "2"),
            ]),
            layer(vec![
                dir("foo", 0o755),
                file("foo/.abc", "3"),
                wh("foo/cde"),
            ]),
        ])
        .unwrap();
        assert_eq!(paths(&t), vec!["foo", "foo/.abc"]);
    }

    #[test]
    fn w16_a_whiteout_of_an_absent_name_changes_nothing_but_implies_its_parent() {
        let t = apply(&[
            layer(vec![file("a", "1")]),
            layer(vec![wh("nothing"), wh("p/q/nothing")]),
        ])
        .unwrap();
        assert_eq!(paths(&t), vec!["a", "p", "p/q"]);
        assert_eq!(t.get("p/q").unwrap().meta, Meta::implied_dir());
    }

    #[test]
    fn a_whiteout_never_deletes_its_own_layers_entry_whatever_the_order() {
        for changes in [
            vec![wh("f"), file("f", "new")],
            vec![file("f", "new"), wh("f")],
        ] {
            let t = apply(&[layer(vec![file("f", "old")]), layer(changes)]).unwrap();
            assert!(is(&t, "f", "new"));
        }
    }

    #[test]
    fn w22_delete_then_recreate_a_directory_in_the_same_layer_leaves_it_fresh() {
        for changes in [
            vec![wh("d"), dir("d", 0o755), file("d/new", "n")],
            vec![dir("d", 0o755), file("d/new", "n"), wh("d")],
        ] {
            let t = apply(&[
                layer(vec![dir("d", 0o755), file("d/old", "o")]),
                layer(changes),
            ])
            .unwrap();
            assert_eq!(t.children("d"), vec!["new"]);
        }
    }

    #[test]
    fn delete_in_one_layer_then_recreate_in_a_higher_one() {
        let t = apply(&[
            layer(vec![dir("d", 0o755), file("d/old", "o"), file("f", "old")]),
            layer(vec![wh("d"), wh("f")]),
            layer(vec![dir("d", 0o700), file("d/new", "n"), file("f", "new")]),
        ])
        .unwrap();
        assert_eq!(t.children("d"), vec!["new"]);
        assert_eq!(t.get("d").unwrap().meta.mode, 0o700);
        assert!(is(&t, "f", "new"));
    }

    #[test]
    fn o04_opaque_hides_lower_children_whatever_the_marker_position() {
        let base = layer(vec![
            dir("a", 0o755),
            dir("a/b", 0o755),
            dir("a/b/c", 0o755),
            file("a/b/c/bar", "1"),
        ]);
        for changes in [
            vec![
                dir("a", 0o755),
                opq("a"),
                dir("a/b", 0o755),
                dir("a/b/c", 0o755),
                file("a/b/c/foo", "2"),
            ],
            vec![
                dir("a", 0o755),
                dir("a/b", 0o755),
                dir("a/b/c", 0o755),
                file("a/b/c/foo", "2"),
                opq("a"),
            ],
        ] {
            let t = apply(&[base.clone(), layer(changes)]).unwrap();
            assert_eq!(paths(&t), vec!["a", "a/b", "a/b/c", "a/b/c/foo"]);
        }
    }

    #[test]
    fn o05_opaque_at_the_root() {
        let t = apply(&[
            layer(vec![file("old", "1"), dir("olddir", 0o755)]),
            layer(vec![file(".abc", "2"), opq(""), file("foobar", "3")]),
        ])
        .unwrap();
        assert_eq!(paths(&t), vec![".abc", "foobar"]);
    }

    #[test]
    fn o06_opaque_equals_explicit_whiteouts_of_every_child() {
        let base = layer(vec![
            dir("bin", 0o755),
            file("bin/a", "1"),
            dir("bin/sub", 0o755),
            file("bin/sub/b", "2"),
        ]);
        let with_opaque = apply(&[
            base.clone(),
            layer(vec![dir("bin", 0o755), opq("bin"), file("bin/c", "3")]),
        ])
        .unwrap();
        let with_whiteouts = apply(&[
            base,
            layer(vec![
                dir("bin", 0o755),
                wh("bin/a"),
                wh("bin/sub"),
                file("bin/c", "3"),
            ]),
        ])
        .unwrap();
        assert!(
            with_opaque
                .compare(&with_whiteouts, &Default::default())
                .is_empty()
        );
    }

    #[test]
    fn opaque_does_not_hide_entries_of_its_own_layer() {
        let t = apply(&[
            layer(vec![file("d/lower", "1")]),
            layer(vec![file("d/mine", "2"), opq("d")]),
        ])
        .unwrap();
        assert_eq!(t.children("d"), vec!["mine"]);
    }

    #[test]
    fn p08_an_implied_parent_resolves_through_a_lower_symlink_inside_the_root() {
        let t = apply(&[
            layer(vec![
                dir("usr", 0o755),
                dir("usr/lib", 0o755),
                symlink("lib", "usr/lib"),
            ]),
            layer(vec![file("lib/x", "x")]),
            layer(vec![symlink("abs", "/usr/lib/../lib"), file("abs/y", "y")]),
        ])
        .unwrap();
        assert!(is(&t, "usr/lib/x", "x"));
        assert!(is(&t, "usr/lib/y", "y"));
        assert!(matches!(t.get("lib").unwrap().kind, Kind::Symlink { .. }));
    }

    #[test]
    fn a_symlink_climbing_above_the_root_stays_inside_it() {
        let t = apply(&[
            layer(vec![symlink("esc", "../../../etc")]),
            layer(vec![file("esc/passwd", "p")]),
        ])
        .unwrap();
        assert!(is(&t, "etc/passwd", "p"));
    }

    #[test]
    fn an_explicit_directory_entry_replaces_a_lower_symlink() {
        let t = apply(&[
            layer(vec![dir("usr/lib", 0o755), symlink("lib", "usr/lib")]),
            layer(vec![dir("lib", 0o755), file("lib/x", "x")]),
        ])
        .unwrap();
        assert!(t.get("lib").unwrap().kind.is_dir());
        assert!(is(&t, "lib/x", "x"));
        assert!(t.get("usr/lib/x").is_none());
    }

    #[test]
    fn p08b_markers_under_a_directory_that_replaces_a_lower_symlink_apply_to_that_directory() {
        let base = layer(vec![
            dir("target", 0o755),
            file("target/keep.txt", "k"),
            symlink("linkd", "target"),
        ]);
        // Whatever the order of the layer's own entries, nothing resolves through the old link.
        for changes in [
            vec![
                dir("linkd", 0o700),
                opq("linkd"),
                file("linkd/new.txt", "n"),
            ],
            vec![
                opq("linkd"),
                file("linkd/new.txt", "n"),
                dir("linkd", 0o700),
            ],
            vec![
                wh("linkd/keep.txt"),
                dir("linkd", 0o700),
                file("linkd/new.txt", "n"),
            ],
        ] {
            let t = apply(&[base.clone(), layer(changes.clone())]).unwrap();
            assert_eq!(t.children("linkd"), vec!["new.txt"], "{changes:?}");
            assert_eq!(t.get("linkd").unwrap().meta.mode, 0o700);
            assert!(is(&t, "target/keep.txt", "k"), "{changes:?}");
        }
    }

    #[test]
    fn w16b_a_deletion_under_a_dangling_lower_symlink_is_a_no_op() {
        let t = apply(&[
            layer(vec![
                symlink("localetc", "/dne"),
                symlink("rel", "gone/deeper"),
            ]),
            layer(vec![wh("localetc/etc"), opq("rel/x"), wh("rel/x/y")]),
        ])
        .unwrap();
        assert_eq!(paths(&t), vec!["localetc", "rel"]);
        // A file under the same symlink is written behind it, as the flat appliers do.
        let t = apply(&[
            layer(vec![symlink("localetc", "/dne")]),
            layer(vec![file("localetc/f", "f")]),
        ])
        .unwrap();
        assert!(is(&t, "dne/f", "f"));
    }

    #[test]
    fn deletions_through_symlinks_create_nothing() {
        // A whiteout's parent behind the layer's own symlink (`b -> a` over a lower `a -> b`):
        // nothing to delete, nothing made, whatever the order.
        for changes in [
            vec![wh("a/a"), symlink("b", "a")],
            vec![symlink("b", "a"), wh("a/a")],
        ] {
            let t = apply(&[layer(vec![symlink("a", "b")]), layer(changes)]).unwrap();
            assert_eq!(paths(&t), vec!["a", "b"]);
        }
        // Through a looping symlink: nothing to delete, so no error (an entry there is one).
        // A whiteout under the layer's own file reached through a lower symlink, either order.
        for changes in [
            vec![wh("a/c/a"), file("b/c", "f")],
            vec![file("b/c", "f"), wh("a/c/a")],
        ] {
            let t = apply(&[layer(vec![symlink("b", "a")]), layer(changes)]).unwrap();
            assert!(is(&t, "a/c", "f"));
        }
        let t = apply(&[
            layer(vec![symlink("b", "b"), symlink("c", "b")]),
            layer(vec![opq("c"), wh("c/x")]),
        ])
        .unwrap();
        assert_eq!(paths(&t), vec!["b", "c"]);
        // Through a symlink onto a device: the device stays.
        let t = apply(&[
            layer(vec![
                symlink("b", "/c/c/c"),
                Change::Entry(Entry {
                    path: "c".into(),
                    kind: EntryKind::CharDev { major: 1, minor: 3 },
                    meta: Meta::mode(0o666),
                }),
            ]),
            layer(vec![opq("b")]),
        ])
        .unwrap();
        assert!(matches!(t.get("c").unwrap().kind, Kind::CharDev { .. }));
    }

    #[test]
    fn an_entry_through_a_lower_symlink_into_its_own_layers_file_is_refused() {
        let err = apply(&[
            layer(vec![symlink("c", "b")]),
            layer(vec![file("b", "mine"), file("c/x/f", "f")]),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("holds a non-directory here"),
            "{err}"
        );
    }

    #[test]
    fn symlink_loops_are_an_error() {
        let err = apply(&[
            layer(vec![symlink("a", "b"), symlink("b", "a")]),
            layer(vec![file("a/x", "x")]),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("too many levels"), "{err}");
    }

    #[test]
    fn x15_implied_parents_are_0755_root_and_existing_parents_keep_attributes() {
        let t = apply(&[
            layer(vec![dir("keep", 0o700)]),
            layer(vec![file("deeply/nested/f", "1"), file("keep/f", "2")]),
        ])
        .unwrap();
        assert_eq!(t.get("deeply").unwrap().meta, Meta::implied_dir());
        assert_eq!(t.get("deeply/nested").unwrap().meta, Meta::implied_dir());
        assert_eq!(t.get("keep").unwrap().meta.mode, 0o700);
    }

    #[test]
    fn an_implied_parent_replaces_a_lower_non_directory() {
        let t = apply(&[
            layer(vec![file("x", "file")]),
            layer(vec![file("x/y", "y")]),
        ])
        .unwrap();
        assert!(t.get("x").unwrap().kind.is_dir());
        assert!(is(&t, "x/y", "y"));
    }

    #[test]
    fn m13_hard_links_share_one_inode_and_split_when_one_name_is_replaced() {
        let t = apply(&[
            layer(vec![
                file("etc/hosts", "h"),
                hardlink("etc/hosts.allow", "etc/hosts"),
            ]),
            layer(vec![file("etc/hosts", "new")]),
        ])
        .unwrap();
        assert!(is(&t, "etc/hosts", "new"));
        assert!(is(&t, "etc/hosts.allow", "h"));
        assert!(t.hardlink_groups().is_empty());
        let t = apply(&[layer(vec![
            file("a", "x"),
            hardlink("b", "a"),
            hardlink("c", "b"),
        ])])
        .unwrap();
        assert_eq!(
            t.hardlink_groups(),
            vec![vec!["a".to_string(), "b".into(), "c".into()]]
        );
    }

    #[test]
    fn a_hard_link_may_not_replace_the_directory_holding_its_target() {
        let err = apply(&[
            layer(vec![symlink("b", "../a")]),
            layer(vec![file("b/a", "x"), hardlink("a", "b/a")]),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("lies under the entry it replaces"),
            "{err}"
        );
    }

    #[test]
    fn a_hard_link_to_a_missing_target_is_an_error() {
        let err = apply(&[layer(vec![hardlink("b", "nope")])]).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn the_root_entry_sets_the_root_attributes() {
        let t = apply(&[layer(vec![dir("", 0o700), file("f", "1")])]).unwrap();
        assert_eq!(t.get("").unwrap().meta.mode, 0o700);
        assert!(apply(&[layer(vec![file("", "x")])]).is_err());
    }
}

//! The rules a view is expected to follow: the OCI rules, or a driver's declared divergences
//! from them. A driver that declares `follow_lower_symlinks = false` is checked against the
//! model with that switch off, so the divergence must happen exactly as declared.

use std::collections::HashMap;

use super::changeset::{Change, ChangeSet, EntryKind};
use super::path::{RelPath, join, parent_and_name};
use super::resolve::{Lookup, Node, OnMissing, Resolved, Walker};
use crate::error::{Error, Result};

/// Switches for the places where union filesystems differ by design.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Semantics {
    /// An entry under a lower layer's symlink lands behind it (OCI); off: the layer's own
    /// directory replaces the symlink (overlayfs with layer directories).
    pub follow_lower_symlinks: bool,
    /// A directory a layer only implies keeps the attributes below (OCI); off: it shows
    /// 0755 root:root mtime 0, the layer directory's own.
    pub implied_dirs_keep_lower_attrs: bool,
    /// rename(2) of a directory that came from a lower layer works; off: EXDEV.
    pub dir_rename: bool,
    /// A file with several names stays one inode when one name is changed; off: the changed
    /// name is copied up alone (the hard link splits).
    pub hardlinks_kept: bool,
    /// A lower regular file keeps its setuid and setgid bits when a change copies it up; off
    /// (fuse-overlayfs 1.10): a copy not owned by 0:0 loses what chown(2) drops (setuid;
    /// setgid with group exec), as it is chowned after its mode is set.
    pub copy_up_keeps_setid: bool,
    /// A lower symlink keeps its owner, mtime and xattrs when a change copies it up (a rename,
    /// a hard link, lchown, utimensat); off (fuse-overlayfs 1.10): its copy is made by root
    /// with symlink(2) and nothing more: owned by 0:0, the copy's time as mtime, no xattrs
    /// (what the change itself sets excepted).
    pub copy_up_keeps_symlink_attrs: bool,
    /// A lower directory copied up on the way to a change below it keeps its mtime (the
    /// kernel copies it); off (fuse-overlayfs 1.10): the copy is made with mkdir(2) and shows
    /// the time of the copy. A directory copied up for a change of its own keeps it either way.
    pub copy_up_keeps_parent_mtime: bool,
    /// A directory, symlink, device or fifo made in a setgid directory takes the directory's
    /// group, as a regular file does (POSIX, Linux); off (fuse-overlayfs 1.10): all but regular
    /// files take the creator's group, as they are chowned to the caller after being made.
    pub setgid_dirs_pass_group: bool,
    /// A stack mounts where a layer's symlink loops (resolved in that layer's own directory)
    /// and a higher layer has a directory holding a directory at its path; off
    /// (fuse-overlayfs 1.10): such a stack cannot even be listed (ENOMEM), so the driver
    /// refuses it and the model does too.
    pub mounts_symlink_loops_under_dirs: bool,
}

impl Semantics {
    /// The OCI rules and POSIX behaviour, with no divergence.
    pub const fn oci() -> Self {
        Semantics {
            follow_lower_symlinks: true,
            implied_dirs_keep_lower_attrs: true,
            dir_rename: true,
            hardlinks_kept: true,
            copy_up_keeps_setid: true,
            copy_up_keeps_symlink_attrs: true,
            copy_up_keeps_parent_mtime: true,
            setgid_dirs_pass_group: true,
            mounts_symlink_loops_under_dirs: true,
        }
    }
}

impl Default for Semantics {
    fn default() -> Self {
        Semantics::oci()
    }
}

/// Refuses `layers` where `sem` says the driver cannot mount them.
pub(crate) fn refuse_unmountable(layers: &[ChangeSet], sem: &Semantics) -> Result<()> {
    if sem.mounts_symlink_loops_under_dirs {
        return Ok(());
    }
    for (i, layer) in layers.iter().enumerate() {
        for path in symlink_loops(layer) {
            let prefix = format!("{path}/");
            let covered = layers[i + 1..].iter().any(|higher| {
                higher.changes.iter().any(|c| {
                    let p = match c {
                        Change::Entry(e) if e.kind == EntryKind::Dir => e.path.as_str(),
                        Change::Entry(e) => parent_and_name(&e.path).map_or("", |(d, _)| d),
                        Change::Whiteout { path } => parent_and_name(path).map_or("", |(d, _)| d),
                        Change::Opaque { path } => path.as_str(),
                    };
                    // A directory strictly below the symlink's path.
                    p.strip_prefix(&prefix).is_some_and(|rest| !rest.is_empty())
                })
            });
            if covered {
                return Err(Error::Model {
                    path,
                    reason: format!(
                        "layer {i} has a symlink loop here and a higher layer a directory with \
                         directories in it: the driver cannot mount such a stack (fuse-overlayfs \
                         1.10 fails to list it, ENOMEM)"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The paths of `layer`'s symlinks whose resolution loops inside the layer's own directory
/// (targets relative to the link's directory; an absolute target leaves the layer, and is
/// taken not to loop).
pub fn symlink_loops(layer: &ChangeSet) -> Vec<RelPath> {
    let mut links: HashMap<&str, &str> = HashMap::new();
    for e in layer.entries() {
        if let EntryKind::Symlink { target } = &e.kind {
            links.insert(e.path.as_str(), target.as_str());
        }
    }
    let mut out: Vec<RelPath> = links
        .keys()
        .filter(|p| loops(&links, p))
        .map(|p| p.to_string())
        .collect();
    out.sort();
    out
}

/// A layer's own symlinks as a namespace: any other name counts as a directory, and an
/// absolute target leaves the layer (the host resolves it, not the layer).
struct LayerLinks<'a>(&'a HashMap<&'a str, &'a str>);

impl Lookup for LayerLinks<'_> {
    type Dir = ();
    type Error = ();

    fn root(&mut self) -> Result<(), ()> {
        Ok(())
    }

    fn node(&mut self, _: &(), at: &str, name: &str, _: Option<&str>) -> Result<Node, ()> {
        Ok(match self.0.get(join(at, name).as_str()) {
            Some(target) => Node::Symlink(target.to_string()),
            None => Node::Dir,
        })
    }

    fn enter(&mut self, _: &(), _: &str, _: &str) -> Result<(), ()> {
        Ok(())
    }

    fn make_dir(&mut self, _: &(), _: &str, _: &str, _: bool) -> Result<(), ()> {
        Err(())
    }

    fn absolute_targets_inside(&self) -> bool {
        false
    }
}

/// True when resolving `path` (its last component followed too) loops.
fn loops(links: &HashMap<&str, &str>, path: &str) -> bool {
    matches!(
        Walker::new(OnMissing::Fail).dir(&mut LayerLinks(links), path),
        Ok(Resolved::Loop)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Entry, Meta};

    fn links(v: &[(&str, &str)]) -> ChangeSet {
        ChangeSet {
            changes: v
                .iter()
                .map(|(p, t)| {
                    Change::Entry(Entry {
                        path: p.to_string(),
                        kind: EntryKind::Symlink {
                            target: t.to_string(),
                        },
                        meta: Meta::mode(0o777),
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn symlink_loops_are_found_inside_the_layer() {
        let l = links(&[
            ("c", "c"),
            ("d", "./d/"),
            ("e", "f"),
            ("f", "e"),
            ("g", "g/a"),
            ("h", "missing"),
            ("i", "/i"),
            ("x/y", "../x/y"),
        ]);
        assert_eq!(symlink_loops(&l), vec!["c", "d", "e", "f", "g", "x/y"]);
    }

    #[test]
    fn a_loop_under_a_higher_directory_is_judged_where_the_entries_land() {
        let fuse = Semantics {
            mounts_symlink_loops_under_dirs: false,
            ..Semantics::oci()
        };
        let dir = |p: &str| ChangeSet {
            changes: vec![Change::Entry(Entry {
                path: p.into(),
                kind: EntryKind::Dir,
                meta: Meta::mode(0o755),
            })],
        };
        // `c/a/b` lands in the directory under the looping `c`: refused.
        let stack = [links(&[("c", "../c")]), dir("c/a/b")];
        assert!(crate::model::apply_with(&stack, &fuse).is_err());
        assert!(crate::model::apply_with(&stack, &Semantics::oci()).is_err()); // ELOOP to place it
        // A middle layer makes `c` a symlink to `a`: `c/a/b` lands at `a/a/b`, nowhere near
        // the loop, and the stack mounts (the chain layout stacks what lands).
        let stack = [links(&[("c", "../c")]), links(&[("c", "a")]), dir("c/a/b")];
        let tree = crate::model::apply_with(&stack, &fuse).unwrap();
        assert!(tree.get("a/a/b").is_some_and(|i| i.kind.is_dir()));
    }
}

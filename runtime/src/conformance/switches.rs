//! The declared capabilities that change the model, one at a time.
//!
//! A conformance miss is DECLARED only when one capability explains it: the model under the
//! OCI semantics with only that capability switched to the driver's value predicts it. This
//! module lists, for a driver's [`Capabilities`], every capability that differs from
//! [`Capabilities::OCI`] and maps to a [`Semantics`] switch, each with the semantics it alone
//! gives. Every capability is named in an exhaustive pattern, so a capability added later does
//! not compile until it is listed here; a test checks that every [`Semantics`] switch is
//! reached by one capability.

use crate::driver::Capabilities;
use crate::model::Semantics;

/// One declared capability that changes the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Switch {
    /// The capability's name (`strata drivers`), with the driver's value: `dir_rename=false`.
    pub name: String,
    /// What it means, in a few words.
    pub what: &'static str,
    /// The OCI semantics with only this capability switched.
    pub semantics: Semantics,
}

impl Switch {
    /// `name (what)`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.name, self.what)
    }
}

/// Every capability of `caps` that differs from the OCI driver and changes the model, in
/// declaration order.
pub fn switches(caps: &Capabilities) -> Vec<Switch> {
    let oci = Capabilities::OCI;
    // Exhaustive: a new capability is a compile error here until it is listed below.
    let Capabilities {
        dir_rename,
        hardlinks_kept,
        stable_ino,
        native_diff,
        follows_lower_symlinks,
        implied_dirs_keep_lower_attrs,
        copy_up_keeps_setid,
        copy_up_keeps_symlink_attrs,
        copy_up_keeps_parent_mtime,
        setgid_dirs_pass_group,
        mounts_symlink_loops_under_dirs,
        creates_whiteout_names,
        max_layers,
    } = *caps;
    let one: [(String, &'static str, Capabilities); 13] = [
        (
            format!("dir_rename={dir_rename}"),
            "rename of a lower directory fails with EXDEV",
            Capabilities { dir_rename, ..oci },
        ),
        (
            format!("hardlinks_kept={hardlinks_kept}"),
            "a hard link to a lower file splits when one name is changed",
            Capabilities {
                hardlinks_kept,
                ..oci
            },
        ),
        (
            format!("stable_ino={stable_ino}"),
            "a copied-up file gets a new inode number",
            Capabilities { stable_ino, ..oci },
        ),
        (
            format!("native_diff={native_diff}"),
            "commit reads only the writable layer",
            Capabilities { native_diff, ..oci },
        ),
        (
            format!("follows_lower_symlinks={follows_lower_symlinks}"),
            "a layer's directory hides a lower symlink at the same path",
            Capabilities {
                follows_lower_symlinks,
                ..oci
            },
        ),
        (
            format!("implied_dirs_keep_lower_attrs={implied_dirs_keep_lower_attrs}"),
            "a directory a layer only implies shows 0755 root, not the lower attributes",
            Capabilities {
                implied_dirs_keep_lower_attrs,
                ..oci
            },
        ),
        (
            format!("copy_up_keeps_setid={copy_up_keeps_setid}"),
            "a copied-up file not owned by 0:0 loses setuid/setgid as chown(2) drops them",
            Capabilities {
                copy_up_keeps_setid,
                ..oci
            },
        ),
        (
            format!("copy_up_keeps_symlink_attrs={copy_up_keeps_symlink_attrs}"),
            "a copied-up symlink becomes 0:0 with the copy's time and no xattrs",
            Capabilities {
                copy_up_keeps_symlink_attrs,
                ..oci
            },
        ),
        (
            format!("copy_up_keeps_parent_mtime={copy_up_keeps_parent_mtime}"),
            "a lower directory copied up on the way to a change shows the time of the copy",
            Capabilities {
                copy_up_keeps_parent_mtime,
                ..oci
            },
        ),
        (
            format!("setgid_dirs_pass_group={setgid_dirs_pass_group}"),
            "a directory, symlink, device or fifo made in a setgid directory gets the creator's group",
            Capabilities {
                setgid_dirs_pass_group,
                ..oci
            },
        ),
        (
            format!("mounts_symlink_loops_under_dirs={mounts_symlink_loops_under_dirs}"),
            "a stack with a symlink loop under a higher layer's directory is refused",
            Capabilities {
                mounts_symlink_loops_under_dirs,
                ..oci
            },
        ),
        (
            format!("creates_whiteout_names={creates_whiteout_names}"),
            "open(O_CREAT) of a .wh. name fails with EINVAL",
            Capabilities {
                creates_whiteout_names,
                ..oci
            },
        ),
        (
            format!("max_layers={max_layers:?}"),
            "the number of layers one mount can stack is bounded",
            Capabilities { max_layers, ..oci },
        ),
    ];
    let base = oci.semantics();
    one.into_iter()
        .filter(|(_, _, c)| *c != oci)
        .map(|(name, what, c)| Switch {
            name,
            what,
            semantics: c.semantics(),
        })
        .filter(|s| s.semantics != base)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name: value` pairs of a Debug form (every field, whatever is added later).
    fn fields(dbg: &str) -> Vec<(String, String)> {
        let inner = dbg
            .split_once('{')
            .map(|(_, r)| r.trim_end_matches('}'))
            .unwrap_or("");
        inner
            .split(',')
            .filter_map(|kv| kv.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    #[test]
    fn every_semantics_switch_is_reached_by_exactly_one_capability() {
        let oci = Semantics::oci();
        let all_sem = fields(&format!("{oci:?}"));
        assert!(!all_sem.is_empty());
        // Each boolean capability switched alone: every Semantics switch must come from one.
        let flipped = fields(&format!("{:?}", Capabilities::OCI))
            .into_iter()
            .filter(|(_, v)| v == "true" || v == "false")
            .map(|(k, _)| k)
            .collect::<Vec<_>>();
        let mut reached = std::collections::BTreeMap::new();
        for cap in &flipped {
            let caps = flip(cap);
            let sw = switches(&caps);
            assert!(sw.len() <= 1, "{cap}: {sw:?}");
            for s in sw {
                assert!(s.name.starts_with(cap.as_str()), "{cap}: named {}", s.name);
                for (k, v) in fields(&format!("{:?}", s.semantics)) {
                    if !all_sem.contains(&(k.clone(), v)) {
                        assert!(reached.insert(k.clone(), cap.clone()).is_none(), "{k}");
                    }
                }
            }
        }
        for (k, _) in &all_sem {
            assert!(
                reached.contains_key(k),
                "Semantics::{k} is reached by no capability: add it to switches()"
            );
        }
    }

    /// Capabilities::OCI with the boolean `cap` switched.
    fn flip(cap: &str) -> Capabilities {
        let mut c = Capabilities::OCI;
        let field: &mut bool = match cap {
            "dir_rename" => &mut c.dir_rename,
            "hardlinks_kept" => &mut c.hardlinks_kept,
            "stable_ino" => &mut c.stable_ino,
            "native_diff" => &mut c.native_diff,
            "follows_lower_symlinks" => &mut c.follows_lower_symlinks,
            "implied_dirs_keep_lower_attrs" => &mut c.implied_dirs_keep_lower_attrs,
            "copy_up_keeps_setid" => &mut c.copy_up_keeps_setid,
            "copy_up_keeps_symlink_attrs" => &mut c.copy_up_keeps_symlink_attrs,
            "copy_up_keeps_parent_mtime" => &mut c.copy_up_keeps_parent_mtime,
            "setgid_dirs_pass_group" => &mut c.setgid_dirs_pass_group,
            "mounts_symlink_loops_under_dirs" => &mut c.mounts_symlink_loops_under_dirs,
            "creates_whiteout_names" => &mut c.creates_whiteout_names,
            other => panic!("capability {other} unknown to this test: add it"),
        };
        *field = !*field;
        c
    }

    #[test]
    fn the_oci_driver_declares_nothing() {
        assert!(switches(&Capabilities::OCI).is_empty());
    }
}

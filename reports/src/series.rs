//! What each benchmark series is: a measured subject (a driver, a variant of one, a root
//! switch), a floor (what nothing can beat: fork+exec, the raw mount syscalls, an in-process
//! copy_file_range) or a peer (another tool doing the same work: `cp -a`, crun, runc), which
//! driver it belongs to (for colours and per-driver answers), its mechanism (a series is
//! compared only with the floors and peers of its own mechanism) and where it ran (tmpfs, a
//! loop-mounted btrfs or xfs, the host disk).
//!
//! The benchmarks declare their series (`strata_benches::series`), the harness carries the
//! declarations in the result record (`series`); records made before that get the
//! [`builtin`] table, which knows the series strata's benchmarks have had, and anything else
//! is a subject of its own name (never a floor or peer by a guess).

use serde::{Deserialize, Serialize};

/// The role of a series in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// What is measured: a driver, a variant of one, a root switch.
    Subject,
    /// A lower bound of the mechanisms it names: nothing doing that work can be faster.
    Floor,
    /// Another tool doing the same work, compared like for like (processes with processes).
    Peer,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Subject => "subject",
            Kind::Floor => "floor",
            Kind::Peer => "peer",
        }
    }
}

/// One series (a criterion function of a group) and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesKind {
    pub group: String,
    /// The criterion function name (`strata-cli/overlay`, `floor_fork_exec`, `cp_a`).
    pub function: String,
    pub kind: Kind,
    /// The driver (or peer, or root switch) the series belongs to: its colour in every chart
    /// and the unit the "which driver" answers compare (`overlay_mount2` -> `overlay`).
    pub driver: String,
    /// A subject: the one mechanism it uses. A floor or a peer: every mechanism it bounds or
    /// is a peer of. A subject is compared only with floors and peers sharing its mechanism.
    pub mechanisms: Vec<String>,
    /// Where it ran: `tmpfs`, `loop btrfs`, `loop xfs`, `host disk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// What it measures, in a few words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
}

impl SeriesKind {
    pub fn new(
        group: &str,
        function: &str,
        kind: Kind,
        driver: &str,
        mechanisms: &[&str],
        storage: &str,
        what: &str,
    ) -> SeriesKind {
        SeriesKind {
            group: group.to_string(),
            function: function.to_string(),
            kind,
            driver: driver.to_string(),
            mechanisms: mechanisms.iter().map(|m| m.to_string()).collect(),
            storage: (!storage.is_empty()).then(|| storage.to_string()),
            what: (!what.is_empty()).then(|| what.to_string()),
        }
    }

    /// The series nothing is known about: a subject of its own name and mechanism.
    pub fn unknown(group: &str, function: &str) -> SeriesKind {
        SeriesKind::new(
            group,
            function,
            Kind::Subject,
            function,
            &[function],
            "",
            "",
        )
    }

    /// True when this floor or peer is a reference for `subject`.
    pub fn is_reference_for(&self, subject: &SeriesKind) -> bool {
        self.kind != Kind::Subject
            && subject.kind == Kind::Subject
            && self.group == subject.group
            && subject
                .mechanisms
                .iter()
                .any(|m| self.mechanisms.contains(m))
    }
}

/// Mechanism names shared by the built-in table and the benchmarks.
pub mod mechanism {
    /// fork, (namespaces, a root switch,) exec and wait of /bin/true.
    pub const FORK_EXEC: &str = "fork-exec";
    /// A container start as a library call in the calling process.
    pub const START_LIBRARY: &str = "start-library";
    /// A container start as a whole runtime process (`strata run`, `crun run`, `runc run`).
    pub const START_PROCESS: &str = "start-process";
    /// A kernel overlayfs mount of lower directories.
    pub const OVERLAY_MOUNT: &str = "overlay-mount";
    /// A FUSE daemon's mount.
    pub const FUSE_MOUNT: &str = "fuse-mount";
    /// A copy of the merged tree.
    pub const TREE_COPY: &str = "tree-copy";
    /// A btrfs snapshot.
    pub const SNAPSHOT: &str = "snapshot";
    /// A first write that copies the whole file.
    pub const FILE_COPY: &str = "file-copy";
    /// A first write that clones extents or writes one block.
    pub const EXTENT_CLONE: &str = "extent-clone";
    /// A write into a private copy made earlier.
    pub const IN_PLACE: &str = "in-place";
    /// A commit that reads an upper directory.
    pub const UPPER_DIFF: &str = "upper-diff";
    /// A commit that compares the whole tree with the stack.
    pub const TREE_DIFF: &str = "tree-diff";
}

/// The series strata's benchmarks have: what a record without a `series` table is read with.
pub fn builtin(group: &str, function: &str) -> Option<SeriesKind> {
    use Kind::*;
    use mechanism::*;
    let s = |kind, driver: &str, mech: &[&str], storage: &str, what: &str| {
        Some(SeriesKind::new(
            group, function, kind, driver, mech, storage, what,
        ))
    };
    match (group, function) {
        ("rootfs_switch", "floor_fork_exec") => s(
            Floor,
            "floor",
            &[FORK_EXEC],
            "tmpfs",
            "fork + exec + wait of /bin/true",
        ),
        ("rootfs_switch", f @ ("chroot" | "pivot_root" | "move_chroot")) => s(
            Subject,
            f,
            &[FORK_EXEC],
            "tmpfs",
            "a forked child unshares, switches root with strata's code, execs /bin/true",
        ),
        ("container_start", "floor_fork_exec") => s(
            Floor,
            "floor",
            &[START_LIBRARY, START_PROCESS, FORK_EXEC],
            "tmpfs",
            "fork + exec + wait of /bin/true",
        ),
        ("container_start", "strata_process") => s(
            Subject,
            "strata",
            &[FORK_EXEC],
            "tmpfs",
            "fork + exec + wait of `strata --version`: what every strata command pays first",
        ),
        ("container_start", f) if f.starts_with("strata_") => {
            let d = &f["strata_".len()..];
            s(
                Subject,
                d,
                &[START_LIBRARY],
                if d == "btrfs" { "loop btrfs" } else { "tmpfs" },
                "a start of /bin/true through the library",
            )
        }
        ("container_start", f) if f.starts_with("strata-cli/") => {
            let d = &f["strata-cli/".len()..];
            s(
                Subject,
                d,
                &[START_PROCESS],
                if d == "btrfs" { "loop btrfs" } else { "tmpfs" },
                "a whole `strata run` process of /bin/true",
            )
        }
        ("container_start", f @ ("crun" | "runc")) => s(
            Peer,
            f,
            &[START_PROCESS],
            "tmpfs",
            "a whole `run` of /bin/true on an OCI bundle of the same rootfs",
        ),
        ("union_prepare", f @ ("overlay_mount2" | "overlay_lowerdir_plus")) => s(
            Subject,
            "overlay",
            &[OVERLAY_MOUNT],
            "tmpfs",
            if f == "overlay_mount2" {
                "overlay mount + unmount by mount(2)"
            } else {
                "overlay mount + unmount by fsconfig lowerdir+"
            },
        ),
        ("union_prepare", "overlay_first_mount") => s(
            Subject,
            "overlay",
            &[OVERLAY_MOUNT],
            "tmpfs",
            "overlay mount + unmount, its chain directories made first",
        ),
        ("union_prepare", "overlay") => s(
            Subject,
            "overlay",
            &[OVERLAY_MOUNT],
            "tmpfs",
            "overlay mount + unmount over chain directories already made",
        ),
        ("union_prepare", "overlay2") => s(
            Subject,
            "overlay2",
            &[OVERLAY_MOUNT],
            "tmpfs",
            "overlay2 (per-layer directories) mount + unmount",
        ),
        ("union_prepare", "copy") => s(
            Subject,
            "copy",
            &[TREE_COPY],
            "tmpfs",
            "the stack materialized into one directory, and removed",
        ),
        ("union_prepare", "copy_reflink") => s(
            Subject,
            "copy",
            &[TREE_COPY],
            "loop xfs",
            "the copy driver with reflinks",
        ),
        ("union_prepare", "btrfs") => s(
            Subject,
            "btrfs",
            &[SNAPSHOT],
            "loop btrfs",
            "a writable snapshot of the stack's subvolume, and its deletion",
        ),
        ("union_prepare", "fuse-overlayfs") => s(
            Subject,
            "fuse-overlayfs",
            &[FUSE_MOUNT],
            "tmpfs",
            "fuse-overlayfs started, mounted and unmounted",
        ),
        ("union_prepare", "cp_a") => s(
            Peer,
            "cp_a",
            &[TREE_COPY],
            "tmpfs",
            "`cp -a` + `rm -rf` of the merged tree (two processes)",
        ),
        ("union_prepare", "floor_raw_overlay_mount") => s(
            Floor,
            "floor",
            &[OVERLAY_MOUNT],
            "tmpfs",
            "the overlay mount syscalls alone, on the same lower directories",
        ),
        ("copy_up", f @ ("overlay" | "overlay2" | "fuse-overlayfs")) => s(
            Subject,
            f,
            &[FILE_COPY],
            "tmpfs",
            "the first 1-byte write, which copies the file up",
        ),
        ("copy_up", "overlay_reflink_upper") => s(
            Subject,
            "overlay",
            &[EXTENT_CLONE],
            "loop xfs",
            "overlay with its upper on xfs: the copy-up clones",
        ),
        ("copy_up", "btrfs") => s(
            Subject,
            "btrfs",
            &[EXTENT_CLONE],
            "loop btrfs",
            "the first write into a snapshot (copy-on-write by extent)",
        ),
        ("copy_up", "copy") => s(
            Subject,
            "copy",
            &[IN_PLACE],
            "tmpfs",
            "a write into the copy made at mount",
        ),
        ("copy_up", "floor_copy_file_range") => s(
            Floor,
            "floor",
            &[FILE_COPY],
            "tmpfs",
            "copy_file_range of the same bytes, in-process",
        ),
        ("commit", f @ ("overlay" | "overlay2" | "fuse-overlayfs")) => s(
            Subject,
            f,
            &[UPPER_DIFF],
            "tmpfs",
            "the writable layer as a tar, from the upper directory",
        ),
        ("commit", f @ ("copy" | "btrfs")) => s(
            Subject,
            f,
            &[TREE_DIFF],
            if f == "btrfs" { "loop btrfs" } else { "tmpfs" },
            "the writable layer as a tar, by comparing the tree with the stack",
        ),
        _ => None,
    }
}

/// The kind of `function` in `group`: the record's declaration, else the built-in table, else
/// a subject of its own.
pub fn lookup(declared: &[SeriesKind], group: &str, function: &str) -> SeriesKind {
    declared
        .iter()
        .find(|s| s.group == group && s.function == function)
        .cloned()
        .or_else(|| builtin(group, function))
        .unwrap_or_else(|| SeriesKind::unknown(group, function))
}

/// The kinds of every series of `benchmarks` (one entry per group and function), as the
/// harness records them with a run: the built-in table's, or a subject of its own for a series
/// the table does not know (listed in the second value, so the harness can say so).
pub fn declare(benchmarks: &[crate::record::Benchmark]) -> (Vec<SeriesKind>, Vec<String>) {
    let mut out: Vec<SeriesKind> = Vec::new();
    let mut unknown = Vec::new();
    for b in benchmarks {
        if out
            .iter()
            .any(|s| s.group == b.group && s.function == b.driver)
        {
            continue;
        }
        out.push(builtin(&b.group, &b.driver).unwrap_or_else(|| {
            unknown.push(format!("{}/{}", b.group, b.driver));
            SeriesKind::unknown(&b.group, &b.driver)
        }));
    }
    (out, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_a_is_a_peer_and_floors_bound_their_own_mechanism() {
        let cp = lookup(&[], "union_prepare", "cp_a");
        assert_eq!(cp.kind, Kind::Peer);
        let raw = lookup(&[], "union_prepare", "floor_raw_overlay_mount");
        let copy = lookup(&[], "union_prepare", "copy_reflink");
        let ovl = lookup(&[], "union_prepare", "overlay_mount2");
        assert!(!raw.is_reference_for(&copy));
        assert!(raw.is_reference_for(&ovl));
        assert!(cp.is_reference_for(&copy));
        let crun = lookup(&[], "container_start", "crun");
        assert!(crun.is_reference_for(&lookup(&[], "container_start", "strata-cli/overlay")));
        assert!(!crun.is_reference_for(&lookup(&[], "container_start", "strata_overlay")));
        // `strata --version` is held against the process floor only, never against a start.
        let version = lookup(&[], "container_start", "strata_process");
        assert_eq!(version.kind, Kind::Subject);
        assert!(!crun.is_reference_for(&version));
        assert!(lookup(&[], "container_start", "floor_fork_exec").is_reference_for(&version));
        assert_eq!(
            lookup(&[], "x", "floor_mystery").kind,
            Kind::Subject,
            "never a floor by its name"
        );
    }

    #[test]
    fn a_declaration_wins_over_the_table() {
        let mut mine = SeriesKind::unknown("union_prepare", "cp_a");
        mine.kind = Kind::Floor;
        assert_eq!(
            lookup(std::slice::from_ref(&mine), "union_prepare", "cp_a").kind,
            Kind::Floor
        );
    }
}

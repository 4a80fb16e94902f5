//! Every failure the property suite found, kept as a named test of the fix. Each runs the
//! full union properties (all drivers, model, lowers, isolation, commit round trip) on the
//! shrunk case.
#![allow(clippy::unwrap_used)]

use strata_properties::check::{self, Ops};
use strata_properties::stack::{Content, GenMeta, Item, Stack};
use strata_properties::world::World;
use strata_runtime::model::Timespec;
use strata_runtime::model::ops::Op;

fn meta(mode: u32) -> GenMeta {
    GenMeta {
        mode,
        uid: 0,
        gid: 0,
        mtime: Timespec::default(),
        xattrs: Vec::new(),
    }
}

fn file(path: &str) -> Item {
    Item::File {
        path: path.into(),
        content: Content::Bytes(b"x".to_vec()),
        meta: meta(0o644),
    }
}

fn dir(path: &str, m: GenMeta) -> Item {
    Item::Dir {
        path: path.into(),
        meta: m,
    }
}

fn wh(path: &str) -> Item {
    Item::Whiteout { path: path.into() }
}

fn holds(test: &str, layers: Vec<Vec<Item>>, ops: Vec<Op>) {
    let Some(w) = World::new(test) else { return };
    let stack = Stack::new(layers);
    if let Err(e) = check::union_properties(&w, &stack, &Ops(ops)) {
        panic!("{test}:\n{e}\n{stack:?}");
    }
}

#[test]
fn the_same_layer_twice_in_a_stack_mounts() {
    // overlayfs refused it with ELOOP; an empty commit on an empty layer repeats a digest.
    holds(
        "the_same_layer_twice",
        vec![vec![], vec![file("a")], vec![]],
        vec![],
    );
}

#[test]
fn a_whiteout_in_a_directory_only_one_layer_holds_is_not_listed() {
    // overlayfs listed it as 'c?????????' until the directory was copied up.
    holds("unmerged_whiteout", vec![vec![wh("a/a")]], vec![]);
    holds(
        "unmerged_whiteout_deep",
        vec![vec![file("c/x")], vec![wh("a/b/c"), file("a/b/d")]],
        vec![],
    );
}

#[test]
fn a_binary_xattr_value_with_a_newline_imports() {
    // The tar crate split PAX records at newlines.
    let m = GenMeta {
        xattrs: vec![("user.a".into(), vec![b'\n', 0, 255, b'='])],
        ..meta(0o644)
    };
    holds(
        "binary_xattr",
        vec![vec![Item::File {
            path: "a".into(),
            content: Content::Bytes(vec![]),
            meta: m,
        }]],
        vec![],
    );
}

#[test]
fn implied_directories_under_a_setgid_directory_are_0755_root() {
    // mkdir under a setgid directory inherited the bit (and the group).
    let sgid = GenMeta {
        gid: 1,
        ..meta(0o2755)
    };
    holds(
        "implied_under_setgid",
        vec![vec![dir("c", sgid), dir("c/a/a", meta(0o644))]],
        vec![],
    );
}

#[test]
fn a_whiteout_of_a_name_the_layer_implies_as_a_directory_makes_it_opaque() {
    // `.wh.c` with `c/.wh.a`: the lower c is gone and c is a directory of this layer.
    holds(
        "whiteout_and_implied_dir",
        vec![vec![file("c/x")], vec![wh("c"), wh("c/a")]],
        vec![],
    );
}

#[test]
fn a_symlinks_new_mtime_is_committed() {
    // copy's tree diff ignored a symlink's mtime, as continuity does.
    let t = Timespec::new(0, 0);
    holds(
        "symlink_mtime",
        vec![vec![Item::Symlink {
            path: "b".into(),
            target: "a".into(),
        }]],
        vec![Op::SetMtime {
            path: "b".into(),
            mtime: t,
        }],
    );
}

#[test]
fn a_directory_removed_and_made_again_is_committed_opaque() {
    // copy took a reused inode number for the same directory.
    let layers = vec![vec![dir("d", meta(0o755)), file("d/a"), file("d/b")]];
    let ops = vec![
        Op::Unlink { path: "d/a".into() },
        Op::Unlink { path: "d/b".into() },
        Op::Rmdir { path: "d".into() },
        Op::Mkdir {
            path: "d".into(),
            mode: 0o755,
        },
    ];
    for i in 0..5 {
        holds(&format!("recreated_dir_{i}"), layers.clone(), ops.clone());
    }
}

#[test]
fn files_made_in_a_setgid_directory_take_its_group() {
    // The model had new files owned 0:0 whatever their directory.
    let sgid = GenMeta {
        gid: 1,
        ..meta(0o6711)
    };
    holds(
        "setgid_group",
        vec![vec![dir("a/b", sgid)], vec![]],
        vec![
            Op::Create {
                path: "a/b/a".into(),
                data: b"p".to_vec(),
                mode: 0o644,
            },
            Op::Mkdir {
                path: "a/b/d".into(),
                mode: 0o755,
            },
            Op::Symlink {
                target: "x".into(),
                path: "a/b/s".into(),
            },
        ],
    );
}

#[test]
fn a_repeated_directory_entry_replaces_the_xattrs() {
    // Import kept the first entry's xattrs.
    let with = GenMeta {
        xattrs: vec![("user.a".into(), Vec::new())],
        ..meta(0o644)
    };
    holds(
        "repeated_dir_xattrs",
        vec![vec![file("a"), dir("c/b", with), dir("c/b", meta(0o644))]],
        vec![],
    );
}

#[test]
fn renaming_a_lower_directory_over_a_full_one_fails_as_each_driver_declares() {
    // overlay: EXDEV before ENOTEMPTY (declared); copy: ENOTEMPTY.
    holds(
        "exdev_before_enotempty",
        vec![vec![file("c/a"), file("b/x")]],
        vec![Op::Rename {
            from: "c".into(),
            to: "b".into(),
        }],
    );
}

#[test]
fn link_resolves_both_parents_before_looking_at_the_source() {
    // The model checked the source first; both parents are resolved before linkat.
    holds(
        "link_order",
        vec![vec![file("b"), file("c/a/a")]],
        vec![Op::Link {
            from: "c/b".into(),
            to: "b/a".into(),
        }],
    );
}

#[test]
fn a_hard_link_to_a_symlink_is_committed_as_a_link() {
    // Commit grouped only regular files by inode; import refused links to symlinks.
    holds(
        "hard_linked_symlink",
        vec![vec![
            dir("b/b", meta(0o644)),
            Item::Symlink {
                path: "c".into(),
                target: "a".into(),
            },
        ]],
        vec![Op::Link {
            from: "c".into(),
            to: "b/c".into(),
        }],
    );
}

#[test]
fn a_hard_link_replacing_the_directory_of_its_own_target_is_refused() {
    // `b -> ../a`, then `b/a` (lands in a/a) and a link `a` => `b/a`: replacing `a` deletes
    // the target. The model linked to a dropped inode; now both refuse (overlay, which does
    // not follow b, mounts it).
    holds(
        "link_over_own_target",
        vec![
            vec![Item::Symlink {
                path: "b".into(),
                target: "../a".into(),
            }],
            vec![
                file("b/a"),
                Item::HardLink {
                    path: "a".into(),
                    nth: 0,
                },
            ],
        ],
        vec![],
    );
}

#[test]
fn renaming_one_lower_hard_link_over_another_is_as_each_driver_declares() {
    // POSIX: a no-op. overlay (index=off) sees two inodes: c is copied up over b.
    holds(
        "rename_over_own_link",
        vec![vec![
            file("c"),
            Item::HardLink {
                path: "b".into(),
                nth: 0,
            },
        ]],
        vec![Op::Rename {
            from: "c".into(),
            to: "b".into(),
        }],
    );
}

#[test]
fn removing_a_written_name_of_a_lower_hard_link_keeps_the_other_names_change() {
    // fuse-overlayfs 1.10 copied `a` up alone; after `unlink a`, `b` showed the lower file
    // again (0:0) where every other driver shows the chown. The driver now has lower hard
    // links whole in its writable layer before the mount.
    holds(
        "unlink_written_link",
        vec![vec![
            file("a"),
            Item::HardLink {
                path: "b".into(),
                nth: 0,
            },
        ]],
        vec![
            Op::Chown {
                path: "a".into(),
                uid: 0,
                gid: 1,
            },
            Op::Unlink { path: "a".into() },
        ],
    );
}

#[test]
fn renaming_a_setuid_lower_hard_link_keeps_its_bits() {
    // fuse-overlayfs copies a lower file not owned by 0:0 without setuid (declared), but a
    // file with several names is whole in its writable layer from the mount: no copy-up, the
    // bits stay, as the model says.
    let m = GenMeta {
        uid: 0,
        gid: 1,
        ..meta(0o4755)
    };
    holds(
        "rename_setuid_link",
        vec![vec![
            Item::File {
                path: "c/b/b".into(),
                content: Content::Bytes(b"x".to_vec()),
                meta: m,
            },
            Item::HardLink {
                path: "b/a".into(),
                nth: 0,
            },
        ]],
        vec![Op::Rename {
            from: "c/b/b".into(),
            to: "b/b".into(),
        }],
    );
}

#[test]
fn a_lower_hard_link_with_a_long_path_keeps_its_names_in_a_fuse_commit() {
    // Found by the generated long name: fuse-overlayfs records a copy's origin in an xattr,
    // and fsutil::get_xattr read any value over 64 bytes as empty (rustix answers a size
    // query with an empty buffer as 0), so the commit lost the file's other names.
    let long = strata_properties::strategy::LONG_NAME;
    holds(
        "long_origin",
        vec![
            vec![],
            vec![
                file(&format!("a/{long}/a")),
                Item::HardLink {
                    path: "c".into(),
                    nth: 0,
                },
            ],
        ],
        vec![
            Op::Chown {
                path: "c".into(),
                uid: 2,
                gid: 2,
            },
            Op::Truncate {
                path: "c".into(),
                len: 1338,
            },
        ],
    );
}

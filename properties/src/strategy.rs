//! proptest strategies: layer stacks of 1 to 12 layers over a small namespace (so names
//! collide across layers, with rarer odd and long names, up to 5 deep), and operation
//! sequences on the merged view.

use proptest::collection::vec;
use proptest::prelude::*;
use strata_runtime::model::Timespec;
use strata_runtime::model::ops::{Op, Special};

use crate::stack::{Content, GenMeta, Item, Stack};

/// A valid `security.capability` value (v2, effective, cap_net_bind_service).
pub const CAP_NET_BIND: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// The short names most paths are made of: few, so names collide across layers and
/// operations.
const NAMES: [&str; 3] = ["a", "b", "c"];

/// A long name (200 bytes: past tar's 100-byte name field, and `.wh.` plus it still within
/// NAME_MAX).
pub const LONG_NAME: &str = "long-name-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// The rarer names: a dot (not a leading one: `.wh.` is reserved), a space, a non-ASCII
/// character (two bytes of UTF-8), and the long one.
const ODD_NAMES: [&str; 4] = ["d.e", "f g", "\u{e9}t\u{e9}", LONG_NAME];

fn name() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => prop::sample::select(&NAMES[..]),
        1 => prop::sample::select(&ODD_NAMES[..]),
    ]
}

/// A path: mostly 1 to 3 deep over the names a, b, c (so layers and operations meet on the
/// same names), one in ten 1 to 5 deep where a component may also be a name with a dot, one
/// with a space, a non-ASCII one or a long one.
pub fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => vec(prop::sample::select(&NAMES[..]), 1..=3).prop_map(|cs| cs.join("/")),
        1 => vec(name(), 1..=5).prop_map(|cs| cs.join("/")),
    ]
}

fn mode() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => prop::sample::select(vec![0o644u32, 0o755, 0o600, 0o700, 0o711, 0o750]),
        1 => prop::sample::select(vec![0o4755u32, 0o2755, 0o1777, 0o6711, 0o2770]),
        1 => 0u32..0o7777,
    ]
}

fn mtime() -> impl Strategy<Value = Timespec> {
    (
        0i64..2_000_000_000,
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
    )
        .prop_map(|(s, n)| Timespec::new(s, n))
}

fn xattrs(file: bool) -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let one = prop_oneof![
        3 => (prop::sample::select(vec!["user.a", "user.b"]), vec(any::<u8>(), 0..8)).prop_map(|(k, v)| (k.to_string(), v)),
        1 => Just(("security.capability".to_string(), CAP_NET_BIND.to_vec())),
    ];
    vec(one, 0..=2).prop_map(move |mut xs| {
        if !file {
            xs.retain(|(k, _)| k != "security.capability");
        }
        xs.sort();
        xs.dedup_by(|a, b| a.0 == b.0);
        xs
    })
}

fn meta(file: bool) -> impl Strategy<Value = GenMeta> {
    (
        mode(),
        prop_oneof![3 => Just(0u32), 1 => 1u32..4],
        prop_oneof![3 => Just(0u32), 1 => 1u32..4],
        mtime(),
        xattrs(file),
    )
        .prop_map(|(mode, uid, gid, mtime, xattrs)| GenMeta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        2 => Just(Content::Bytes(Vec::new())),
        12 => vec(prop::sample::select(b"xyz\n".to_vec()), 1..48).prop_map(Content::Bytes),
        1 => (0u64..4096).prop_map(|extra| Content::Sparse { len: (1 << 20) + extra, marks: vec![(7, b'x'), ((1 << 20) - 1, b'y')] }),
        1 => (2u64..4, vec((0u64..(2 << 20), 1u8..), 1..4)).prop_map(|(mb, marks)| Content::Sparse { len: mb << 20, marks }),
    ]
}

fn symlink_target() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => path(),                                  // relative, to anything (or dangling)
        1 => path().prop_map(|p| format!("/{p}")),     // absolute, resolved inside the root
        1 => path().prop_map(|p| format!("../{p}")),   // climbing, clamped at the root
        1 => Just("nowhere".to_string()),              // dangling
    ]
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        6 => (path(), content(), meta(true)).prop_map(|(path, content, meta)| Item::File { path, content, meta }),
        4 => (path(), meta(false)).prop_map(|(path, meta)| Item::Dir { path, meta }),
        2 => (path(), symlink_target()).prop_map(|(path, target)| Item::Symlink { path, target }),
        2 => (path(), 0usize..4).prop_map(|(path, nth)| Item::HardLink { path, nth }),
        1 => (path(), meta(false)).prop_map(|(path, meta)| Item::Fifo { path, meta: GenMeta { xattrs: Vec::new(), ..meta } }),
        1 => path().prop_map(|path| Item::NullDev { path }),
        4 => path().prop_map(|path| Item::Whiteout { path }),
        2 => path().prop_map(|path| Item::Opaque { path }),
    ]
}

/// A stack of 1 to 12 layers (most of them short), each of up to 10 items.
pub fn stack() -> impl Strategy<Value = Stack> {
    let layers = prop_oneof![6 => 1usize..=3, 3 => 4usize..=7, 1 => 8usize..=12];
    layers
        .prop_flat_map(|n| vec(vec(item(), 0..=10), n))
        .prop_map(Stack::new)
}

/// One operation on the merged view.
pub fn op() -> impl Strategy<Value = Op> {
    let data = || vec(prop::sample::select(b"pqr".to_vec()), 1..24);
    prop_oneof![
        3 => (path(), data(), mode()).prop_map(|(path, data, mode)| Op::Create { path, data, mode }),
        3 => (path(), 0u64..2048, data()).prop_map(|(path, offset, data)| Op::WriteAt { path, offset, data }),
        2 => (path(), data()).prop_map(|(path, data)| Op::Append { path, data }),
        2 => (path(), 0u64..3000).prop_map(|(path, len)| Op::Truncate { path, len }),
        3 => (path(), mode()).prop_map(|(path, mode)| Op::Chmod { path, mode }),
        2 => (path(), 0u32..3, 0u32..3).prop_map(|(path, uid, gid)| Op::Chown { path, uid, gid }),
        2 => (path(), mtime()).prop_map(|(path, mtime)| Op::SetMtime { path, mtime }),
        2 => (path(), prop::sample::select(vec!["user.a", "user.c"]), vec(any::<u8>(), 0..6))
            .prop_map(|(path, k, value)| Op::SetXattr { path, key: k.to_string(), value }),
        3 => path().prop_map(|path| Op::Unlink { path }),
        2 => path().prop_map(|path| Op::Rmdir { path }),
        3 => (path(), mode()).prop_map(|(path, mode)| Op::Mkdir { path, mode: mode & 0o777 | 0o700 }),
        4 => (path(), path()).prop_map(|(from, to)| Op::Rename { from, to }),
        2 => (path(), path()).prop_map(|(from, to)| Op::Link { from, to }),
        1 => (symlink_target(), path()).prop_map(|(target, path)| Op::Symlink { target, path }),
        2 => (path(), special(), mode()).prop_map(|(path, node, mode)| Op::Mknod { path, node, mode }),
    ]
}

/// What mknod makes: a fifo, or a char device like /dev/null or /dev/zero (harmless if
/// anything opens it). Never the whiteout device 0:0 (see `Op::Mknod`): only the overlay
/// drivers refuse it as the model says.
fn special() -> impl Strategy<Value = Special> {
    prop_oneof![
        2 => Just(Special::Fifo),
        1 => Just(Special::Char { major: 1, minor: 3 }),
        1 => Just(Special::Char { major: 1, minor: 5 }),
    ]
}

/// Up to 10 operations.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    vec(op(), 0..=10)
}

//! Hostile layer tars: a few harmless entries, then one that tries to leave the layer (a
//! `..` component, an absolute name, a hard link to a name outside the layer). Import must
//! refuse each, naming why, before anything of it is written. The tars are written header by
//! header here: tar writers (strata's and the `tar` crate) refuse to write such names.

use std::path::Path;

use proptest::prelude::*;
use strata_runtime::store::Store;

/// The type of a hostile entry named by its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    File,
    Dir,
    Symlink,
}

/// The one entry that tries to leave the layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Breakout {
    /// An entry whose name has a `..` component.
    DotDot(String, Type),
    /// An entry with an absolute name.
    Absolute(String, Type),
    /// A hard link `h` to a name outside the layer.
    LinkOut(String),
}

impl Breakout {
    /// What the refusal must say.
    pub fn reason(&self) -> &'static str {
        match self {
            Breakout::DotDot(..) => "`..`",
            Breakout::Absolute(..) => "absolute",
            Breakout::LinkOut(_) => "outside the layer",
        }
    }
}

/// A generated hostile tar: `benign` entries (of `a/`, `a/f`, `b`) then the breakout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostileTar {
    pub benign: Vec<&'static str>,
    pub breakout: Breakout,
}

fn ty() -> impl Strategy<Value = Type> {
    prop::sample::select(vec![Type::File, Type::Dir, Type::Symlink])
}

/// Hostile tars.
pub fn hostile_tar() -> impl Strategy<Value = HostileTar> {
    let dotdot = [
        "../x",
        "../../x",
        "a/../../x",
        "a/../b/../../x",
        "./../x",
        "a/..",
        "../a/f",
        "a/../b",
    ];
    let absolute = ["/x", "/a/f", "/etc/passwd", "//b", "/../x", "/a/../b"];
    let link_out = [
        "/b",
        "/a/f",
        "../b",
        "a/../../b",
        "/etc/passwd",
        "../../a/f",
    ];
    let breakout = prop_oneof![
        (prop::sample::select(dotdot.to_vec()), ty())
            .prop_map(|(n, t)| Breakout::DotDot(n.into(), t)),
        (prop::sample::select(absolute.to_vec()), ty())
            .prop_map(|(n, t)| Breakout::Absolute(n.into(), t)),
        prop::sample::select(link_out.to_vec()).prop_map(|t| Breakout::LinkOut(t.into())),
    ];
    (
        prop::sample::subsequence(vec!["a/", "a/f", "b"], 0..=3),
        breakout,
    )
        .prop_map(|(benign, breakout)| HostileTar { benign, breakout })
}

/// One ustar header block.
fn header(name: &str, typeflag: u8, mode: u32, size: u64, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, len: usize, v: &[u8]| {
        let n = v.len().min(len);
        h[at..at + n].copy_from_slice(&v[..n]);
    };
    let octal = |v: u64, width: usize| format!("{v:0w$o}\0", w = width - 1).into_bytes();
    put(&mut h, 0, 100, name.as_bytes());
    put(&mut h, 100, 8, &octal(u64::from(mode), 8));
    put(&mut h, 108, 8, &octal(0, 8));
    put(&mut h, 116, 8, &octal(0, 8));
    put(&mut h, 124, 12, &octal(size, 12));
    put(&mut h, 136, 12, &octal(0, 12));
    h[156] = typeflag;
    put(&mut h, 157, 100, link.as_bytes());
    put(&mut h, 257, 6, b"ustar\0");
    put(&mut h, 263, 2, b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    put(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes());
    h
}

impl HostileTar {
    /// The tar, as bytes.
    pub fn to_tar(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut entry = |name: &str, t: Type, data: &[u8]| {
            let (flag, mode, link) = match t {
                Type::File => (b'0', 0o644, ""),
                Type::Dir => (b'5', 0o755, ""),
                Type::Symlink => (b'2', 0o777, "b"),
            };
            out.extend_from_slice(&header(name, flag, mode, data.len() as u64, link));
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        };
        for b in &self.benign {
            if let Some(d) = b.strip_suffix('/') {
                entry(&format!("{d}/"), Type::Dir, b"");
            } else {
                entry(b, Type::File, b"harmless\n");
            }
        }
        match &self.breakout {
            Breakout::DotDot(n, t) | Breakout::Absolute(n, t) => {
                let data: &[u8] = if *t == Type::File { b"escaped\n" } else { b"" };
                entry(n, *t, data);
            }
            Breakout::LinkOut(target) => {
                out.extend_from_slice(&header("h", b'1', 0o644, 0, target));
            }
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }
}

/// Imports `case` into a fresh store under `dir`: Ok when it was refused with its reason and
/// nothing escaped the store; else what went wrong.
pub fn refused(dir: &Path, case: &HostileTar) -> Result<(), String> {
    let store_dir = dir.join("store");
    let store = Store::open(&store_dir).map_err(|e| format!("open store: {e}"))?;
    let before = listing(dir)?;
    let got = store.import_reader(&case.to_tar()[..], Path::new("hostile.tar"));
    let after = listing(dir)?;
    if before != after {
        return Err(format!(
            "the import wrote beside the store: {:?}",
            after.difference(&before).collect::<Vec<_>>()
        ));
    }
    match got {
        Ok(i) => Err(format!(
            "import accepted a breakout ({:?}) as layer {}",
            case.breakout,
            i.layer.digest()
        )),
        Err(e) if e.to_string().contains(case.breakout.reason()) => Ok(()),
        Err(e) => Err(format!(
            "import refused {:?}, but not for leaving the layer ({}): {e}",
            case.breakout,
            case.breakout.reason()
        )),
    }
}

/// The names directly in `dir` (the store's siblings, where a breakout would land).
fn listing(dir: &Path) -> Result<std::collections::BTreeSet<String>, String> {
    std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .map(|e| {
            e.map(|e| e.file_name().to_string_lossy().into_owned())
                .map_err(|e| format!("{}: {e}", dir.display()))
        })
        .collect()
}

//! A committed layer tar as a list of entries, and the checks of a case's `[expect.commit]`.
//!
//! Entries render like `tar -tv` without the columns: `d/` a directory, `f` a file,
//! `l -> target` a symlink, `b link to a` a hard link, `c (char 1:3)`, `b (block 7:0)`,
//! `p (fifo)`; whiteouts and opaque markers are files named `.wh.NAME` and `.wh..wh..opq`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use strata_runtime::layer::tarread::{TarKind, TarReader};
use strata_runtime::model::Timespec;

use super::case::{CommitCheck, DetailCheck, KindCheck};
use super::expect::{Got, Miss};
use super::show_bytes;

/// One entry of a tar, as written.
#[derive(Clone, Debug)]
pub struct TarItem {
    /// The name as stored (directories end in `/`).
    pub name: String,
    pub kind: KindCheck,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: Timespec,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub data: Vec<u8>,
}

impl TarItem {
    /// `tar -t` with the kind: see the module doc.
    pub fn render(&self) -> String {
        match &self.kind {
            KindCheck::Symlink(t) => format!("{} -> {}", self.name, t.as_deref().unwrap_or("")),
            KindCheck::HardLink(t) => {
                format!("{} link to {}", self.name, t.as_deref().unwrap_or(""))
            }
            KindCheck::CharDev(Some((a, b))) => format!("{} (char {a}:{b})", self.name),
            KindCheck::BlockDev(Some((a, b))) => format!("{} (block {a}:{b})", self.name),
            KindCheck::Fifo => format!("{} (fifo)", self.name),
            _ => self.name.clone(),
        }
    }
}

/// Reads every entry of an uncompressed tar, with strata's own reader (the one import uses:
/// PAX records hold any bytes, newlines included).
pub fn list(tar_bytes: &[u8]) -> Result<Vec<TarItem>, String> {
    let mut r = TarReader::new(tar_bytes);
    let mut out = Vec::new();
    while let Some(m) = r.next_member().map_err(|e| format!("commit tar: {e}"))? {
        let name = String::from_utf8_lossy(&m.name).into_owned();
        let link = Some(String::from_utf8_lossy(&m.link).into_owned());
        let dev = Some((m.dev_major, m.dev_minor));
        let kind = match m.kind {
            TarKind::Regular => KindCheck::File,
            TarKind::Directory => KindCheck::Dir,
            TarKind::Symlink => KindCheck::Symlink(link),
            TarKind::HardLink => KindCheck::HardLink(link),
            TarKind::CharDev => KindCheck::CharDev(dev),
            TarKind::BlockDev => KindCheck::BlockDev(dev),
            TarKind::Fifo => KindCheck::Fifo,
        };
        let mut data = Vec::new();
        if kind == KindCheck::File {
            r.data()
                .read_to_end(&mut data)
                .map_err(|err| format!("commit tar: {name}: {err}"))?;
        }
        out.push(TarItem {
            name,
            kind,
            mode: m.mode & 0o7777,
            uid: m.uid as u32,
            gid: m.gid as u32,
            size: m.size,
            mtime: m.mtime,
            xattrs: m.xattrs,
            data,
        });
    }
    Ok(out)
}

/// The view path a rendered commit entry is about: `d/.wh.x` -> `d/x`, `d/.wh..wh..opq` ->
/// `d`, `l -> t` -> `l`, `d/` -> `d`.
pub fn entry_path(rendered: &str) -> String {
    let name = [" -> ", " link to ", " ("]
        .iter()
        .filter_map(|sep| rendered.find(sep))
        .min()
        .map_or(rendered, |i| &rendered[..i]);
    let name = name.trim_end_matches('/');
    let (dir, base) = name.rsplit_once('/').unwrap_or(("", name));
    let join = |b: &str| {
        if dir.is_empty() {
            b.to_string()
        } else if b.is_empty() {
            dir.to_string()
        } else {
            format!("{dir}/{b}")
        }
    };
    if base == ".wh..wh..opq" {
        dir.to_string()
    } else if let Some(b) = base.strip_prefix(".wh.") {
        join(b)
    } else {
        join(base)
    }
}

/// Every way `items` misses the case's commit expectation, each with the view paths it is
/// about.
pub fn check(c: &CommitCheck, items: &[TarItem]) -> Vec<Miss> {
    let mut out = Vec::new();
    let mut push = |key: &str, paths: Vec<String>, text: String| {
        out.push(Miss {
            key: format!("commit {key}"),
            got: Got::Commit(paths),
            text,
        })
    };
    let rendered: Vec<String> = items.iter().map(TarItem::render).collect();
    if let Some(want) = &c.entries
        && *want != rendered
    {
        // The entries one side has and the other lacks (none: only the order differs).
        let only = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter()
                .filter(|x| !b.contains(x))
                .map(|x| entry_path(x))
                .collect()
        };
        let mut paths = only(want, &rendered);
        paths.extend(only(&rendered, want));
        paths.sort();
        paths.dedup();
        push(
            "entries",
            paths,
            format!(
                "commit entries: expected [{}] got [{}]",
                want.join(", "),
                rendered.join(", ")
            ),
        );
    }
    let names: BTreeSet<&str> = items.iter().map(|i| i.name.as_str()).collect();
    for n in &c.includes {
        if !names.contains(n.as_str()) {
            push(
                n,
                vec![entry_path(n)],
                format!("commit: {n} missing (entries: [{}])", rendered.join(", ")),
            );
        }
    }
    for n in &c.excludes {
        if names.contains(n.as_str()) {
            push(
                n,
                vec![entry_path(n)],
                format!("commit: {n} must not be in the layer"),
            );
        }
    }
    for d in &c.details {
        let mut bad = Vec::new();
        match items.iter().find(|i| i.name == d.name) {
            None if d.optional => {}
            None => bad.push(format!(
                "commit: {} missing (entries: [{}])",
                d.name,
                rendered.join(", ")
            )),
            Some(i) => detail(d, i, &mut bad),
        }
        for text in bad {
            push(&d.name, vec![entry_path(&d.name)], text);
        }
    }
    out
}

fn detail(d: &DetailCheck, i: &TarItem, out: &mut Vec<String>) {
    let mut bad = |field: &str, want: String, got: String| {
        if want != got {
            out.push(format!(
                "commit: {}: {field} expected {want} got {got}",
                i.name
            ));
        }
    };
    if let Some(k) = &d.kind {
        let same_kind = k.name() == i.kind.name();
        let detail_given = match k {
            KindCheck::Symlink(t) | KindCheck::HardLink(t) => t.is_some(),
            KindCheck::CharDev(x) | KindCheck::BlockDev(x) => x.is_some(),
            _ => false,
        };
        if !same_kind || (detail_given && *k != i.kind) {
            bad("type", format!("{k:?}"), format!("{:?}", i.kind));
        }
    }
    if let Some(m) = d.mode {
        bad("mode", format!("{m:04o}"), format!("{:04o}", i.mode));
    }
    if let Some((u, g)) = d.owner {
        bad("owner", format!("{u}:{g}"), format!("{}:{}", i.uid, i.gid));
    }
    if let Some(s) = d.size {
        bad("size", s.to_string(), i.size.to_string());
    }
    if let Some(t) = d.mtime {
        bad("mtime", t.to_string(), i.mtime.to_string());
    }
    if let Some(c) = &d.content {
        bad("content", show_bytes(c), show_bytes(&i.data));
    }
    if let Some(x) = &d.xattrs {
        bad("xattrs", show_xattrs(x), show_xattrs(&i.xattrs));
    }
}

/// `{k=v, ...}` with printable values as text, others as hex.
pub fn show_xattrs(x: &BTreeMap<String, Vec<u8>>) -> String {
    let parts: Vec<String> = x
        .iter()
        .map(|(k, v)| format!("{k}={}", show_bytes(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_runtime::fixture::Layer;

    #[test]
    fn entries_render_like_tar_tv_and_are_checked() {
        let tar = Layer::new()
            .whiteout("gone")
            .dir("d")
            .mode(0o750)
            .file("d/f", "data")
            .hardlink("d/g", "d/f")
            .symlink("l", "../x")
            .chardev("c", 1, 3)
            .fifo("p")
            .opaque("d")
            .to_tar()
            .unwrap();
        let items = list(&tar).unwrap();
        let shown: Vec<String> = items.iter().map(TarItem::render).collect();
        assert_eq!(
            shown,
            vec![
                ".wh.gone",
                "d/",
                "d/f",
                "d/g link to d/f",
                "l -> ../x",
                "c (char 1:3)",
                "p (fifo)",
                "d/.wh..wh..opq"
            ]
        );
        let ok = CommitCheck {
            entries: Some(shown.clone()),
            includes: vec!["d/".into()],
            excludes: vec!["e".into()],
            details: vec![DetailCheck {
                name: "d/".into(),
                mode: Some(0o750),
                ..DetailCheck::default()
            }],
        };
        assert!(check(&ok, &items).is_empty(), "{:?}", check(&ok, &items));
        for (r, p) in [
            (".wh.gone", "gone"),
            ("d/", "d"),
            ("d/g link to d/f", "d/g"),
            ("l -> ../x", "l"),
            ("c (char 1:3)", "c"),
            ("d/.wh..wh..opq", "d"),
            ("d/.wh.x", "d/x"),
        ] {
            assert_eq!(entry_path(r), p);
        }
        let bad = CommitCheck {
            entries: Some(vec!["d/".into()]),
            includes: vec!["x".into()],
            excludes: vec!["d/f".into()],
            details: vec![
                DetailCheck {
                    name: ".wh.gone".into(),
                    size: Some(1),
                    ..DetailCheck::default()
                },
                DetailCheck {
                    name: "absent".into(),
                    optional: true,
                    ..DetailCheck::default()
                },
            ],
        };
        let misses = check(&bad, &items);
        assert_eq!(misses.len(), 4, "{misses:#?}");
    }

    #[test]
    fn pax_records_holding_newlines_are_read_whole() {
        // The tar crate's PAX parser split records at newlines; strata's reader does not.
        let tar = Layer::new()
            .file("f", "x")
            .xattr("user.note", "line one\nline two\n")
            .mtime(1_600_000_000, 250_000_000)
            .to_tar()
            .unwrap();
        let items = list(&tar).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].xattrs.get("user.note").map(Vec::as_slice),
            Some(&b"line one\nline two\n"[..])
        );
        assert_eq!(items[0].mtime, Timespec::new(1_600_000_000, 250_000_000));
        assert_eq!(items[0].data, b"x");
    }
}

//! Layer import: what is kept (every kind of entry and its metadata, sparse files,
//! compression, directories in OCI form) and what is refused (names and links that would
//! escape, invalid whiteouts, broken archives), with nothing written outside the store and
//! no partial layer left behind.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use strata_runtime::fixture::Layer;
use strata_runtime::model::{self, Change, CompareOptions, Kind};
use strata_runtime::scan::scan;
use tar::{EntryType, Header};

/// A tar entry with an arbitrary raw name (the tar crate refuses to write bad names itself).
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: EntryType, link: Option<&str>, data: &[u8]) {
    let mut h = Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(1);
    // Owned by whoever runs the test (root in CI), so the entries before a refused one
    // extract without privilege.
    h.set_uid(u64::from(rustix::process::geteuid().as_raw()));
    h.set_gid(u64::from(rustix::process::getegid().as_raw()));
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

fn end(out: &mut Vec<u8>) {
    out.extend(std::iter::repeat_n(0u8, 1024));
}

fn store_is_clean(e: &common::Env) {
    assert!(
        e.store.layers().unwrap().is_empty(),
        "a failed import left a layer"
    );
    let tmp = e.store.root().join("tmp");
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "a failed import left files in {}",
        tmp.display()
    );
}

#[test]
fn bad_entries_are_refused_with_the_tar_the_entry_and_the_reason() {
    // No root: refusals are about names, and the entries before them are the test's own.
    let e = common::unprivileged_env();
    let outside = e.fresh_dir("outside");
    let o = outside.display().to_string();
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = {
        let mut v = Vec::new();
        let mut t = Vec::new();
        raw_entry(&mut t, "../escape", EntryType::Regular, None, b"x");
        end(&mut t);
        v.push(("dotdot", t, "../escape", "`..`"));
        let mut t = Vec::new();
        raw_entry(&mut t, "a/../../escape", EntryType::Regular, None, b"x");
        end(&mut t);
        v.push(("nested dotdot", t, "a/../../escape", "`..`"));
        let mut t = Vec::new();
        raw_entry(&mut t, "/etc/evil", EntryType::Regular, None, b"x");
        end(&mut t);
        v.push(("absolute", t, "/etc/evil", "absolute"));
        let mut t = Vec::new();
        raw_entry(&mut t, "link", EntryType::Symlink, Some(&o), b"");
        raw_entry(&mut t, "link/pwned", EntryType::Regular, None, b"x");
        end(&mut t);
        v.push(("through a symlink", t, "link/pwned", "symlink"));
        let mut t = Vec::new();
        raw_entry(&mut t, "hl", EntryType::Link, Some("/etc/passwd"), b"");
        end(&mut t);
        v.push(("hard link absolute", t, "hl", "outside the layer"));
        let mut t = Vec::new();
        raw_entry(&mut t, "hl", EntryType::Link, Some("../../etc/passwd"), b"");
        end(&mut t);
        v.push(("hard link dotdot", t, "hl", "outside the layer"));
        let mut t = Vec::new();
        raw_entry(&mut t, "hl", EntryType::Link, Some("etc/shadow"), b"");
        end(&mut t);
        v.push((
            "hard link to a name not in the layer",
            t,
            "hl",
            "not in this layer",
        ));
        for bad in [".wh.", "d/.wh..", "d/.wh..."] {
            let mut t = Vec::new();
            raw_entry(&mut t, bad, EntryType::Regular, None, b"");
            end(&mut t);
            v.push(("invalid whiteout", t, bad, "invalid whiteout"));
        }
        let mut t = Vec::new();
        raw_entry(&mut t, "f", EntryType::Regular, None, b"1");
        raw_entry(&mut t, "f", EntryType::Regular, None, b"2");
        end(&mut t);
        v.push(("duplicate", t, "f", "duplicate"));
        let mut t = Vec::new();
        raw_entry(&mut t, "f", EntryType::Regular, None, b"1");
        raw_entry(&mut t, "f/g", EntryType::Regular, None, b"2");
        end(&mut t);
        v.push(("parent is a file", t, "f/g", "not a directory"));
        v
    };
    for (what, tar, entry, reason) in cases {
        let label = e.dir.path().join(format!("{}.tar", what.replace(' ', "-")));
        fs::write(&label, &tar).unwrap();
        let err = e.store.import_path(&label).unwrap_err().to_string();
        assert!(
            err.contains(&label.display().to_string()),
            "{what}: error does not name the tar: {err}"
        );
        assert!(
            err.contains(&format!("{entry:?}")),
            "{what}: error does not name the entry: {err}"
        );
        assert!(
            err.contains(reason),
            "{what}: error does not say {reason:?}: {err}"
        );
        assert!(!err.contains('\n'), "{what}: error is not one line: {err}");
        store_is_clean(&e);
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "{what}: wrote outside the store"
        );
        assert!(!e.dir.path().join("escape").exists() && !e.store.root().join("escape").exists());
    }
}

#[test]
fn broken_archives_are_refused_in_one_line() {
    // No root: refusals are about names, and the entries before them are the test's own.
    let e = common::unprivileged_env();
    let good = Layer::new()
        .dir("d")
        .file("d/a", vec![1u8; 3000])
        .file("d/b", "b")
        .to_tar()
        .unwrap();
    let at_boundary = {
        // Cut right after the first file's data: only the end-of-archive blocks are missing.
        let first = 512 /* d/ */ + 512 + 3072;
        good[..first].to_vec()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated inside an entry",
            good[..1500].to_vec(),
            "truncated",
        ),
        ("truncated at an entry boundary", at_boundary, "truncated"),
        (
            "not a tar",
            b"this is plainly not a tar archive, just some text that goes on for a while...."
                .repeat(10),
            "not a tar",
        ),
        ("empty", Vec::new(), "truncated"),
        (
            "truncated gzip",
            {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&good).unwrap();
                let v = gz.finish().unwrap();
                v[..v.len() / 2].to_vec()
            },
            "",
        ),
    ];
    for (what, bytes, reason) in cases {
        let p = e.dir.path().join(format!("{}.tar", what.replace(' ', "-")));
        fs::write(&p, &bytes).unwrap();
        let err = e.store.import_path(&p).unwrap_err().to_string();
        assert!(err.contains(&p.display().to_string()), "{what}: {err}");
        assert!(err.contains(reason), "{what}: expected {reason:?} in {err}");
        assert!(!err.contains('\n'), "{what}: not one line: {err}");
        store_is_clean(&e);
    }
    let missing = e.dir.path().join("missing.tar");
    let err = e.store.import_path(&missing).unwrap_err().to_string();
    assert!(
        err.contains("missing.tar") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn every_kind_of_entry_and_its_metadata_is_kept() {
    let e = need_root!();
    let l = Layer::new()
        .dir("d")
        .mode(0o1777)
        .owner(3, 4)
        .mtime(1_500_000_000, 5)
        .file("d/suid", "s")
        .mode(0o4755)
        .owner(1000, 1000)
        .mtime(1_600_000_000, 999_999_999)
        .file("cap", "c")
        .xattr(
            "security.capability",
            [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        )
        .xattr("user.key", "value")
        .symlink("sym", "d/suid")
        .owner(5, 5)
        .symlink("abs", "/etc/passwd")
        .hardlink("d/suid-link", "d/suid")
        .chardev("tty", 5, 0)
        .blockdev("sda", 8, 0)
        .fifo("pipe");
    let stored = e.import(&l);
    let expected = model::apply(&[l.changeset()]).unwrap();
    common::assert_tree(
        "imported layer",
        &stored.fs(),
        &expected,
        &CompareOptions::default(),
    );
    assert_eq!(
        stored.changes().unwrap(),
        l.changeset(),
        "the stored change set is not the fixture's"
    );
}

#[test]
fn whiteouts_and_opaque_dirs_are_stored_in_overlayfs_form() {
    let e = need_root!();
    let l = Layer::new()
        .whiteout("gone")
        .dir("opq")
        .opaque("opq")
        .whiteout("opq/inside")
        .dir("recreated")
        .file("recreated/x", "x")
        .whiteout("recreated")
        .file("kept", "k")
        .whiteout("kept");
    let stored = e.import(&l);
    let fs_dir = stored.fs();
    let m = fs::symlink_metadata(fs_dir.join("gone")).unwrap();
    assert!(
        m.file_type().is_char_device_like() && m.rdev() == 0,
        "gone is not a 0:0 whiteout"
    );
    for d in ["opq", "recreated"] {
        let v = xattr_get(&fs_dir.join(d), "trusted.overlay.opaque");
        assert_eq!(v.as_deref(), Some(&b"y"[..]), "{d} is not opaque");
    }
    assert!(
        fs::symlink_metadata(fs_dir.join("opq/inside")).is_err(),
        "a whiteout inside an opaque dir"
    );
    assert_eq!(fs::read_to_string(fs_dir.join("kept")).unwrap(), "k");
    let cs = stored.changes().unwrap();
    assert!(cs.changes.contains(&Change::Whiteout {
        path: "gone".into()
    }));
    assert!(cs.changes.contains(&Change::Opaque { path: "opq".into() }));
}

trait CharDevLike {
    fn is_char_device_like(&self) -> bool;
}
impl CharDevLike for fs::FileType {
    fn is_char_device_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_char_device()
    }
}

fn xattr_get(p: &Path, key: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64];
    match rustix::fs::lgetxattr(p, key, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

#[test]
fn sparse_files_stay_sparse_and_gzip_and_zstd_layers_import_to_the_same_digest() {
    let e = need_root!();
    let src = e.fresh_dir("sparse-src");
    let f = fs::File::create(src.join("holes")).unwrap();
    f.set_len(64 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"middle", 32 << 20).unwrap();
    drop(f);
    let tar = e.dir.path().join("sparse.tar");
    let st = std::process::Command::new("tar")
        .args(["--sparse", "--format=gnu", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&tar)
        .arg("holes")
        .status()
        .unwrap();
    assert!(st.success());
    let plain = e.store.import_path(&tar).unwrap();
    let stored = plain.layer.fs().join("holes");
    let meta = fs::metadata(&stored).unwrap();
    assert_eq!(meta.len(), 64 << 20);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "the sparse file was filled in: {} blocks",
        meta.blocks()
    );
    let mut buf = [0u8; 6];
    fs::File::open(&stored)
        .unwrap()
        .read_exact_at(&mut buf, 32 << 20)
        .unwrap();
    assert_eq!(&buf, b"middle");

    let bytes = Layer::new().dir("d").file("d/f", "data").to_tar().unwrap();
    let raw = e.dir.path().join("l.tar");
    fs::write(&raw, &bytes).unwrap();
    let gz = e.dir.path().join("l.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(
        fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&bytes).unwrap();
    enc.finish().unwrap();
    let zst = e.dir.path().join("l.tar.zst");
    fs::write(&zst, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
    let a = e.store.import_path(&raw).unwrap();
    let b = e.store.import_path(&gz).unwrap();
    let c = e.store.import_path(&zst).unwrap();
    assert_eq!(a.layer.info.diff_id, strata_runtime::Digest::of(&bytes));
    assert_eq!(a.layer.info.diff_id, b.layer.info.diff_id);
    assert_eq!(a.layer.info.diff_id, c.layer.info.diff_id);
    assert!(b.reused && c.reused);
}

#[test]
fn a_directory_in_oci_layer_form_imports_like_its_tar() {
    let e = need_root!();
    let d = e.fresh_dir("layer-dir");
    fs::create_dir_all(d.join("etc/opq")).unwrap();
    fs::write(d.join("etc/hosts"), "h").unwrap();
    fs::write(d.join("etc/.wh.gone"), "").unwrap();
    fs::write(d.join("etc/opq/.wh..wh..opq"), "").unwrap();
    fs::hard_link(d.join("etc/hosts"), d.join("etc/hosts2")).unwrap();
    std::os::unix::fs::symlink("hosts", d.join("etc/link")).unwrap();
    let imp = e.store.import_path(&d).unwrap();
    let mut tar = Vec::new();
    strata_runtime::layer::source::tar_directory(&d, &mut tar).unwrap();
    assert_eq!(imp.layer.info.diff_id, strata_runtime::Digest::of(&tar));
    let cs = imp.layer.changes().unwrap();
    assert!(
        cs.changes.contains(&Change::Whiteout {
            path: "etc/gone".into()
        }),
        "{cs:?}"
    );
    assert!(
        cs.changes.contains(&Change::Opaque {
            path: "etc/opq".into()
        }),
        "{cs:?}"
    );
    let tree = scan(&imp.layer.fs()).unwrap();
    assert_eq!(
        tree.hardlink_groups(),
        vec![vec!["etc/hosts".to_string(), "etc/hosts2".into()]]
    );
    assert!(
        matches!(tree.get("etc/link").unwrap().kind, Kind::Symlink { ref target } if target == "hosts")
    );
}

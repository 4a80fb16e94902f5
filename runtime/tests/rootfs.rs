//! `rootfs from-host`: binaries, their ELF interpreter and every library they load (found as
//! ld.so finds them), the symlinks on those paths, a minimal /etc, empty mount points; the
//! tree runs under chroot, and its tar is deterministic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use strata_runtime::rootfs;
use strata_runtime::store::Store;

fn bins(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The DT_NEEDED names `ldd` reports for `bin` (the host's own view, to cross-check ours).
fn ldd_names(bin: &str) -> Vec<String> {
    let out = Command::new("ldd").arg(bin).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| !n.starts_with("linux-vdso"))
        .map(|n| {
            Path::new(n)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn binaries_come_with_their_interpreter_libraries_and_the_symlinks_on_their_paths() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("rootfs");
    let b = rootfs::from_host(&out, &bins(&["/bin/sh", "/bin/ls"])).unwrap();
    // Every library ldd names is in the tree, reachable by the name the loader asks for.
    for bin in ["/bin/sh", "/bin/ls"] {
        assert!(
            fs::metadata(out.join(bin.trim_start_matches('/'))).is_ok(),
            "{bin}"
        );
        for lib in ldd_names(bin) {
            let found = b
                .libraries
                .iter()
                .chain(&b.interpreters)
                .any(|l| l.ends_with(&lib));
            assert!(found, "{bin}: {lib} missing from {:?}", b.libraries);
        }
    }
    for l in b.libraries.iter().chain(&b.interpreters) {
        let p = out.join(l.trim_start_matches('/'));
        // Resolve inside the tree, never on the host: follow relative links by hand.
        assert!(
            resolves_inside(&out, &p),
            "{l} does not resolve inside {out:?}"
        );
    }
    // Symlinks on the host paths are symlinks here too (merged /usr: /bin -> usr/bin).
    for p in ["bin", "lib", "lib64", "bin/sh"] {
        let host = fs::symlink_metadata(Path::new("/").join(p)).unwrap();
        let ours = fs::symlink_metadata(out.join(p)).unwrap();
        assert_eq!(
            host.file_type().is_symlink(),
            ours.file_type().is_symlink(),
            "{p}"
        );
        if host.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(Path::new("/").join(p)).unwrap(),
                fs::read_link(out.join(p)).unwrap()
            );
        }
    }
    assert_eq!(
        fs::read_to_string(out.join("etc/passwd"))
            .unwrap()
            .lines()
            .next(),
        Some("root:x:0:0:root:/root:/bin/sh")
    );
    assert!(
        fs::read_to_string(out.join("etc/group"))
            .unwrap()
            .starts_with("root:x:0:")
    );
    for (dir, mode) in [
        ("proc", 0o755),
        ("dev", 0o755),
        ("sys", 0o755),
        ("tmp", 0o1777),
    ] {
        let m = fs::symlink_metadata(out.join(dir)).unwrap();
        assert!(m.is_dir(), "{dir}");
        assert_eq!(m.permissions().mode() & 0o7777, mode, "{dir}");
        assert_eq!(fs::read_dir(out.join(dir)).unwrap().count(), 0, "{dir}");
    }
    assert!(!b.interpreters.is_empty());
}

/// Follows symlinks under `root` as if it were `/`; true when the file exists there.
fn resolves_inside(root: &Path, p: &Path) -> bool {
    let mut cur = p.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                let t = fs::read_link(&cur).unwrap();
                cur = if t.is_absolute() {
                    root.join(t.strip_prefix("/").unwrap())
                } else {
                    cur.parent().unwrap().join(t)
                };
            }
            Ok(m) => return m.is_file(),
            // A parent is a symlink: resolve the longest existing prefix instead.
            Err(_) => {
                let rel = cur.strip_prefix(root).unwrap().to_path_buf();
                let mut base = root.to_path_buf();
                let mut comps = rel.components().peekable();
                while let Some(c) = comps.next() {
                    let next = base.join(c);
                    match fs::symlink_metadata(&next) {
                        Ok(m) if m.file_type().is_symlink() && comps.peek().is_some() => {
                            let t = fs::read_link(&next).unwrap();
                            base = if t.is_absolute() {
                                root.join(t.strip_prefix("/").unwrap())
                            } else {
                                base.join(t)
                            };
                        }
                        Ok(_) => base = next,
                        Err(_) => return false,
                    }
                }
                if base == cur {
                    return false;
                }
                cur = base;
            }
        }
    }
    false
}

#[test]
fn the_tree_runs_under_chroot() {
    if !strata_runtime::require::root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("rootfs");
    rootfs::from_host(&out, &bins(&["sh", "ls"])).unwrap();
    let o = Command::new("chroot")
        .arg(&out)
        .args(["/bin/sh", "-c", "ls /; echo ok"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        vec![
            "bin", "dev", "etc", "lib", "lib64", "proc", "root", "sys", "tmp", "usr", "ok"
        ]
    );
}

#[test]
fn the_tar_is_deterministic_and_its_digest_is_the_layer_diff_id() {
    let d = tempfile::tempdir().unwrap();
    let list = bins(&["/bin/sh", "/bin/true", "/bin/busybox"]);
    let a = rootfs::from_host_tar(&d.path().join("a"), &list, &d.path().join("a.tar")).unwrap();
    let b = rootfs::from_host_tar(&d.path().join("b"), &list, &d.path().join("b.tar")).unwrap();
    assert_eq!(a.digest, b.digest);
    assert_eq!(
        fs::read(d.path().join("a.tar")).unwrap(),
        fs::read(d.path().join("b.tar")).unwrap()
    );
    // A static binary brings no library.
    let s = rootfs::from_host(&d.path().join("s"), &bins(&["/bin/busybox"])).unwrap();
    assert!(s.libraries.is_empty() && s.interpreters.is_empty(), "{s:?}");
    if strata_runtime::sandbox::is_root() {
        let store = Store::open(&d.path().join("store")).unwrap();
        let imported = store.import_path(&d.path().join("a.tar")).unwrap();
        assert_eq!(Some(imported.layer.digest()), a.digest);
    } else {
        strata_runtime::require::skip_or_fail(
            strata_runtime::require::ROOT,
            "the import into a store needs root (it sets owners); the rest ran",
        );
    }
}

#[test]
fn a_script_brings_its_interpreter() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("hello");
    fs::write(&script, "#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let out = d.path().join("rootfs");
    let b = rootfs::from_host(&out, &[script.display().to_string()]).unwrap();
    assert!(out.join(script.strip_prefix("/").unwrap()).is_file());
    assert!(out.join("bin/sh").exists() || fs::symlink_metadata(out.join("bin/sh")).is_ok());
    assert!(b.libraries.iter().any(|l| l.contains("libc.so")), "{b:?}");
}

#[test]
fn bad_input_names_what_is_wrong_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("rootfs");
    let err = rootfs::from_host(&out, &bins(&["/bin/sh", "/no/such/bin"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such/bin"), "{err}");
    assert!(!out.exists(), "a failed build left {out:?}");
    let err = rootfs::from_host(&out, &bins(&["no-such-command-anywhere"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-command-anywhere"), "{err}");
    let err = rootfs::from_host(&out, &[]).unwrap_err().to_string();
    assert!(err.contains("no binaries"), "{err}");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("x"), "").unwrap();
    let err = rootfs::from_host(&out, &bins(&["/bin/sh"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not empty"), "{err}");
}

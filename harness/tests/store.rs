//! The store against crashes, concurrency and hostile writable layers (issue 14), through
//! the `strata` binary as a user meets it: every test in its own temporary directory and
//! private mount namespace, nothing left mounted.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rustix::fs::{Mode, OFlags};
use strata_runtime::fixture::Layer;
use strata_runtime::{driver, require, sandbox};

struct Cli {
    // Dropped first: the tmpfs goes before its mount point.
    _tmpfs: Tmpfs,
    dir: tempfile::TempDir,
}

/// A tmpfs mounted on the test's directory (the disk's discards made removing a
/// 10,000-deep chain take seconds), unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

impl Cli {
    /// Enters a private mount namespace (so the binary's mounts stay in it), or says why not.
    fn new() -> Option<Cli> {
        if !require::root() {
            return None;
        }
        sandbox::private_mount_namespace().unwrap();
        let dir = tempfile::Builder::new()
            .prefix("strata-store-")
            .tempdir()
            .unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("mode=0700"),
        )
        .unwrap();
        Some(Cli {
            _tmpfs: Tmpfs(dir.path().to_path_buf()),
            dir,
        })
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root").arg(self.root());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "strata {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs a command that must fail with one line mentioning `what`; returns that line.
    fn fails(&self, args: &[&str], what: &str) -> String {
        let o = self.run(args);
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(o.status.code(), Some(1), "strata {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "strata {args:?}: {err}");
        assert!(
            err.contains(what),
            "strata {args:?}: {err:?} lacks {what:?}"
        );
        err
    }

    fn write_layer(&self, name: &str, l: &Layer) -> String {
        let p = self.path(name);
        fs::write(&p, l.to_tar().unwrap()).unwrap();
        s(&p)
    }

    fn empty_dir(&self, name: &str) -> String {
        let p = self.path(name);
        fs::create_dir_all(&p).unwrap();
        s(&p)
    }

    /// No mount under the test's directory is left in this namespace.
    fn assert_nothing_mounted(&self) {
        let mi = sandbox::mountinfo().unwrap();
        // The test's own tmpfs is the directory itself; nothing may be mounted below it.
        let below = format!("{}/", self.dir.path().display());
        let left: Vec<&str> = mi.lines().filter(|l| l.contains(&below)).collect();
        assert!(left.is_empty(), "mounts left: {left:#?}");
    }

    /// The store holds no mount directory and no staging directory.
    fn assert_store_clean(&self) {
        for sub in ["mounts", "tmp"] {
            let names: Vec<_> = fs::read_dir(self.root().join(sub))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(names.is_empty(), "{sub}/ left: {names:?}");
        }
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The drivers a test of the whole mount cycle runs on here, each skipped (or failed under
/// STRATA_REQUIRE) with its reason when unavailable. btrfs needs its store on btrfs: the
/// conformance and property suites cover its walks.
fn drivers(store_root: &Path) -> Vec<&'static str> {
    fs::create_dir_all(store_root).unwrap();
    ["overlay", "overlay2", "copy", "fuse-overlayfs"]
        .into_iter()
        .filter(|n| require::driver_in(driver::by_name(n).unwrap(), store_root))
        .collect()
}

/// Makes a chain of `depth` directories `d/d/d/...` with a directory `leaf` at its end under
/// `dir`, one fd-relative step at a time (a path that long cannot be named in one lookup).
fn deep_chain(dir: &Path, depth: usize) {
    let mut fd: OwnedFd =
        rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    for made in 0..depth {
        rustix::fs::mkdirat(fd.as_fd(), "d", Mode::from_raw_mode(0o755))
            .unwrap_or_else(|e| panic!("mkdir at depth {made}: {e}"));
        fd = rustix::fs::openat(
            fd.as_fd(),
            "d",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .unwrap();
    }
    rustix::fs::mkdirat(fd.as_fd(), "leaf", Mode::from_raw_mode(0o700)).unwrap();
}

/// The depth a driver's writable layer can hold: fuse-overlayfs names each inode by its
/// whole path and refuses one longer than PATH_MAX (ENAMETOOLONG, near depth 2,000).
fn depth_for(driver: &str) -> usize {
    if driver == "fuse-overlayfs" {
        1_500
    } else {
        DEPTH
    }
}

const DEPTH: usize = 10_000;

/// Issue 14 item 2: a 10,000-deep directory chain in a writable layer made commit abort
/// with a stack overflow (recursive walks); commit, umount and umount --all now walk with
/// an explicit stack and a bounded number of open fds.
#[test]
fn a_ten_thousand_deep_chain_in_a_writable_layer_commits_and_unmounts() {
    let Some(c) = Cli::new() else {
        return;
    };
    let base = c.write_layer("base.tar", &Layer::new().file("f", "x"));
    for d in drivers(&c.root()) {
        let t = c.empty_dir(&format!("t-{d}"));
        c.ok(&["mount", "--driver", d, &base, &t]);
        let started = std::time::Instant::now();
        let depth = depth_for(d);
        deep_chain(Path::new(&t), depth);
        let out = s(&c.path(&format!("c-{d}.tar")));
        c.ok(&["commit", &t, "-o", &out]);
        let mut n = 0;
        let mut deepest = 0;
        for e in tar::Archive::new(fs::File::open(&out).unwrap())
            .entries()
            .unwrap()
        {
            let e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            if p.ends_with("/leaf/") || p.ends_with("/leaf") {
                deepest = p.matches("d/").count();
            }
            n += 1;
        }
        assert_eq!(n, depth + 1, "{d}: entries in the commit");
        assert_eq!(deepest, depth, "{d}: the leaf's depth");
        c.ok(&["umount", &t]);
        // And once more, this time left to umount --all.
        c.ok(&["mount", "--driver", d, &base, &t]);
        deep_chain(Path::new(&t), depth);
        c.ok(&["umount", "--all"]);
        c.assert_nothing_mounted();
        c.assert_store_clean();
        println!(
            "{d}: depth {depth}: made, committed, unmounted twice in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

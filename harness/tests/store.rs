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

impl Cli {
    /// A from-host image with /bin/sh and /bin/cat, imported; its digest.
    fn image(&self) -> String {
        let out = s(&self.path("rootfs"));
        let tar = s(&self.path("rootfs.tar"));
        self.ok(&[
            "rootfs",
            "from-host",
            "--out",
            &out,
            "--tar",
            &tar,
            "/bin/sh",
            "/bin/cat",
        ]);
        self.ok(&["layer", "import", &tar]).trim().to_string()
    }

    /// The store's mount records (mount.json files), parsed.
    fn records(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.root().join("mounts")).unwrap() {
            let p = e.unwrap().path().join("mount.json");
            if let Ok(b) = fs::read(&p) {
                out.push(serde_json::from_slice(&b).unwrap());
            }
        }
        out
    }

    /// Waits (no time limit: the test's own timeout is the bound) for a record in `state`.
    fn wait_for_record(&self, state: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !self.records().iter().any(|r| r["state"] == state) {
            assert!(
                std::time::Instant::now() < deadline,
                "no record in state {state} after 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Issue 14 item 1: `umount --all` took a running container's mount (in the run's private
/// namespace: EINVAL outside) for stale and deleted its writable layer under it. The run
/// holds the lock of its mount now; `umount --all` and gc leave it alone.
#[test]
fn umount_all_and_gc_leave_a_running_container_alone() {
    let Some(c) = Cli::new() else {
        return;
    };
    let img = c.image();
    for d in ["overlay", "copy"] {
        if !require::driver_in(driver::by_name(d).unwrap(), &c.root()) {
            continue;
        }
        let out = s(&c.path(&format!("run-{d}.tar")));
        let mut child = c
            .cmd()
            // -i: the command reads its stdin (without it, /dev/null).
            .args(["run", "-i", "--driver", d, "--commit", &out, &img, "--"])
            .args(["/bin/sh", "-c", "echo hi > /a; read x; cat /a"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.wait_for_record("mounted");
        let all = c.ok(&["umount", "--all"]);
        assert!(all.contains("skipped"), "{d}: {all}");
        let gc = c.ok(&["gc"]);
        assert!(
            gc.contains("0 leftover(s)") && gc.contains("1 live"),
            "{d}: {gc}"
        );
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "{d}: the container failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n", "{d}");
        let names: Vec<String> = tar::Archive::new(fs::File::open(&out).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&"a".to_string()), "{d}: {names:?}");
        c.assert_nothing_mounted();
        c.assert_store_clean();
    }
}

/// Issue 14 item 3: six parallel mounts onto one target stacked five mounts there. A mount
/// is made under the target's lock now: one wins, each other one is a clear refusal.
#[test]
fn parallel_mounts_onto_one_target_serialize() {
    let Some(c) = Cli::new() else {
        return;
    };
    let l = c.write_layer("l.tar", &Layer::new().file("f", "x"));
    let digest = c.ok(&["layer", "import", &l]).trim().to_string();
    for d in ["copy", "overlay"] {
        let t = c.empty_dir(&format!("t-{d}"));
        let children: Vec<_> = (0..6)
            .map(|_| {
                c.cmd()
                    .args(["mount", "--driver", d, &digest, &t])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|ch| ch.wait_with_output().unwrap())
            .collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(won, 1, "{d}: mounts that succeeded");
        for o in outs.iter().filter(|o| !o.status.success()) {
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{d}: {err}");
            assert_eq!(err.lines().count(), 1, "{d}: {err}");
            assert!(
                err.contains("already a strata mount") || err.contains("not empty"),
                "{d}: {err}"
            );
        }
        let mi = sandbox::mountinfo().unwrap();
        let on_t = mi
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some(t.as_str()))
            .count();
        assert_eq!(on_t, 1, "{d}: mounts on the target");
        fs::write(Path::new(&t).join("new"), "y").unwrap();
        let out = s(&c.path(&format!("c-{d}.tar")));
        c.ok(&["commit", &t, "-o", &out]);
        let names: Vec<String> = tar::Archive::new(fs::File::open(&out).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["new"], "{d}");
        c.ok(&["umount", &t]);
    }
    c.assert_nothing_mounted();
    c.assert_store_clean();
}

/// Issue 14 item 6: a recorded target unmounted by hand, then a user's tmpfs there:
/// `strata umount` detached the user's tmpfs. Only the mount strata made (its recorded
/// mountinfo identity) is unmounted now; the record and writable layer still go.
#[test]
fn umount_never_detaches_a_mount_strata_did_not_make() {
    let Some(c) = Cli::new() else {
        return;
    };
    let l = c.write_layer("l.tar", &Layer::new().file("f", "x"));
    for all in [false, true] {
        let t = c.empty_dir(&format!("t-{all}"));
        c.ok(&["mount", "--driver", "copy", &l, &t]);
        nix::mount::umount2(Path::new(&t), nix::mount::MntFlags::empty()).unwrap();
        nix::mount::mount(
            Some("users-tmpfs"),
            Path::new(&t),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        fs::write(Path::new(&t).join("mine"), "user data").unwrap();
        if all {
            c.ok(&["umount", "--all"]);
        } else {
            c.ok(&["umount", &t]);
        }
        assert_eq!(
            fs::read_to_string(Path::new(&t).join("mine")).unwrap(),
            "user data",
            "all={all}: the user's tmpfs was detached"
        );
        assert!(c.records().is_empty(), "all={all}: the record stayed");
        nix::mount::umount2(Path::new(&t), nix::mount::MntFlags::empty()).unwrap();
    }
    // strata's mount covered by a user's: refused, both left as they are.
    let t = c.empty_dir("covered");
    c.ok(&["mount", "--driver", "copy", &l, &t]);
    nix::mount::mount(
        Some("users-tmpfs"),
        Path::new(&t),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    c.fails(&["umount", &t], "covered by a mount it did not make");
    nix::mount::umount2(Path::new(&t), nix::mount::MntFlags::empty()).unwrap();
    c.ok(&["umount", &t]);
    c.assert_nothing_mounted();
    c.assert_store_clean();
}

/// Runs `args` under strace, SIGKILLed at the `when`-th call of `syscall`; true when it was
/// killed (false: the command finished before that call).
fn killed_at(c: &Cli, syscall: &str, when: usize, args: &[&str]) -> bool {
    let o = Command::new("strace")
        // Not -f: the kill is for strata itself (a followed fuse-overlayfs daemon would keep
        // strace waiting for it).
        .args(["-qq", "-o", "/dev/null", "-e"])
        .arg(format!("inject={syscall}:signal=KILL:when={when}"))
        .arg(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(c.root())
        .args(args)
        .output()
        .unwrap();
    !o.status.success()
        && (o.status.code() == Some(137)
            || String::from_utf8_lossy(&o.stderr).contains("Killed")
            || std::os::unix::process::ExitStatusExt::signal(&o.status) == Some(9))
}

/// Kills `args` at the 1st, 2nd, ... call of each of `syscalls` in turn (up to `max` calls,
/// until the command finishes unkilled), calling `recover` after each run; returns the kill
/// points (runs that were killed).
fn each_kill_point(
    c: &Cli,
    syscalls: &[&str],
    max: usize,
    args: &[&str],
    mut recover: impl FnMut(&str, usize, bool),
) -> usize {
    let mut points = 0;
    for sc in syscalls {
        for n in 1..=max {
            let killed = killed_at(c, sc, n, args);
            recover(sc, n, killed);
            if !killed {
                break;
            }
            points += 1;
        }
    }
    points
}

/// After a crash and `strata gc`: nothing mounted, nothing staged, the store consistent.
fn assert_recovered(c: &Cli, what: &str) {
    let gc = c.run(&["gc"]);
    assert!(
        gc.status.success(),
        "{what}: gc: {}",
        String::from_utf8_lossy(&gc.stderr)
    );
    c.assert_nothing_mounted();
    c.assert_store_clean();
    let check = c.run(&["gc", "--check"]);
    assert!(
        check.status.success(),
        "{what}: gc --check: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Issue 14 items 5 and 7: SIGKILL at each call of the syscalls that change the store or the
/// mount table, for mount, umount, commit -o and layer import on every driver; then `strata
/// gc`: no mount left, nothing staged, `gc --check` clean, committed and imported data whole,
/// and the same command then succeeds. Item 5 in particular: a kill at the record's rename
/// after the kernel mount left a mount nothing could remove; the intent record finds it.
#[test]
fn sigkill_at_each_kill_point_then_gc_recovers() {
    let Some(c) = Cli::new() else {
        return;
    };
    if !require::tools(&["strace"]) {
        return;
    }
    let l = c.write_layer(
        "l.tar",
        &Layer::new().file("f", "x").dir("d").file("d/g", "y"),
    );
    let digest = c.ok(&["layer", "import", &l]).trim().to_string();
    let mut summary = Vec::new();
    for d in drivers(&c.root()) {
        let t = c.empty_dir(&format!("t-{d}"));
        // mount: an idle mount a kill left complete is the user's: `strata umount` ends it.
        let mut left_mounted = 0;
        let mount = ["mount", "--driver", d, &digest, &t];
        let points = each_kill_point(
            &c,
            &["mkdir", "rename", "mount", "move_mount", "fsmount"],
            8,
            &mount,
            |sc, n, killed| {
                let what = format!("{d} mount, kill at {sc} #{n}");
                let mi = sandbox::mountinfo().unwrap();
                let mounted = mi.lines().any(|l| l.split(' ').nth(4) == Some(t.as_str()));
                let recorded_whole = c.records().iter().any(|r| r["state"] == "mounted");
                if killed && mounted && !recorded_whole {
                    left_mounted += 1;
                }
                if recorded_whole {
                    c.ok(&["umount", &t]);
                }
                assert_recovered(&c, &what);
                c.ok(&mount);
                c.ok(&["umount", &t]);
            },
        );
        assert!(
            left_mounted > 0,
            "{d}: no kill point fell between the kernel mount and the record"
        );
        summary.push(format!(
            "{d} mount: {points} kill points ({left_mounted} between the kernel mount and the completed record), all recovered"
        ));
        // umount.
        c.ok(&mount);
        let points = each_kill_point(
            &c,
            &["umount2", "unlinkat", "rename"],
            8,
            &["umount", &t],
            |sc, n, _| {
                let what = format!("{d} umount, kill at {sc} #{n}");
                assert_recovered_after(&c, &what, &t);
                c.ok(&mount);
            },
        );
        summary.push(format!("{d} umount: {points} kill points, all recovered"));
        // commit -o: the output is whole or absent, never a torn tar; the same commit then
        // gives the same digest.
        fs::write(Path::new(&t).join("new"), "z".repeat(100_000)).unwrap();
        let out = s(&c.path(&format!("c-{d}.tar")));
        let digest_ok = c.ok(&["commit", &t, "-o", &out]).trim().to_string();
        fs::remove_file(&out).unwrap();
        let points = each_kill_point(
            &c,
            &["openat", "write", "rename", "fsync"],
            8,
            &["commit", &t, "-o", &out],
            |sc, n, killed| {
                let what = format!("{d} commit, kill at {sc} #{n}");
                if killed && Path::new(&out).exists() {
                    let got = strata_runtime::Digest::of(&fs::read(&out).unwrap()).to_string();
                    assert_eq!(got, digest_ok, "{what}: a torn output");
                }
                let again = c.ok(&["commit", &t, "-o", &out]);
                assert_eq!(again.trim(), digest_ok, "{what}");
                let temps: Vec<_> = fs::read_dir(c.dir.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(".tmp-"))
                    .collect();
                assert!(temps.is_empty(), "{what}: temporaries left: {temps:?}");
                fs::remove_file(&out).unwrap();
            },
        );
        summary.push(format!(
            "{d} commit -o: {points} kill points, all recovered"
        ));
        c.ok(&["umount", &t]);
    }
    // layer import (no driver): the layer is whole or absent.
    let l2 = c.write_layer(
        "l2.tar",
        &Layer::new()
            .dir("x")
            .file("x/big", "q".repeat(50_000).as_str()),
    );
    let points = each_kill_point(
        &c,
        &["mkdir", "openat", "rename", "write"],
        8,
        &["layer", "import", &l2],
        |sc, n, _| {
            let what = format!("layer import, kill at {sc} #{n}");
            assert_recovered(&c, &what);
            let d2 = c.ok(&["layer", "import", &l2]).trim().to_string();
            let t = c.empty_dir("imported");
            c.ok(&["mount", "--driver", "overlay", &d2, &t]);
            assert_eq!(
                fs::read_to_string(Path::new(&t).join("x/big")).unwrap(),
                "q".repeat(50_000),
                "{what}"
            );
            c.ok(&["umount", &t]);
            // Forget it, so the next kill point imports it again.
            fs::remove_dir_all(
                c.root()
                    .join("layers/sha256")
                    .join(d2.trim_start_matches("sha256:")),
            )
            .unwrap();
        },
    );
    summary.push(format!("layer import: {points} kill points, all recovered"));
    for line in &summary {
        println!("fault injection: {line}");
    }
}

/// [`assert_recovered`] after a killed umount: gc, then `strata umount` of a mount the kill
/// left whole (idle) succeeds, and nothing is left.
fn assert_recovered_after(c: &Cli, what: &str, t: &str) {
    let gc = c.run(&["gc"]);
    assert!(
        gc.status.success(),
        "{what}: gc: {}",
        String::from_utf8_lossy(&gc.stderr)
    );
    if !c.records().is_empty() {
        c.ok(&["umount", t]);
    }
    assert_recovered(c, what);
}

/// Issue 14 item 4: `commit -o` exited 0 with a corrupt tar when a file shrank while it was
/// read. The tar writer fails such an entry now: every commit either fails naming the file
/// or is a tar that reads back whole.
#[test]
fn commit_of_a_file_rewritten_meanwhile_is_whole_or_refused() {
    let Some(c) = Cli::new() else {
        return;
    };
    let l = c.write_layer("l.tar", &Layer::new().file("f", "x"));
    let t = c.empty_dir("t");
    c.ok(&["mount", "--driver", "overlay", &l, &t]);
    let file = Path::new(&t).join("busy");
    fs::write(&file, vec![b'a'; 4 << 20]).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, file) = (stop.clone(), file.clone());
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Alternately long and short: a commit reading the long one sees it shrink.
                let len = if i.is_multiple_of(2) {
                    4 << 20
                } else {
                    1 << 10
                };
                fs::write(&file, vec![b'a' + (i % 26) as u8; len]).unwrap();
                i += 1;
            }
        })
    };
    let (mut whole, mut refused) = (0, 0);
    for n in 0..20 {
        let out = c.path(&format!("c{n}.tar"));
        let o = c.run(&["commit", &t, "-o", &s(&out)]);
        if o.status.success() {
            let mut a = tar::Archive::new(fs::File::open(&out).unwrap());
            for e in a.entries().unwrap() {
                let mut e = e.unwrap();
                let size = e.header().size().unwrap();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                assert_eq!(data.len() as u64, size, "commit {n}: a torn entry");
            }
            whole += 1;
        } else {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("shrank") && err.contains("busy"), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(!out.exists(), "a refused commit left {}", out.display());
            refused += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    println!("commit of a file rewritten meanwhile: {whole} whole, {refused} refused");
    c.ok(&["umount", &t]);
    c.assert_nothing_mounted();
}

/// Issue 14 item 9: `strata --json layer ls | head -c 10` panicked on the broken pipe.
#[test]
fn a_closed_stdout_ends_strata_quietly() {
    let Some(c) = Cli::new() else {
        return;
    };
    for i in 0..40 {
        let l = c.write_layer(
            &format!("l{i}.tar"),
            &Layer::new().file(&format!("f{i}"), "x"),
        );
        c.ok(&["layer", "import", &l]);
    }
    let mut child = c
        .cmd()
        .args(["--json", "layer", "ls"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before strata writes (as `head -c 10` does after 10 bytes).
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "{err}");
    assert!(matches!(o.status.code(), Some(0 | 141)), "{:?}", o.status);
}

/// Issue 14 items 7 and 8: `kill -9` of `strata run --driver fuse-overlayfs` orphaned the
/// daemon (holding the run's mount namespace) and left its mount directory, container
/// directory and cgroup; gc ends and removes them all, and leaves nothing for --check.
#[test]
fn gc_cleans_up_after_a_killed_run() {
    let Some(c) = Cli::new() else {
        return;
    };
    let img = c.image();
    for d in drivers(&c.root()) {
        let mut child = c
            .cmd()
            .args(["run", "-i", "--driver", d, "--pids", "64", &img, "--"])
            .args(["/bin/sh", "-c", "read x"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        c.wait_for_record("mounted");
        // The container's command runs once its cgroup exists; the record comes first.
        std::thread::sleep(std::time::Duration::from_millis(300));
        child.kill().unwrap();
        child.wait().unwrap();
        let dry = c.ok(&["gc", "--dry-run"]);
        assert!(dry.contains("would remove: mount"), "{d}: {dry}");
        let check = c.run(&["gc", "--check"]);
        assert_eq!(
            check.status.code(),
            Some(1),
            "{d}: --check passed a dirty store"
        );
        let gc = c.ok(&["--json", "gc"]);
        let v: serde_json::Value = serde_json::from_str(&gc).unwrap();
        let kinds: Vec<&str> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"mount"), "{d}: {gc}");
        if d == "fuse-overlayfs" {
            assert!(kinds.contains(&"fuse-daemon"), "{d}: {gc}");
        }
        let check = c.run(&["gc", "--check"]);
        assert!(
            check.status.success(),
            "{d}: after gc {gc}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        c.assert_store_clean();
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        let ps = String::from_utf8_lossy(&ps.stdout);
        let root = s(&c.root());
        assert!(
            !ps.lines()
                .any(|l| l.contains("fuse-overlayfs") && l.contains(&root)),
            "{d}: a daemon is left"
        );
        let containers: Vec<_> = fs::read_dir(c.root().join("containers"))
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(containers.is_empty(), "{d}: {containers:?}");
    }
}

/// Issue 14: parallel mounts, commits, imports, runs, `umount --all` and gc on one store for
/// 20 s (60 s under STRATA_PROFILE=nightly). Every failure must be a clear one-line refusal
/// (a mount raced away by `umount --all`, a target taken), never a corruption; at the end
/// nothing is mounted and nothing is left in the store.
#[test]
fn stress_parallel_commands_on_one_store() {
    let Some(c) = Cli::new() else {
        return;
    };
    let secs = if std::env::var("STRATA_PROFILE").as_deref() == Ok("nightly") {
        60
    } else {
        20
    };
    let img = c.image();
    let l = c.write_layer("l.tar", &Layer::new().file("f", "x").dir("d"));
    let digest = c.ok(&["layer", "import", &l]).trim().to_string();
    let shared = c.empty_dir("shared");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let refusals = [
        "already a strata mount",
        "not empty",
        "in use by a live strata process",
        "not a strata mount",
    ];
    let ops = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::<String>::new());
    let check = |args: &[&str]| {
        let o = c.run(args);
        ops.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if o.status.success() {
            return true;
        }
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "strata {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "strata {args:?}: {err}");
        assert!(
            refusals.iter().any(|r| err.contains(r)),
            "strata {args:?}: not a clear refusal: {err}"
        );
        errors
            .lock()
            .unwrap()
            .push(format!("strata {}: {}", args[0], err.trim()));
        false
    };
    std::thread::scope(|sc| {
        for w in 0..3 {
            let (c, check, digest, shared) = (&c, &check, &digest, &shared);
            sc.spawn(move || {
                let d = ["overlay", "copy", "overlay2"][w];
                let own = c.empty_dir(&format!("own-{w}"));
                let mut i = 0;
                while std::time::Instant::now() < deadline {
                    // Alternately its own target and the one all workers share.
                    let t = if i % 2 == 0 { &own } else { shared };
                    if check(&["mount", "--driver", d, digest, t]) {
                        let _ = fs::write(Path::new(t).join(format!("w{w}")), "x");
                        let out = s(&c.path(&format!("c{w}.tar")));
                        if check(&["commit", t, "-o", &out]) {
                            // Whole: strata's own import reads it back.
                            check(&["layer", "import", &out]);
                        }
                        check(&["umount", t]);
                    }
                    i += 1;
                }
            });
        }
        let (c, check, img) = (&c, &check, &img);
        sc.spawn(move || {
            while std::time::Instant::now() < deadline {
                check(&["run", img, "--", "/bin/sh", "-c", "echo x > /y"]);
            }
        });
        sc.spawn(move || {
            let mut n = 0;
            while std::time::Instant::now() < deadline {
                let l = c.write_layer(&format!("i{n}.tar"), &Layer::new().file("n", n.to_string()));
                check(&["layer", "import", &l]);
                n += 1;
            }
        });
        sc.spawn(move || {
            while std::time::Instant::now() < deadline {
                check(&["umount", "--all"]);
                check(&["gc"]);
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
    });
    c.ok(&["umount", "--all"]);
    c.ok(&["gc"]);
    c.ok(&["gc", "--check"]);
    c.assert_nothing_mounted();
    c.assert_store_clean();
    let errors = errors.into_inner().unwrap();
    let mut kinds: Vec<&str> = errors
        .iter()
        .map(|e| {
            refusals
                .iter()
                .find(|r| e.contains(*r))
                .copied()
                .unwrap_or("?")
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    for k in &kinds {
        if let Some(e) = errors.iter().find(|e| e.contains(k)) {
            println!("stress: e.g. {e}");
        }
    }
    println!(
        "stress: {secs} s, {} operations, {} refusals ({kinds:?}), 0 mounts and 0 store dirs left",
        ops.into_inner(),
        errors.len()
    );
}

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
use strata_runtime::loopfs::{self, FsType, LoopFs};
use strata_runtime::{driver, require, sandbox};

struct Cli {
    // Dropped first: a loop btrfs at ROOT/btrfs (its image is on the tmpfs), then the tmpfs
    // before its mount point.
    btrfs: std::sync::Mutex<Option<LoopFs>>,
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
            btrfs: std::sync::Mutex::new(None),
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
        self.cmd_at(&self.root())
    }

    /// strata on the store at `root`.
    fn cmd_at(&self, root: &Path) -> Command {
        let mut c = Command::new(bin());
        c.arg("--root").arg(root);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "strata {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
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
        // The test's own loop btrfs under the store is not strata's.
        let btrfs = s(&driver::btrfs::state_dir(&self.root()));
        let own =
            |l: &str| self.btrfs.lock().unwrap().is_some() && l.split(' ').nth(4) == Some(&btrfs);
        let left: Vec<&str> = mi
            .lines()
            .filter(|l| l.contains(&below) && !own(l))
            .collect();
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

/// The strata binary under test: `STRATA_BIN` when set (to run these tests against another
/// build, e.g. the one before issue 14), else this build's.
fn bin() -> PathBuf {
    std::env::var_os("STRATA_BIN")
        .filter(|b| !b.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_strata")))
}

/// `-i`, which a run whose command reads its stdin needs (without it, /dev/null); none for
/// a build from before the option (`STRATA_BIN`), which passed its stdin through.
fn stdin_flag() -> &'static [&'static str] {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let has = *HAS.get_or_init(|| {
        let o = Command::new(bin())
            .args(["run", "--help"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains("-i, --interactive")
    });
    if has { &["-i"] } else { &[] }
}

impl Cli {
    /// A tmpfs of `size` (`2m`) mounted on the new directory `name`, unmounted when dropped.
    fn small_tmpfs(&self, name: &str, size: &str) -> Tmpfs {
        let p = self.path(name);
        fs::create_dir(&p).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &p,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0700").as_str()),
        )
        .unwrap();
        Tmpfs(p)
    }
}

/// The names in a directory (none when it is missing).
fn names_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts a command failed with exit status 1 and one line saying it ran out of room
/// writing a file under `under`, doing `what`, in `place`.
fn assert_no_space(o: &Output, what: &str, under: &Path, place: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains(&format!("{what}: writing {}/", under.display()))
            || err.contains(&format!("{what}: writing {}", under.display())),
        "{err:?} does not say {what} was writing under {}",
        under.display()
    );
    assert!(
        err.contains(&format!("({place})")),
        "{err:?} lacks ({place})"
    );
    println!("out of space: {}", err.trim());
}

/// Issue 14 item 9, second half: out of room, an error named the source blob or the file
/// being read. It names what was being written (in the store, or the output) now, and
/// nothing half-written stays: no staging dir, no layer dir, no temporary beside an output.
#[test]
fn out_of_space_names_the_store_or_output_and_leaves_nothing_half_written() {
    let Some(c) = Cli::new() else {
        return;
    };
    // 3 MiB of data that is neither zeros (holes) nor repeated (compressible) for a 2 MiB
    // tmpfs.
    let data: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big = c.path("big.tar");
    fs::write(&big, Layer::new().file("big", &data).to_tar().unwrap()).unwrap();

    // layer import into a full store.
    let small = c.small_tmpfs("small-store", "2m");
    let root = small.0.join("root");
    let o = c
        .cmd_at(&root)
        .args(["layer", "import", &s(&big)])
        .output()
        .unwrap();
    let root = fs::canonicalize(&root).unwrap();
    assert_no_space(
        &o,
        "layer import",
        &root.join("tmp"),
        &format!("store {}", root.display()),
    );
    assert!(names_in(&root.join("tmp")).is_empty(), "staging left");
    assert!(
        names_in(&root.join("layers/sha256")).is_empty(),
        "a layer dir left"
    );

    // A copy materialised into the store's mounts/: a layer that fits once, not twice.
    let half: Vec<u8> = data[..(1_200 << 10)].to_vec();
    let l = c.path("half.tar");
    fs::write(&l, Layer::new().file("half", &half).to_tar().unwrap()).unwrap();
    let out = c
        .cmd_at(&root)
        .args(["layer", "import", &s(&l)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let t = c.empty_dir("t-copy");
    let o = c
        .cmd_at(&root)
        .args(["mount", "--driver", "copy", &digest, &t])
        .output()
        .unwrap();
    assert_no_space(
        &o,
        "mount",
        &root.join("mounts"),
        &format!("store {}", root.display()),
    );
    assert!(
        names_in(&root.join("mounts")).is_empty(),
        "a mount dir left"
    );
    let mi = sandbox::mountinfo().unwrap();
    assert!(
        !mi.lines().any(|l| l.split(' ').nth(4) == Some(t.as_str())),
        "the failed mount is mounted"
    );

    // image import into a full store: the staged blob or the extracted layer, whichever
    // fills it first; the image is absent.
    let layout = c.path("big-layout");
    oci_layout_sized(&layout, 1_500 << 10, 1_500 << 10);
    let o = c
        .cmd_at(&root)
        .args(["image", "import", &format!("{}:latest", s(&layout))])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(": writing {}/", root.join("tmp").display()))
            && err.contains("No space left on device")
            && err.contains(&format!("(store {})", root.display())),
        "{err}"
    );
    println!("out of space: {}", err.trim());
    assert!(names_in(&root.join("tmp")).is_empty(), "staging left");
    assert!(names_in(&root.join("images")).is_empty(), "an image record");
    assert_eq!(
        names_in(&root.join("layers/sha256")).len(),
        1,
        "a layer dir left"
    );

    // commit -o into a full output directory.
    let out_dir = c.small_tmpfs("small-out", "2m");
    let t = c.empty_dir("t");
    let l = c.write_layer("l.tar", &Layer::new().file("f", "x"));
    c.ok(&["mount", "--driver", "overlay", &l, &t]);
    fs::write(Path::new(&t).join("big"), &data).unwrap();
    let target = out_dir.0.join("c.tar");
    let o = c.run(&["commit", &t, "-o", &s(&target)]);
    assert_no_space(
        &o,
        "commit",
        &target,
        &format!("output directory {}", out_dir.0.display()),
    );
    assert!(
        names_in(&out_dir.0).is_empty(),
        "left in the output directory: {:?}",
        names_in(&out_dir.0)
    );
    c.ok(&["umount", &t]);
    drop(out_dir);
    drop(small);
    c.assert_nothing_mounted();
    println!(
        "out of space: layer import, copy mount, image import and commit -o each refused in one line naming the store or output"
    );
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

impl Cli {
    /// Every driver, btrfs included: its store part (`ROOT/btrfs`) on a loop-mounted btrfs
    /// made here (unmounted, and its loop device detached, when the test ends). Each driver
    /// unavailable here is skipped (or failed under STRATA_REQUIRE) with its reason.
    fn all_drivers(&self) -> Vec<&'static str> {
        let mut out = drivers(&self.root());
        if self.btrfs_store() {
            out.push("btrfs");
        }
        out
    }

    /// Mounts a loop btrfs at ROOT/btrfs (once); false, after a skip, when it cannot be had.
    fn btrfs_store(&self) -> bool {
        if self.btrfs.lock().unwrap().is_none() {
            if let Err(why) = loopfs::check(FsType::Btrfs) {
                require::skip_or_fail("btrfs", &format!("no loop btrfs here: {why}"));
                return false;
            }
            let state = driver::btrfs::state_dir(&self.root());
            fs::create_dir_all(&state).unwrap();
            let img =
                LoopFs::create(FsType::Btrfs, &self.path("btrfs.img"), 256 << 20, &state).unwrap();
            *self.btrfs.lock().unwrap() = Some(img);
        }
        require::driver_in(driver::by_name("btrfs").unwrap(), &self.root())
    }
}

/// Makes a chain of `depth` directories `d/d/d/...` with a directory `leaf` at its end under
/// `dir`, one fd-relative step at a time (a path that long cannot be named in one lookup).
/// Its fds are close-on-exec: a process another test starts meanwhile (a container, a
/// fuse-overlayfs daemon) must not keep the mount busy.
fn deep_chain(dir: &Path, depth: usize) {
    let mut fd: OwnedFd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    for made in 0..depth {
        rustix::fs::mkdirat(fd.as_fd(), "d", Mode::from_raw_mode(0o755))
            .unwrap_or_else(|e| panic!("mkdir at depth {made}: {e}"));
        fd = rustix::fs::openat(
            fd.as_fd(),
            "d",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
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
        // A record without a state (a build from before intent records) is a mounted one.
        let is = |r: &serde_json::Value| {
            r["state"] == state || (state == "mounted" && r.get("state").is_none())
        };
        while !self.records().iter().any(is) {
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
            .args(["run"])
            .args(stdin_flag())
            .args(["--driver", d, "--commit", &out, &img, "--"])
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
/// killed (false: the command finished before that call). `child:SYSCALL` kills at a call
/// in a child strata starts (the container's), following children (`-f`).
fn killed_at(c: &Cli, syscall: &str, when: usize, args: &[&str]) -> bool {
    let (follow, syscall) = match syscall.strip_prefix("child:") {
        Some(sc) => (true, sc),
        None => (false, syscall),
    };
    let o = Command::new("strace")
        // Not -f unless asked: the kill is for strata itself (a followed fuse-overlayfs
        // daemon of a killed strata would keep strace waiting for it).
        .args(if follow { &["-f"][..] } else { &[][..] })
        .args(["-qq", "-o", "/dev/null", "-e"])
        .arg(format!("inject={syscall}:signal=KILL:when={when}"))
        .arg(bin())
        .arg("--root")
        .arg(c.root())
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    !o.status.success()
        && (o.status.code() == Some(137)
            || err.contains("Killed")
            || std::os::unix::process::ExitStatusExt::signal(&o.status) == Some(9)
            // A child killed: strata itself reports it.
            || (follow && err.contains("killed by signal 9")))
}

/// Kills `args` at the 1st, 2nd, ... call of each of `syscalls` in turn (up to `max` calls,
/// until the command finishes unkilled), calling `recover` after each run; returns the kill
/// points (runs that were killed).
fn each_kill_point(
    c: &Cli,
    syscalls: &[&str],
    max: usize,
    args: &[&str],
    recover: impl FnMut(&str, usize, bool),
) -> usize {
    each_kill_point_per(c, syscalls, max, args, recover)
        .iter()
        .map(|(_, n)| n)
        .sum()
}

/// [`each_kill_point`], the kill points per syscall.
fn each_kill_point_per<'a>(
    c: &Cli,
    syscalls: &[&'a str],
    max: usize,
    args: &[&str],
    mut recover: impl FnMut(&str, usize, bool),
) -> Vec<(&'a str, usize)> {
    let mut out = Vec::new();
    for sc in syscalls {
        let mut points = 0;
        for n in 1..=max {
            let killed = killed_at(c, sc, n, args);
            recover(sc, n, killed);
            if !killed {
                break;
            }
            points += 1;
        }
        out.push((*sc, points));
    }
    out
}

/// "mount 3, mkdir 2, ..." for a summary line.
fn per_syscall(per: &[(&str, usize)]) -> String {
    per.iter()
        .map(|(sc, n)| format!("{sc} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
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
    for d in c.all_drivers() {
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
    for d in c.all_drivers() {
        let mut child = c
            .cmd()
            .args(["run"])
            .args(stdin_flag())
            .args(["--driver", d, "--pids", "64", &img, "--"])
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
        // The container's id: in its mount's record (or, from a build that did not record
        // it, the name of its root directory).
        let id = c.records()[0]["container"]
            .as_str()
            .map(str::to_string)
            .or_else(|| names_in(&c.root().join("containers")).pop())
            .unwrap();
        let cgroup = format!("strata-{id}");
        assert!(
            !cgroups_named(&cgroup).is_empty(),
            "{d}: no cgroup {cgroup}"
        );
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
        for k in ["container-dir", "cgroup"] {
            assert!(kinds.contains(&k), "{d}: no {k} in {gc}");
        }
        let left = cgroups_named(&cgroup);
        assert!(left.is_empty(), "{d}: cgroups left: {left:?}");
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

/// Writes the file `name` into the mount on `t`, unless `umount --all` has taken the mount
/// away meanwhile (the file would land in the bare directory, and every later mount there
/// would be refused as "not empty").
fn write_in_mount(t: &Path, name: &str) {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let Ok(fd) = rustix::fs::open(
        t,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let mnt_id =
        |path: &str, flags| statx(&fd, path, flags, StatxFlags::MNT_ID).map(|s| s.stx_mnt_id);
    match (
        mnt_id("", AtFlags::EMPTY_PATH),
        mnt_id("..", AtFlags::empty()),
    ) {
        (Ok(own), Ok(parent)) if own != parent => {}
        _ => return,
    }
    if let Ok(f) = rustix::fs::openat(
        &fd,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) {
        let _ = rustix::io::write(&f, b"x");
    }
}

/// The cgroup directories named `name` (v2, and under each v1 controller).
fn cgroups_named(name: &str) -> Vec<PathBuf> {
    let o = Command::new("find")
        .args([
            "/sys/fs/cgroup",
            "-maxdepth",
            "8",
            "-type",
            "d",
            "-name",
            name,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// Issue 14: parallel mounts, commits, imports, runs, `umount --all` and gc on one store for
/// a minute (`STRATA_STRESS_SECS` may shorten it for a local run). Every failure must be a
/// clear one-line refusal (a mount raced away by `umount --all`, a target taken), never a
/// corruption; every commit reads back through strata's own import; at the end nothing is
/// mounted and nothing is left in the store. Prints the operations done per kind, the
/// refusals per message, and what was left.
#[test]
fn stress_parallel_commands_on_one_store() {
    let Some(c) = Cli::new() else {
        return;
    };
    let secs: u64 = std::env::var("STRATA_STRESS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
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
    // Per kind of operation: (done, refused).
    let ops = std::sync::Mutex::new(std::collections::BTreeMap::<String, (usize, usize)>::new());
    let errors = std::sync::Mutex::new(Vec::<String>::new());
    let check = |args: &[&str]| {
        let o = c.run(args);
        let kind = match args {
            ["layer", "import", ..] => "layer import".to_string(),
            ["umount", "--all"] => "umount --all".to_string(),
            ["mount", _, d, ..] | ["run", _, d, ..] => format!("{} ({d})", args[0]),
            [first, ..] => first.to_string(),
            [] => String::new(),
        };
        let ok = o.status.success();
        {
            let mut ops = ops.lock().unwrap();
            let e = ops.entry(kind).or_default();
            e.0 += 1;
            e.1 += usize::from(!ok);
        }
        if ok {
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
                        write_in_mount(Path::new(t), &format!("w{w}"));
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
                check(&[
                    "run",
                    "--driver",
                    "overlay",
                    img,
                    "--",
                    "/bin/sh",
                    "-c",
                    "echo x > /y",
                ]);
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
    // What was left, counted (the asserts below say it must be nothing).
    let below = format!("{}/", c.dir.path().display());
    let mounts_left = sandbox::mountinfo()
        .unwrap()
        .lines()
        .filter(|l| l.contains(&below))
        .count();
    let dirs_left: usize = ["mounts", "tmp", "containers"]
        .iter()
        .map(|d| names_in(&c.root().join(d)).len())
        .sum();
    let ops = ops.into_inner().unwrap();
    let total: usize = ops.values().map(|v| v.0).sum();
    for (kind, (done, refused)) in &ops {
        println!("stress: {kind}: {done} attempted, {refused} refused");
    }
    let errors = errors.into_inner().unwrap();
    for r in refusals {
        let of: Vec<&String> = errors.iter().filter(|e| e.contains(r)).collect();
        if let Some(e) = of.first() {
            println!("stress: {} x {r:?}, e.g. {e}", of.len());
        }
    }
    println!(
        "stress: {secs} s, {total} operations, {} refusals, {mounts_left} mounts and {dirs_left} store dirs left",
        errors.len()
    );
    c.assert_nothing_mounted();
    c.assert_store_clean();
    assert_eq!((mounts_left, dirs_left), (0, 0));
}

/// Kill points per syscall for the commands whose every kill costs a container start.
const RUN_MAX: usize = 6;

/// No container root directory is left in the store.
fn assert_no_containers(c: &Cli, what: &str) {
    let left = names_in(&c.root().join("containers"));
    assert!(left.is_empty(), "{what}: containers/ left: {left:?}");
}

/// Issue 14, fault injection for `run`: `strata run --driver D` SIGKILLed at each call of
/// mount, mkdir, clone3/clone, umount2, unlinkat and rename of strata's own process, and at
/// the container child's pivot_root, in turn, on every driver; then `strata gc`: nothing
/// mounted or staged, no container directory, `gc --check` clean, and the same run
/// succeeds.
#[test]
fn sigkill_of_run_at_each_kill_point_then_gc_recovers() {
    let Some(c) = Cli::new() else {
        return;
    };
    if !require::tools(&["strace"]) {
        return;
    }
    let img = c.image();
    let mut summary = Vec::new();
    for d in c.all_drivers() {
        let run = [
            "run",
            "--driver",
            d,
            "--pids",
            "64",
            &img,
            "--",
            "/bin/sh",
            "-c",
            "echo x > /y",
        ];
        let per = each_kill_point_per(
            &c,
            &[
                "mount",
                "mkdir",
                "clone3",
                "clone",
                "child:pivot_root",
                "umount2",
                "unlinkat",
                "rename",
            ],
            RUN_MAX,
            &run,
            |sc, n, _| {
                let what = format!("{d} run, kill at {sc} #{n}");
                assert_recovered(&c, &what);
                assert_no_containers(&c, &what);
                c.ok(&run);
                c.assert_store_clean();
                assert_no_containers(&c, &what);
            },
        );
        let points: usize = per.iter().map(|(_, n)| n).sum();
        assert!(points > 0, "{d}: no kill point reached");
        summary.push(format!(
            "{d} run: {points} kill points ({}), all recovered",
            per_syscall(&per)
        ));
    }
    for line in &summary {
        println!("fault injection: {line}");
    }
}

impl Cli {
    /// Leftovers of every kind gc removes: a dead run's mount, container directory and
    /// cgroup (driver `d`); an intent record whose kernel mount was made (a `strata mount`
    /// killed at the `rename`, found by `intent_at`); a dead import's staging directory;
    /// a mount directory without a record.
    fn leftovers(&self, img: &str, d: &str, layer: &str, intent_at: usize) {
        let mut child = self
            .cmd()
            .args(["run"])
            .args(stdin_flag())
            .args(["--driver", d, "--pids", "64", img, "--"])
            .args(["/bin/sh", "-c", "read x"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.wait_for_record("mounted");
        std::thread::sleep(std::time::Duration::from_millis(300));
        child.kill().unwrap();
        child.wait().unwrap();
        let t = self.path("intent-t");
        fs::create_dir_all(&t).unwrap();
        assert!(killed_at(
            self,
            "rename",
            intent_at,
            &["mount", "--driver", d, layer, &s(&t)]
        ));
        let staged = self.root().join("tmp/import-dead");
        fs::create_dir_all(staged.join("fs/a")).unwrap();
        fs::write(staged.join("fs/a/f"), "x").unwrap();
        let orphan = self.root().join("mounts/dead-no-record");
        fs::create_dir_all(orphan.join("upper/d")).unwrap();
        fs::write(orphan.join("upper/d/f"), "x").unwrap();
    }
}

/// Issue 14, fault injection for `gc` itself: leftovers of every kind, then gc SIGKILLed at
/// each unlinkat, umount2, rename and rmdir in turn; a second gc recovers everything
/// (nothing mounted or staged, no container directory, `gc --check` clean).
#[test]
fn sigkill_of_gc_at_each_kill_point_then_gc_recovers() {
    let Some(c) = Cli::new() else {
        return;
    };
    if !require::tools(&["strace"]) {
        return;
    }
    let img = c.image();
    let l = c.write_layer("l.tar", &Layer::new().file("f", "x").dir("d"));
    let digest = c.ok(&["layer", "import", &l]).trim().to_string();
    let d = "overlay";
    // The rename that leaves a mount made and its record an intent.
    let t = c.path("intent-t");
    fs::create_dir_all(&t).unwrap();
    let intent_at = (1..=8)
        .find(|n| {
            let killed = killed_at(&c, "rename", *n, &["mount", "--driver", d, &digest, &s(&t)]);
            let mi = sandbox::mountinfo().unwrap();
            let mounted = mi
                .lines()
                .any(|l| l.split(' ').nth(4) == Some(s(&t).as_str()));
            let intent = c.records().iter().any(|r| r["state"] == "intent");
            assert_recovered(&c, &format!("finding the intent rename, #{n}"));
            killed && mounted && intent
        })
        .expect("no rename of mount leaves an intent record with its mount");
    let mut points = 0;
    let mut per = Vec::new();
    for sc in ["unlinkat", "umount2", "rename", "rmdir"] {
        let before = points;
        for n in 1..=6 {
            c.leftovers(&img, d, &digest, intent_at);
            let dry = c.ok(&["gc", "--dry-run"]);
            for kind in ["mount ", "staging ", "mount-dir ", "container-dir "] {
                assert!(
                    dry.contains(&format!("would remove: {kind}")),
                    "{kind}: {dry}"
                );
            }
            let killed = killed_at(&c, sc, n, &["gc"]);
            let what = format!("gc, kill at {sc} #{n}");
            assert_recovered(&c, &what);
            assert_no_containers(&c, &what);
            if !killed {
                break;
            }
            points += 1;
        }
        per.push(format!("{sc} {}", points - before));
    }
    assert!(points > 0, "gc: no kill point reached");
    println!(
        "fault injection: gc: {points} kill points ({}), all recovered",
        per.join(", ")
    );
}

/// A two-layer OCI image layout (plain tar layers) at `dir`, tagged `latest`; the files it
/// holds (path, content).
fn oci_layout(dir: &Path) -> Vec<(&'static str, String)> {
    oci_layout_sized(dir, 20_000, 30_000)
}

/// [`oci_layout`] with files of `one` and `two` bytes.
fn oci_layout_sized(dir: &Path, one: usize, two: usize) -> Vec<(&'static str, String)> {
    let files = vec![("a/one", "1".repeat(one)), ("b/two", "2".repeat(two))];
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = strata_runtime::Digest::of(bytes);
        fs::write(blobs.join(d.hex()), bytes).unwrap();
        serde_json::json!({"digest": d.to_string(), "size": bytes.len()})
    };
    let l1 = Layer::new()
        .dir("a")
        .file(files[0].0, &files[0].1)
        .to_tar()
        .unwrap();
    let l2 = Layer::new()
        .dir("b")
        .file(files[1].0, &files[1].1)
        .to_tar()
        .unwrap();
    let diff_ids: Vec<String> = [&l1, &l2]
        .iter()
        .map(|l| strata_runtime::Digest::of(l).to_string())
        .collect();
    let mut layers = Vec::new();
    for l in [&l1, &l2] {
        let mut desc = put(l);
        desc["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
        layers.push(desc);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let mut cdesc = put(&config);
    cdesc["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cdesc,
        "layers": layers,
    }))
    .unwrap();
    let mut mdesc = put(&manifest);
    mdesc["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    mdesc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [mdesc]})).unwrap(),
    )
    .unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    files
}

/// Issue 14, fault injection for `image import`: an OCI layout imported with SIGKILL at each
/// mkdir, openat, write and rename in turn; after gc the image is whole (its files mount
/// and read back) or absent, and the same import then succeeds.
#[test]
fn sigkill_of_image_import_at_each_kill_point_leaves_it_whole_or_absent() {
    let Some(c) = Cli::new() else {
        return;
    };
    if !require::tools(&["strace"]) {
        return;
    }
    let layout = c.path("layout");
    let files = oci_layout(&layout);
    let spec = format!("{}:latest", s(&layout));
    let import = ["image", "import", spec.as_str(), "--name", "fi:latest"];
    let t = c.empty_dir("t");
    let whole = |what: &str| {
        c.ok(&["mount", "--driver", "overlay", "fi:latest", &t]);
        for (p, content) in &files {
            assert_eq!(
                &fs::read_to_string(Path::new(&t).join(p)).unwrap(),
                content,
                "{what}: {p}"
            );
        }
        c.ok(&["umount", &t]);
    };
    let (mut present, mut absent) = (0, 0);
    let points = each_kill_point(
        &c,
        &["mkdir", "openat", "write", "rename"],
        8,
        &import,
        |sc, n, _| {
            let what = format!("image import, kill at {sc} #{n}");
            assert_recovered(&c, &what);
            if c.ok(&["image", "ls"]).contains("fi") {
                whole(&what);
                present += 1;
            } else {
                absent += 1;
            }
            c.ok(&import);
            whole(&what);
            // Forget it (blobs and layers too), so the next kill point imports it anew.
            c.ok(&["image", "rm", "fi:latest"]);
            c.ok(&["image", "prune"]);
            assert!(
                names_in(&c.root().join("layers/sha256")).is_empty(),
                "{what}: layers left after rm and prune"
            );
        },
    );
    assert!(points > 0, "image import: no kill point reached");
    println!(
        "fault injection: image import: {points} kill points ({present} left the image whole, {absent} absent), all recovered"
    );
}

/// Issue 14 on btrfs: subvolumes no record names (a chain whose build was killed before its
/// record; a mount's snapshot whose mount directory is gone) are found by `gc --check` and
/// deleted by gc, as is the snapshot of a mount killed before its bind mount (an intent
/// record). Store on a loop btrfs.
#[test]
fn gc_deletes_btrfs_subvolumes_no_record_names() {
    let Some(c) = Cli::new() else {
        return;
    };
    if !require::tools(&["strace"]) || !c.btrfs_store() {
        return;
    }
    let base = driver::btrfs::state_dir(&c.root());
    let l = c.write_layer("l.tar", &Layer::new().file("f", "x").dir("d"));
    let digest = c.ok(&["layer", "import", &l]).trim().to_string();
    let t = c.empty_dir("t");
    let mount = ["mount", "--driver", "btrfs", &digest, &t];
    let orphan_chains = || -> Vec<String> {
        names_in(&base.join("chains"))
            .into_iter()
            .filter(|n| {
                !n.ends_with(".json") && !base.join("chains").join(format!("{n}.json")).exists()
            })
            .collect()
    };
    let check_finds = |kind: &str| {
        let o = c.run(&["gc", "--check"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(1), "--check passed: {out}");
        assert!(out.contains(&format!("found: {kind} ")), "{kind}: {out}");
    };
    // A chain's build killed before its record.
    let mut found = false;
    for n in 1..=6 {
        assert!(
            killed_at(&c, "rename", n, &mount),
            "rename #{n}: not killed"
        );
        if !orphan_chains().is_empty() {
            found = true;
            check_finds("btrfs-subvolume");
            assert_recovered(&c, &format!("chain, kill at rename #{n}"));
            assert!(orphan_chains().is_empty(), "{:?}", orphan_chains());
            break;
        }
        assert!(
            !names_in(&base.join("chains"))
                .iter()
                .any(|n| n.ends_with(".json")),
            "the chain was completed before a kill left it without its record"
        );
        assert_recovered(&c, &format!("kill at rename #{n}"));
    }
    assert!(found, "no rename left a chain without its record");
    // A mount killed between its snapshot and its bind mount: an intent record.
    assert!(killed_at(&c, "mount", 1, &mount));
    assert_eq!(names_in(&base.join("mounts")).len(), 1, "no snapshot made");
    check_finds("mount");
    assert_recovered(&c, "killed at the bind mount");
    assert!(
        names_in(&base.join("mounts")).is_empty(),
        "the snapshot stayed"
    );
    // The same, with its mount directory (and record) gone: the snapshot alone.
    assert!(killed_at(&c, "mount", 1, &mount));
    for id in names_in(&c.root().join("mounts")) {
        fs::remove_dir_all(c.root().join("mounts").join(id)).unwrap();
    }
    check_finds("btrfs-subvolume");
    assert_recovered(&c, "a snapshot without a record");
    assert!(
        names_in(&base.join("mounts")).is_empty(),
        "the snapshot stayed"
    );
    c.ok(&mount);
    c.ok(&["umount", &t]);
    c.assert_nothing_mounted();
}

/// Issue 14 item 8, last part: `umount --all` deleted the staging directory of an import
/// still running (which then failed with a misleading "create: No such file"). A layer fed
/// slowly through a fifo: while it is half read, `umount --all` and gc run (and list no
/// staging leftover); the import then succeeds, whole.
#[test]
fn a_running_import_keeps_its_staging_dir_through_umount_all_and_gc() {
    let Some(c) = Cli::new() else {
        return;
    };
    let fifo = c.path("slow.tar");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let content = "s".repeat(2 << 20);
    let tar = Layer::new()
        .dir("x")
        .file("x/slow", &content)
        .to_tar()
        .unwrap();
    let child = c
        .cmd()
        .args(["layer", "import", &s(&fifo)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Opening blocks until strata opens its end; each write until strata has read enough.
    let mut w = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    use std::io::Write;
    let half = tar.len() / 2;
    w.write_all(&tar[..half]).unwrap();
    let staged = names_in(&c.root().join("tmp"));
    assert_eq!(staged.len(), 1, "the import's staging dir: {staged:?}");
    let all = c.ok(&["umount", "--all"]);
    assert_eq!(
        names_in(&c.root().join("tmp")),
        staged,
        "umount --all took the running import's staging dir: {all}"
    );
    let gc = c.ok(&["gc"]);
    assert!(
        !gc.contains("staging"),
        "gc took the running import's: {gc}"
    );
    assert_eq!(names_in(&c.root().join("tmp")), staged, "after gc: {gc}");
    w.write_all(&tar[half..]).unwrap();
    drop(w);
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "the import failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let digest = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let t = c.empty_dir("t");
    c.ok(&["mount", "--driver", "overlay", &digest, &t]);
    assert_eq!(
        fs::read_to_string(Path::new(&t).join("x/slow")).unwrap(),
        content
    );
    c.ok(&["umount", &t]);
    c.assert_nothing_mounted();
    c.assert_store_clean();
}

//! `strata rootfs from-host` and `strata run` as a user meets them: the README's worked
//! example, exit statuses, and one clear line (exit 1, nothing mounted, no cgroup left) for
//! every kind of bad input.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use strata_runtime::sandbox;

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    /// Enters a private mount namespace (children inherit it), or says why not.
    fn new() -> Option<Cli> {
        if !strata_runtime::require::root() {
            return None;
        }
        sandbox::private_mount_namespace().unwrap();
        Some(Cli {
            dir: tempfile::Builder::new()
                .prefix("strata-run-")
                .tempdir()
                .unwrap(),
        })
    }

    /// A temp dir only, for a command that mounts nothing (runs without root).
    fn unprivileged() -> Cli {
        Cli {
            dir: tempfile::Builder::new()
                .prefix("strata-run-")
                .tempdir()
                .unwrap(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run_with_root(&self, root: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(root)
            .args(args)
            .output()
            .unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_root(&self.root(), args)
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "strata {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    }

    /// The image of the README: /bin/sh and /bin/ls from the host, imported; its digest.
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
            "/bin/ls",
        ]);
        self.ok(&["layer", "import", &tar]).0.trim().to_string()
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn mountinfo() -> String {
    sandbox::mountinfo().unwrap()
}

/// One lock for the tests that make cgroups or check that none is left.
fn cgroup_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `strata-*` cgroups where strata makes them (v2 root, v1 under this process's cgroups).
fn strata_cgroups() -> Vec<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/sys/fs/cgroup"),
        PathBuf::from("/sys/fs/cgroup/unified"),
    ];
    for l in fs::read_to_string("/proc/self/cgroup").unwrap().lines() {
        let mut p = l.splitn(3, ':');
        let (_, ctrls, path) = (p.next(), p.next().unwrap_or(""), p.next().unwrap_or(""));
        for c in ctrls.split(',').filter(|c| !c.is_empty()) {
            dirs.push(
                Path::new("/sys/fs/cgroup")
                    .join(c)
                    .join(path.trim_start_matches('/')),
            );
        }
    }
    dirs.iter()
        .flat_map(|d| fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with("strata-"))
        .map(|e| e.path())
        .collect()
}

#[test]
fn the_readme_example_runs_ls_with_pivot_root_and_chroot_and_shows_timings() {
    let Some(c) = Cli::new() else {
        return;
    };
    let before = mountinfo();
    let digest = c.image();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    let expected = "bin\ndev\netc\nlib\nlib64\nproc\nroot\nsys\ntmp\nusr\n";
    let (out, err) = c.ok(&[
        "run",
        "--switch",
        "pivot_root",
        &digest,
        "--",
        "/bin/ls",
        "/",
    ]);
    assert_eq!(out, expected);
    assert_eq!(err, "");
    let (out, err) = c.ok(&["run", "--switch", "chroot", &digest, "--", "/bin/ls", "/"]);
    assert_eq!(out, expected);
    assert!(err.contains("not an isolation boundary"), "{err}");
    let (out, _) = c.ok(&[
        "run",
        "--hostname",
        "demo",
        &digest,
        "--",
        "/bin/sh",
        "-c",
        "read h < /proc/sys/kernel/hostname; echo $h",
    ]);
    assert_eq!(out, "demo\n");
    let (out, err) = c.ok(&[
        "run",
        "--timings",
        "--ns",
        "mount,uts,ipc,pid",
        &digest,
        "--",
        "/bin/sh",
        "-c",
        "true",
    ]);
    assert_eq!(out, "");
    let t: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    let phases: Vec<&str> = t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["phase"].as_str().unwrap())
        .collect();
    for p in [
        "clone",
        "ns:mount",
        "ns:uts",
        "ns:ipc",
        "ns:pid",
        "mounts",
        "root_switch",
        "exec",
        "wait",
        "teardown",
    ] {
        assert!(phases.contains(&p), "{p} missing from {phases:?}");
    }
    assert!(!phases.contains(&"ns:net"));
    assert!(t["total_ns"].as_u64().unwrap() > 0);
    // `--json`: the whole outcome, also on stderr (stdout is the container's).
    let o = c.run(&["--json", "run", &digest, "--", "/bin/sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(v["code"], 3);
    assert_eq!(v["switch"], "pivot_root");
    assert_eq!(mountinfo(), before, "a run changed the mount table");
}

#[test]
fn the_exit_status_is_the_commands() {
    let Some(c) = Cli::new() else {
        return;
    };
    let digest = c.image();
    let code = |args: &[&str]| c.run(args).status.code();
    assert_eq!(
        code(&["run", &digest, "--", "/bin/sh", "-c", "exit 42"]),
        Some(42)
    );
    assert_eq!(
        code(&[
            "run",
            "--ns",
            "mount,uts",
            &digest,
            "--",
            "/bin/sh",
            "-c",
            "kill -KILL $$"
        ]),
        Some(137)
    );
    assert_eq!(
        code(&[
            "run",
            "--ns",
            "mount",
            &digest,
            "--",
            "/bin/sh",
            "-c",
            "kill -TERM $$"
        ]),
        Some(143)
    );
    let o = c.run(&["run", &digest, "--", "/bin/missing", "arg"]);
    assert_eq!(o.status.code(), Some(127));
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("strata: error: command /bin/missing not found in the container"),
        "{err}"
    );
}

#[test]
fn commit_holds_the_writes_and_no_init_layer_file() {
    let Some(c) = Cli::new() else {
        return;
    };
    let digest = c.image();
    let out = s(&c.path("change.tar"));
    let (_, err) = c.ok(&[
        "run",
        "--commit",
        &out,
        &digest,
        "--",
        "/bin/sh",
        "-c",
        "echo hi > /hello; echo '1.2.3.4 x' >> /etc/hosts; echo n > /etc/hostname",
    ]);
    assert!(
        err.contains("committed") && err.contains("sha256:"),
        "{err}"
    );
    let names: Vec<String> = tar::Archive::new(fs::File::open(&out).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, vec!["hello"]);
}

#[test]
fn limits_stop_a_fork_loop_and_report_an_oom_kill() {
    let Some(c) = Cli::new() else {
        return;
    };
    let _lock = cgroup_lock();
    let before = strata_cgroups();
    let out = s(&c.path("rootfs"));
    let tar = s(&c.path("rootfs.tar"));
    c.ok(&[
        "rootfs",
        "from-host",
        "--out",
        &out,
        "--tar",
        &tar,
        "/bin/sh",
        "/bin/busybox",
    ]);
    let digest = c.ok(&["layer", "import", &tar]).0.trim().to_string();
    let o = c.run(&[
        "run",
        "--memory",
        "32m",
        &digest,
        "--",
        "/bin/busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=256M",
        "count=1",
    ]);
    assert_eq!(o.status.code(), Some(137));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("killed by the OOM killer"), "{err}");
    let o = c.run(&[
        "run",
        "--pids",
        "6",
        &digest,
        "--",
        "/bin/sh",
        "-c",
        "i=0; while [ $i -lt 40 ]; do /bin/busybox sleep 30 & i=$((i+1)); done",
    ]);
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("the pids limit refused"), "{err}");
    assert_eq!(strata_cgroups(), before);
}

#[test]
fn bad_input_gets_one_line_exit_1_nothing_mounted_and_no_cgroup_left() {
    let Some(c) = Cli::new() else {
        return;
    };
    let _lock = cgroup_lock();
    let digest = c.image();
    let junk = s(&c.path("junk.tar"));
    fs::write(&junk, "certainly not a tar archive\n".repeat(40)).unwrap();
    // A read-only tmpfs in this test's private mount namespace: an unwritable TARGET and root.
    let ro = c.path("ro");
    fs::create_dir(&ro).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &ro,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    fs::create_dir_all(ro.join("root")).unwrap();
    nix::mount::mount(
        None::<&str>,
        &ro,
        None::<&str>,
        nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .unwrap();
    let before = mountinfo();
    let cgroups = strata_cgroups();
    let ro_target = s(&ro.join("target"));
    let t: [&str; 3] = ["--", "/bin/sh", "-c"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "--ns", "mount,pidd", &digest, t[0], "/bin/ls"],
            "unknown namespace \"pidd\"",
        ),
        (
            vec!["run", "--switch", "pivot", &digest, t[0], "/bin/ls"],
            "unknown root switch \"pivot\"",
        ),
        (
            vec!["run", "--memory", "12x", &digest, t[0], "/bin/ls"],
            "invalid --memory \"12x\"",
        ),
        (
            vec![
                "run", "--memory", "64q", "--pids", "5", &digest, t[0], "/bin/ls",
            ],
            "invalid --memory",
        ),
        (
            vec!["run", "--pids", "lots", &digest, t[0], "/bin/ls"],
            "--pids",
        ),
        (vec!["run", t[0], "/bin/ls"], "no layers"),
        (vec!["run", &digest, "/bin/ls"], "no command"),
        (vec!["run", &junk, t[0], "/bin/ls"], "junk.tar"),
        (
            vec![
                "run",
                "sha256:00000000000000000000000000000000000000000000000000000000000000aa",
                t[0],
                "/bin/ls",
            ],
            "not in the store",
        ),
        (
            vec!["run", "--driver", "zfs", &digest, t[0], "/bin/ls"],
            "unknown driver \"zfs\"",
        ),
        (
            vec!["run", "--ns", "uts,pid", &digest, t[0], "/bin/ls"],
            "the mount namespace is required",
        ),
        (
            vec![
                "run",
                "--ns",
                "mount",
                "--hostname",
                "x",
                &digest,
                t[0],
                "/bin/ls",
            ],
            "--hostname needs the uts namespace",
        ),
        (
            vec![
                "run", "--memory", "64m", "--target", &ro_target, &digest, t[0], "/bin/ls",
            ],
            "Read-only file system",
        ),
    ];
    for (args, what) in &cases {
        let o = c.run(args);
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(o.status.code(), Some(1), "strata {args:?}: {err}");
        assert_eq!(
            err.lines().count(),
            1,
            "strata {args:?}: not one line: {err}"
        );
        assert!(err.starts_with("strata: error: "), "{err}");
        assert!(
            err.contains(what),
            "strata {args:?}: {err:?} does not say {what:?}"
        );
        assert_eq!(mountinfo(), before, "strata {args:?} left a mount");
        assert_eq!(strata_cgroups(), cgroups, "strata {args:?} left a cgroup");
    }
    // A root that is not writable.
    let o = c.run_with_root(
        &ro.join("root"),
        &["run", "--memory", "64m", &digest, "--", "/bin/ls"],
    );
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(mountinfo(), before);
    assert_eq!(strata_cgroups(), cgroups);
    for d in ["mounts", "containers"] {
        let left = fs::read_dir(c.root().join(d)).into_iter().flatten().count();
        assert_eq!(left, 0, "{d}: records or directories were left");
    }
    nix::mount::umount(&ro).unwrap();
}

#[test]
fn rootfs_from_host_refuses_what_it_cannot_build() {
    // Copies host files only: no root needed.
    let c = Cli::unprivileged();
    let out = s(&c.path("r"));
    let o = c.run(&["rootfs", "from-host", "--out", &out, "/no/such/binary"]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.starts_with("strata: error: ") && err.contains("/no/such/binary"),
        "{err}"
    );
    assert!(!Path::new(&out).exists());
    let v: serde_json::Value = serde_json::from_str(
        &c.ok(&["--json", "rootfs", "from-host", "--out", &out, "true"])
            .0,
    )
    .unwrap();
    assert!(
        v["libraries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("libc.so"))
    );
}

#[test]
fn signals_to_strata_reach_the_container_and_a_second_one_kills_it() {
    let Some(c) = Cli::new() else {
        return;
    };
    let out = s(&c.path("rootfs"));
    let tar = s(&c.path("rootfs.tar"));
    c.ok(&[
        "rootfs",
        "from-host",
        "--out",
        &out,
        "--tar",
        &tar,
        "/bin/sh",
        "/bin/busybox",
    ]);
    let digest = c.ok(&["layer", "import", &tar]).0.trim().to_string();
    let before = mountinfo();
    let spawn = |script: &str| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(c.root())
            .args(["run", &digest, "--", "/bin/sh", "-c", script])
            .spawn()
            .unwrap()
    };
    let signal = |pid: u32, sig: nix::sys::signal::Signal| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
    };
    // The init traps SIGTERM: forwarded, it exits 5.
    let mut child = spawn("trap 'exit 5' TERM; while :; do /bin/busybox sleep 0.05; done");
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(5));
    // dash handles SIGINT itself: forwarded, the shell ends with 130.
    let mut child = spawn("while :; do /bin/busybox sleep 0.05; done");
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(child.id(), nix::sys::signal::Signal::SIGINT);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    // No handler for SIGTERM: the init ignores the first one; the second kills it.
    let mut child = spawn("while :; do /bin/busybox sleep 0.05; done");
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first SIGTERM ended it"
    );
    signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(137));
    assert_eq!(mountinfo(), before);
    for d in ["mounts", "containers"] {
        let left = fs::read_dir(c.root().join(d)).into_iter().flatten().count();
        assert_eq!(left, 0, "{d}: the run was not torn down");
    }
}

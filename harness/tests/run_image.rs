//! `strata run` takes an image name in place of a layer list: an umoci-built image holding a
//! from-host rootfs runs by its name.
#![allow(clippy::unwrap_used)]

#[path = "../../runtime/tests/image_util/mod.rs"]
mod image_util;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

use image_util::{Umoci, run, tools};
use strata_runtime::sandbox;

#[test]
fn run_accepts_an_image_reference() {
    if !strata_runtime::require::root() {
        return;
    }
    if !tools(&["umoci"]) {
        return;
    }
    sandbox::private_mount_namespace().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p);
    let strata = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(d("root"))
            .args(args)
            .output()
            .unwrap()
    };
    let rootfs = d("rootfs");
    let o = strata(&[
        "rootfs",
        "from-host",
        "--out",
        &rootfs.display().to_string(),
        "/bin/sh",
        "/bin/true",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::create_dir(d("work")).unwrap();
    let u = Umoci::init(&d("layout"), &d("work"));
    u.layer("empty", "v1", |r: &Path| {
        run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", rootfs.display()))
            .arg(r));
    });
    let o = strata(&["image", "import", &u.image("v1"), "--name", "demo:v1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = strata(&[
        "run",
        "demo:v1",
        "--",
        "/bin/sh",
        "-c",
        "read h < /etc/hostname; echo hello from $h",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "hello from strata"
    );
}

/// `strata` with `--root DIR/root`.
fn strata_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(dir.join("root"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout_ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// An umoci layout under `dir` whose `base` tag holds a from-host rootfs (sh, id, echo,
/// cat, touch, tty, stty), an /etc/passwd with root and app (1000) and an /etc/group where app is
/// also in `extra` (2000). Returns the layout.
fn base_image(dir: &Path) -> Umoci {
    let rootfs = dir.join("rootfs");
    let o = strata_in(
        dir,
        &[
            "rootfs",
            "from-host",
            "--out",
            &rootfs.display().to_string(),
            "/bin/sh",
            "id",
            "echo",
            "cat",
            "touch",
            "tty",
            "stty",
        ],
    );
    stdout_ok(&o);
    std::fs::create_dir_all(dir.join("work")).unwrap();
    let u = Umoci::init(&dir.join("layout"), &dir.join("work"));
    u.layer("empty", "base", |r: &Path| {
        run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", rootfs.display()))
            .arg(r));
        image_util::write(
            &r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
            0o644,
        );
        image_util::write(
            &r.join("etc/group"),
            "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
            0o644,
        );
    });
    u
}

/// `umoci config` of `from` into `to` with `args`.
fn umoci_config(u: &Umoci, from: &str, to: &str, args: &[&str]) {
    run(Command::new("umoci")
        .args(["config", "--image"])
        .arg(u.image(from))
        .args(["--tag", to])
        .args(args));
}

const REPORT: &str = "echo \"$GREETING|$(pwd)|$(id -u):$(id -g)|$(id -G)|$HOME\"";

#[test]
fn run_applies_the_image_config_with_overrides() {
    if !strata_runtime::require::root() || !tools(&["umoci"]) {
        return;
    }
    sandbox::private_mount_namespace().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = |args: &[&str]| strata_in(dir.path(), args);
    let u = base_image(dir.path());
    umoci_config(
        &u,
        "base",
        "cfg",
        &[
            "--config.env",
            "GREETING=hello",
            "--config.workingdir",
            "/srv/app",
            "--config.user",
            "1000:1000",
            "--config.cmd",
            "/bin/sh",
            "--config.cmd",
            "-c",
            "--config.cmd",
            REPORT,
        ],
    );
    umoci_config(
        &u,
        "base",
        "ep",
        &[
            "--config.entrypoint",
            "echo",
            "--config.entrypoint",
            "ep",
            "--config.cmd",
            "a",
            "--config.cmd",
            "b",
        ],
    );
    stdout_ok(&s(&[
        "image",
        "import",
        &u.image("cfg"),
        "--name",
        "cfg:v1",
    ]));
    stdout_ok(&s(&["image", "import", &u.image("ep"), "--name", "ep:v1"]));

    // The image's Cmd, Env, WorkingDir (created: the image has no /srv/app) and User.
    assert_eq!(
        stdout_ok(&s(&["run", "cfg:v1"])),
        "hello|/srv/app|1000:1000|1000|/home/app"
    );
    // Each override alone.
    assert_eq!(
        stdout_ok(&s(&["run", "-e", "GREETING=bye", "cfg:v1"])),
        "bye|/srv/app|1000:1000|1000|/home/app"
    );
    assert_eq!(
        stdout_ok(&s(&["run", "-w", "/tmp/w", "cfg:v1"])),
        "hello|/tmp/w|1000:1000|1000|/home/app"
    );
    assert_eq!(
        stdout_ok(&s(&["run", "-u", "0", "cfg:v1"])),
        "hello|/srv/app|0:0|0|/root"
    );
    // A name: its passwd entry (gid, home) and its supplementary groups from /etc/group.
    assert_eq!(
        stdout_ok(&s(&["run", "--user", "app", "cfg:v1"])),
        "hello|/srv/app|1000:1000|1000 2000|/home/app"
    );
    assert_eq!(
        stdout_ok(&s(&["run", "--user", "app:extra", "cfg:v1"])),
        "hello|/srv/app|1000:2000|2000|/home/app"
    );
    let env_file = dir.path().join("env");
    std::fs::write(&env_file, "# comment\n\nGREETING=from-file\nOTHER=x\n").unwrap();
    assert_eq!(
        stdout_ok(&s(&[
            "run",
            "--env-file",
            &env_file.display().to_string(),
            "cfg:v1"
        ])),
        "from-file|/srv/app|1000:1000|1000|/home/app"
    );
    // A command after `--` replaces Cmd, not the rest of the config.
    assert_eq!(
        stdout_ok(&s(&[
            "run",
            "cfg:v1",
            "--",
            "/bin/sh",
            "-c",
            "echo $GREETING; pwd"
        ])),
        "hello\n/srv/app"
    );
    let o = s(&["run", "-u", "nobody", "cfg:v1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("\"nobody\"") && err.contains("/etc/passwd"),
        "{err}"
    );

    // Entrypoint + Cmd; a command replaces Cmd; --entrypoint replaces both.
    assert_eq!(stdout_ok(&s(&["run", "ep:v1"])), "ep a b");
    assert_eq!(stdout_ok(&s(&["run", "ep:v1", "--", "z"])), "ep z");
    assert_eq!(
        stdout_ok(&s(&[
            "run",
            "--entrypoint",
            "echo",
            "ep:v1",
            "--",
            "x",
            "y"
        ])),
        "x y"
    );
    // An image with neither says so.
    stdout_ok(&s(&[
        "image",
        "import",
        &u.image("base"),
        "--name",
        "base:v1",
    ]));
    let o = s(&["run", "base:v1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("base:v1 has no Entrypoint or Cmd") && err.contains("--"),
        "{err}"
    );

    // image inspect shows the config, in text and JSON.
    let text = stdout_ok(&s(&["image", "inspect", "cfg:v1"]));
    assert!(text.contains("user      1000:1000"), "{text}");
    assert!(
        text.contains("workdir   /srv/app") && text.contains("env       GREETING=hello"),
        "{text}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&stdout_ok(&s(&["--json", "image", "inspect", "cfg:v1"]))).unwrap();
    let c = &j["Config"];
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hello")
    );
    assert_eq!(c["Cmd"][0], "/bin/sh");
    let j: serde_json::Value =
        serde_json::from_str(&stdout_ok(&s(&["--json", "image", "inspect", "ep:v1"]))).unwrap();
    assert_eq!(j["Config"]["Entrypoint"], serde_json::json!(["echo", "ep"]));
}

fn json_of(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout_ok(o)).unwrap()
}

#[test]
fn containers_become_images_and_old_images_dangle_until_prune() {
    if !strata_runtime::require::root() || !tools(&["umoci"]) {
        return;
    }
    sandbox::private_mount_namespace().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = |args: &[&str]| strata_in(dir.path(), args);
    let u = base_image(dir.path());
    stdout_ok(&s(&[
        "image",
        "import",
        &u.image("base"),
        "--name",
        "base:v1",
    ]));
    let layers = |r: &str| {
        json_of(&s(&["--json", "image", "inspect", r]))["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .len()
    };
    let n = layers("base:v1");

    // run --commit-image: one more layer, the file in it, the history appended.
    let o = s(&[
        "run",
        "--commit-image",
        "bar/app:v2",
        "base:v1",
        "--",
        "/bin/sh",
        "-c",
        "echo hi > /new",
    ]);
    stdout_ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("committed image bar/app:v2 on base:v1"));
    assert_eq!(layers("bar/app:v2"), n + 1);
    assert_eq!(
        stdout_ok(&s(&["run", "bar/app:v2", "--", "cat", "/new"])),
        "hi"
    );
    let j = json_of(&s(&["--json", "image", "inspect", "bar/app:v2"]));
    let h = json_of(&s(&["--json", "image", "inspect", "base:v1"]))["History"]
        .as_u64()
        .unwrap();
    assert_eq!(j["History"].as_u64().unwrap(), h + 1);

    // run --keep, then commit --image (the init layer is not an image layer) and -o (the
    // init layer's files are left out).
    let target = dir.path().join("kept");
    let o = s(&[
        "run",
        "--keep",
        "--target",
        &target.display().to_string(),
        "base:v1",
        "--",
        "/bin/sh",
        "-c",
        "echo k > /kept; echo 1.2.3.4 x >> /etc/hosts",
    ]);
    stdout_ok(&o);
    let t = target.display().to_string();
    let out_tar = dir.path().join("kept.tar");
    stdout_ok(&s(&[
        "commit",
        &t,
        "--image",
        "bar/app:kept",
        "-o",
        &out_tar.display().to_string(),
    ]));
    let listing = run(Command::new("tar").arg("-tf").arg(&out_tar));
    assert_eq!(listing.trim(), "kept", "{listing}");
    stdout_ok(&s(&["umount", &t]));
    assert_eq!(layers("bar/app:kept"), n + 1);
    assert_eq!(
        stdout_ok(&s(&["run", "bar/app:kept", "--", "cat", "/kept"])),
        "k"
    );

    // image tag: a second name for the same image.
    stdout_ok(&s(&["image", "tag", "bar/app:v2", "other"]));
    let j = json_of(&s(&["--json", "image", "inspect", "other:latest"]));
    let v2 = json_of(&s(&["--json", "image", "inspect", "bar/app:v2"]));
    assert_eq!(j["Manifest"], v2["Manifest"]);
    stdout_ok(&s(&["image", "rm", "other:latest"]));

    // A commit over an existing tag: the old image loses its tag but keeps its layer,
    // dangling, until prune.
    let old_id = v2["Id"].as_str().unwrap().to_string();
    stdout_ok(&s(&[
        "run",
        "--commit-image",
        "bar/app:v2",
        "base:v1",
        "--",
        "/bin/sh",
        "-c",
        "echo 2 > /second",
    ]));
    assert_eq!(
        stdout_ok(&s(&["run", "bar/app:v2", "--", "cat", "/second"])),
        "2"
    );
    let ls = json_of(&s(&["--json", "image", "ls"]));
    assert!(
        ls.as_array()
            .unwrap()
            .iter()
            .any(|r| r["Name"] == "<none>" || r["name"] == "<none>"),
        "{ls}"
    );
    assert_eq!(stdout_ok(&s(&["run", &old_id, "--", "cat", "/new"])), "hi");
    let p = json_of(&s(&["--json", "image", "prune"]));
    assert_eq!(p["images_removed"].as_array().unwrap().len(), 1, "{p}");
    assert!(!p["layers_removed"].as_array().unwrap().is_empty(), "{p}");
    assert!(!s(&["run", &old_id, "--", "cat", "/new"]).status.success());
    assert_eq!(
        stdout_ok(&s(&["run", "bar/app:v2", "--", "cat", "/second"])),
        "2"
    );
}

#[test]
fn volumes_show_host_files_refuse_writes_when_ro_and_are_never_committed() {
    if !strata_runtime::require::root() || !tools(&["umoci"]) {
        return;
    }
    sandbox::private_mount_namespace().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = |args: &[&str]| strata_in(dir.path(), args);
    let u = base_image(dir.path());
    stdout_ok(&s(&[
        "image",
        "import",
        &u.image("base"),
        "--name",
        "base:v1",
    ]));
    let host = dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("hello"), "from the host\n").unwrap();
    let hfile = dir.path().join("single");
    std::fs::write(&hfile, "one file\n").unwrap();
    let v = format!("{}:/data", host.display());
    let vro = format!("{}:/data:ro", host.display());
    let vfile = format!("{}:/etc/single.conf:ro", hfile.display());
    let out = dir.path().join("c.tar");
    let out_s = out.display().to_string();

    // Host files show; writes land on the host; nothing of the volume (or the mount point
    // strata made) is committed, only the container's own change.
    let o = s(&[
        "run",
        "-v",
        &v,
        "-v",
        &vfile,
        "--commit",
        &out_s,
        "base:v1",
        "--",
        "/bin/sh",
        "-c",
        "cat /data/hello /etc/single.conf; echo w > /data/written; echo own > /own",
    ]);
    assert_eq!(stdout_ok(&o), "from the host\none file");
    assert_eq!(
        std::fs::read_to_string(host.join("written")).unwrap(),
        "w\n"
    );
    let listing = run(Command::new("tar").arg("-tf").arg(&out));
    assert_eq!(listing.trim(), "own", "{listing}");
    // The commit into an image leaves it out too.
    stdout_ok(&s(&[
        "run",
        "-v",
        &v,
        "--commit-image",
        "base:vol",
        "base:v1",
        "--",
        "/bin/sh",
        "-c",
        "echo again > /data/again",
    ]));
    let o = s(&[
        "run",
        "base:vol",
        "--",
        "/bin/sh",
        "-c",
        "[ -e /data ] && echo present || echo absent",
    ]);
    assert_eq!(stdout_ok(&o), "absent");

    // A kept container: its record names the mount points strata made (/data, and /srv/vol
    // with its parent /srv), so a later `strata commit` (tar and image) leaves them out too.
    let target = dir.path().join("kept");
    let t = target.display().to_string();
    let v2 = format!("{}:/srv/vol", host.display());
    stdout_ok(&s(&[
        "run",
        "--keep",
        "--target",
        &t,
        "-v",
        &v,
        "-v",
        &v2,
        "base:v1",
        "--",
        "/bin/sh",
        "-c",
        "echo own > /own; echo k > /srv/vol/k",
    ]));
    let kept_tar = dir.path().join("kept.tar");
    stdout_ok(&s(&[
        "commit",
        &t,
        "--image",
        "base:kept",
        "-o",
        &kept_tar.display().to_string(),
    ]));
    let listing = run(Command::new("tar").arg("-tf").arg(&kept_tar));
    assert_eq!(listing.trim(), "own", "{listing}");
    stdout_ok(&s(&["umount", &t]));
    assert_eq!(std::fs::read_to_string(host.join("k")).unwrap(), "k\n");
    let o = s(&[
        "run",
        "base:kept",
        "--",
        "/bin/sh",
        "-c",
        "cat /own; [ -e /data ] || [ -e /srv ] && echo present || echo absent",
    ]);
    assert_eq!(stdout_ok(&o), "own\nabsent");

    // :ro refuses writes (and the host sees none).
    let o = s(&["run", "-v", &vro, "base:v1", "--", "touch", "/data/nope"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Read-only file system"),
        "{o:?}"
    );
    assert!(!host.join("nope").exists());
    let o = s(&[
        "run",
        "-v",
        &vfile,
        "base:v1",
        "--",
        "/bin/sh",
        "-c",
        "echo x > /etc/single.conf",
    ]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read_to_string(&hfile).unwrap(), "one file\n");

    // --mount: bind and tmpfs (the tmpfs's content is gone with the container).
    let m = format!("type=bind,source={},target=/m,readonly", host.display());
    assert_eq!(
        stdout_ok(&s(&[
            "run", "--mount", &m, "base:v1", "--", "cat", "/m/hello"
        ])),
        "from the host"
    );
    let o = s(&[
        "run",
        "--mount",
        "type=tmpfs,target=/scratch,tmpfs-size=1m,tmpfs-mode=1777",
        "--commit",
        &out_s,
        "base:v1",
        "--",
        "/bin/sh",
        "-c",
        "echo t > /scratch/t && cat /scratch/t && while read d m t r; do [ $m = /scratch ] && echo $t; done < /proc/mounts",
    ]);
    assert_eq!(stdout_ok(&o), "t\ntmpfs");
    let listing = run(Command::new("tar").arg("-tf").arg(&out));
    assert!(listing.trim().is_empty(), "{listing}");

    // Bad volumes are refused before anything runs.
    let o = s(&["run", "-v", "/does/not/exist:/x", "base:v1", "--", "true"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/does/not/exist"));
    let o = s(&["run", "-v", "relative:/x", "base:v1", "--", "true"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("must be absolute or start with ./"));
}

#[test]
fn tty_is_the_containers_own_terminal_with_the_callers_size_and_i_keeps_stdin() {
    if !strata_runtime::require::root() || !tools(&["umoci"]) {
        return;
    }
    sandbox::private_mount_namespace().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = |args: &[&str]| strata_in(dir.path(), args);
    let u = base_image(dir.path());
    stdout_ok(&s(&[
        "image",
        "import",
        &u.image("base"),
        "--name",
        "base:v1",
    ]));

    // Without a terminal around strata: the command still has one, its own /dev/pts/0.
    let o = s(&["run", "-t", "base:v1", "--", "tty"]);
    assert_eq!(stdout_ok(&o), "/dev/pts/0");
    let o = s(&["run", "base:v1", "--", "/bin/sh", "-c", "tty || true"]);
    assert_eq!(stdout_ok(&o), "not a tty");

    // Under a terminal of 33 rows and 111 columns: the size is forwarded, the caller's
    // terminal is raw while the container runs and restored afterwards.
    let ws = nix::pty::Winsize {
        ws_row: 33,
        ws_col: 111,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(&ws, None).unwrap();
    let before = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .args(["run", "-t", "-i", "base:v1", "--", "/bin/sh", "-c"])
        .arg("stty size; read x; echo got $x; stty size; stty -a | while read l; do case $l in *-icanon*) echo RAWCHILD;; esac; done")
        .stdin(pty.slave.try_clone().unwrap())
        .stdout(pty.slave.try_clone().unwrap())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While it runs (the command waits for a line), strata's own terminal is raw.
    let icanon = |t: &nix::sys::termios::Termios| {
        t.local_flags
            .contains(nix::sys::termios::LocalFlags::ICANON)
    };
    assert!(icanon(&before));
    let raw_seen = loop {
        if !icanon(&nix::sys::termios::tcgetattr(&pty.slave).unwrap()) {
            break true;
        }
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::yield_now();
    };
    // The command printed the size it started with (and now waits for a line).
    let mut master = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains("33 111") {
        let n = std::io::Read::read(&mut master, &mut buf).unwrap();
        assert!(n > 0);
        out.extend_from_slice(&buf[..n]);
    }
    // The caller's terminal is resized (SIGWINCH), then a line typed at it reaches the
    // command, which sees the new size.
    let ws2 = nix::pty::Winsize {
        ws_row: 40,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize on the test's own pty.
    assert_eq!(
        unsafe { nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSWINSZ, &ws2) },
        0
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGWINCH,
    )
    .unwrap();
    std::io::Write::write_all(&mut master, b"go\r").unwrap();
    let status = child.wait().unwrap();
    // strata restored its terminal.
    assert!(icanon(&nix::sys::termios::tcgetattr(&pty.slave).unwrap()));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    drop(pty.slave);
    loop {
        match std::io::Read::read(&mut master, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("33 111"), "{out:?}");
    // The container's own terminal is canonical (cooked), whatever the caller's is.
    assert!(!out.contains("RAWCHILD"), "{out:?}");
    assert!(raw_seen, "strata's terminal never went raw");
    assert!(out.contains("got go"), "{out:?}");
    assert!(out.contains("got go\r\n40 100"), "{out:?}");

    // -i: stdin reaches the command; without it the command's stdin is /dev/null.
    let piped = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(dir.path().join("root"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(c.stdin.as_mut().unwrap(), b"typed\n").unwrap();
        drop(c.stdin.take());
        c.wait_with_output().unwrap()
    };
    assert_eq!(
        stdout_ok(&piped(&["run", "-i", "base:v1", "--", "cat"])),
        "typed"
    );
    assert_eq!(stdout_ok(&piped(&["run", "base:v1", "--", "cat"])), "");
}

#[test]
fn ls_size_is_the_same_whatever_the_format_and_a_name_that_is_also_a_path_is_refused() {
    if !strata_runtime::require::root() || !tools(&["umoci"]) {
        return;
    }
    sandbox::private_mount_namespace().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(dir.path().join("root"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let u = base_image(dir.path());
    stdout_ok(&s(&[
        "image",
        "import",
        &u.image("base"),
        "--name",
        "img:gz",
    ]));
    let saved = dir.path().join("saved.tar");
    stdout_ok(&s(&[
        "image",
        "export",
        "img:gz",
        &saved.display().to_string(),
    ]));
    stdout_ok(&s(&[
        "image",
        "import",
        &saved.display().to_string(),
        "--name",
        "img:saved",
    ]));
    let rows: serde_json::Value =
        serde_json::from_str(&stdout_ok(&s(&["--json", "image", "ls"]))).unwrap();
    let row = |tag: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["tag"] == tag)
            .unwrap_or_else(|| panic!("{rows}"))
            .clone()
    };
    let (gz, saved) = (row("gz"), row("saved"));
    assert_ne!(
        gz["blob_size"], saved["blob_size"],
        "gzip vs plain tar blobs"
    );
    assert_eq!(gz["size"], saved["size"]);
    assert!(gz["size"].as_u64().unwrap() > gz["blob_size"].as_u64().unwrap());

    // `img` is an image (img:latest) and a directory here: refused, with both spellings.
    stdout_ok(&s(&["image", "tag", "img:gz", "img"]));
    std::fs::create_dir(dir.path().join("img")).unwrap();
    let o = s(&["run", "img", "--", "/bin/sh", "-c", "true"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("both an image") && err.contains("./img"),
        "{err}"
    );
    // The image by an explicit tag, the directory by ./ (an empty layer: no /bin/sh).
    stdout_ok(&s(&["run", "img:latest", "--", "/bin/sh", "-c", "true"]));
    let o = s(&["run", "./img", "--", "/bin/sh", "-c", "true"]);
    assert_eq!(o.status.code(), Some(127), "{o:?}");
}

//! The `strata` command line as a user meets it: the worked example of the README, mounts
//! recorded for other processes, and one clear line (exit 1, nothing left mounted) for each
//! kind of bad input.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use strata_runtime::fixture::Layer;
use strata_runtime::sandbox;

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    /// Enters a private mount namespace (so the binary's mounts stay in it), or says why not.
    fn new() -> Option<Cli> {
        if !strata_runtime::require::root() {
            return None;
        }
        sandbox::private_mount_namespace().unwrap();
        Some(Cli {
            dir: tempfile::Builder::new()
                .prefix("strata-cli-")
                .tempdir()
                .unwrap(),
        })
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .unwrap()
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

    /// Runs a command that must fail with one line naming `what`; returns that line.
    fn fails(&self, args: &[&str], what: &str) -> String {
        let o = self.run(args);
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(
            o.status.code(),
            Some(1),
            "strata {args:?}: exit {:?}, stderr {err}",
            o.status.code()
        );
        assert_eq!(
            err.lines().count(),
            1,
            "strata {args:?}: not one line: {err}"
        );
        assert!(err.starts_with("strata: error: "), "strata {args:?}: {err}");
        assert!(
            err.contains(what),
            "strata {args:?}: {err:?} does not mention {what:?}"
        );
        err
    }

    fn write_layer(&self, name: &str, l: &Layer) -> String {
        let p = self.path(name);
        fs::write(&p, l.to_tar().unwrap()).unwrap();
        p.display().to_string()
    }

    fn empty_dir(&self, name: &str) -> String {
        let p = self.path(name);
        fs::create_dir_all(&p).unwrap();
        p.display().to_string()
    }
}

fn mountinfo() -> String {
    sandbox::mountinfo().unwrap()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn the_readme_worked_example_runs_with_every_driver() {
    let Some(c) = Cli::new() else {
        return;
    };
    let base = c.write_layer(
        "base.tar",
        &Layer::new()
            .dir("etc")
            .file("etc/hosts", "127.0.0.1 localhost\n")
            .file("etc/motd", "hello\n"),
    );
    let app = c.write_layer(
        "app.tar",
        &Layer::new()
            .dir("app")
            .file("app/run.sh", "echo hi\n")
            .mode(0o755),
    );
    let digest = c.ok(&["layer", "import", &base]);
    assert!(
        digest.trim().starts_with("sha256:") && digest.trim().len() == 71,
        "{digest}"
    );
    for driver in ["overlay", "copy"] {
        let target = c.empty_dir(&format!("merged-{driver}"));
        c.ok(&["mount", "--driver", driver, digest.trim(), &app, &target]);
        assert_eq!(
            fs::read_to_string(Path::new(&target).join("etc/motd")).unwrap(),
            "hello\n"
        );
        fs::remove_file(Path::new(&target).join("etc/motd")).unwrap();
        let out = s(&c.path(&format!("change-{driver}.tar")));
        let committed = c.ok(&["commit", &target, "-o", &out]);
        assert_eq!(
            committed.trim(),
            strata_runtime::Digest::of(&fs::read(&out).unwrap()).to_string()
        );
        let names: Vec<String> = tar::Archive::new(fs::File::open(&out).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["etc/", "etc/.wh.motd"], "{driver}");
        c.ok(&["umount", &target]);
    }
    assert!(!mountinfo().contains(&s(c.dir.path())), "a mount was left");
}

#[test]
fn json_output_is_machine_readable() {
    let Some(c) = Cli::new() else {
        return;
    };
    let l = c.write_layer("l.tar", &Layer::new().file("f", "x"));
    let v: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "layer", "import", &l])).unwrap();
    assert_eq!(v[0]["reused"], false);
    let v: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "layer", "import", &l])).unwrap();
    assert_eq!(v[0]["reused"], true);
    let v: serde_json::Value = serde_json::from_str(&c.ok(&["--json", "drivers"])).unwrap();
    let drivers = v["drivers"].as_array().unwrap();
    let names: Vec<&str> = drivers
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    for n in ["overlay", "copy", "aufs"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert_eq!(drivers[0]["capabilities"]["dir_rename"], false);
    assert_eq!(v["probe"]["overlay"]["max_layers"], 500);
    assert!(v["probe"]["kernel"].as_str().is_some_and(|k| !k.is_empty()));
    let t = c.empty_dir("t");
    let v: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "mount", "--driver", "copy", &l, &t])).unwrap();
    assert_eq!(v["driver"], "copy");
    let out = s(&c.path("c.tar"));
    let v: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "commit", &t, "-o", &out])).unwrap();
    assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
    c.ok(&["umount", &t]);
}

#[test]
fn umount_all_cleans_up_after_a_crash() {
    let Some(c) = Cli::new() else {
        return;
    };
    let before = mountinfo();
    let l = c.write_layer("l.tar", &Layer::new().file("f", "x"));
    let (a, b) = (c.empty_dir("a"), c.empty_dir("b"));
    c.ok(&["mount", "--driver", "overlay", &l, &a]);
    c.ok(&["mount", "--driver", "copy", &l, &b]);
    // A crashed import leaves its work under ROOT/tmp.
    fs::create_dir_all(c.root().join("tmp/import-crashed/fs/x")).unwrap();
    let out = c.ok(&["umount", "--all"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(mountinfo(), before);
    assert_eq!(fs::read_dir(c.root().join("mounts")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(c.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn bad_input_gets_one_line_exit_1_and_leaves_nothing_mounted() {
    let Some(c) = Cli::new() else {
        return;
    };
    let before = mountinfo();
    let good = c.write_layer(
        "good.tar",
        &Layer::new().dir("d").file("d/f", vec![9u8; 5000]),
    );
    let bytes = fs::read(&good).unwrap();
    let truncated = s(&c.path("truncated.tar"));
    fs::write(&truncated, &bytes[..2000]).unwrap();
    let junk = s(&c.path("junk.tar"));
    fs::write(&junk, "certainly not a tar archive\n".repeat(40)).unwrap();
    let t = c.empty_dir("t");
    let missing = s(&c.path("missing.tar"));

    c.fails(&["layer", "import", &missing], "missing.tar");
    c.fails(&["layer", "import", &truncated], "truncated");
    c.fails(&["layer", "import", &junk], "not a tar archive");
    c.fails(&["mount", &missing, &t], "missing.tar");
    c.fails(&["mount", &truncated, &t], "truncated.tar");
    c.fails(&["mount", &junk, &t], "junk.tar");
    c.fails(
        &["mount", &format!("sha256:{}", "ab".repeat(32)), &t],
        "not in the store",
    );
    c.fails(
        &["mount", "--driver", "zfs", &good, &t],
        "unknown driver \"zfs\"",
    );
    let full = c.empty_dir("full");
    fs::write(Path::new(&full).join("precious"), "x").unwrap();
    c.fails(&["mount", &good, &full], "not empty");
    c.fails(&["mount", &good, &s(&c.path("nowhere"))], "nowhere");
    c.fails(&["mount", &good, &good], "not a directory");
    c.fails(&["umount", &t], "not a strata mount");
    c.fails(
        &["commit", &t, "-o", &s(&c.path("o.tar"))],
        "not a strata mount",
    );
    c.fails(&["mount", "--switch-root", "x", &good, &t], "--switch-root");
    assert_eq!(mountinfo(), before, "a failed command left a mount");
    assert_eq!(
        fs::read_dir(c.root().join("mounts")).unwrap().count(),
        0,
        "a failed mount left a record"
    );
    assert!(fs::read_dir(&t).unwrap().next().is_none());
    assert_eq!(
        fs::read_to_string(Path::new(&full).join("precious")).unwrap(),
        "x"
    );
}

#[test]
fn a_mount_outlives_the_process_and_another_process_commits_and_unmounts_it() {
    let Some(c) = Cli::new() else {
        return;
    };
    let l = c.write_layer("l.tar", &Layer::new().file("f", "x"));
    let t = c.empty_dir("t");
    c.ok(&["mount", &l, &t]);
    fs::write(Path::new(&t).join("new"), "n").unwrap();
    let out = s(&c.path("c.tar"));
    c.ok(&["commit", &t, "-o", &out]);
    let again = c.empty_dir("t2");
    c.fails(&["mount", &l, &t], "not empty");
    c.ok(&["umount", &t]);
    c.ok(&["mount", &l, &again]);
    c.ok(&["umount", &again]);
}

//! `strata image` as a user meets it: import an umoci-built image, mount it by name with every
//! driver, change it, commit the change into a new image, push it to an OCI layout and to a
//! docker-registry started here on 127.0.0.1, and read both back with skopeo and umoci; image
//! rm keeps what other images and live mounts use; bad input is one line and exit 1.
#![allow(clippy::unwrap_used)]

#[path = "../../runtime/tests/image_util/mod.rs"]
mod image_util;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image_util::{Registry, run, tools, two_layer_image};
use serde_json::Value;
use strata_runtime::model::{CompareOptions, MtimeCompare, Tree};
use strata_runtime::sandbox;
use strata_runtime::scan::scan;

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    /// A private mount namespace (the binary's mounts stay in it) and a temp dir, or why not.
    fn new(need: &[&str]) -> Option<Cli> {
        if !strata_runtime::require::root() {
            return None;
        }
        if !tools(need) {
            return None;
        }
        sandbox::private_mount_namespace().unwrap();
        Some(Cli {
            dir: tempfile::Builder::new()
                .prefix("strata-image-")
                .tempdir()
                .unwrap(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(self.path("root"))
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

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// A command that must fail with exit 1 and one line mentioning `what`.
    fn fails(&self, args: &[&str], what: &str) -> String {
        let o = self.run(args);
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
            "strata {args:?}: {err:?} lacks {what:?}"
        );
        err
    }

    fn empty_dir(&self, name: &str) -> String {
        fs::create_dir_all(self.path(name)).unwrap();
        self.s(name)
    }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn assert_trees(what: &str, expected: &Tree, actual: &Tree) {
    let opts = CompareOptions {
        mtime: MtimeCompare::All,
        ..CompareOptions::default()
    };
    let diffs = expected.compare(actual, &opts);
    assert!(
        diffs.is_empty(),
        "{what}:\n  {}",
        diffs
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// The container's changes, made through a mount of the image.
fn change(target: &Path) {
    fs::create_dir_all(target.join("srv")).unwrap();
    fs::write(target.join("srv/hello"), "hello from the container\n").unwrap();
    fs::set_permissions(target.join("srv/hello"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::remove_file(target.join("etc/hosts")).unwrap();
    fs::set_permissions(
        target.join("usr/bin/suid"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::remove_dir_all(target.join("opt/new")).unwrap();
}

/// The changes, as umoci unpack (or any reader of the image) must see them.
fn assert_changed(what: &str, rootfs: &Path) {
    assert_eq!(
        fs::read_to_string(rootfs.join("srv/hello")).unwrap(),
        "hello from the container\n",
        "{what}"
    );
    assert_eq!(mode(&rootfs.join("srv/hello")), 0o640, "{what}");
    assert!(
        !rootfs.join("etc/hosts").exists(),
        "{what}: etc/hosts not deleted"
    );
    assert!(
        !rootfs.join("opt/new").exists(),
        "{what}: opt/new not deleted"
    );
    assert!(rootfs.join("opt").is_dir(), "{what}");
    assert_eq!(mode(&rootfs.join("usr/bin/suid")), 0o755, "{what}");
    // Untouched content of both base layers is still there.
    assert!(rootfs.join("usr/lib/added").is_file(), "{what}");
    assert_eq!(
        fs::read_link(rootfs.join("usr/lib/libx.so")).unwrap(),
        Path::new("libx.so.2")
    );
}

#[test]
fn commit_into_an_image_push_it_and_read_it_back_with_skopeo_and_umoci() {
    let Some(c) = Cli::new(&["umoci", "skopeo", "docker-registry"]) else {
        return;
    };
    let before_mounts = sandbox::mountinfo().unwrap();
    let u = two_layer_image(&c.path("umoci"));
    let layout = u.layout.display().to_string();
    let imp = c.json(&[
        "image",
        "import",
        &format!("{layout}:v2"),
        "--name",
        "app:v2",
    ]);
    assert_eq!(imp["layers"].as_array().unwrap().len(), 2);
    let ls = c.json(&["image", "ls"]);
    assert_eq!(ls[0]["name"], "app");
    assert_eq!(ls[0]["tag"], "v2");
    let ins = c.json(&["image", "inspect", "app:v2"]);
    assert_eq!(ins["RootFS"]["Type"], "layers");
    assert_eq!(ins["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(ins["Layers"][0]["DiffID"], ins["RootFS"]["Layers"][0]);
    assert_eq!(ins["Id"], imp["config"]);

    // Mount by image name with every driver, change, commit into a new image.
    for driver in ["overlay", "copy"] {
        let t = c.empty_dir(&format!("mnt-{driver}"));
        c.ok(&["mount", "--driver", driver, "app:v2", &t]);
        change(Path::new(&t));
        let out = c.json(&["commit", &t, "--image", &format!("app:v3-{driver}")]);
        assert_eq!(out["base"], "app:v2");
        c.ok(&["umount", &t]);
        let ins = c.json(&["image", "inspect", &format!("app:v3-{driver}")]);
        assert_eq!(ins["RootFS"]["Layers"].as_array().unwrap().len(), 3);
        assert_eq!(ins["RootFS"]["Layers"][2], out["diff_id"]);
        assert_eq!(ins["History"], 3, "one history entry per layer");

        // Push to an OCI layout; skopeo copies it; umoci unpack shows the changes.
        let dest = c.path(&format!("pushed-{driver}"));
        c.ok(&[
            "image",
            "push",
            &format!("app:v3-{driver}"),
            &format!("oci:{}:v3", dest.display()),
        ]);
        let copy = c.path(&format!("copied-{driver}"));
        run(Command::new("skopeo")
            .args(["copy", "-q"])
            .arg(format!("oci:{}:v3", dest.display()))
            .arg(format!("oci:{}:v3", copy.display())));
        let bundle = c.path(&format!("bundle-{driver}"));
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:v3", copy.display()))
            .arg(&bundle));
        assert_changed(driver, &bundle.join("rootfs"));
    }
    let reference = scan(&c.path("bundle-copy/rootfs")).unwrap();

    // A layout is updated, not replaced: a second tag beside the first, the shared layers not
    // copied again; skopeo reads both tags.
    let dest = c.s("pushed-copy");
    let upd = c.json(&["image", "push", "app:v2", &format!("oci:{dest}:v2")]);
    assert_eq!(upd["blobs_present"], 2, "{upd}");
    assert_eq!(upd["blobs_written"], 2, "config and manifest: {upd}");
    let index: Value =
        serde_json::from_slice(&fs::read(c.path("pushed-copy/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    for tag in ["v2", "v3"] {
        run(Command::new("skopeo")
            .args(["copy", "-q"])
            .arg(format!("oci:{dest}:{tag}"))
            .arg(format!("oci:{}:{tag}", c.s("copied-both"))));
    }
    // Export as an OCI layout directory: umoci unpacks it.
    c.ok(&["image", "export", "app:v3-copy", &c.s("exported")]);
    let bundle = c.path("bundle-exported");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v3-copy", c.s("exported")))
        .arg(&bundle));
    assert_trees(
        "exported",
        &reference,
        &scan(&bundle.join("rootfs")).unwrap(),
    );

    // The committed image mounts again, and shows what umoci unpacks.
    let t = c.empty_dir("mnt-again");
    c.ok(&["mount", "--driver", "copy", "app:v3-copy", &t]);
    assert_trees("app:v3 mounted", &reference, &scan(Path::new(&t)).unwrap());
    c.ok(&["umount", &t]);

    // A registry on 127.0.0.1: push (blobs uploaded), push again (all present), skopeo pull.
    let reg = Registry::start(c.dir.path());
    let dest = format!("docker://{}/team/app:v3", reg.host());
    let p1 = c.json(&["image", "push", "app:v3-copy", &dest]);
    assert_eq!(p1["blobs_uploaded"], 4, "3 layers and the config: {p1}");
    let p2 = c.json(&["image", "push", "app:v3-copy", &dest]);
    assert_eq!(
        (p2["blobs_uploaded"].as_u64(), p2["blobs_present"].as_u64()),
        (Some(0), Some(4))
    );
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/team/app:v3", reg.host())));
    assert_eq!(
        strata_runtime::Digest::of(raw.as_bytes()).to_string(),
        p1["manifest"].as_str().unwrap(),
        "the registry serves the manifest byte for byte"
    );
    let pulled = c.path("pulled");
    run(Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{}/team/app:v3", reg.host()))
        .arg(format!("oci:{}:v3", pulled.display())));
    let bundle = c.path("bundle-pulled");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v3", pulled.display()))
        .arg(&bundle));
    assert_changed("pulled from the registry", &bundle.join("rootfs"));
    assert_trees(
        "pulled from the registry",
        &reference,
        &scan(&bundle.join("rootfs")).unwrap(),
    );
    // And strata imports what skopeo pulled: the same image, every blob shared.
    let again = c.json(&[
        "image",
        "import",
        &format!("{}:v3", pulled.display()),
        "--name",
        "pulled:v3",
    ]);
    assert_eq!(again["manifest"], p1["manifest"]);
    assert_eq!(again["blob_bytes_new"], 0);
    drop(reg);

    // rm: the new layer of app:v3-overlay goes; what app:v2 and pulled:v3 use stays.
    let rm = c.json(&["image", "rm", "app:v3-overlay"]);
    assert_eq!(rm[0]["layers_removed"].as_array().unwrap().len(), 1);
    assert_eq!(rm[0]["layers_kept"].as_array().unwrap().len(), 2);
    // A live mount keeps its layers when its image is removed.
    let t = c.empty_dir("mnt-live");
    c.ok(&["mount", "app:v3-copy", &t]);
    c.ok(&["image", "rm", "app:v3-copy", "pulled:v3"]);
    let rm = c.json(&["image", "rm", "app:v2"]);
    assert_eq!(rm[0]["layers_removed"].as_array().unwrap().len(), 0, "{rm}");
    assert!(Path::new(&t).join("srv/hello").is_file());
    let pr = c.json(&["image", "prune"]);
    assert_eq!(
        pr["layers_removed"].as_array().unwrap().len(),
        0,
        "in use: {pr}"
    );
    c.ok(&["umount", &t]);
    // Once the mount is gone, prune takes what rm had to keep: the store is empty again.
    let pr = c.json(&["image", "prune"]);
    assert_eq!(pr["layers_removed"].as_array().unwrap().len(), 3, "{pr}");
    assert_eq!(
        fs::read_dir(c.path("root/layers/sha256")).unwrap().count(),
        0
    );
    assert_eq!(
        fs::read_dir(c.path("root/blobs/sha256")).unwrap().count(),
        0
    );
    assert_eq!(
        sandbox::mountinfo().unwrap(),
        before_mounts,
        "a mount was left"
    );
}

#[test]
fn bad_image_input_is_one_line_and_changes_nothing() {
    let Some(c) = Cli::new(&["umoci"]) else {
        return;
    };
    let u = two_layer_image(&c.path("umoci"));
    let layout = u.layout.display().to_string();
    c.ok(&["image", "import", &format!("{layout}:v1")]);
    let t = c.empty_dir("t");
    c.fails(&["image", "inspect", "nope:1"], "not in the store");
    c.fails(&["mount", "nope:1", &t], "not in the store");
    c.fails(
        &["image", "import", &format!("{layout}:v9")],
        "no manifest tagged \"v9\"",
    );
    c.fails(&["image", "import", &layout], "name one as PATH:TAG");
    c.fails(&["image", "import", &c.s("missing")], "missing");
    c.fails(
        &["image", "push", "layout:v1", "docker://127.0.0.1:1/x:y"],
        "docker://127.0.0.1:1/x:y",
    );
    c.fails(
        &[
            "image",
            "import",
            &format!("{layout}:v2"),
            "--name",
            "Bad Name",
        ],
        "image name",
    );

    // A corrupt layer: one line naming the blob, and the store as it was.
    let (m, _) = {
        let index: Value =
            serde_json::from_slice(&fs::read(u.layout.join("index.json")).unwrap()).unwrap();
        let d = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == "v2")
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        let m: Value =
            serde_json::from_slice(&fs::read(u.layout.join("blobs/sha256").join(&d)).unwrap())
                .unwrap();
        (m, d)
    };
    let blob = m["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let p = u.layout.join("blobs/sha256").join(blob);
    let mut b = fs::read(&p).unwrap();
    let n = b.len();
    b[n - 3] ^= 0x55;
    fs::write(&p, b).unwrap();
    let before = image_util::listing(&c.path("root"));
    let err = c.fails(&["image", "import", &format!("{layout}:v2")], blob);
    assert!(err.contains("digest mismatch"), "{err}");
    assert_eq!(image_util::listing(&c.path("root")), before);

    // Commit --image needs a mount made from an image.
    let plain = c.path("plain.tar");
    fs::write(
        &plain,
        strata_runtime::fixture::Layer::new()
            .file("f", "x")
            .to_tar()
            .unwrap(),
    )
    .unwrap();
    c.ok(&["mount", plain.to_str().unwrap(), &t]);
    c.fails(&["commit", &t, "--image", "x:y"], "not those of any image");
    c.ok(&["umount", &t]);
}

//! `strata run` takes an image name in place of a layer list: an umoci-built image holding a
//! from-host rootfs runs by its name.
#![allow(clippy::unwrap_used)]

#[path = "../../runtime/tests/image_util/mod.rs"]
mod image_util;

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

//! Corrupt images are refused with one line naming the blob and the reason, and leave the
//! store exactly as it was (a full listing of ROOT, contents hashed, before and after): a
//! blob whose digest does not match, a manifest naming a missing blob, a truncated layer
//! (cut short, and cut short with a descriptor that matches the cut), a diff_id mismatch, a
//! media type that is not a layer, a config whose digest does not match. Each case runs on an
//! empty store (the first layer, extracted before the second fails, must go again) and on one
//! that already holds the base image (the shared layer must stay).
#![allow(clippy::unwrap_used)]

mod common;
mod image_util;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use strata_runtime::Digest;
use strata_runtime::image::{self, ImportOptions};
use strata_runtime::store::Store;

/// The manifest of `tag` in a layout, and the path of its blob.
fn manifest(layout: &Path, tag: &str) -> (Value, PathBuf) {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let d = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let p = blob(layout, &d);
    (serde_json::from_slice(&fs::read(&p).unwrap()).unwrap(), p)
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Writes `bytes` as a blob; returns (digest, size).
fn put(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let d = Digest::of(bytes).to_string();
    fs::write(blob(layout, &d), bytes).unwrap();
    (d, bytes.len() as u64)
}

/// Rewrites the manifest of `tag` with `f`, and points the index at the new one.
fn edit_manifest(layout: &Path, tag: &str, f: impl FnOnce(&mut Value)) {
    let (mut m, _) = manifest(layout, tag);
    f(&mut m);
    let (d, size) = put(layout, &serde_json::to_vec(&m).unwrap());
    let ip = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&fs::read(&ip).unwrap()).unwrap();
    for desc in index["manifests"].as_array_mut().unwrap() {
        if desc["annotations"]["org.opencontainers.image.ref.name"] == tag {
            desc["digest"] = d.clone().into();
            desc["size"] = size.into();
        }
    }
    fs::write(&ip, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Rewrites the config of `tag` with `f` (and the manifest that names it).
fn edit_config(layout: &Path, tag: &str, f: impl FnOnce(&mut Value)) {
    let (m, _) = manifest(layout, tag);
    let cp = blob(layout, m["config"]["digest"].as_str().unwrap());
    let mut c: Value = serde_json::from_slice(&fs::read(cp).unwrap()).unwrap();
    f(&mut c);
    let (d, size) = put(layout, &serde_json::to_vec(&c).unwrap());
    edit_manifest(layout, tag, |m| {
        m["config"]["digest"] = d.into();
        m["config"]["size"] = size.into();
    });
}

/// The path of layer `i`'s blob of `tag`, and its digest.
fn layer(layout: &Path, tag: &str, i: usize) -> (PathBuf, String) {
    let (m, _) = manifest(layout, tag);
    let d = m["layers"][i]["digest"].as_str().unwrap().to_string();
    (blob(layout, &d), d)
}

type Corrupt = fn(&Path) -> String;

/// Each case corrupts a copy of the layout (tag v2) and returns what the error must name.
fn cases() -> Vec<(&'static str, Corrupt, &'static str)> {
    vec![
        (
            "digest",
            |l| {
                let (p, d) = layer(l, "v2", 1);
                let mut b = fs::read(&p).unwrap();
                let n = b.len();
                b[n / 2] ^= 0xff;
                fs::write(&p, b).unwrap();
                d
            },
            "digest mismatch",
        ),
        (
            "missing",
            |l| {
                let (p, d) = layer(l, "v2", 1);
                fs::remove_file(p).unwrap();
                d
            },
            "missing",
        ),
        (
            "truncated",
            |l| {
                let (p, d) = layer(l, "v2", 1);
                let b = fs::read(&p).unwrap();
                fs::write(&p, &b[..b.len() / 2]).unwrap();
                d
            },
            "size mismatch",
        ),
        (
            "truncated, with a matching descriptor",
            |l| {
                let (p, _) = layer(l, "v2", 1);
                let b = fs::read(&p).unwrap();
                let (d, size) = put(l, &b[..b.len() / 2]);
                let d2 = d.clone();
                edit_manifest(l, "v2", move |m| {
                    m["layers"][1]["digest"] = d2.into();
                    m["layers"][1]["size"] = size.into();
                });
                d
            },
            "truncated",
        ),
        (
            "diff_id",
            |l| {
                edit_config(l, "v2", |c| {
                    c["rootfs"]["diff_ids"][1] = Digest::of(b"another layer").to_string().into();
                });
                layer(l, "v2", 1).1
            },
            "diff_id mismatch",
        ),
        (
            "media type",
            |l| {
                edit_manifest(l, "v2", |m| {
                    m["layers"][1]["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
                });
                layer(l, "v2", 1).1
            },
            "is not a layer",
        ),
        (
            "config digest",
            |l| {
                let (m, _) = manifest(l, "v2");
                let d = m["config"]["digest"].as_str().unwrap().to_string();
                let p = blob(l, &d);
                let s = fs::read_to_string(&p).unwrap().replace("amd64", "arm64");
                fs::write(&p, s).unwrap();
                d
            },
            "digest mismatch",
        ),
    ]
}

fn copy_dir(from: &Path, to: &Path) {
    image_util::run(std::process::Command::new("cp").arg("-a").arg(from).arg(to));
}

#[test]
fn corrupt_images_are_refused_and_leave_the_store_unchanged() {
    let e = need_root!();
    if !image_util::tools(&["umoci"]) {
        return;
    }
    let u = image_util::two_layer_image(&e.fresh_dir("umoci"));
    for with_base in [false, true] {
        let store = Store::open(&e.fresh_dir("root")).unwrap();
        if with_base {
            image::import(
                &store,
                &format!("{}:v1", u.layout.display()),
                &ImportOptions {
                    name: Some("base:v1".into()),
                },
            )
            .unwrap();
        }
        for (what, corrupt, reason) in cases() {
            let layout = e.fresh_dir("bad").join("layout");
            copy_dir(&u.layout, &layout);
            let digest = corrupt(&layout);
            let before = image_util::listing(store.root());
            let err = image::import(
                &store,
                &format!("{}:v2", layout.display()),
                &ImportOptions::default(),
            )
            .map(|r| r.manifest)
            .expect_err(what)
            .to_string();
            eprintln!("{what} (base in store: {with_base}): {err}");
            assert!(!err.contains('\n'), "{what}: not one line: {err}");
            let hex = digest.trim_start_matches("sha256:");
            assert!(err.contains(hex), "{what}: {err:?} does not name {hex}");
            assert!(
                err.contains(reason),
                "{what}: {err:?} does not say {reason:?}"
            );
            assert_eq!(
                image_util::listing(store.root()),
                before,
                "{what}: the failed import changed the store"
            );
        }
        // The good image still imports into the same store afterwards.
        image::import(
            &store,
            &format!("{}:v2", u.layout.display()),
            &ImportOptions::default(),
        )
        .unwrap();
    }
}

#[test]
fn a_docker_save_layer_that_is_not_its_diff_id_is_refused() {
    let e = need_root!();
    if !image_util::tools(&["umoci"]) {
        return;
    }
    let u = image_util::two_layer_image(&e.fresh_dir("umoci"));
    image::import(
        &e.store,
        &format!("{}:v2", u.layout.display()),
        &ImportOptions::default(),
    )
    .unwrap();
    let img = image::get(&e.store, "layout:v2").unwrap();
    let out = e.dir.path().join("save.tar");
    image::export(&e.store, &img, &out, image::ExportFormat::DockerSave).unwrap();
    // Swap the two layer.tar files' roles: each is a valid tar, neither is its diff_id.
    let mut a = tar::Archive::new(fs::File::open(&out).unwrap());
    let mut b = tar::Builder::new(Vec::new());
    let ids: Vec<String> = img.diff_ids().iter().map(|d| d.hex()).collect();
    for ent in a.entries().unwrap() {
        let mut ent = ent.unwrap();
        let mut path = ent.path().unwrap().display().to_string();
        if path.starts_with(&ids[0]) {
            path = path.replace(&ids[0], &ids[1]);
        } else if path.starts_with(&ids[1]) {
            path = path.replace(&ids[1], &ids[0]);
        }
        let mut h = ent.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut ent, &mut data).unwrap();
        b.append_data(&mut h, &path, &data[..]).unwrap();
    }
    let bad = e.dir.path().join("bad.tar");
    fs::write(&bad, b.into_inner().unwrap()).unwrap();
    let other = Store::open(&e.dir.path().join("other")).unwrap();
    let before = image_util::listing(other.root());
    let err = image::import(&other, bad.to_str().unwrap(), &ImportOptions::default())
        .map(|r| r.manifest)
        .expect_err("swapped layers")
        .to_string();
    assert!(err.contains("diff_id mismatch"), "{err}");
    assert!(err.contains(&format!("{}/layer.tar", ids[0])), "{err}");
    assert_eq!(image_util::listing(other.root()), before);
}

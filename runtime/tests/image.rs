//! Real images: an image built by umoci (two layers: adds, deletions, chmod, chown, links)
//! imports, mounts with every driver, and its merged view equals `umoci unpack` of the same
//! image; the same image through skopeo's docker-archive and through strata's own export;
//! and two images sharing a base store the base once (measured with du).
#![allow(clippy::unwrap_used)]

mod common;
mod image_util;

use std::collections::BTreeSet;
use std::process::Command;

use image_util::{run, tools, two_layer_image};
use strata_runtime::image::{self, ExportFormat, ImportOptions};
use strata_runtime::model::{CompareOptions, MtimeCompare, Tree};
use strata_runtime::scan::scan;
use strata_runtime::store::{Store, StoredLayer};

/// What is compared: everything the model's Tree holds: kind, content, mode, owner, mtime (of
/// directories too), xattrs, link targets and hard-link groups.
fn opts() -> CompareOptions {
    CompareOptions {
        mtime: MtimeCompare::All,
        ..CompareOptions::default()
    }
}

fn assert_same(what: &str, expected: &Tree, actual: &Tree) {
    assert_same_but(what, expected, actual, &BTreeSet::new());
}

/// [`assert_same`], allowing mode, owner and mtime differences at `declared` paths.
fn assert_same_but(what: &str, expected: &Tree, actual: &Tree, declared: &BTreeSet<String>) {
    let (allowed, diffs): (Vec<_>, Vec<_>) = expected
        .compare(actual, &opts())
        .into_iter()
        .partition(|d| declared.contains(&d.path) && matches!(d.field, "mode" | "owner" | "mtime"));
    for d in &allowed {
        eprintln!("{what}: declared divergence (implied directory): {d}");
    }
    assert!(
        diffs.is_empty(),
        "{what}: differs from umoci unpack:\n  {}\nexpected (umoci):\n{}actual:\n{}",
        diffs
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n  "),
        expected.render(),
        actual.render()
    );
}

/// Directories a layer above the first only implies (it has entries under them but no entry
/// for them): a driver that declares `implied_dirs_keep_lower_attrs: false` shows them 0755
/// root there.
fn implied_dirs(layers: &[StoredLayer]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in layers.iter().skip(1) {
        let cs = l.changes().unwrap();
        let own: BTreeSet<&str> = cs.changes.iter().map(|c| c.path()).collect();
        for c in &cs.changes {
            let mut p = c.path();
            while let Some((parent, _)) = p.rsplit_once('/') {
                if !own.contains(parent) {
                    out.insert(parent.to_string());
                }
                p = parent;
            }
        }
    }
    out
}

#[test]
fn an_umoci_image_mounts_like_umoci_unpack_with_every_driver() {
    let e = need_root!();
    if !tools(&["umoci"]) {
        return;
    }
    let u = two_layer_image(&e.fresh_dir("umoci"));
    let spec = format!("{}:v2", u.layout.display());
    let rep = image::import(&e.store, &spec, &ImportOptions::default()).unwrap();
    assert_eq!((rep.name.as_str(), rep.tag.as_str()), ("layout", "v2"));
    assert_eq!(rep.layers.len(), 2);
    assert!(rep.layers.iter().all(|l| l.layer_new && l.blob_new));

    let expected = scan(&u.unpack("v2")).unwrap();
    // The deletions, mode, owner and link changes are really in the reference view.
    assert!(expected.get("etc/shadow").is_none() && expected.get("opt/old").is_none());
    assert_eq!(expected.get("usr/bin/tool").unwrap().meta.mode, 0o700);
    assert_eq!(expected.get("home/user/.profile").unwrap().meta.uid, 2000);
    assert!(expected.get("usr/lib/added").is_some());
    assert!(
        expected
            .hardlink_groups()
            .contains(&vec!["data/a".to_string(), "data/b".to_string()])
    );

    let before = common::mountinfo();
    for driver in common::drivers() {
        let layers = e.store.resolve_stack(&["layout:v2".to_string()]).unwrap();
        assert_eq!(layers.len(), 2);
        let declared = if driver.capabilities().implied_dirs_keep_lower_attrs {
            BTreeSet::new()
        } else {
            implied_dirs(&layers)
        };
        let m = e.mount(driver, &layers);
        assert_same_but(
            driver.name(),
            &expected,
            &scan(m.target()).unwrap(),
            &declared,
        );
        m.unmount().unwrap();
    }
    // The image's digest (manifest) and id (config prefix) name it too.
    for r in [rep.manifest.to_string(), rep.config.hex()[..12].to_string()] {
        assert_eq!(e.store.resolve_stack(&[r]).unwrap().len(), 2);
    }
    assert_eq!(common::mountinfo(), before, "a mount was left behind");
}

#[test]
fn docker_archives_from_skopeo_and_from_export_import_to_the_same_view() {
    let e = need_root!();
    if !tools(&["umoci", "skopeo"]) {
        return;
    }
    let u = two_layer_image(&e.fresh_dir("umoci"));
    let expected = scan(&u.unpack("v2")).unwrap();
    let archive = e.dir.path().join("skopeo.tar");
    run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}", u.image("v2")))
        .arg(format!("docker-archive:{}:team/app:v2", archive.display())));
    let rep = image::import(
        &e.store,
        archive.to_str().unwrap(),
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(
        (rep.name.as_str(), rep.tag.as_str()),
        ("docker.io/team/app", "v2"),
        "RepoTags (as skopeo writes them) name the image"
    );
    // docker-save layers are plain tars: stored as they are, as OCI uncompressed layers.
    assert!(
        rep.layers.iter().all(
            |l| l.media_type == "application/vnd.oci.image.layer.v1.tar" && l.blob == l.diff_id
        )
    );
    let copy = strata_runtime::driver::by_name("copy").unwrap();
    let layers = e
        .store
        .resolve_stack(&["docker.io/team/app:v2".into()])
        .unwrap();
    let m = e.mount(copy, &layers);
    assert_same(
        "docker-archive by skopeo",
        &expected,
        &scan(m.target()).unwrap(),
    );
    drop(m);

    // strata's own export, imported into another store, gives the same layers.
    let img = image::get(&e.store, "docker.io/team/app:v2").unwrap();
    let out = e.dir.path().join("export.tar");
    let ex = image::export(&e.store, &img, &out, ExportFormat::for_path(&out)).unwrap();
    assert_eq!(ex.format, ExportFormat::DockerSave);
    let other = Store::open(&e.dir.path().join("other-root")).unwrap();
    let back = image::import(&other, out.to_str().unwrap(), &ImportOptions::default()).unwrap();
    assert_eq!(
        back.layers.iter().map(|l| l.diff_id).collect::<Vec<_>>(),
        img.diff_ids().to_vec()
    );
    assert_eq!(
        back.config, img.record.config,
        "the config travels byte for byte"
    );
    let layers = other
        .resolve_stack(&["docker.io/team/app:v2".into()])
        .unwrap();
    let target = e.fresh_dir("other");
    let m = strata_runtime::mounts::mount(&other, copy, layers, &target).unwrap();
    assert_same(
        "strata docker-save export",
        &expected,
        &scan(m.target()).unwrap(),
    );
}

#[test]
fn zstd_and_gzip_layouts_from_skopeo_import() {
    let e = need_root!();
    if !tools(&["umoci", "skopeo"]) {
        return;
    }
    let u = two_layer_image(&e.fresh_dir("umoci"));
    let expected = scan(&u.unpack("v2")).unwrap();
    for (fmt, want) in [
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip"),
    ] {
        let dir = e.dir.path().join(format!("layout-{fmt}"));
        run(Command::new("skopeo")
            .args(["copy", "-q", "--dest-compress-format", fmt])
            .arg(format!("oci:{}", u.image("v2")))
            .arg(format!("oci:{}:v2", dir.display())));
        let rep = image::import(
            &e.store,
            &format!("{}:v2", dir.display()),
            &ImportOptions {
                name: Some(format!("c/{fmt}:v2")),
            },
        )
        .unwrap();
        assert!(rep.layers.iter().all(|l| l.media_type == want), "{fmt}");
        let layers = e.store.resolve_stack(&[format!("c/{fmt}:v2")]).unwrap();
        let m = e.mount(strata_runtime::driver::by_name("copy").unwrap(), &layers);
        assert_same(fmt, &expected, &scan(m.target()).unwrap());
    }
}

#[test]
fn two_images_sharing_a_base_store_it_once() {
    let e = need_root!();
    if !tools(&["umoci", "du"]) {
        return;
    }
    let dir = e.fresh_dir("umoci");
    let u = image_util::Umoci::init(&dir.join("layout"), &dir);
    // An 8 MiB base that does not compress, then one small layer per image.
    let mut noise = vec![0u8; 8 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    u.layer("empty", "base", |r| {
        std::fs::create_dir_all(r.join("usr/share")).unwrap();
        std::fs::write(r.join("usr/share/blob"), &noise).unwrap();
    });
    u.layer("base", "a", |r| {
        image_util::write(&r.join("app/a"), "a\n", 0o644)
    });
    u.layer("base", "b", |r| {
        image_util::write(&r.join("app/b"), "b\n", 0o644)
    });

    let root = e.store.root().to_path_buf();
    let empty = image_util::du(&root);
    let a = image::import(
        &e.store,
        &format!("{}:a", u.layout.display()),
        &ImportOptions::default(),
    )
    .unwrap();
    let after_a = image_util::du(&root);
    let b = image::import(
        &e.store,
        &format!("{}:b", u.layout.display()),
        &ImportOptions::default(),
    )
    .unwrap();
    let after_b = image_util::du(&root);
    let base_blob = a.layers[0].size;
    eprintln!(
        "du of the store: empty {empty}, after a {after_a} (+{}), after b {after_b} (+{}); \
         base blob {base_blob} B; b reports {} B of blobs and {} B of layers shared",
        after_a - empty,
        after_b - after_a,
        b.blob_bytes_shared,
        b.layer_bytes_shared
    );
    assert_eq!(
        a.layers[0].blob, b.layers[0].blob,
        "the images share the base"
    );
    assert!(!b.layers[0].blob_new && !b.layers[0].layer_new);
    assert!(b.layers[1].layer_new);
    assert!(b.blob_bytes_shared >= base_blob);
    assert!(b.layer_bytes_shared >= 8 << 20);
    // Image a stored the base twice over (blob + extracted layer); b adds only its own layer.
    assert!(
        after_a - empty >= 2 * (8 << 20),
        "a stored {}",
        after_a - empty
    );
    assert!(
        after_b - after_a < 1 << 20,
        "b added {} bytes: the base was stored again",
        after_b - after_a
    );
    let layer_dirs = std::fs::read_dir(root.join("layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(layer_dirs, 3, "base, a's layer, b's layer");

    // rm: a's own layer and blobs go, the base stays while b uses it; then everything goes.
    let removed = image::remove(&e.store, "layout:a").unwrap();
    assert_eq!(removed.released.layers_removed, vec![a.layers[1].diff_id]);
    assert!(removed.released.layers_kept.contains(&a.layers[0].diff_id));
    assert!(e.store.get(&a.layers[0].diff_id).is_ok());
    image::remove(&e.store, "layout:b").unwrap();
    assert!(e.store.layers().unwrap().is_empty());
    assert!(
        image::blobs::Blobs::of(&e.store)
            .unwrap()
            .list()
            .unwrap()
            .is_empty()
    );
}

/// Issue 13: the overlay chain directories of an image are made once on its first mount,
/// shared by the next, kept by `image rm` while a mount uses them, and removed by
/// `image prune` once nothing does.
#[test]
fn overlay_chains_are_shared_and_removed_with_their_last_user() {
    let e = need_root!();
    if !tools(&["umoci"]) {
        return;
    }
    let overlay = strata_runtime::driver::by_name("overlay").unwrap();
    let u = two_layer_image(&e.fresh_dir("umoci"));
    image::import(
        &e.store,
        &format!("{}:v2", u.layout.display()),
        &ImportOptions::default(),
    )
    .unwrap();
    let layers = e.store.resolve_stack(&["layout:v2".to_string()]).unwrap();
    let chains = e.store.root().join("overlay/chains");
    let top = strata_runtime::driver::btrfs::chain_ids(&layers)[1].hex();
    let first = e.mount(overlay, &layers);
    assert!(chains.join(&top).join("fs").is_dir(), "no chain dir {top}");
    let built = std::fs::metadata(chains.join(&top))
        .unwrap()
        .modified()
        .unwrap();
    let second = e.mount(overlay, &layers);
    second.unmount().unwrap();
    assert_eq!(
        std::fs::metadata(chains.join(&top))
            .unwrap()
            .modified()
            .unwrap(),
        built,
        "the second mount rebuilt the chain"
    );
    // A live mount keeps its chain through `image rm`.
    let removed = image::remove(&e.store, "layout:v2").unwrap();
    assert!(removed.released.chains_removed.is_empty());
    assert!(chains.join(&top).is_dir());
    first.unmount().unwrap();
    let pruned = image::prune(&e.store).unwrap();
    assert_eq!(pruned.chains_removed, vec![top.clone()]);
    assert!(!chains.join(&top).exists());
}

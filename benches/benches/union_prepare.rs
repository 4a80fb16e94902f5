//! union_prepare: prepare + teardown of a union view, swept over layers, files and bytes.
//! Series: overlay (the chain layout, its chain directories made before timing, as at pull)
//! through mount(2) (while its options fit one page) and through fsconfig `lowerdir+`;
//! `overlay_first_mount`, the same with every chain directory removed before each sample, so
//! it includes making them; overlay2 (Docker's per-layer layout); copy-merge (plain, and with reflink on a loop-mounted xfs), btrfs (a writable
//! snapshot of the stack's subvolume, on a loop-mounted btrfs; the subvolumes are made once,
//! before timing, as a snapshotter would at pull), fuse-overlayfs; the floor in the same
//! group, the raw overlay mount syscalls (+ umount) without any strata bookkeeping; and the
//! peer `cp_a`, `cp -a` (+ `rm -rf`) of the same merged tree on the same tmpfs (two
//! processes: compared with whole processes, never with a library call).
//! The sweep's layers name their parent directories (as Docker's builder writes them), so
//! overlay's chains stack the layers' own directories; `implied_layers=10` is 10 layers that
//! only imply them (as umoci writes them), where the chains are copies: overlay's first mount,
//! a mount sharing the chains, and overlay2.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{
    BenchmarkGroup, BenchmarkId, criterion_group, criterion_main, measurement::WallTime,
};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
use strata_benches::env::BenchEnv;
use strata_benches::fixtures::{self, Fixture};
use strata_benches::loopfs::{self, LoopFs};
use strata_benches::profile::Profile;
use strata_benches::skip;
use strata_runtime::driver::{Btrfs, Copy, Driver, FuseOverlay, Overlay, Overlay2, OverlayApi};
use strata_runtime::fixture::Layer;
use strata_runtime::model::ChangeSet;
use strata_runtime::mounts;

static OVERLAY_MOUNT2: Overlay = Overlay {
    api: OverlayApi::Legacy,
};
static OVERLAY_LOWERDIR_PLUS: Overlay = Overlay {
    api: OverlayApi::NewApi,
};
static OVERLAY2: Overlay2 = Overlay2 {
    api: OverlayApi::Auto,
};
static OVERLAY_AUTO: Overlay = Overlay {
    api: OverlayApi::Auto,
};
static COPY: Copy = Copy { reflink: false };
static COPY_REFLINK: Copy = Copy { reflink: true };
static BTRFS: Btrfs = Btrfs;
static FUSE_OVERLAY: FuseOverlay = FuseOverlay;

/// The raw overlay mount: fsopen, one `lowerdir+` per layer, fsmount, move_mount, umount.
fn raw_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .unwrap_or_else(|e| panic!("fsopen: {e}"));
    for l in lowers.iter().rev() {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", l.as_path())
            .unwrap_or_else(|e| panic!("lowerdir+: {e}"));
    }
    for (k, v) in [("upperdir", upper), ("workdir", work)] {
        rustix::mount::fsconfig_set_string(&fs, k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    rustix::mount::fsconfig_create(&fs).unwrap_or_else(|e| panic!("create: {e}"));
    let m = rustix::mount::fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )
    .unwrap_or_else(|e| panic!("fsmount: {e}"));
    rustix::mount::move_mount(
        m.as_fd(),
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .unwrap_or_else(|e| panic!("move_mount: {e}"));
    // The mount's fd keeps it busy until closed.
    drop(m);
    drop(fs);
    nix::mount::umount2(target, nix::mount::MntFlags::empty())
        .unwrap_or_else(|e| panic!("umount: {e}"));
}

fn sh(cmd: &mut Command) {
    let st = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(st.success(), "{cmd:?} failed");
}

/// One fixture's series, under parameter `param` (`layers=16`, `files=1000`, ...).
fn series(
    g: &mut BenchmarkGroup<WallTime>,
    env: &BenchEnv,
    xfs: Option<(&LoopFs, &Fixture)>,
    drivers: &[(&str, &'static dyn Driver)],
    fx: &Fixture,
    sets: &[ChangeSet],
    param: &str,
) {
    for &(name, d) in drivers {
        let target = env.fresh_dir("target");
        if let Err(e) =
            mounts::mount(&env.store, d, fx.layers.clone(), &target).and_then(|m| m.unmount())
        {
            skip(&format!("union_prepare/{name}/{param}"), &e.to_string());
            continue;
        }
        if name != "overlay_mount2" {
            fixtures::check_view(env, fx, d, sets);
        }
        g.bench_function(BenchmarkId::new(name, param), |b| {
            b.iter(|| {
                let m = mounts::mount(&env.store, d, fx.layers.clone(), &target)
                    .unwrap_or_else(|e| panic!("{e}"));
                m.unmount().unwrap_or_else(|e| panic!("{e}"));
            })
        });
    }
    first_mount(g, env, fx, param);
    match xfs {
        Some((lfs, xfx)) => {
            let target = lfs.dir.join(format!("t-{param}"));
            let _ = std::fs::create_dir(&target);
            g.bench_function(BenchmarkId::new("copy_reflink", param), |b| {
                b.iter(|| {
                    let m = mounts::mount(&lfs.store, &COPY_REFLINK, xfx.layers.clone(), &target)
                        .unwrap_or_else(|e| panic!("{e}"));
                    m.unmount().unwrap_or_else(|e| panic!("{e}"));
                })
            });
        }
        None => skip(
            &format!("union_prepare/copy_reflink/{param}"),
            "no reflink-capable filesystem (see above)",
        ),
    }
    // Peer (two processes, so no floor): cp -a of the same merged tree (materialized once) on
    // the same tmpfs, and rm -rf.
    let src = env.fresh_dir("cp-src");
    std::fs::remove_dir(&src).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(&src).unwrap_or_else(|e| panic!("{e}"));
    COPY.materialize(&fx.layers, &src)
        .unwrap_or_else(|e| panic!("{e}"));
    let dst = env.path(&format!("cp-dst-{param}"));
    g.bench_function(BenchmarkId::new("cp_a", param), |b| {
        b.iter(|| {
            sh(Command::new("cp").arg("-a").arg(&src).arg(&dst));
            sh(Command::new("rm").arg("-rf").arg(&dst));
        })
    });
    // Floor: the overlay mount syscalls alone.
    // The same lower directories the overlay driver stacks (its chain layout, made above).
    let lowers: Vec<PathBuf> =
        strata_runtime::driver::chain::chain_layers(env.store.root(), &fx.layers)
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|l| l.fs())
            .collect();
    let (upper, work, target) = (
        env.fresh_dir("raw-upper"),
        env.fresh_dir("raw-work"),
        env.fresh_dir("raw-target"),
    );
    g.bench_function(BenchmarkId::new("floor_raw_overlay_mount", param), |b| {
        b.iter(|| raw_overlay(&lowers, &upper, &work, &target))
    });
}

/// overlay's first mount of a stack: its chain directories made, then the mount.
fn first_mount(g: &mut BenchmarkGroup<WallTime>, env: &BenchEnv, fx: &Fixture, param: &str) {
    let chains = env.store.root().join("overlay/chains");
    let target = env.fresh_dir("target-first");
    g.bench_function(BenchmarkId::new("overlay_first_mount", param), |b| {
        b.iter_batched(
            || {
                if chains.exists() {
                    std::fs::remove_dir_all(&chains).unwrap_or_else(|e| panic!("{e}"));
                }
            },
            |()| {
                let m = mounts::mount(&env.store, &OVERLAY_AUTO, fx.layers.clone(), &target)
                    .unwrap_or_else(|e| panic!("{e}"));
                m.unmount().unwrap_or_else(|e| panic!("{e}"));
            },
            criterion::BatchSize::PerIteration,
        )
    });
}

/// What the chain layout costs where it must copy: 10 layers that only imply their parent
/// directory (as umoci writes them; the sweep's layers name theirs, as Docker's builder does,
/// and their chains stack the layers' own directories). overlay's first mount (chains made),
/// a mount sharing the chains, and overlay2 over the per-layer directories.
fn implied_parents(g: &mut BenchmarkGroup<WallTime>, env: &BenchEnv) {
    let param = "implied_layers=10";
    let layers = fixtures::stack_implied(3000, 10, 1000, 4096);
    let sets: Vec<ChangeSet> = layers.iter().map(|l| l.changeset()).collect();
    let fx = fixtures::import(env, &layers);
    for (name, d) in [
        ("overlay", &OVERLAY_AUTO as &'static dyn Driver),
        ("overlay2", &OVERLAY2),
    ] {
        let target = env.fresh_dir("target-implied");
        if let Err(e) =
            mounts::mount(&env.store, d, fx.layers.clone(), &target).and_then(|m| m.unmount())
        {
            skip(&format!("union_prepare/{name}/{param}"), &e.to_string());
            return;
        }
        if name == "overlay" {
            fixtures::check_view(env, &fx, d, &sets);
        }
        g.bench_function(BenchmarkId::new(name, param), |b| {
            b.iter(|| {
                let m = mounts::mount(&env.store, d, fx.layers.clone(), &target)
                    .unwrap_or_else(|e| panic!("{e}"));
                m.unmount().unwrap_or_else(|e| panic!("{e}"));
            })
        });
    }
    first_mount(g, env, &fx, param);
}

fn prepare(
    env: &BenchEnv,
    xfs: &Option<LoopFs>,
    layers: Vec<Layer>,
) -> (Fixture, Option<Fixture>, Vec<ChangeSet>) {
    let sets: Vec<ChangeSet> = layers.iter().map(|l| l.changeset()).collect();
    let fx = fixtures::import(env, &layers);
    let xfx = xfs.as_ref().map(|lfs| {
        let tars: Vec<Vec<u8>> = layers
            .iter()
            .map(|l| l.to_tar().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let stored = tars
            .iter()
            .map(|t| {
                lfs.store
                    .import_reader(&t[..], Path::new("fixture.tar"))
                    .unwrap_or_else(|e| panic!("{e}"))
                    .layer
            })
            .collect();
        Fixture {
            layers: stored,
            model: fx.model.clone(),
            files: fx.files,
            bytes: fx.bytes,
        }
    });
    (fx, xfx, sets)
}

fn bench(c: &mut criterion::Criterion) {
    let profile = Profile::from_env();
    let Some(env) = BenchEnv::new("union_prepare") else {
        return;
    };
    let xfs = match LoopFs::xfs(&env, 8 << 30) {
        Ok(l) => Some(l),
        Err(why) => {
            skip("union_prepare/copy_reflink", &why);
            None
        }
    };
    let mut drivers: Vec<(&str, &'static dyn Driver)> = vec![
        ("overlay_mount2", &OVERLAY_MOUNT2),
        ("overlay_lowerdir_plus", &OVERLAY_LOWERDIR_PLUS),
        ("overlay2", &OVERLAY2),
        ("copy", &COPY),
    ];
    // Kept until the end: the btrfs driver's subvolumes live on it.
    let btrfs = loopfs::btrfs_state(&env, 16 << 30)
        .map_err(|why| skip("union_prepare/btrfs", &why))
        .ok();
    if btrfs.is_some() {
        drivers.push(("btrfs", &BTRFS));
    }
    match FUSE_OVERLAY.availability() {
        Ok(()) => drivers.push(("fuse-overlayfs", &FUSE_OVERLAY)),
        Err(why) => skip("union_prepare/fuse-overlayfs", &why),
    }
    let mut g = c.benchmark_group("union_prepare");
    let mut sweep = |param: String, layers: Vec<Layer>| {
        let (fx, xfx, sets) = prepare(&env, &xfs, layers);
        series(
            &mut g,
            &env,
            xfs.as_ref().zip(xfx.as_ref()),
            &drivers,
            &fx,
            &sets,
            &param,
        );
    };
    // Layers: 1000 files of 4 KiB spread over n layers, so the layer count alone varies.
    for &n in profile.layer_counts() {
        sweep(
            format!("layers={n}"),
            fixtures::stack(n as u64, n, 1000, 4096),
        );
    }
    // Files: one layer of n files of 1 KiB.
    for &n in profile.file_counts() {
        sweep(
            format!("files={n}"),
            fixtures::one_layer(1000 + n as u64, n, n as u64 * 1024),
        );
    }
    // Bytes: one layer of 16 files holding n bytes.
    for &n in profile.byte_counts() {
        sweep(format!("bytes={n}"), fixtures::one_layer(2000 + n, 16, n));
    }
    implied_parents(&mut g, &env);
    g.finish();
}

fn config() -> criterion::Criterion {
    Profile::from_env().criterion()
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);

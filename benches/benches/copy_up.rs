//! copy_up: the first one-byte write into a lower file, by file size, per driver: overlayfs
//! copies the whole file up first (upper on tmpfs, and upper on a loop-mounted xfs where the
//! kernel clones instead of copying), fuse-overlayfs copies it in userspace, btrfs writes one
//! block of a snapshot (copy-on-write by extent), and copy writes in place (it paid for the
//! copy at mount). The floor in the group: copy_file_range of the same bytes between two
//! files on the same tmpfs. Mounting is not timed.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use criterion::{BatchSize, BenchmarkId, criterion_group, criterion_main};
use strata_benches::env::BenchEnv;
use strata_benches::fixtures;
use strata_benches::loopfs::{self, LoopFs};
use strata_benches::profile::Profile;
use strata_benches::seed::Seed;
use strata_benches::skip;
use strata_runtime::driver::by_name;
use strata_runtime::fixture::Layer;
use strata_runtime::mounts::{self, Mount};
use strata_runtime::store::{Store, StoredLayer};

fn first_write(m: Mount) -> Mount {
    let f = OpenOptions::new()
        .write(true)
        .open(m.target().join("data"))
        .unwrap_or_else(|e| panic!("{e}"));
    f.write_all_at(b"!", 0).unwrap_or_else(|e| panic!("{e}"));
    m
}

fn bench(c: &mut criterion::Criterion) {
    let profile = Profile::from_env();
    let Some(env) = BenchEnv::new("copy_up") else {
        return;
    };
    let overlay = by_name("overlay").unwrap_or_else(|e| panic!("{e}"));
    // Kept until the end: the btrfs driver's subvolumes live on it.
    let _btrfs = loopfs::btrfs_state(&env, 4 << 30).map_err(|why| skip("copy_up/btrfs", &why));
    let mut drivers = Vec::new();
    for name in ["overlay", "overlay2", "copy", "btrfs", "fuse-overlayfs"] {
        let d = by_name(name).unwrap_or_else(|e| panic!("{e}"));
        match d.availability_in(env.store.root()) {
            Ok(()) => drivers.push((name, d)),
            Err(why) => skip(&format!("copy_up/{name}"), &why),
        }
    }
    let xfs = LoopFs::xfs(&env, 4 << 30)
        .map_err(|why| skip("copy_up/overlay_reflink_upper", &why))
        .ok();
    let mut g = c.benchmark_group("copy_up");
    for &size in profile.copy_up_sizes() {
        let layer = Layer::new().file("data", Seed::new(size).bytes(size as usize));
        let fx = fixtures::import(&env, std::slice::from_ref(&layer));
        let tar = layer.to_tar().unwrap_or_else(|e| panic!("{e}"));
        let on_xfs: Option<(&Store, StoredLayer, &Path)> = xfs.as_ref().map(|l| {
            let s = l
                .store
                .import_reader(&tar[..], Path::new("fixture.tar"))
                .unwrap_or_else(|e| panic!("{e}"))
                .layer;
            (&l.store, s, l.dir.as_path())
        });
        let param = format!("bytes={size}");
        for &(name, d) in &drivers {
            let target = env.fresh_dir("target");
            g.bench_function(BenchmarkId::new(name, &param), |b| {
                b.iter_batched(
                    || {
                        mounts::mount(&env.store, d, fx.layers.clone(), &target)
                            .unwrap_or_else(|e| panic!("{e}"))
                    },
                    first_write,
                    BatchSize::PerIteration,
                )
            });
        }
        if let Some((store, layer, dir)) = &on_xfs {
            let target = dir.join(format!("t-{size}"));
            let _ = std::fs::create_dir(&target);
            g.bench_function(BenchmarkId::new("overlay_reflink_upper", &param), |b| {
                b.iter_batched(
                    || {
                        mounts::mount(store, overlay, vec![layer.clone()], &target)
                            .unwrap_or_else(|e| panic!("{e}"))
                    },
                    first_write,
                    BatchSize::PerIteration,
                )
            });
        }
        let src = fx.layers[0].fs().join("data");
        let dst = env.path(&format!("floor-{size}"));
        g.bench_function(BenchmarkId::new("floor_copy_file_range", &param), |b| {
            b.iter_batched(
                || {
                    let _ = std::fs::remove_file(&dst);
                    (
                        std::fs::File::open(&src).unwrap_or_else(|e| panic!("{e}")),
                        std::fs::File::create(&dst).unwrap_or_else(|e| panic!("{e}")),
                    )
                },
                |(s, d)| {
                    // The bare syscall, in one loop: what the kernel's own copy-up does at
                    // best (strata's copy_data also looks for holes, so it is no floor).
                    let mut left = size;
                    while left > 0 {
                        let n = rustix::fs::copy_file_range(&s, None, &d, None, left as usize)
                            .unwrap_or_else(|e| panic!("copy_file_range: {e}"));
                        if n == 0 {
                            break;
                        }
                        left -= n as u64;
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn config() -> criterion::Criterion {
    Profile::from_env().criterion()
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);

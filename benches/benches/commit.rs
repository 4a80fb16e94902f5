//! commit: writing the writable layer as an OCI layer tar, by the number of changed files
//! and by changed bytes: overlay and fuse-overlayfs (a walk of the upper directory) against
//! copy and btrfs (a compare of the whole tree with the stack, by content). The lower stack
//! holds 1000 files of 4 KiB so the tree diff has a tree to walk. Mounting and making the
//! changes are not timed.

use criterion::{BatchSize, BenchmarkId, criterion_group, criterion_main};
use strata_benches::env::BenchEnv;
use strata_benches::fixtures;
use strata_benches::loopfs;
use strata_benches::profile::Profile;
use strata_benches::seed::Seed;
use strata_benches::skip;
use strata_runtime::driver::by_name;
use strata_runtime::mounts::{self, Mount};

fn bench(c: &mut criterion::Criterion) {
    let profile = Profile::from_env();
    let Some(env) = BenchEnv::new("commit") else {
        return;
    };
    let fx = fixtures::import(&env, &fixtures::one_layer(7, 1000, 1000 * 4096));
    // Kept until the end: the btrfs driver's subvolumes live on it.
    let _btrfs = loopfs::btrfs_state(&env, 4 << 30).map_err(|why| skip("commit/btrfs", &why));
    let mut g = c.benchmark_group("commit");
    let commit = |m: Mount| {
        m.commit_to(&mut std::io::sink())
            .unwrap_or_else(|e| panic!("{e}"));
        m
    };
    for driver in ["overlay", "overlay2", "copy", "btrfs", "fuse-overlayfs"] {
        let d = by_name(driver).unwrap_or_else(|e| panic!("{e}"));
        if let Err(why) = d.availability_in(env.store.root()) {
            skip(&format!("commit/{driver}"), &why);
            continue;
        }
        let target = env.fresh_dir("target");
        let mount = || {
            mounts::mount(&env.store, d, fx.layers.clone(), &target)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        for &n in profile.commit_files() {
            let mut rng = Seed::new(n as u64);
            let files: Vec<Vec<u8>> = (0..n).map(|_| rng.bytes(4096)).collect();
            g.bench_function(BenchmarkId::new(driver, format!("files={n}")), |b| {
                b.iter_batched(
                    || {
                        let m = mount();
                        let dir = m.target().join("changes");
                        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
                        for (i, data) in files.iter().enumerate() {
                            std::fs::write(dir.join(format!("f{i}")), data)
                                .unwrap_or_else(|e| panic!("{e}"));
                        }
                        m
                    },
                    commit,
                    BatchSize::PerIteration,
                )
            });
        }
        for &size in profile.commit_bytes() {
            let data = Seed::new(size).bytes(size as usize);
            g.bench_function(BenchmarkId::new(driver, format!("bytes={size}")), |b| {
                b.iter_batched(
                    || {
                        let m = mount();
                        std::fs::write(m.target().join("big"), &data)
                            .unwrap_or_else(|e| panic!("{e}"));
                        m
                    },
                    commit,
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

fn config() -> criterion::Criterion {
    Profile::from_env().criterion()
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);

//! container_start: a whole strata start of /bin/true through the library (union mount, init
//! layer, clone into the namespaces, /proc /dev /sys, pivot_root, exec, wait, teardown) on
//! the from-host rootfs, per driver (btrfs on a loop-mounted btrfs) and namespace set
//! (`strata_<driver>`); the same as a whole `strata run` process (`strata-cli/<driver>`, the
//! series the peers are compared with: a process against a process); in the same group the
//! floor (fork + exec + wait of /bin/true), a `strata --version` process (`strata_process`:
//! what every strata command pays before its work) and the peers `crun run` and `runc run` on an OCI
//! bundle with the same rootfs, when installed. Then `strata-cli/<driver>` again on real
//! images (param `image=busybox`, `image=debian`: see `strata_benches::images`), the Debian
//! one without the copy driver (each of its starts would copy the whole Debian tree).

use std::process::{Command, Stdio};

use criterion::{BenchmarkId, criterion_group, criterion_main};
use strata_benches::env::BenchEnv;
use strata_benches::images;
use strata_benches::loopfs;
use strata_benches::peers;
use strata_benches::profile::Profile;
use strata_benches::skip;
use strata_runtime::container::{self, ContainerSpec, Namespace, Namespaces};
use strata_runtime::driver::by_name;

const SETS: [(&str, &[Namespace]); 3] = [
    ("mount", &[Namespace::Mount]),
    (
        "mount+uts+ipc+pid",
        &[
            Namespace::Mount,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::Pid,
        ],
    ),
    (
        "mount+uts+ipc+pid+net",
        &[
            Namespace::Mount,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::Pid,
            Namespace::Net,
        ],
    ),
];

fn spec(layer: &str, driver: &str, set: &[Namespace]) -> ContainerSpec {
    let mut s = ContainerSpec::new(vec![layer.to_string()], vec!["/bin/true".into()]);
    s.driver = driver.into();
    s.namespaces = Namespaces::of(set);
    s
}

fn bench(c: &mut criterion::Criterion) {
    let Some(env) = BenchEnv::new("container_start") else {
        return;
    };
    let (rootfs, layer) = env.rootfs(&["/bin/true"]);
    let digest = layer.info.diff_id.to_string();
    let mut g = c.benchmark_group("container_start");
    g.bench_function(BenchmarkId::new("floor_fork_exec", "true"), |b| {
        b.iter(|| {
            let st = Command::new("/bin/true").stdin(Stdio::null()).status();
            assert!(st.is_ok_and(|s| s.success()));
        })
    });
    // Kept until the end: the btrfs driver's subvolumes live on it.
    let _btrfs = loopfs::btrfs_state(&env, 2 << 30)
        .map_err(|why| skip("container_start/strata_btrfs", &why));
    for driver in ["overlay", "copy", "btrfs", "fuse-overlayfs"] {
        let d = by_name(driver).unwrap_or_else(|e| panic!("{e}"));
        if let Err(why) = d.availability_in(env.store.root()) {
            skip(&format!("container_start/strata_{driver}"), &why);
            continue;
        }
        for (name, set) in SETS {
            let check = container::run(&env.store, spec(&digest, driver, set));
            match check {
                Ok(o) if o.code == 0 => {}
                Ok(o) => panic!("strata {driver} {name}: /bin/true exited {}", o.code),
                Err(e) => panic!("strata {driver} {name}: {e}"),
            }
            g.bench_function(BenchmarkId::new(format!("strata_{driver}"), name), |b| {
                b.iter(|| {
                    let o = container::run(&env.store, spec(&digest, driver, set))
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(o.code, 0);
                })
            });
        }
    }
    // The whole `strata run` process, with the peers' namespaces.
    match strata_benches::cli::strata_bin() {
        Ok(bin) => {
            // What any strata command pays before its work (load, start, parse), against
            // the floor above: `strata --version`.
            g.bench_function(BenchmarkId::new("strata_process", "--version"), |b| {
                b.iter(|| {
                    let st = Command::new(&bin)
                        .arg("--version")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .status();
                    assert!(st.is_ok_and(|s| s.success()));
                })
            });
            let (ns_name, _) = SETS[2];
            let ns = "mount,uts,ipc,pid,net";
            for driver in ["overlay", "copy", "btrfs", "fuse-overlayfs"] {
                let d = by_name(driver).unwrap_or_else(|e| panic!("{e}"));
                if d.availability_in(env.store.root()).is_err() {
                    continue; // said above
                }
                let run =
                    || strata_benches::cli::run_true(&bin, env.store.root(), driver, ns, &digest);
                if let Err(why) = run() {
                    panic!("strata-cli {driver}: {why}");
                }
                g.bench_function(
                    BenchmarkId::new(format!("strata-cli/{driver}"), ns_name),
                    |b| b.iter(|| run().unwrap_or_else(|e| panic!("{e}"))),
                );
            }
            for (image, make) in images::ALL {
                let layer = match make(&env) {
                    Ok(l) => l.info.diff_id.to_string(),
                    Err(why) => {
                        skip(&format!("container_start/strata-cli image={image}"), &why);
                        continue;
                    }
                };
                for driver in ["overlay", "copy", "btrfs", "fuse-overlayfs"] {
                    if image == "debian" && driver == "copy" {
                        continue;
                    }
                    let d = by_name(driver).unwrap_or_else(|e| panic!("{e}"));
                    if d.availability_in(env.store.root()).is_err() {
                        continue; // said above
                    }
                    let run = || {
                        strata_benches::cli::run_true(&bin, env.store.root(), driver, ns, &layer)
                    };
                    if let Err(why) = run() {
                        panic!("strata-cli {driver} image={image}: {why}");
                    }
                    g.bench_function(
                        BenchmarkId::new(format!("strata-cli/{driver}"), format!("image={image}")),
                        |b| b.iter(|| run().unwrap_or_else(|e| panic!("{e}"))),
                    );
                }
            }
        }
        Err(why) => skip("container_start/strata-cli", &why),
    }
    // The peers come last: crun needs the hybrid host's unified cgroup mount hidden, which
    // is done in this benchmark's own mount namespace.
    peers::hide_unified_cgroup();
    let mut n = 0u64;
    for runtime in ["crun", "runc"] {
        let bundle = match peers::bundle(
            runtime,
            &rootfs,
            &env.fresh_dir(&format!("bundle-{runtime}")),
        ) {
            Ok(b) => b,
            Err(why) => {
                skip(&format!("container_start/{runtime}"), &why);
                continue;
            }
        };
        if let Err(why) = bundle.run(&format!("strata-bench-check-{runtime}")) {
            skip(&format!("container_start/{runtime}"), &why);
            continue;
        }
        g.bench_function(BenchmarkId::new(runtime, "mount+uts+ipc+pid+net"), |b| {
            b.iter(|| {
                n += 1;
                bundle
                    .run(&format!("strata-bench-{}-{n}", std::process::id()))
                    .unwrap_or_else(|e| panic!("{e}"));
            })
        });
    }
    g.finish();
}

fn config() -> criterion::Criterion {
    Profile::from_env().criterion()
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);

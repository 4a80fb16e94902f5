//! rootfs_switch: the cost of a root switch in a child, swept over the size of the mount
//! table it must copy. Each sample: fork; in the child unshare(CLONE_NEWNS), make /
//! rprivate, (bind the rootfs on itself,) switch with chroot / pivot_root / move+chroot
//! (strata's own switch code), exec /bin/true; the parent waits. The floor in the same
//! group is fork + exec + wait of /bin/true.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use criterion::{BenchmarkId, criterion_group, criterion_main};
use strata_benches::env::BenchEnv;
use strata_benches::host_mounts;
use strata_benches::profile::Profile;
use strata_runtime::container::switch::{Switch, switch_root};

#[derive(Clone, Copy)]
enum Variant {
    Floor,
    Chroot,
    PivotRoot,
    MoveChroot,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Floor => "floor_fork_exec",
            Variant::Chroot => "chroot",
            Variant::PivotRoot => "pivot_root",
            Variant::MoveChroot => "move_chroot",
        }
    }
}

/// Everything the child needs, made before fork (the child only makes syscalls).
struct Prepared {
    rootfs: CString,
    prog: CString,
    argv: [*const libc::c_char; 2],
    envp: [*const libc::c_char; 1],
}

/// One sample: returns the child's exit status.
fn run(v: Variant, p: &Prepared) -> i32 {
    // SAFETY: fork in a single-threaded benchmark; the child calls only async-signal-safe
    // functions (raw syscalls, strata's switch_root which makes raw syscalls) and exits.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            let code = child(v, p);
            libc::_exit(code);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        status
    }
}

/// The child: never returns when exec works.
unsafe fn child(v: Variant, p: &Prepared) -> i32 {
    // SAFETY: raw syscalls on pointers owned by `p`, which outlives the call.
    unsafe {
        if !matches!(v, Variant::Floor) {
            // A new mount namespace: the copy of the mount table is what the sweep measures.
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return 100;
            }
            // Nothing the switch does may reach the parent's namespace.
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return 101;
            }
            if !matches!(v, Variant::Chroot) {
                // pivot_root and MS_MOVE need the new root to be a mount point.
                if libc::mount(
                    p.rootfs.as_ptr(),
                    p.rootfs.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ) != 0
                {
                    return 102;
                }
            }
            let fd = libc::open(
                p.rootfs.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return 103;
            }
            let root = OwnedFd::from_raw_fd(fd);
            let how = match v {
                Variant::Chroot => Switch::Chroot,
                Variant::PivotRoot => Switch::PivotRoot,
                _ => Switch::Move,
            };
            if switch_root(how, &root).is_err() {
                return 104;
            }
            std::mem::forget(root);
        }
        libc::execve(p.prog.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
        127
    }
}

fn bench(c: &mut criterion::Criterion) {
    let profile = Profile::from_env();
    let Some(env) = BenchEnv::new("rootfs_switch") else {
        return;
    };
    let (rootfs, _) = env.rootfs(&["/bin/true"]);
    let prog = c"/bin/true".to_owned();
    let mut p = Prepared {
        rootfs: CString::new(rootfs.as_os_str().as_bytes())
            .unwrap_or_else(|_| panic!("rootfs path has a NUL")),
        prog,
        argv: [std::ptr::null(); 2],
        envp: [std::ptr::null()],
    };
    p.argv[0] = p.prog.as_ptr();
    for v in [
        Variant::Floor,
        Variant::Chroot,
        Variant::PivotRoot,
        Variant::MoveChroot,
    ] {
        let status = run(v, &p);
        if status != 0 {
            panic!(
                "rootfs_switch: {} fails here (wait status {status:#x}) before timing",
                v.name()
            );
        }
    }
    let mut g = c.benchmark_group("rootfs_switch");
    for &n in profile.mount_counts() {
        // The point is labelled with the mounts really in the namespace, not the ones asked.
        let have = host_mounts::top_up(&env, n);
        eprintln!("rootfs_switch: {have} mounts in the namespace (asked {n})");
        for v in [
            Variant::Floor,
            Variant::Chroot,
            Variant::PivotRoot,
            Variant::MoveChroot,
        ] {
            g.bench_with_input(
                BenchmarkId::new(v.name(), format!("mounts={have}")),
                &have,
                |b, _| {
                    b.iter(|| {
                        let s = run(v, &p);
                        assert_eq!(s, 0, "{} failed", v.name());
                    })
                },
            );
        }
    }
    g.finish();
}

fn config() -> criterion::Criterion {
    Profile::from_env().criterion()
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);

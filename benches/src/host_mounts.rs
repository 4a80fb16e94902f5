//! The mount table size `unshare(CLONE_NEWNS)` has to copy: grown inside the benchmark's own
//! namespace with bind mounts, never on the host.

use std::path::Path;

use nix::mount::{MsFlags, mount};

use crate::env::BenchEnv;

/// Mounts in this thread's namespace.
pub fn count() -> usize {
    strata_runtime::sandbox::mountinfo()
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Adds bind mounts under the env's tmpfs until the namespace holds at least `n` mounts;
/// returns how many it holds.
pub fn top_up(env: &BenchEnv, n: usize) -> usize {
    let base = env.path("host-mounts");
    let src = base.join("src");
    if let Err(e) = std::fs::create_dir_all(&src) {
        panic!("create {}: {e}", src.display());
    }
    let mut have = count();
    let mut i = have;
    while have < n {
        let t = base.join(format!("m{i}"));
        i += 1;
        if std::fs::create_dir(&t).is_err() {
            continue;
        }
        if let Err(e) = mount(
            Some(Path::new(&src)),
            &t,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            panic!("bind mount {}: {e}", t.display());
        }
        have += 1;
    }
    count()
}

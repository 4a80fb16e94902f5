//! Keeping tests, benches and runs off the host: a private mount namespace for the calling
//! thread, and the mount table as this thread sees it.

use crate::error::{Error, Result};

/// True when the process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Moves the calling thread into a new mount namespace whose mounts do not propagate to the
/// host. Threads and processes it starts afterwards share it. Mounts made there vanish with
/// it; tests still unmount what they mount.
pub fn private_mount_namespace() -> Result<()> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| Error::io("unshare(CLONE_NEWNS)", "/", e.into()))?;
    // Without this, mounts made here would still propagate to shared peers on the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| Error::io("make / rprivate", "/", e.into()))
}

/// The mount table of the calling thread (`/proc/thread-self/mountinfo`: with per-thread
/// namespaces, `/proc/self` would show the main thread's).
pub fn mountinfo() -> Result<String> {
    let p = "/proc/thread-self/mountinfo";
    std::fs::read_to_string(p).map_err(|e| Error::io("read", p, e))
}

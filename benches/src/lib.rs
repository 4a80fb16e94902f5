//! Shared pieces of strata's criterion benchmarks (`benches/*.rs`): the profile, a private
//! mount namespace with a tmpfs store, seeded fixtures checked by digest, the from-host
//! rootfs and real images (busybox, Debian minbase), host mount counts, loop-mounted filesystems for reflink, and the peer runtimes.
//!
//! Every benchmark enters its own mount namespace first, so the host's mount table is never
//! touched; fixtures live on tmpfs (or a loop-mounted xfs for reflink), never on the host
//! disk, whose timings swing tenfold here.

pub mod cli;
pub mod env;
pub mod fixtures;
pub mod host_mounts;
pub mod images;
pub mod loopfs;
pub mod peers;
pub mod profile;
pub mod seed;

/// Prints why a benchmark (or one of its series) does not run here.
pub fn skip(what: &str, why: &str) {
    eprintln!("strata-bench: SKIPPED {what}: {why}");
}

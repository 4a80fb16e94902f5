//! Model-based property tests of strata's storage drivers: generated layer stacks and
//! operation sequences, run with real syscalls on every driver's merged view and mirrored on
//! the model ([`strata_runtime::model`]), which is the spec.
//!
//! - [`stack`]: a generated layer stack, made valid and printed readably;
//! - [`strategy`]: the proptest strategies for stacks and operations;
//! - operations are done for real by [`strata_runtime::ops_exec`];
//! - [`world`]: a private mount namespace with a tmpfs store for one test thread;
//! - [`check`]: the properties, as functions a proptest body calls;
//! - [`independent`]: the model against umoci and kernel overlayfs (issue 11).

pub mod check;
pub mod independent;
pub mod stack;
pub mod strategy;
pub mod world;

/// The number of cases a property runs: `PROPTEST_CASES` when set, else `default` (times
/// ten with `STRATA_PROFILE=nightly`).
pub fn cases(default: u32) -> u32 {
    if let Some(n) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    match std::env::var("STRATA_PROFILE").as_deref() {
        Ok("nightly") => default * 10,
        _ => default,
    }
}

//! Model-based property tests of strata's storage drivers: generated layer stacks and
//! operation sequences, run with real syscalls on every driver's merged view and mirrored on
//! the model ([`strata_runtime::model`]), which is the spec.
//!
//! - [`stack`]: a generated layer stack, made valid and printed readably;
//! - [`strategy`]: the proptest strategies for stacks and operations;
//! - operations are done for real by [`strata_runtime::ops_exec`];
//! - [`world`]: a private mount namespace with a tmpfs store for one test thread;
//! - [`check`]: the properties, as functions a proptest body calls;
//! - [`independent`]: the model against umoci and kernel overlayfs (issue 11);
//! - [`hostile`]: layer tars that try to leave the layer, which import must refuse.

use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, RngSeed};

pub mod check;
pub mod hostile;
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

/// The environment variable choosing the seeds: unset for each property's fixed seed,
/// `random` for a fresh one, or a hex seed (as a run prints it) to repeat a run.
pub const SEED_ENV: &str = "STRATA_PROPTEST_SEED";

/// The fixed seed of `property`: a stable hash of its name (FNV-1a, the same on every
/// machine and compiler), so each property explores its own cases, the same ones on every
/// run.
pub fn fixed_seed(property: &str) -> u64 {
    property.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The seed `property` runs from: its [`fixed_seed`] unless [`SEED_ENV`] says `random` (a
/// fresh seed from the OS's randomness) or gives a hex seed (`0x` optional). Panics on any
/// other value, so a mistyped seed does not silently run the fixed one.
pub fn seed(property: &str) -> u64 {
    match std::env::var(SEED_ENV).as_deref().map(str::trim) {
        Err(_) | Ok("") => fixed_seed(property),
        Ok("random") => {
            use std::hash::{BuildHasher, Hasher};
            // RandomState is keyed from the OS's randomness, fresh in every process.
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write(property.as_bytes());
            h.finish()
        }
        Ok(v) => {
            let hex = v.strip_prefix("0x").unwrap_or(v);
            u64::from_str_radix(hex, 16)
                .unwrap_or_else(|e| panic!("{SEED_ENV}={v:?}: not `random` or a hex seed: {e}"))
        }
    }
}

/// The proptest configuration of a property test: [`cases`]`(default_cases)`, a ChaCha
/// generator from [`seed`]`(property)` (printed, with how to repeat it: libtest shows it when
/// the test fails), and the committed regression file `regressions` (relative to
/// `properties/`), whose cases run first on every run and where a new failure is added.
pub fn config(property: &str, default_cases: u32, regressions: &'static str) -> Config {
    config_seeded(property, default_cases, regressions, seed(property))
}

/// [`config`] from a given seed.
fn config_seeded(
    property: &str,
    default_cases: u32,
    regressions: &'static str,
    seed: u64,
) -> Config {
    println!(
        "{property}: {} cases from seed {seed:#x} ({SEED_ENV}={seed:#x} repeats them), \
         after the cases of {regressions}",
        cases(default_cases)
    );
    Config {
        cases: cases(default_cases),
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        ..Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_seeds_are_stable_and_differ_by_property() {
        // FNV-1a of the empty string is its offset basis; of "a", the published value.
        assert_eq!(fixed_seed(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fixed_seed("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fixed_seed("union"), fixed_seed("runtime"));
    }

    /// The first stacks a property's runner generates (what decides a CI run).
    fn first_stacks(property: &str) -> Vec<String> {
        use proptest::strategy::{Strategy, ValueTree};
        let mut runner = proptest::test_runner::TestRunner::new(config_seeded(
            property,
            4,
            "proptest-regressions/unused.txt",
            fixed_seed(property),
        ));
        (0..8)
            .map(|_| {
                let tree = strategy::stack().new_tree(&mut runner).expect("a stack");
                format!("{:?}", tree.current())
            })
            .collect()
    }

    #[test]
    fn a_property_generates_the_same_cases_on_every_run_and_others_differ() {
        assert_eq!(
            first_stacks("union properties"),
            first_stacks("union properties")
        );
        assert_ne!(
            first_stacks("union properties"),
            first_stacks("runtime property")
        );
    }
}

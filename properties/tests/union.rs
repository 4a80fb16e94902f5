//! Properties 1 to 5 of issue 4 on every available driver (see strata_properties::check).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use strata_properties::check::{self, Ops};
use strata_properties::strategy;
use strata_properties::world::{self, World};

/// 64 cases from the property's fixed seed (see `strata_properties::config`), after every
/// failure found before: each is kept (and committed) in the regression file.
fn config() -> Config {
    Config {
        max_shrink_iters: 2048,
        ..strata_properties::config("union properties", 64, "proptest-regressions/union.txt")
    }
}

thread_local! {
    static WORLD: std::cell::OnceCell<Result<Option<World>, String>> = const { std::cell::OnceCell::new() };
}

/// Runs `f` with this thread's world, or returns early (with the printed reason) when the
/// tests cannot mount here -- or fails every case when `STRATA_REQUIRE` names what is missing.
fn with_world(
    test: &str,
    f: impl FnOnce(&World) -> Result<(), String>,
) -> Result<(), TestCaseError> {
    WORLD.with(
        |cell| match cell.get_or_init(|| world::new_for_proptest(test)) {
            Ok(Some(w)) => f(w).map_err(TestCaseError::fail),
            Ok(None) => Ok(()),
            Err(why) => Err(TestCaseError::fail(why.clone())),
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_driver_matches_the_model_keeps_lowers_isolates_and_commits(stack in strategy::stack(), ops in strategy::ops().prop_map(Ops)) {
        with_world("union properties", |w| check::union_properties(w, &stack, &ops))?;
    }
}

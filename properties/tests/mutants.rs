//! The suite catches real bugs: each deliberate bug of issue 4, switched on for the test's
//! thread (strata-runtime's `mutants` feature), must make a property fail within the default
//! number of cases. The cases come from a fixed seed so the check is repeatable.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use strata_properties::check::{self, Ops};
use strata_properties::strategy;
use strata_properties::world::World;
use strata_runtime::mutants::{self, Mutant};

/// The cases each mutant gets, pinned: the claim is "caught within the default 64 cases from
/// this fixed seed", which PROPTEST_CASES or STRATA_PROFILE must not change.
const CASES: u32 = 64;

/// Runs the union properties with `m` switched on; returns the failure the suite reported.
fn caught(m: Mutant) -> Option<String> {
    let w = World::new(&format!("mutant {m:?}"))?;
    let config = Config {
        cases: CASES,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let strategy = (strategy::stack(), strategy::ops().prop_map(Ops));
    let result = mutants::with(m, || {
        runner.run(&strategy, |(stack, ops)| {
            check::union_properties(&w, &stack, &ops).map_err(TestCaseError::fail)
        })
    });
    match result {
        Err(TestError::Fail(reason, (stack, ops))) => Some(format!("{reason}\n{stack:?}{ops:?}")),
        Err(TestError::Abort(reason)) => panic!("mutant {m:?}: the run aborted: {reason}"),
        Ok(()) => panic!("mutant {m:?} survived {CASES} cases: the suite does not catch it"),
    }
}

fn expect(m: Mutant, property: &str) {
    if let Some(report) = caught(m) {
        eprintln!("mutant {m:?} caught:\n{report}");
        assert!(
            report.contains(property),
            "mutant {m:?} was caught, but not by {property}: {report}"
        );
    }
}

// Mutants a, b and d sit in the copy driver's materializer, which also makes the overlay
// drivers' chain directories: property 1 catches them on whichever of those drivers the
// case reaches first.

#[test]
fn a_ignoring_the_opaque_marker_is_caught() {
    expect(Mutant::IgnoreOpaque, "property 1");
}

#[test]
fn b_a_whiteout_deleting_its_own_layers_file_is_caught() {
    expect(Mutant::WhiteoutDeletesOwnLayer, "property 1");
}

#[test]
fn c_a_directory_whiteout_leaving_its_children_is_caught() {
    expect(Mutant::DirWhiteoutKeepsChildren, "property");
}

#[test]
fn d_hard_links_materialized_as_separate_files_are_caught() {
    expect(Mutant::SplitHardLinks, "property 1");
}

#[test]
fn e_a_commit_without_its_unchanged_parents_is_caught() {
    expect(Mutant::CommitOmitsParents, "property 4");
}

#[test]
fn f_a_commit_missing_chmod_only_changes_is_caught() {
    expect(Mutant::CommitMissesChmod, "property 4: copy");
}

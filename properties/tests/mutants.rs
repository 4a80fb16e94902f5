//! The suite catches real bugs: each deliberate bug (issues 4 and 12), switched on for the
//! test's thread (strata-runtime's `mutants` feature), must make a property fail within the
//! default number of cases. The cases come from a fixed seed so the check is repeatable.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use strata_properties::check::{self, Ops};
use strata_properties::world::World;
use strata_properties::{hostile, strategy};
use strata_runtime::mutants::{self, Mutant};

/// The cases each mutant gets, pinned: the claim is "caught within the default 64 cases from
/// this fixed seed", which PROPTEST_CASES or STRATA_PROFILE must not change.
const CASES: u32 = 64;

/// Runs the union properties with `m` switched on (none: the control); returns the failure
/// the suite reported.
fn run_pinned(m: Option<Mutant>) -> Option<Result<(), String>> {
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
    let mut run = || {
        runner.run(&strategy, |(stack, ops)| {
            check::union_properties(&w, &stack, &ops).map_err(TestCaseError::fail)
        })
    };
    let result = match m {
        Some(m) => mutants::with(m, run),
        None => run(),
    };
    Some(match result {
        Err(TestError::Fail(reason, (stack, ops))) => Err(format!("{reason}\n{stack:?}{ops:?}")),
        Err(TestError::Abort(reason)) => panic!("mutant {m:?}: the run aborted: {reason}"),
        Ok(()) => Ok(()),
    })
}

/// Runs the union properties with `m` switched on; returns the failure the suite reported.
fn caught(m: Mutant) -> Option<String> {
    match run_pinned(Some(m))? {
        Err(report) => Some(report),
        Ok(()) => panic!("mutant {m:?} survived {CASES} cases: the suite does not catch it"),
    }
}

/// The control: without a mutant the pinned cases pass, so each catch is the mutant's.
#[test]
fn without_a_mutant_the_pinned_cases_pass() {
    if let Some(Err(report)) = run_pinned(None) {
        panic!("the pinned cases fail without a mutant:\n{report}");
    }
}

/// Runs the import-refusal property with `m` switched on; returns the failure it reported.
/// Needs no privilege.
fn caught_by_import_refusals(m: Mutant) -> String {
    let config = Config {
        cases: CASES,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = mutants::with(m, || {
        runner.run(&hostile::hostile_tar(), |case| {
            let dir = tempfile::tempdir().unwrap();
            hostile::refused(dir.path(), &case).map_err(TestCaseError::fail)
        })
    });
    match result {
        Err(TestError::Fail(reason, case)) => format!("{reason}\n{case:?}"),
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

// Mutant g sits in the upper-directory diff that the overlay drivers and fuse-overlayfs
// commit with: the commit round trip (property 4) catches it.

#[test]
fn g_the_upper_diff_dropping_a_whiteout_is_caught() {
    expect(Mutant::UpperDropsWhiteout, "property 4");
}

#[test]
fn h_fuse_overlayfs_without_its_hard_link_lookups_is_caught() {
    expect(Mutant::FuseNoLinkLookups, "property 1: fuse-overlayfs");
}

#[test]
fn i_import_accepting_a_dotdot_name_is_caught() {
    let report = caught_by_import_refusals(Mutant::ImportAcceptsDotDot);
    eprintln!("mutant ImportAcceptsDotDot caught:\n{report}");
    assert!(
        report.contains("import accepted a breakout (DotDot"),
        "{report}"
    );
}

#[test]
fn j_import_accepting_an_absolute_name_or_link_target_is_caught() {
    let report = caught_by_import_refusals(Mutant::ImportAcceptsAbsolute);
    eprintln!("mutant ImportAcceptsAbsolute caught:\n{report}");
    assert!(report.contains("import accepted a breakout"), "{report}");
}

// Mutants k and l sit in the scanner, which reads every view: property 1 catches them on
// the first driver a case reaches.

#[test]
fn k_the_scanner_dropping_xattrs_is_caught() {
    expect(Mutant::ScanDropsXattrs, "property 1");
}

#[test]
fn l_the_scanner_splitting_hard_links_is_caught() {
    expect(Mutant::ScanSplitsHardLinks, "property 1");
}

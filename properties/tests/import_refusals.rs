//! Import refuses every generated breakout (a `..` component, an absolute name, a hard link
//! out of the layer), saying why, and nothing lands beside the store. Needs no privilege.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use strata_properties::hostile;

/// 128 cases from the property's fixed seed, after the committed regressions.
fn config() -> Config {
    strata_properties::config(
        "import refusals",
        128,
        "proptest-regressions/import_refusals.txt",
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn import_refuses_every_breakout_and_writes_nothing_outside(case in hostile::hostile_tar()) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        hostile::refused(dir.path(), &case).map_err(TestCaseError::fail)?;
    }
}

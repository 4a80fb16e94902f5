//! Skips that cannot hide what they skipped: `STRATA_REQUIRE`.
//!
//! A test that needs something this machine may lack (root, a storage driver, a tool) asks
//! here. When the thing is missing, [`skip_or_fail`] prints `skipped: <test>: <why>` on
//! stdout (shown with `--nocapture`, and in cargo's output of a failing test) and the test
//! returns early -- unless the environment variable `STRATA_REQUIRE` (a comma list of the
//! [`known`] names) names it: then the test panics with the same reason. CI sets it to
//! everything the machine is provisioned with, so a green run means each of those was tested.
//!
//! A name in `STRATA_REQUIRE` that strata does not know panics too: a typo must not quietly
//! require nothing.

use std::path::Path;

use crate::driver::Driver;

/// The environment variable: a comma list of what must not be skipped.
pub const ENV: &str = "STRATA_REQUIRE";

/// Root: the tests that mount, make namespaces or chown.
pub const ROOT: &str = "root";

/// A cgroup v2 hierarchy (the unified one, or the `unified` mount of a v1/v2 hybrid).
pub const CGROUP2: &str = "cgroup2";

/// The external tools a test may need, by the name `STRATA_REQUIRE` uses (each is also the
/// command looked up on `PATH`, except `chromium`, which the report test looks for itself).
pub const TOOLS: &[&str] = &[
    "umoci",
    "skopeo",
    "docker-registry",
    "chromium",
    "crun",
    "runc",
    // virtme-ng, for `strata check --kernel` (found in /opt/strata-vm/venv/bin too).
    "vng",
    // The store's fault injection (SIGKILL at the Nth call of a syscall).
    "strace",
];

/// Every name `STRATA_REQUIRE` accepts: `root`, `cgroup2`, each driver's name, each tool.
pub fn known() -> Vec<&'static str> {
    let mut v = vec![ROOT, CGROUP2];
    v.extend(crate::driver::all().iter().map(|d| d.name()));
    v.extend_from_slice(TOOLS);
    v
}

/// The names in `STRATA_REQUIRE` (empty when it is unset), or the first unknown one.
pub fn required() -> Result<Vec<String>, String> {
    let Ok(v) = std::env::var(ENV) else {
        return Ok(Vec::new());
    };
    parse(&v)
}

/// Parses a `STRATA_REQUIRE` value: names separated by commas (blanks ignored).
pub fn parse(value: &str) -> Result<Vec<String>, String> {
    let known = known();
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !known.contains(&name) {
            return Err(format!(
                "{ENV}: unknown name {name:?} (known: {})",
                known.join(", ")
            ));
        }
        out.push(name.to_string());
    }
    Ok(out)
}

/// True when `STRATA_REQUIRE` names `what`. Panics when it holds an unknown name.
pub fn is_required(what: &str) -> bool {
    match required() {
        Ok(names) => names.iter().any(|n| n == what),
        Err(e) => panic!("{e}"),
    }
}

/// The running test's name (libtest names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string()
}

/// `what` (a [`known`] name; any other name can never be required) is missing for the
/// running test because of `why`: prints `skipped: <test>: <why>` on stdout, or panics with
/// that reason when `STRATA_REQUIRE` names `what`. The caller returns early after it.
pub fn skip_or_fail(what: &str, why: &str) {
    skip_or_fail_as(&test_name(), what, why);
}

/// [`skip_or_fail`] naming the test (or part of one) explicitly.
pub fn skip_or_fail_as(test: &str, what: &str, why: &str) {
    if is_required(what) {
        panic!("{test}: {ENV} names {what}, but {why}");
    }
    println!("skipped: {test}: {why}");
}

/// True when running as root; otherwise skips (or fails) the running test.
pub fn root() -> bool {
    if crate::sandbox::is_root() {
        return true;
    }
    skip_or_fail(
        ROOT,
        "needs root (it mounts, makes namespaces or sets owners); run the tests as root",
    );
    false
}

/// True when `tool` is an executable file on `PATH`.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// True when every tool of `need` is on `PATH`; otherwise skips (or fails) the running test,
/// naming the first required one missing (or the first missing one).
pub fn tools(need: &[&str]) -> bool {
    let missing: Vec<&str> = need.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let what = missing
        .iter()
        .copied()
        .find(|t| is_required(t))
        .unwrap_or(missing[0]);
    skip_or_fail(
        what,
        &format!(
            "needs {} on PATH (ci/provision.sh installs them)",
            missing.join(", ")
        ),
    );
    false
}

/// True when `d` is available for a store at `store_root`; otherwise skips (or fails) the
/// running test's use of that driver, with the driver's own reason.
pub fn driver_in(d: &dyn Driver, store_root: &Path) -> bool {
    match d.availability_in(store_root) {
        Ok(()) => true,
        Err(why) => {
            skip_or_fail(d.name(), &format!("driver {} unavailable: {why}", d.name()));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_parses_and_an_unknown_name_is_refused() {
        assert_eq!(
            parse(" root, btrfs,,umoci ").unwrap(),
            vec!["root", "btrfs", "umoci"]
        );
        let e = parse("root,btfrs").unwrap_err();
        assert!(
            e.contains("\"btfrs\"") && e.contains("fuse-overlayfs"),
            "{e}"
        );
        assert!(parse("").unwrap().is_empty());
    }
}

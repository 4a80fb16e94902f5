//! Property 6, its run hygiene (the model half, operations done by a real `strata run` on
//! every driver, is harness/tests/run_property.rs): whatever the driver, root switch, namespace
//! set and outcome (exit code, signal, a command that is missing), the host's mount table is
//! unchanged afterwards, no fd above 2 reaches the container, and its cwd and root are the
//! container's root.
#![allow(clippy::unwrap_used)]

#[path = "../../runtime/tests/container_support/mod.rs"]
mod container_support;

use container_support::{Capture, image, sh};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use strata_runtime::container::{self, Exit, Namespace, Namespaces, Switch};
use strata_runtime::sandbox;
use strata_runtime::store::{Store, StoredLayer};

/// What the command does at the end.
#[derive(Clone, Copy, Debug)]
enum End {
    Exit(u8),
    Signal,
    Missing,
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![4 => (0u8..5).prop_map(End::Exit), 1 => Just(End::Signal), 1 => Just(End::Missing)]
}

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    image: StoredLayer,
}

thread_local! {
    static WORLD: std::cell::OnceCell<Result<Option<World>, String>> = const { std::cell::OnceCell::new() };
}

fn with_world(f: impl FnOnce(&World) -> Result<(), TestCaseError>) -> Result<(), TestCaseError> {
    WORLD.with(|cell| {
        // A panic of the setup (a requirement STRATA_REQUIRE names) fails every case at once.
        let w = cell.get_or_init(|| {
            strata_properties::world::caught("runtime property", || {
                if !strata_runtime::require::root() {
                    return None;
                }
                // This thread's mount table stands for the host's: the runs must leave it as is.
                sandbox::private_mount_namespace().unwrap();
                let dir = tempfile::Builder::new()
                    .prefix("strata-prop-run-")
                    .tempdir()
                    .unwrap();
                let store = Store::open(&dir.path().join("root")).unwrap();
                let image = image(&store, dir.path());
                Some(World {
                    _dir: dir,
                    store,
                    image,
                })
            })
        });
        match w {
            Ok(Some(w)) => f(w),
            Ok(None) => Ok(()),
            Err(why) => Err(TestCaseError::fail(why.clone())),
        }
    })
}

/// 24 cases from the property's fixed seed, after the committed regressions.
fn config() -> Config {
    strata_properties::config("runtime property", 24, "proptest-regressions/runtime.txt")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_run_leaves_the_host_mounts_passes_no_fd_and_keeps_cwd_inside(
        driver in prop::sample::select(vec!["overlay", "copy"]),
        switch in prop::sample::select(Switch::ALL.to_vec()),
        extra in prop::sample::subsequence(vec![Namespace::Uts, Namespace::Ipc, Namespace::Pid, Namespace::Net], 0..=4),
        end in end(),
    ) {
        with_world(|w| {
            let before = sandbox::mountinfo().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let out = Capture::new(dir.path(), "out");
            let last = match end {
                End::Exit(n) => format!("exit {n}"),
                End::Signal => "busybox kill -TERM $$".into(),
                End::Missing => String::new(),
            };
            let script = format!("ls /proc/$$/fd; busybox readlink /proc/$$/cwd; busybox readlink /proc/$$/root; {last}");
            let mut spec = sh(&[&w.image], &script, &out);
            if matches!(end, End::Missing) {
                spec.command = vec!["/no/such/command".into()];
            }
            spec.driver = driver.into();
            spec.switch = switch;
            let mut ns = vec![Namespace::Mount];
            ns.extend(extra.iter().copied());
            spec.namespaces = Namespaces::of(&ns);
            let o = container::run(&w.store, spec).map_err(|e| TestCaseError::fail(format!("run: {e}")))?;
            let after = sandbox::mountinfo().unwrap();
            prop_assert_eq!(&before, &after, "the host's mount table changed");
            let text = out.text();
            match end {
                End::Missing => prop_assert_eq!(o.code, 127, "{}", text),
                // PID 1 of a pid namespace ignores a signal it has no handler for.
                End::Signal if extra.contains(&Namespace::Pid) => prop_assert_eq!(o.exit, Exit::Code(0), "{}", text),
                End::Signal => prop_assert_eq!(o.exit, Exit::Signal(libc::SIGTERM), "{}", text),
                End::Exit(n) => prop_assert_eq!(o.code, i32::from(n), "{}", text),
            }
            if !matches!(end, End::Missing) {
                let lines: Vec<&str> = text.lines().collect();
                prop_assert_eq!(lines, vec!["0", "1", "2", "/", "/"], "fds, cwd, root seen inside");
            }
            Ok(())
        })?;
    }
}

//! Property 6: the generated layer stacks and operations of the union properties, done by a
//! real container on every available driver. Each case runs, per driver,
//!
//! ```text
//! strata run --driver D --keep --target T --commit C IMAGE LAYER... -- /…/strata exec-ops OPS
//! ```
//!
//! (the built `strata` binary, stripped, is the image: `strata exec-ops` inside the container
//! does the operations with real syscalls in the container's root and prints each outcome
//! with the clock around it), then checks against the model of the image, the layers and the
//! container's init layer, under the driver's declared semantics:
//!
//! - each operation failed exactly when and how the model says;
//! - the kept view equals the model after the operations (the init layer's /etc/hosts,
//!   /etc/hostname and /etc/resolv.conf present), every time an operation stamped inside the
//!   clock window the container read around it;
//! - the commit holds none of the init layer's files and names nothing twice, and the model
//!   of the image, the layers and the commit is the view (the init layer's files aside);
//! - `strata umount` of the kept view leaves the mount table as it was before the run.
//!
//! It lives in the harness crate because only this crate's tests get the freshly built
//! binary (`CARGO_BIN_EXE_strata`): a binary found beside the test could be stale.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use strata_properties::check::{self, Ops};
use strata_properties::stack::Stack;
use strata_properties::strategy;
use strata_properties::world::{self, World};
use strata_runtime::conformance::engine::duplicates;
use strata_runtime::conformance::{Clocked, Window, round_trip_diffs};
use strata_runtime::container::{DEFAULT_HOSTNAME, InitLayer, init_layer};
use strata_runtime::driver::Driver;
use strata_runtime::model::ops::Outcome;
use strata_runtime::model::{self, ChangeSet, CompareOptions, MtimeCompare};
use strata_runtime::ops_exec::Done;
use strata_runtime::store::StoredLayer;
use strata_runtime::{rootfs, sandbox};

const STRATA: &str = env!("CARGO_BIN_EXE_strata");

/// Everything compared after the operations (times against their clock windows).
const ALL: CompareOptions = CompareOptions {
    mtime: MtimeCompare::All,
    xattrs: true,
    hardlinks: true,
    ignore: Vec::new(),
};

/// A test thread's world and the container image made in it.
struct Env {
    w: World,
    image: StoredLayer,
    image_set: ChangeSet,
    init_set: ChangeSet,
    /// The strata binary's path inside the image.
    inside: String,
}

impl Env {
    fn new(w: World) -> Result<Env, String> {
        // A stripped copy: the debug binary is mostly debug info, which every copy-driver
        // mount would copy and every scan hash.
        let bin = w.dir.path().join("bin");
        std::fs::create_dir(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
        let exe = bin.join("strata");
        std::fs::copy(STRATA, &exe).map_err(|e| format!("copy {STRATA}: {e}"))?;
        match Command::new("strip").arg(&exe).status() {
            Ok(s) if s.success() => {}
            other => println!(
                "note: property 6: strip {} failed ({other:?}): the image holds the unstripped binary",
                exe.display()
            ),
        }
        let out = w.dir.path().join("image");
        let tar = w.dir.path().join("image.tar");
        rootfs::from_host_tar(&out, &[exe.display().to_string()], &tar)
            .map_err(|e| format!("image: {e}"))?;
        let image = w
            .store
            .import_path(&tar)
            .map_err(|e| format!("import the image: {e}"))?
            .layer;
        let image_set = image.changes().map_err(|e| e.to_string())?;
        // The default namespaces include net: the init layer of a container with its own
        // network and the default hostname.
        let init_tar = InitLayer::new(DEFAULT_HOSTNAME, true)
            .to_tar()
            .map_err(|e| e.to_string())?;
        let init_set = w
            .import_tar(&init_tar)?
            .changes()
            .map_err(|e| e.to_string())?;
        let names: Vec<&str> = check::drivers(&w).iter().map(|d| d.name()).collect();
        println!("property 6: drivers {}", names.join(", "));
        Ok(Env {
            inside: exe.display().to_string(),
            w,
            image,
            image_set,
            init_set,
        })
    }
}

thread_local! {
    static ENV: std::cell::OnceCell<Result<Option<Env>, String>> = const { std::cell::OnceCell::new() };
}

fn with_env(f: impl FnOnce(&Env) -> Result<(), String>) -> Result<(), TestCaseError> {
    ENV.with(|cell| {
        let env = cell.get_or_init(|| match world::new_for_proptest("property 6") {
            Ok(Some(w)) => Env::new(w).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        });
        match env {
            Ok(Some(env)) => f(env).map_err(TestCaseError::fail),
            Ok(None) => Ok(()),
            Err(why) => Err(TestCaseError::fail(why.clone())),
        }
    })
}

/// `strata --root ROOT ARGS...`, its output.
fn strata(root: &Path, args: &[&std::ffi::OsStr]) -> Result<std::process::Output, String> {
    Command::new(STRATA)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{STRATA}: {e}"))
}

/// A kept view: `strata umount` on drop, so a failing case leaves nothing mounted.
struct Kept<'a> {
    root: &'a Path,
    target: Option<PathBuf>,
}

impl Kept<'_> {
    fn umount(mut self) -> Result<(), String> {
        let t = self.target.take().expect("a kept view");
        let o = strata(self.root, &["umount".as_ref(), t.as_os_str()])?;
        if o.status.success() {
            Ok(())
        } else {
            Err(format!(
                "strata umount {}: {}",
                t.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
    }
}

impl Drop for Kept<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.target.take() {
            let _ = strata(self.root, &["umount".as_ref(), t.as_os_str()]);
            let _ = nix::mount::umount2(&t, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn same_outcome(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Done { .. }, Outcome::Done { .. }) => true,
        _ => a == b,
    }
}

/// The names a layer tar holds, without `./` and a trailing `/`.
fn tar_names(tar: &[u8]) -> Result<Vec<String>, String> {
    let mut a = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in a.entries().map_err(|e| format!("commit tar: {e}"))? {
        let e = e.map_err(|e| format!("commit tar: {e}"))?;
        let p = e.path().map_err(|e| format!("commit tar: {e}"))?;
        let s = p.to_string_lossy();
        out.push(s.trim_start_matches("./").trim_end_matches('/').to_string());
    }
    Ok(out)
}

/// Property 6 for one case on every available driver.
fn property6(env: &Env, stack: &Stack, ops: &Ops) -> Result<(), String> {
    let w = &env.w;
    let layers = w.import(stack)?;
    let sets: Vec<ChangeSet> = stack.fixtures().iter().map(|l| l.changeset()).collect();
    let json = serde_json::to_string(&ops.0).map_err(|e| e.to_string())?;
    for d in check::drivers(w) {
        one_driver(env, d, &layers, &sets, &json, ops)
            .map_err(|e| format!("property 6: {}: {e}", d.name()))?;
    }
    Ok(())
}

fn one_driver(
    env: &Env,
    d: &'static dyn Driver,
    layers: &[StoredLayer],
    sets: &[ChangeSet],
    json: &str,
    ops: &Ops,
) -> Result<(), String> {
    let w = &env.w;
    let root = w.store.root();
    let sem = d.capabilities().semantics();
    let mut below = vec![env.image_set.clone()];
    below.extend_from_slice(sets);
    let mut with_init = below.clone();
    with_init.push(env.init_set.clone());
    let target = w.target();
    let commit = target.with_extension("tar");
    let mut args: Vec<std::ffi::OsString> = vec![
        "run".into(),
        "--driver".into(),
        d.name().into(),
        "--keep".into(),
        "--target".into(),
        target.clone().into(),
        "--commit".into(),
        commit.clone().into(),
        env.image.digest().to_string().into(),
    ];
    args.extend(layers.iter().map(|l| l.digest().to_string().into()));
    args.extend([
        "--".into(),
        env.inside.clone().into(),
        "exec-ops".into(),
        json.into(),
    ]);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let mounts_before = sandbox::mountinfo().map_err(|e| e.to_string())?;
    let out = strata(root, &args)?;
    let kept = Kept {
        root,
        target: Some(target.clone()),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let model = match model::apply_with(&with_init, &sem) {
        Ok(m) => m,
        Err(e) => {
            // A stack the model refuses (a symlink loop under a new entry) must not run.
            drop(kept);
            return if out.status.success() {
                Err(format!("ran a stack its model refuses ({e})"))
            } else {
                Ok(())
            };
        }
    };
    if !out.status.success() {
        return Err(format!("strata run: {}: {}", out.status, stderr.trim()));
    }
    let done: Vec<Done> = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "exec-ops printed no outcomes ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    if done.len() != ops.0.len() {
        return Err(format!(
            "{} outcomes for {} operations",
            done.len(),
            ops.0.len()
        ));
    }
    let mut clocked = Clocked::new(model, sem);
    for (i, (op, got)) in ops.0.iter().zip(&done).enumerate() {
        let window = Window {
            op: i,
            before: got.before,
            after: got.after,
            or_kept: Vec::new(),
        };
        let want = clocked.apply_in(op, window);
        if !same_outcome(&want, &got.outcome) {
            return Err(format!(
                "op {i} ({op}): the model says {want:?}, the container did {:?}",
                got.outcome
            ));
        }
    }
    let view = world::scan(&target)?;
    check::no_diffs(
        "the kept view after the operations",
        clocked.tree(),
        &view,
        &clocked.compare(&view, &ALL),
    )?;
    for f in init_layer::FILES {
        if !view
            .get(f)
            .is_some_and(|i| matches!(i.kind, strata_runtime::model::Kind::File(_)))
        {
            return Err(format!("the view has no init-layer file {f}"));
        }
    }
    kept.umount()?;
    let mounts_after = sandbox::mountinfo().map_err(|e| e.to_string())?;
    if mounts_before != mounts_after {
        return Err(format!(
            "the mount table changed:\nbefore:\n{mounts_before}\nafter:\n{mounts_after}"
        ));
    }
    let tar = std::fs::read(&commit).map_err(|e| format!("{}: {e}", commit.display()))?;
    let names = tar_names(&tar)?;
    if let Some(n) = names
        .iter()
        .find(|n| init_layer::FILES.contains(&n.as_str()))
    {
        return Err(format!("the commit holds the init layer's {n}"));
    }
    let dups = duplicates(&tar)?;
    if !dups.is_empty() {
        return Err(format!(
            "the commit names more than once: {}",
            dups.join(", ")
        ));
    }
    let committed = w.import_tar(&tar)?;
    below.push(committed.changes().map_err(|e| e.to_string())?);
    let remodel =
        model::apply_with(&below, &sem).map_err(|e| format!("model of the commit: {e}"))?;
    let opts = CompareOptions {
        ignore: InitLayer::excluded(),
        ..ALL
    };
    let diffs = round_trip_diffs(&remodel, &view, &tar, &opts).map_err(|e| e.to_string())?;
    check::no_diffs(
        "commit round trip: model(image + layers + commit) vs the kept view",
        &remodel,
        &view,
        &diffs,
    )
}

/// 24 cases (each a container per driver) from the property's fixed seed, after the
/// committed regressions.
fn config() -> Config {
    strata_properties::config(
        "run property",
        24,
        "../properties/proptest-regressions/run.txt",
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_container_run_does_what_the_model_says_and_commits_no_init_layer(stack in strategy::stack(), ops in strategy::ops().prop_map(Ops)) {
        with_env(|env| property6(env, &stack, &ops))?;
    }
}

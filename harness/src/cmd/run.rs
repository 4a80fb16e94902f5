//! `strata run`: a command in a container. Its stdout and stdin are the container's, so
//! strata's own reports (notes, `--timings`, `--json`) go to stderr; the exit status is the
//! command's (128+N for signal N, 127/126 when it cannot be executed).

use std::process::ExitCode;

use strata_runtime::container::{self, ContainerSpec, Exit, Limits, Switch, cgroup};
use strata_runtime::sandbox;

use super::Ctx;
use crate::cli::RunArgs;
use crate::output::CmdResult;

fn spec(a: RunArgs) -> CmdResult<ContainerSpec> {
    let mut spec = ContainerSpec::new(a.layers, a.command);
    spec.driver = a.driver;
    spec.switch = a.switch.parse()?;
    spec.namespaces = a.ns.parse()?;
    spec.hostname = a.hostname;
    spec.limits = Limits {
        memory: a.memory.as_deref().map(cgroup::parse_bytes).transpose()?,
        pids: a.pids,
    };
    spec.commit = a.commit;
    spec.keep = a.keep;
    spec.target = a.target;
    spec.env = a.env;
    strata_runtime::driver::by_name(&spec.driver)?;
    spec.validate()?;
    Ok(spec)
}

pub fn run(ctx: &Ctx, a: RunArgs) -> CmdResult<ExitCode> {
    let timings = a.timings;
    let commit = a.commit.clone();
    // Every bad input is refused here, before anything exists.
    let spec = spec(a)?;
    if spec.switch == Switch::Chroot {
        eprintln!("strata: note: {}", Switch::CHROOT_WARNING);
    }
    if !spec.keep {
        // The union mount lives in a mount namespace of this process alone: the host's mount
        // table never changes, and a killed strata leaves no mount behind.
        sandbox::private_mount_namespace()?;
    }
    let store = ctx.store()?;
    let out = container::run(&store, spec)?;
    if let Some(f) = &out.fallback {
        eprintln!("strata: note: {f}");
    }
    match &out.exit {
        Exit::ExecFailed { message, .. } => eprintln!("strata: error: {message}"),
        Exit::Signal(s) if out.oom_killed => eprintln!(
            "strata: the container was killed by the OOM killer (signal {s}): it reached its memory limit"
        ),
        _ if out.oom_killed => {
            eprintln!("strata: the OOM killer ended a process of the container (memory limit)")
        }
        _ => {}
    }
    if out.pids_limit_hits > 0 {
        eprintln!(
            "strata: the pids limit refused {} fork(s)",
            out.pids_limit_hits
        );
    }
    if let (Some(d), Some(p)) = (&out.committed, &commit) {
        eprintln!("strata: committed {} to {d}", p.display());
    }
    if let Some(k) = &out.kept {
        eprintln!(
            "strata: kept {} (strata commit / strata umount it)",
            k.target.display()
        );
    }
    if ctx.json {
        eprintln!("{}", to_json(&out)?);
    } else if timings {
        eprintln!("{}", to_json(&out.timings)?);
    }
    Ok(ExitCode::from(out.code.clamp(0, 255) as u8))
}

fn to_json<T: serde::Serialize>(v: &T) -> CmdResult<String> {
    serde_json::to_string(v).map_err(|e| strata_runtime::Error::Usage(format!("JSON output: {e}")))
}

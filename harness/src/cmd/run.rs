//! `strata run`: a command in a container. Its stdout and stdin are the container's, so
//! strata's own reports (notes, `--timings`, `--json`) go to stderr; the exit status is the
//! command's (128+N for signal N, 127/126 when it cannot be executed).
//!
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to strata are forwarded to the container's init;
//! a second SIGINT or SIGTERM kills it (the init of a pid namespace ignores the signals it has
//! no handler for). Either way strata waits for it and tears everything down.

use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;

use strata_runtime::container::{self, ContainerSpec, Exit, Limits, Switch, cgroup, volumes};
use strata_runtime::sandbox;

use super::Ctx;
use super::tty;
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
    spec.commit_image = a.commit_image;
    spec.keep = a.keep;
    spec.target = a.target;
    spec.env = environment(&a.env_file, &a.env)?;
    spec.workdir = a.workdir;
    spec.user = a.user;
    spec.entrypoint = a.entrypoint;
    if !a.interactive {
        let null = std::fs::File::open("/dev/null")
            .map_err(|e| strata_runtime::Error::io("open", "/dev/null", e))?;
        spec.stdio[0] = Some(null.into());
    }
    if a.tty {
        spec.tty = Some(tty::caller_size().unwrap_or((0, 0)));
    }
    for v in &a.volume {
        spec.volumes.push(volumes::parse_volume(v)?);
    }
    for m in &a.mount {
        spec.volumes.push(volumes::parse_mount(m)?);
    }
    let driver = strata_runtime::driver::by_name(&spec.driver)?;
    // Before anything else: without root this says why (the drivers mount as root).
    driver
        .availability()
        .map_err(|reason| strata_runtime::Error::Driver {
            driver: driver.name().into(),
            reason: format!("unavailable: {reason}"),
        })?;
    spec.validate()?;
    Ok(spec)
}

/// `--env-file` entries, then `-e` entries; `NAME` alone takes this process's value (and is
/// left out when unset), as docker does.
fn environment(files: &[std::path::PathBuf], flags: &[String]) -> CmdResult<Vec<String>> {
    let mut out = Vec::new();
    let mut add = |e: &str| {
        if e.contains('=') {
            out.push(e.to_string());
        } else if let Some(v) = std::env::var_os(e) {
            out.push(format!("{e}={}", v.to_string_lossy()));
        }
    };
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| strata_runtime::Error::io("read --env-file", f, e))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('=') {
                return Err(strata_runtime::Error::Usage(format!(
                    "{}:{}: {line:?} has no variable name",
                    f.display(),
                    n + 1
                )));
            }
            add(line);
        }
    }
    for e in flags {
        if e.is_empty() || e.starts_with('=') {
            return Err(strata_runtime::Error::Usage(format!(
                "--env {e:?}: not NAME=VALUE or NAME"
            )));
        }
        add(e);
    }
    Ok(out)
}

pub fn run(ctx: &Ctx, a: RunArgs) -> CmdResult<ExitCode> {
    let timings = a.timings;
    let interactive = a.interactive;
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
    forward_signals()?;
    let mut c = container::start(&store, spec)?;
    CHILD.store(c.pid(), Ordering::SeqCst);
    let pending = PENDING.swap(0, Ordering::SeqCst);
    if pending > 0 {
        // A signal came while the container was starting: deliver it now.
        if let Ok(sig) = Signal::try_from(pending) {
            let _ = signal::kill(Pid::from_raw(c.pid()), sig);
        }
    }
    if let Some(master) = c.console()? {
        tty::relay(master, interactive)?;
    }
    let out = c.wait();
    CHILD.store(0, Ordering::SeqCst);
    let out = out?;
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
    if let Some(c) = &out.committed_image {
        eprintln!(
            "strata: committed image {} on {} {} (new layer {})",
            c.reference, c.base, c.manifest, c.diff_id
        );
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

/// The container's init, once started (0 before).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A signal that arrived before the container's pid was known.
static PENDING: AtomicI32 = AtomicI32::new(0);
/// Signals received so far.
static RECEIVED: AtomicU32 = AtomicU32::new(0);

extern "C" fn forward(sig: i32) {
    // Only async-signal-safe work here: atomics and kill(2).
    let n = RECEIVED.fetch_add(1, Ordering::SeqCst);
    let again = n > 0 && (sig == Signal::SIGINT as i32 || sig == Signal::SIGTERM as i32);
    let sig = if again { Signal::SIGKILL as i32 } else { sig };
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        if let Ok(s) = Signal::try_from(sig) {
            let _ = signal::kill(Pid::from_raw(pid), s);
        }
    } else {
        PENDING.store(sig, Ordering::SeqCst);
    }
}

fn forward_signals() -> CmdResult<()> {
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: the handler only touches atomics and calls kill(2).
        unsafe { signal::sigaction(sig, &action) }.map_err(|e| {
            strata_runtime::Error::io("install signal handler", sig.as_str(), e.into())
        })?;
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(v: &T) -> CmdResult<String> {
    serde_json::to_string(v).map_err(|e| strata_runtime::Error::Usage(format!("JSON output: {e}")))
}

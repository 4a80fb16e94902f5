//! A strata command in a microVM of another kernel, through virtme-ng (`vng`): the guest's
//! root is this host's filesystem (over virtiofs, read-only, with tmpfs over /tmp, /run,
//! /var/cache and a few others), so the guest runs this very `strata` binary; a temporary
//! directory shared read-write (`--rwdir`) brings the record back.
//!
//! The VM runs with KVM when /dev/kvm can run the kernel, else under QEMU's emulation (TCG),
//! and says which. It runs in a process group of its own: on a timeout
//! (`STRATA_VM_TIMEOUT` seconds, default 1800), SIGINT, SIGTERM or SIGHUP the whole group is
//! stopped, and afterwards any process still naming the shared directory (qemu, virtiofsd)
//! is killed by its pid, so nothing is left running.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;

/// Where ci/provision.sh installs virtme-ng (a venv) and virtiofsd.
pub const TOOLS_DIR: &str = "/opt/strata-vm";

/// How the guest ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Emulated,
}

impl Accel {
    /// The record's `virtualization` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Emulated => "emulated",
        }
    }
}

/// What a guest command gave back.
pub struct GuestRun {
    /// The guest command's stdout.
    pub stdout: String,
    /// Its exit status.
    pub status: i32,
    pub accel: Accel,
    /// Seconds from launch until the guest ran the command.
    pub boot_secs: f64,
    /// Seconds from launch until the VM was gone.
    pub total_secs: f64,
    /// The shared directory (removed on drop).
    pub out: tempfile::TempDir,
}

/// The tools a VM needs, found.
pub struct Tools {
    vng: PathBuf,
    path: std::ffi::OsString,
}

/// Finds vng (`STRATA_VNG`, else the provisioned venv, else PATH) and checks for what it
/// needs here: qemu, the Rust virtiofsd (the cloud kernels have no 9p), a /lib/modules to
/// link the kernel's modules into and something to make the /dev/virtio-ports links.
pub fn tools() -> Result<Tools, String> {
    let tools = Path::new(TOOLS_DIR);
    let mut dirs: Vec<PathBuf> = vec![tools.join("bin"), tools.join("venv/bin")];
    let vng = match std::env::var_os("STRATA_VNG").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => {
            let provisioned = tools.join("venv/bin/vng");
            if provisioned.exists() {
                provisioned
            } else {
                which("vng", &[]).ok_or(
                    "virtme-ng (vng) is not installed: ci/provision.sh installs it in /opt/strata-vm/venv \
                     (or set STRATA_VNG)",
                )?
            }
        }
    };
    if let Some(d) = vng.parent() {
        dirs.insert(0, d.to_path_buf());
    }
    let mut path = std::env::join_paths(&dirs).map_err(|e| format!("PATH: {e}"))?;
    if let Some(p) = std::env::var_os("PATH") {
        path.push(":");
        path.push(p);
    }
    let search: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if which("qemu-system-x86_64", &search).is_none() {
        return Err("qemu-system-x86_64 is not installed (Debian: qemu-system-x86)".into());
    }
    if which("virtiofsd", &search).is_none() && !Path::new("/usr/libexec/virtiofsd").exists() {
        return Err(
            "virtiofsd is not installed: the Rust one (cargo install virtiofsd) is needed, the \
             cloud kernels have no 9p; ci/provision.sh puts it in /opt/strata-vm/bin"
                .into(),
        );
    }
    if !Path::new("/lib/modules").is_dir() {
        return Err(
            "/lib/modules does not exist: the guest links the kernel's modules there \
                    (mkdir /lib/modules; ci/provision.sh does)"
                .into(),
        );
    }
    let udevd = [
        "/usr/lib/systemd/systemd-udevd",
        "/lib/systemd/systemd-udevd",
    ]
    .iter()
    .any(|p| Path::new(p).exists())
        || which(
            "udevd",
            &[
                PathBuf::from("/usr/local/bin"),
                PathBuf::from("/usr/bin"),
                PathBuf::from("/sbin"),
            ],
        )
        .is_some();
    if !udevd {
        return Err(
            "no udevd: virtme-ng's guest init needs /dev/virtio-ports links; install udev or the \
             shim ci/provision.sh puts in /usr/local/bin/udevd"
                .into(),
        );
    }
    Ok(Tools { vng, path })
}

fn which(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let from_env: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let dirs = if dirs.is_empty() { &from_env[..] } else { dirs };
    dirs.iter().map(|d| d.join(name)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| {
            m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
        })
    })
}

/// Quotes `s` for the guest's shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP only set a flag while a VM runs; restored on drop.
struct SignalGuard(Vec<(Signal, SigAction)>);

impl SignalGuard {
    fn install() -> Result<SignalGuard, String> {
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut old = Vec::new();
        for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            // SAFETY: the handler only stores to an atomic.
            let prev = unsafe { signal::sigaction(sig, &action) }
                .map_err(|e| format!("install a {sig} handler: {e}"))?;
            old.push((sig, prev));
        }
        Ok(SignalGuard(old))
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, prev) in &self.0 {
            // SAFETY: restores the action that was installed before.
            let _ = unsafe { signal::sigaction(*sig, prev) };
        }
    }
}

/// Whether /dev/kvm can be opened at all (it may still fail to run a kernel).
fn kvm_present() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The acceleration to try first: `STRATA_VM_ACCEL` (`kvm`, `emulated`, `auto`), else KVM
/// when /dev/kvm opens.
fn first_accel() -> Result<(Accel, bool), String> {
    match std::env::var("STRATA_VM_ACCEL")
        .unwrap_or_default()
        .as_str()
    {
        "" | "auto" => Ok(if kvm_present() {
            (Accel::Kvm, true)
        } else {
            (Accel::Emulated, false)
        }),
        "kvm" => Ok((Accel::Kvm, false)),
        "emulated" | "tcg" => Ok((Accel::Emulated, false)),
        other => Err(format!(
            "STRATA_VM_ACCEL={other}: expected kvm, emulated or auto"
        )),
    }
}

fn env_u64(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map_err(|_| format!("{name}={v}: expected a whole number")),
        _ => Ok(default),
    }
}

/// The strata subcommand in `args`, after global options (`--root DIR`, `--json`).
pub fn subcommand(args: &[String]) -> &str {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--root" {
            it.next();
        } else if !a.starts_with('-') {
            return a;
        }
    }
    ""
}

/// A tmpfs the guest mounts for its temporary files and stores (TMPDIR).
pub const GUEST_TMP: &str = "/run/strata-tmp";

/// Boots `image` and runs `strata ARGS` in the guest (`{OUT}` in an argument is replaced by
/// the shared directory). `progress` gets one line per step and each line the guest writes
/// on stderr.
pub fn run_strata(
    tools: &Tools,
    image: &Path,
    args: &[String],
    progress: &mut dyn FnMut(&str),
) -> Result<GuestRun, String> {
    let exe = std::env::current_exe().map_err(|e| format!("this strata binary: {e}"))?;
    // Rebuilt while running: the guest runs what is at the path now.
    let exe = match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(s) => PathBuf::from(s),
        None => exe,
    };
    let (mut accel, fallback) = first_accel()?;
    let timeout = Duration::from_secs(env_u64("STRATA_VM_TIMEOUT", 1800)?);
    let cpus = env_u64(
        "STRATA_VM_CPUS",
        std::thread::available_parallelism()
            .map_or(1, |n| n.get() as u64)
            .min(4),
    )?;
    let memory = std::env::var("STRATA_VM_MEMORY")
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "2G".into());
    let _signals = SignalGuard::install()?;
    loop {
        let out = tempfile::Builder::new()
            .prefix("strata-vm-")
            .tempdir()
            .map_err(|e| format!("a directory to share with the guest: {e}"))?;
        let o = out.path().display().to_string();
        let mut script = String::from(
            "for m in overlay loop btrfs xfs fuse; do modprobe -q $m 2>/dev/null; done; ",
        );
        // The guest's /tmp is virtme-ng's overlay over the host's /tmp, and an overlay is no
        // upper layer for another one (before 6.7): temporary stores go on a tmpfs of their own.
        script.push_str(&format!(
            "mkdir -p {GUEST_TMP} && mount -t tmpfs -o mode=1777 strata-tmp {GUEST_TMP} || \
             {{ echo 'strata: error: cannot mount a tmpfs on {GUEST_TMP} in the guest' >&2; exit 125; }}; \
             export TMPDIR={GUEST_TMP}; "
        ));
        script.push_str(&format!(": > {}/booted; ", shell_quote(&o)));
        script.push_str(&format!(
            "test -x {e} || {{ printf 'strata: error: %s is not visible in the guest (under a \
             directory the guest covers with a tmpfs, such as /tmp)\\n' {e} >&2; exit 125; }}; ",
            e = shell_quote(&exe.display().to_string())
        ));
        if let Ok(req) = std::env::var("STRATA_REQUIRE") {
            script.push_str(&format!("export STRATA_REQUIRE={}; ", shell_quote(&req)));
        }
        script.push_str("exec ");
        script.push_str(&shell_quote(&exe.display().to_string()));
        for a in args {
            script.push(' ');
            script.push_str(&shell_quote(&a.replace("{OUT}", &o)));
        }
        let mut cmd = Command::new(&tools.vng);
        cmd.env("PATH", &tools.path)
            .arg("--run")
            .arg(image)
            .args([
                "--user",
                "root",
                "--cpus",
                &cpus.to_string(),
                "--memory",
                &memory,
            ])
            .arg(format!("--rwdir={o}"))
            .args(["--cwd", "/"]);
        if accel == Accel::Emulated {
            cmd.arg("--disable-kvm");
        }
        cmd.arg("--exec")
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: only an async-signal-safe prctl between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        progress(&format!(
            "booting {} ({}, {cpus} CPUs, {memory})",
            image.display(),
            match accel {
                Accel::Kvm => "KVM",
                Accel::Emulated => "emulated: QEMU TCG",
            }
        ));
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{}: cannot run: {e}", tools.vng.display()))?;
        let pgid = Pid::from_raw(child.id() as i32);
        let mut stdout = child.stdout.take();
        let stdout_thread = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(o) = stdout.as_mut() {
                let _ = o.read_to_string(&mut s);
            }
            s
        });
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let stderr = child.stderr.take();
        let stderr_thread = std::thread::spawn(move || {
            if let Some(e) = stderr {
                for line in BufReader::new(e).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        });
        let booted_marker = out.path().join("booted");
        let mut booted: Option<f64> = None;
        let mut tail: Vec<String> = Vec::new();
        let mut stop: Option<String> = None;
        let status = loop {
            while let Ok(line) = rx.try_recv() {
                progress(&format!("guest: {line}"));
                tail.push(line);
                if tail.len() > 20 {
                    tail.remove(0);
                }
            }
            if booted.is_none() && booted_marker.exists() {
                let s = started.elapsed().as_secs_f64();
                booted = Some(s);
                progress(&format!(
                    "booted in {s:.1} s; running strata {}",
                    subcommand(args)
                ));
            }
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) => {}
                Err(e) => {
                    stop = Some(format!("waiting for vng: {e}"));
                }
            }
            if stop.is_none() && INTERRUPTED.load(Ordering::SeqCst) {
                stop = Some("interrupted (SIGINT, SIGTERM or SIGHUP): the VM was stopped".into());
            }
            if stop.is_none() && started.elapsed() > timeout {
                stop = Some(format!(
                    "timed out after {} s (STRATA_VM_TIMEOUT): the VM was stopped",
                    timeout.as_secs()
                ));
            }
            if let Some(why) = &stop {
                kill_group(pgid, &mut child);
                let _ = child.wait();
                stop_leftovers(out.path());
                let _ = stderr_thread.join();
                return Err(why.clone());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // vng has exited: whatever it started must be gone too.
        let _ = signal::killpg(pgid, Signal::SIGKILL);
        let _ = stderr_thread.join();
        while let Ok(line) = rx.try_recv() {
            progress(&format!("guest: {line}"));
            tail.push(line);
        }
        stop_leftovers(out.path());
        let stdout = stdout_thread.join().unwrap_or_default();
        let total = started.elapsed().as_secs_f64();
        let code = status.code().unwrap_or(128);
        let Some(boot_secs) = booted else {
            let why = tail
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .cloned()
                .unwrap_or_else(|| format!("vng exited with {status} and no message"));
            if accel == Accel::Kvm && fallback {
                progress(&format!(
                    "KVM cannot run this kernel here ({}); emulating it instead (slower)",
                    why.trim()
                ));
                accel = Accel::Emulated;
                continue;
            }
            return Err(format!("the VM did not boot: {}", why.trim()));
        };
        if code == 125 {
            return Err(tail
                .last()
                .cloned()
                .unwrap_or_else(|| "the guest command could not start".into()));
        }
        return Ok(GuestRun {
            stdout,
            status: code,
            accel,
            boot_secs,
            total_secs: total,
            out,
        });
    }
}

/// SIGTERM to the VM's process group, SIGKILL after 5 s.
fn kill_group(pgid: Pid, child: &mut std::process::Child) {
    let _ = signal::killpg(pgid, Signal::SIGTERM);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = signal::killpg(pgid, Signal::SIGKILL);
}

/// Kills, by pid, every process whose command line names `dir` (a qemu or virtiofsd that
/// left the process group); returns how many.
fn stop_leftovers(dir: &Path) -> usize {
    let needle = dir.as_os_str().as_encoded_bytes();
    let me = std::process::id();
    let mut n = 0;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid as u32 == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_for_the_guest_shell() {
        assert_eq!(shell_quote("/usr/bin/strata"), "/usr/bin/strata");
        assert_eq!(shell_quote("overlay,copy"), "overlay,copy");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm)"), "'$(rm)'");
    }
}

//! Running a container: layers union-mounted with a storage driver, the init layer, a child
//! cloned into new namespaces, its own /proc, /dev and /sys, a switched root, cgroup limits,
//! exec, wait, teardown, and optionally a commit of the writable layer. Every phase is timed.
//!
//! ```text
//! parent (strata)                          child
//! resolve layers, init layer (by digest)
//! mounts::mount: driver + writable layer
//! cgroup: create, limits
//! clone3 (+pid, +user) ------------------> die-with-parent; join cgroup; [wait for id maps]
//! [write uid/gid maps]                     unshare mount, uts, ipc, net (one span each)
//!                                          make / rprivate; hostname; lo up
//!                                          bind root on itself; /proc /dev /sys by fd
//!                                          pivot_root | move | chroot; verify / and cwd
//!                                          stdio; every fd > 2 close-on-exec
//! read report pipe until EOF <------------ report spans; execve (EOF = success)
//! wait; OOM and pids counters; commit; unmount, remove writable layer and cgroup
//! ```
//!
//! The caller's mount namespace receives the union mount (at a directory under the store
//! root, or `target`) for the life of the container; everything else lives in the child's
//! own mount namespace. `strata run` first moves itself into a private mount namespace, so
//! the host's mount table never changes at all (unless `--keep` asks for the mount to stay).

pub mod cgroup;
pub mod init_layer;
pub mod namespaces;
pub mod process;
pub mod rootfs_setup;
pub mod switch;
pub mod timing;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use cgroup::{Cgroup, Limits, Version as CgroupVersion};
pub use init_layer::InitLayer;
pub use namespaces::{Namespace, Namespaces};
pub use switch::Switch;
pub use timing::{Span, Timings};

use crate::commit::CommitOptions;
use crate::digest::Digest;
use crate::driver;
use crate::error::{Error, Result};
use crate::mounts::{self, Mount};
use crate::store::{self, MountRecord, Store};
use process::{ChildPlan, Report, Status, Step};
use rootfs_setup::SetupPlan;
use timing::now_ns;

/// The hostname a container with its own UTS namespace gets unless told otherwise.
pub const DEFAULT_HOSTNAME: &str = "strata";
/// PATH inside the container unless the environment sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run and how.
#[derive(Debug)]
pub struct ContainerSpec {
    /// Layers, lowest first: tar paths, directories (imported, which is slow: import once and
    /// pass the digest), digests in the store, or an image reference (NAME:TAG) standing for
    /// its layers.
    pub layers: Vec<String>,
    /// Storage driver (`overlay`, `copy`).
    pub driver: String,
    pub switch: Switch,
    /// Must include `mount`. Without root, `user` is added.
    pub namespaces: Namespaces,
    /// With the uts namespace; default [`DEFAULT_HOSTNAME`].
    pub hostname: Option<String>,
    pub limits: Limits,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// `NAME=value` pairs added to (or replacing) the defaults: PATH, HOME, HOSTNAME,
    /// container=strata and the caller's TERM.
    pub env: Vec<String>,
    /// Write the writable layer (init layer files left out) here after the command exits.
    pub commit: Option<PathBuf>,
    /// Leave the union mount and the writable layer in place (recorded in the store, for
    /// `strata commit` / `strata umount`).
    pub keep: bool,
    /// Where the root filesystem is mounted (an empty or missing directory); default: a
    /// fresh directory under `<store root>/containers/`.
    pub target: Option<PathBuf>,
    /// Add the init layer (default true). Without it the container gets no /etc/hosts,
    /// /etc/hostname or /etc/resolv.conf of its own, and an image whose /proc, /dev or /sys
    /// is a symlink is refused.
    pub init_layer: bool,
    /// Replacements for the container's stdin, stdout, stderr (None: inherit strata's).
    pub stdio: [Option<OwnedFd>; 3],
}

impl ContainerSpec {
    /// A spec with the defaults: overlay, pivot_root, mount+uts+ipc+pid+net, no limits.
    pub fn new(layers: Vec<String>, command: Vec<String>) -> ContainerSpec {
        ContainerSpec {
            layers,
            driver: "overlay".into(),
            switch: Switch::PivotRoot,
            namespaces: Namespaces::default_set(),
            hostname: None,
            limits: Limits::default(),
            command,
            env: Vec::new(),
            commit: None,
            keep: false,
            target: None,
            init_layer: true,
            stdio: [None, None, None],
        }
    }

    /// Checks everything that can be checked before anything is created.
    pub fn validate(&mut self) -> Result<()> {
        if self.layers.is_empty() {
            return Err(Error::Usage(
                "no layers: a container needs at least one layer holding its root filesystem"
                    .into(),
            ));
        }
        if self.command.is_empty() {
            return Err(Error::Usage(
                "no command: give LAYER... -- CMD ARG...".into(),
            ));
        }
        if !self.namespaces.contains(Namespace::Mount) {
            return Err(Error::Usage(format!(
                "--ns {}: the mount namespace is required (the container's /proc, /dev, /sys and root switch must not touch the host's mount table)",
                self.namespaces
            )));
        }
        if !crate::sandbox::is_root() {
            self.namespaces.insert(Namespace::User);
        }
        if let Some(h) = &self.hostname {
            if !self.namespaces.contains(Namespace::Uts) {
                return Err(Error::Usage(
                    "--hostname needs the uts namespace (add uts to --ns)".into(),
                ));
            }
            init_layer::check_hostname(h)?;
        }
        if let Some(m) = self.limits.memory
            && m < 1 << 20
        {
            return Err(Error::Usage(format!(
                "--memory {m}: below 1m no process can start"
            )));
        }
        if self.limits.pids == Some(0) {
            return Err(Error::Usage(
                "--pids 0: the command itself is a process".into(),
            ));
        }
        if let Some(c) = &self.commit {
            let dir = match c.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                return Err(Error::io(
                    "commit output directory",
                    dir,
                    io::Error::from(io::ErrorKind::NotFound),
                ));
            }
        }
        for e in &self.env {
            if !e.contains('=') {
                return Err(Error::Usage(format!(
                    "environment entry {e:?} is not NAME=value"
                )));
            }
        }
        Ok(())
    }

    fn hostname(&self) -> String {
        if self.namespaces.contains(Namespace::Uts) {
            self.hostname
                .clone()
                .unwrap_or_else(|| DEFAULT_HOSTNAME.to_string())
        } else {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| DEFAULT_HOSTNAME.to_string())
        }
    }

    /// The defaults (PATH, HOME, HOSTNAME, container=strata, the caller's TERM), with
    /// [`ContainerSpec::env`] replacing or adding entries.
    fn environment(&self, hostname: &str) -> Vec<String> {
        let mut env = vec![
            format!("PATH={DEFAULT_PATH}"),
            "HOME=/root".to_string(),
            format!("HOSTNAME={hostname}"),
            "container=strata".to_string(),
        ];
        if let Some(t) = std::env::var_os("TERM") {
            env.push(format!("TERM={}", t.to_string_lossy()));
        }
        for e in &self.env {
            let name = e.split('=').next().unwrap_or(e);
            match env.iter_mut().find(|x| x.split('=').next() == Some(name)) {
                Some(x) => x.clone_from(e),
                None => env.push(e.clone()),
            }
        }
        env
    }
}

/// How the command ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
    /// It could not be executed (127: not found, 126: found but not executable).
    ExecFailed { code: i32, message: String },
}

/// What a finished container reports.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub exit: Exit,
    /// The exit status a shell would give: the code, 128+N for signal N, 126/127 for exec.
    pub code: i32,
    /// The OOM killer ended a process of the container (memory limit).
    pub oom_killed: bool,
    /// Forks the pids limit refused.
    pub pids_limit_hits: u64,
    /// The root switch used (differs from the one asked for after a fallback).
    pub switch: Switch,
    /// Why the switch asked for was not used.
    pub fallback: Option<String>,
    pub cgroup: Option<CgroupVersion>,
    /// The digest of the committed layer.
    pub committed: Option<Digest>,
    /// The kept mount (with `keep`).
    pub kept: Option<MountRecord>,
    pub timings: Timings,
}

/// The directory the root filesystem is mounted on.
#[derive(Debug)]
struct Target {
    path: PathBuf,
    created: bool,
    keep: bool,
    /// The lock of a directory made under the store's `containers/`, held while the
    /// container lives: `strata gc` removes only unlocked ones.
    _lock: Option<crate::fsutil::Flock>,
}

impl Target {
    fn make(store: &Store, given: Option<&Path>, id: &str) -> Result<Target> {
        let (path, must_create) = match given {
            Some(p) if p.exists() => (p.to_path_buf(), false),
            Some(p) => (p.to_path_buf(), true),
            None => {
                let dir = store.root().join("containers");
                if !dir.is_dir() {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| Error::io("create container directory", &dir, e))?;
                }
                (dir.join(id), true)
            }
        };
        let mut lock = None;
        if must_create {
            // gc may remove the empty directory between the mkdir and the lock: make it again.
            for _ in 0..100 {
                std::fs::create_dir(&path)
                    .map_err(|e| Error::io("create container root", &path, e))?;
                match crate::fsutil::Flock::wait_existing(&path) {
                    Ok(l) if l.still_linked() => {
                        lock = Some(l);
                        break;
                    }
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => return Err(e),
                }
            }
        } else {
            rustix::fs::access(&path, rustix::fs::Access::WRITE_OK)
                .map_err(|e| Error::io("target is not writable", &path, crate::fsutil::ioe(e)))?;
        }
        Ok(Target {
            path,
            created: must_create,
            keep: false,
            _lock: lock,
        })
    }

    /// Leaves the directory in place (the kept mount is on it).
    fn leave(mut self) {
        self.keep = true;
    }

    fn remove(mut self) -> Result<()> {
        self.keep = true;
        if self.created {
            std::fs::remove_dir(&self.path)
                .map_err(|e| Error::io("remove container root", &self.path, e))?;
        }
        Ok(())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.created && !self.keep {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

/// A running container (its command has been exec'd, or failed to exec).
#[derive(Debug)]
pub struct Container {
    pid: libc::pid_t,
    reaped: bool,
    exec_failed: Option<(i32, String)>,
    switch_used: Switch,
    fallback: Option<String>,
    commit: Option<PathBuf>,
    keep: bool,
    exec_end: u64,
    timings: Timings,
    // Dropped in this order: unmount, then remove the mount point, then the cgroup.
    mount: Option<Mount>,
    target: Option<Target>,
    cgroup: Option<Cgroup>,
}

/// Starts a container: returns once its command has been exec'd (or failed to exec, which
/// [`Container::wait`] reports as exit 127 or 126). On error nothing is left mounted, no
/// cgroup stays, and no process runs.
pub fn start(store: &Store, mut spec: ContainerSpec) -> Result<Container> {
    let mut tm = Timings::start();
    spec.validate()?;
    rustix::fs::access(store.root(), rustix::fs::Access::WRITE_OK).map_err(|e| {
        Error::io(
            "--root is not writable",
            store.root(),
            crate::fsutil::ioe(e),
        )
    })?;
    let t = tm.origin;
    let driver = driver::by_name(&spec.driver)?;
    // Layer references: tars, directories, digests, or an image reference (its layers).
    let mut layers = store.resolve_stack(&spec.layers)?;
    let t = tm.since("layers", t);
    let hostname = spec.hostname();
    if spec.init_layer {
        let init = InitLayer::new(&hostname, spec.namespaces.contains(Namespace::Net));
        layers.push(init.stored(store)?);
    }
    let t = tm.since("init_layer", t);
    let id = store::unique_id();
    let target = Target::make(store, spec.target.as_deref(), &id)?;
    let mount = mounts::mount_as(store, driver, layers, &target.path, Some(&id))?;
    let t = tm.since("union_mount", t);
    let cgroup = if spec.limits.is_empty() {
        None
    } else {
        let layout = cgroup::detect(&spec.limits)?;
        let cg = Cgroup::create(&layout, &id, &spec.limits)?;
        tm.since("cgroup", t);
        Some(cg)
    };
    let mut c = Container {
        pid: 0,
        reaped: true,
        exec_failed: None,
        switch_used: spec.switch,
        fallback: None,
        commit: spec.commit.take(),
        keep: spec.keep,
        exec_end: 0,
        timings: tm,
        mount: Some(mount),
        target: Some(target),
        cgroup,
    };
    c.launch(&mut spec, &hostname)?;
    Ok(c)
}

/// [`start`], then [`Container::wait`].
pub fn run(store: &Store, spec: ContainerSpec) -> Result<Outcome> {
    start(store, spec)?.wait()
}

impl Container {
    /// The container's init process, as the caller's pid namespace numbers it.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Where the root filesystem is mounted (in the caller's mount namespace).
    pub fn target(&self) -> Option<&Path> {
        self.target.as_ref().map(|t| t.path.as_path())
    }

    /// Sends signal `sig` to the container's init process. An init of a pid namespace only
    /// receives the signals it handles, plus SIGKILL and SIGSTOP.
    pub fn kill(&self, sig: i32) -> Result<()> {
        if self.reaped {
            return Ok(());
        }
        // SAFETY: kill(2) of our own, not yet reaped, child.
        if unsafe { libc::kill(self.pid, sig) } < 0 {
            return Err(Error::io(
                "kill",
                format!("pid {}", self.pid),
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// The child's plan, and the PATH its command is searched in.
    fn plan(&self, spec: &mut ContainerSpec, hostname: &str) -> Result<(ChildPlan, String)> {
        let target = self
            .target
            .as_ref()
            .map(|t| t.path.clone())
            .unwrap_or_default();
        let ns = spec.namespaces;
        let env = spec.environment(hostname);
        let path_var = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        let to_c = |what: &str, v: &[String]| -> Result<Vec<CString>> {
            v.iter().map(|s| process::cstr(what, s)).collect()
        };
        let userns = ns.contains(Namespace::User);
        let plan = ChildPlan {
            clone_flags: ns.clone_flags(),
            unshare: ns.unshared_in_child(),
            user_maps: userns,
            hostname: if ns.contains(Namespace::Uts) {
                Some(process::cstr("hostname", hostname)?)
            } else {
                None
            },
            loopback_up: ns.contains(Namespace::Net),
            target: crate::fsutil::cstring(&target)?,
            setup: SetupPlan {
                bind_devices: userns,
                bind_sys: userns && !ns.contains(Namespace::Net),
            },
            switch: spec.switch,
            cgroup_procs: match &self.cgroup {
                Some(cg) => cg.procs_files()?,
                None => Vec::new(),
            },
            stdio: std::mem::take(&mut spec.stdio),
            argv: process::CArray::new(to_c("argument", &spec.command)?),
            envp: process::CArray::new(to_c("environment entry", &env)?),
            exec_paths: process::exec_candidates(&spec.command[0], &path_var)?,
        };
        Ok((plan, path_var))
    }

    /// Clones the child and waits until it has exec'd.
    fn launch(&mut self, spec: &mut ContainerSpec, hostname: &str) -> Result<()> {
        let (plan, path_var) = self.plan(spec, hostname)?;
        let target = self.target().map(Path::to_path_buf).unwrap_or_default();
        let t = now_ns();
        let child = process::spawn(&plan).map_err(|e| Error::io("clone", &target, e))?;
        self.pid = child.pid;
        self.reaped = false;
        let t_clone = now_ns();
        if let Some(sync) = &child.sync {
            let euid = rustix::process::geteuid().as_raw();
            let egid = rustix::process::getegid().as_raw();
            namespaces::write_id_maps(child.pid, euid, egid)?;
            rustix::io::write(sync.as_fd(), &[1])
                .map_err(|e| Error::io("release the child", &target, crate::fsutil::ioe(e)))?;
            self.timings.since("ns:user_maps", t_clone);
        }
        drop(child.sync);
        let report = process::read_reports(&child.reports)
            .map_err(|e| Error::io("read the container's report", &target, e))?;
        self.exec_end = now_ns();
        drop(plan);
        let Some(rep) = report else {
            let st = self.reap()?;
            return Err(Error::Usage(format!(
                "the container ended during setup, before exec ({}){}",
                describe(st),
                if self.cgroup.is_some() {
                    " (is the memory limit too small?)"
                } else {
                    ""
                }
            )));
        };
        // The clone ends where the child begins (with CLONE_VFORK this thread only resumes
        // at the child's exec).
        let started = if rep.started > 0 {
            rep.started
        } else {
            t_clone
        };
        self.timings.record("clone", "parent", t, started);
        if spec.namespaces.contains(Namespace::Pid) {
            // clone(2) itself creates the pid namespace: the same span.
            self.timings.record("ns:pid", "parent", t, started);
        }
        let mut last_child = started;
        for (name, a, b) in rep.spans() {
            self.timings.record(name, "child", a, b);
            last_child = last_child.max(b);
        }
        self.switch_used = Switch::from_u32(rep.switch_used).unwrap_or(spec.switch);
        if rep.pivot_errno != 0 {
            self.fallback = Some(format!(
                "pivot_root(\".\", \".\") failed with {} (the current root cannot be pivoted, e.g. an initramfs root or a chroot that is not a mount point): switched with MS_MOVE + chroot instead",
                strerror(rep.pivot_errno)
            ));
        }
        match rep.kind {
            process::READY => {
                self.timings
                    .record("exec", "child", last_child, self.exec_end);
                Ok(())
            }
            process::EXEC_FAILED => {
                let code = if rep.errno == libc::ENOENT || rep.errno == libc::ENOTDIR {
                    127
                } else {
                    126
                };
                let msg = exec_message(&spec.command[0], &path_var, rep.errno, &target);
                self.exec_failed = Some((code, msg));
                self.timings
                    .record("exec", "child", last_child, self.exec_end);
                Ok(())
            }
            _ => {
                let _ = self.reap();
                Err(setup_error(&rep, &target))
            }
        }
    }

    fn reap(&mut self) -> Result<Status> {
        let st = process::wait(self.pid)
            .map_err(|e| Error::io("wait", format!("pid {}", self.pid), e))?;
        self.reaped = true;
        Ok(st)
    }

    /// Waits for the command, then tears everything down (commit first, if asked).
    pub fn wait(mut self) -> Result<Outcome> {
        let status = self.reap()?;
        let t = self.timings.since("wait", self.exec_end);
        let exit = match (self.exec_failed.take(), status) {
            (Some((code, message)), _) => Exit::ExecFailed { code, message },
            (None, Status::Exited(c)) => Exit::Code(c),
            (None, Status::Signaled(s)) => Exit::Signal(s),
        };
        let code = match &exit {
            Exit::Code(c) => *c,
            Exit::Signal(s) => 128 + s,
            Exit::ExecFailed { code, .. } => *code,
        };
        let (oom_killed, pids_limit_hits, cgroup) = match &self.cgroup {
            Some(cg) => (cg.oom_kills()? > 0, cg.pids_limit_hits()?, Some(cg.version)),
            None => (false, 0, None),
        };
        let mut committed = None;
        let mut t = t;
        if let (Some(out), Some(m)) = (&self.commit, &self.mount) {
            let opts = CommitOptions {
                exclude: InitLayer::excluded(),
            };
            committed = Some(m.commit_file_with(&opts, out)?);
            t = self.timings.since("commit", t);
        }
        let mut kept = None;
        let mut first_err = None;
        if let Some(m) = self.mount.take() {
            if self.keep {
                kept = Some(m.keep());
            } else if let Err(e) = m.unmount() {
                first_err.get_or_insert(e);
            }
        }
        if let Some(tg) = self.target.take() {
            if self.keep {
                tg.leave();
            } else if let Err(e) = tg.remove() {
                first_err.get_or_insert(e);
            }
        }
        if let Some(cg) = self.cgroup.take()
            && let Err(e) = cg.remove()
        {
            first_err.get_or_insert(e);
        }
        self.timings.since("teardown", t);
        if let Some(e) = first_err {
            return Err(e);
        }
        let mut timings = std::mem::take(&mut self.timings);
        timings.finish();
        Ok(Outcome {
            exit,
            code,
            oom_killed,
            pids_limit_hits,
            switch: self.switch_used,
            fallback: self.fallback.take(),
            cgroup,
            committed,
            kept,
            timings,
        })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.kill(libc::SIGKILL);
            let _ = self.reap();
        }
    }
}

fn describe(st: Status) -> String {
    match st {
        Status::Exited(c) => format!("exit status {c}"),
        Status::Signaled(s) => format!("killed by signal {s}"),
    }
}

/// The text of an errno, without Rust's " (os error N)".
fn strerror(errno: i32) -> &'static str {
    nix::errno::Errno::from_raw(errno).desc()
}

fn exec_message(cmd: &str, path_var: &str, errno: i32, target: &Path) -> String {
    let e = strerror(errno);
    if !cmd.contains('/') && errno == libc::ENOENT {
        return format!("command {cmd:?} not found in the container (searched PATH {path_var})");
    }
    if errno == libc::ENOENT {
        // The file may exist and its ELF interpreter (or #! interpreter) be missing.
        let root = crate::fsutil::open_dir(target).ok();
        let exists = root.as_ref().is_some_and(|r| {
            crate::fsutil::openat2(
                r.as_fd(),
                cmd,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::ResolveFlags::IN_ROOT,
            )
            .is_ok()
        });
        if exists {
            return format!(
                "cannot execute {cmd}: {e} (the file exists: its ELF interpreter or #! interpreter is missing in the root filesystem)"
            );
        }
        return format!("command {cmd} not found in the container: {e}");
    }
    format!("cannot execute {cmd}: {e}")
}

fn setup_error(rep: &Report, target: &Path) -> Error {
    let e = io::Error::from_raw_os_error(rep.errno);
    let Some(step) = rep.failed_step() else {
        return Error::Usage(format!(
            "container setup failed at unknown step {}: {e}",
            rep.step
        ));
    };
    let at = target.join(step.path().unwrap_or(""));
    match step {
        Step::ResolveProc | Step::ResolveDev | Step::ResolveSys
            if matches!(rep.errno, libc::ELOOP | libc::ENOTDIR | libc::EXDEV) =>
        {
            Error::Usage(format!(
                "{}: /{} in the image is a symlink or not a plain directory; strata never mounts through a symlink ({e})",
                at.display(),
                step.path().unwrap_or("")
            ))
        }
        Step::Unshare => {
            let ns = Namespace::ALL
                .into_iter()
                .find(|n| n.flag() as u32 == rep.detail)
                .map_or("?", |n| n.name());
            Error::Usage(format!("unshare of the {ns} namespace failed: {e}"))
        }
        _ => Error::io(step.op(), at, e),
    }
}

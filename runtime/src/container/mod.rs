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
pub mod exec_config;
pub mod init_layer;
pub mod namespaces;
pub mod process;
pub mod rootfs_setup;
pub mod switch;
pub mod timing;
pub mod volumes;

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
use crate::image::oci::ExecConfig;
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
    /// The command and its arguments (empty: the image's Cmd, see [`exec_config::argv`]).
    pub command: Vec<String>,
    /// Replaces the image's Entrypoint (and drops its Cmd); `""`: no entrypoint.
    pub entrypoint: Option<String>,
    /// `NAME=value` pairs added to (or replacing) the defaults (PATH, HOSTNAME,
    /// container=strata, the caller's TERM) and the image's Env; HOME comes from the user's
    /// passwd entry unless set.
    pub env: Vec<String>,
    /// The working directory (absolute; created when missing) [default: the image's
    /// WorkingDir, else /].
    pub workdir: Option<String>,
    /// `uid[:gid]` or `name[:group]`, resolved in the image's /etc/passwd and /etc/group
    /// [default: the image's User, else root].
    pub user: Option<String>,
    /// Apply the config of the image the top layer reference names (default true).
    pub image_config: bool,
    /// Host paths and tmpfs mounted in the container (never committed).
    pub volumes: Vec<volumes::Volume>,
    /// Give the command a terminal of the container's own (`/dev/pts/N` in it) as stdin,
    /// stdout, stderr and controlling terminal, with this size (rows, columns; 0: the
    /// default). [`Container::console`] returns its master.
    pub tty: Option<(u16, u16)>,
    /// Write the writable layer (init layer files left out) here after the command exits.
    pub commit: Option<PathBuf>,
    /// After the command exits, commit the writable layer (init layer files left out) as a
    /// new image `NAME[:TAG]` on top of the image the container ran (the layers must be one
    /// image reference).
    pub commit_image: Option<String>,
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
            entrypoint: None,
            env: Vec::new(),
            workdir: None,
            user: None,
            image_config: true,
            volumes: Vec::new(),
            tty: None,
            commit: None,
            commit_image: None,
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
        if let Some(w) = &self.workdir
            && !w.starts_with('/')
        {
            return Err(Error::Usage(format!(
                "--workdir {w:?}: the working directory must be an absolute path"
            )));
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
        if let Some(r) = &self.commit_image {
            crate::image::reference::parse_name_tag(r)?;
        }
        for v in &mut self.volumes {
            v.check()?;
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

    /// The defaults (PATH, HOSTNAME, container=strata, the caller's TERM), then the image's
    /// Env, then [`ContainerSpec::env`], each replacing or adding entries; HOME last when
    /// none of them set it.
    fn environment(&self, hostname: &str, image: Option<&ExecConfig>, home: &str) -> Vec<String> {
        let mut env = vec![
            format!("PATH={DEFAULT_PATH}"),
            format!("HOSTNAME={hostname}"),
            "container=strata".to_string(),
        ];
        if let Some(t) = std::env::var_os("TERM") {
            env.push(format!("TERM={}", t.to_string_lossy()));
        }
        let image_env = image.and_then(|c| c.env.clone()).unwrap_or_default();
        let mut env = exec_config::merge_env(env, image_env.iter().chain(&self.env));
        if !exec_config::has_var(&env, "HOME") {
            env.push(format!("HOME={home}"));
        }
        env
    }
}

/// What the container's command is, resolved from the spec and the image config.
#[derive(Debug)]
struct ProcessSpec {
    argv: Vec<String>,
    env: Vec<String>,
    cwd: Option<String>,
    ids: Option<exec_config::Ids>,
    /// The volumes for the child, and the mount points made for them (never committed).
    volumes: Vec<process::ChildVolume>,
    volume_targets: Vec<String>,
    made: Vec<crate::model::RelPath>,
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
    /// The image `commit_image` made.
    pub committed_image: Option<crate::image::CommitReport>,
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
    /// (`NAME:TAG`, the store, the history's created_by).
    commit_image: Option<(String, Store, String)>,
    /// Never committed: the init layer's files and the volumes' mount points strata made.
    exclude: Vec<crate::model::RelPath>,
    /// The volumes' container paths, for error messages.
    volume_targets: Vec<String>,
    /// The volumes' mount points strata made: recorded in a kept mount's record, so that a
    /// later `strata commit` leaves them out too.
    made: Vec<crate::model::RelPath>,
    /// Our end of the socket the terminal's master arrives on.
    console_socket: Option<OwnedFd>,
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
    if spec.command.is_empty() && spec.entrypoint.is_none() {
        // Only an image brings a command: refuse before importing anything.
        let top = spec.layers.last().map(String::as_str).unwrap_or("");
        let top_is_image = !top.starts_with('/')
            && !top.starts_with('.')
            && crate::image::find(store, top).ok().flatten().is_some();
        if !top_is_image || !spec.image_config {
            return Err(Error::Usage(format!(
                "no command: give LAYER... -- CMD ARG... (the command comes after `--`; only an image reference brings a default command){}",
                if spec.layers.len() > 1 {
                    format!("; {top:?} was read as a layer")
                } else {
                    String::new()
                }
            )));
        }
    }
    // Layer references: tars, directories, digests, or an image reference (its layers).
    let (mut layers, image) = store.resolve_stack_image(&spec.layers)?;
    let image_config = image
        .as_ref()
        .filter(|_| spec.image_config)
        .and_then(|i| i.config.config.clone());
    let argv = exec_config::argv(
        image_config.as_ref(),
        spec.entrypoint.as_deref(),
        &spec.command,
    );
    if argv.is_empty() {
        return Err(Error::Usage(match &image {
            Some(i) => format!(
                "no command: the image {} has no Entrypoint or Cmd; give one after `--` (strata run IMAGE -- CMD ARG...)",
                i.record.reference()
            ),
            None => "no command: give LAYER... -- CMD ARG...".into(),
        }));
    }
    if spec.commit_image.is_some() && image.is_none() {
        return Err(Error::Usage(format!(
            "--commit-image: the layers {:?} do not end with an image (NAME:TAG or id) to commit on top of",
            spec.layers
        )));
    }
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
    let process = process_spec(&spec, image_config.as_ref(), argv, &hostname, &target.path)?;
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
        commit_image: spec.commit_image.take().map(|r| {
            (
                r,
                store.clone(),
                format!("strata run {}", process.argv.join(" ")),
            )
        }),
        exclude: InitLayer::excluded()
            .into_iter()
            .chain(process.made.iter().cloned())
            .collect(),
        volume_targets: process.volume_targets.clone(),
        made: process.made.clone(),
        console_socket: None,
        keep: spec.keep,
        exec_end: 0,
        timings: tm,
        mount: Some(mount),
        target: Some(target),
        cgroup,
    };
    c.launch(&mut spec, &process, &hostname)?;
    Ok(c)
}

/// A user namespace made by a caller who is not root: one id mapped, setgroups denied.
fn unprivileged_userns(spec: &ContainerSpec) -> bool {
    spec.namespaces.contains(Namespace::User) && !crate::sandbox::is_root()
}

/// The user (resolved in the mounted root filesystem's /etc/passwd and /etc/group), the
/// working directory (created when missing) and the environment.
fn process_spec(
    spec: &ContainerSpec,
    image: Option<&ExecConfig>,
    argv: Vec<String>,
    hostname: &str,
    root: &Path,
) -> Result<ProcessSpec> {
    let root_fd = crate::fsutil::open_dir(root)?;
    let user = spec
        .user
        .clone()
        .or_else(|| image.and_then(|c| c.user.clone()).filter(|u| !u.is_empty()));
    let ids = match &user {
        Some(u) => {
            let passwd = exec_config::read_in_root(root_fd.as_fd(), "etc/passwd", root)?;
            let group = exec_config::read_in_root(root_fd.as_fd(), "etc/group", root)?;
            let ids = exec_config::resolve_user(u, passwd.as_deref(), group.as_deref())?;
            if unprivileged_userns(spec) && (ids.uid != 0 || ids.gid != 0) {
                return Err(Error::Usage(format!(
                    "user {u:?} ({}:{}): without root, the container's user namespace maps only its root (run strata as root for other users)",
                    ids.uid, ids.gid
                )));
            }
            Some(ids)
        }
        None => None,
    };
    let cwd = spec
        .workdir
        .clone()
        .or_else(|| image.and_then(|c| c.working_dir.clone()))
        .filter(|w| !w.is_empty() && w != "/");
    if let Some(w) = &cwd {
        exec_config::make_dir_in_root(root_fd.as_fd(), w, root)?;
    }
    let home = ids.as_ref().map_or("/root", |i| i.home.as_str());
    let mut volumes = Vec::new();
    let mut made = Vec::new();
    for v in &spec.volumes {
        let is_dir = v.source().is_none_or(Path::is_dir);
        made.extend(if is_dir {
            exec_config::make_dir_in_root(root_fd.as_fd(), &v.target, root)?
        } else {
            exec_config::make_file_in_root(root_fd.as_fd(), &v.target, root)?
        });
        let mut tmpfs_opts = Vec::new();
        if let volumes::VolumeKind::Tmpfs { size, mode } = &v.kind {
            if let Some(s) = size {
                tmpfs_opts.push((c"size".to_owned(), process::cstr("tmpfs-size", s)?));
            }
            let m = format!("{:o}", mode.unwrap_or(0o755));
            tmpfs_opts.push((c"mode".to_owned(), process::cstr("tmpfs-mode", &m)?));
        }
        volumes.push(process::ChildVolume {
            source: match v.source() {
                Some(p) => Some(crate::fsutil::cstring(p)?),
                None => None,
            },
            target: process::cstr("volume target", v.target.trim_start_matches('/'))?,
            is_dir,
            tmpfs_opts,
            readonly: v.readonly,
        });
    }
    Ok(ProcessSpec {
        env: spec.environment(hostname, image, home),
        argv,
        cwd,
        ids,
        volumes,
        volume_targets: spec.volumes.iter().map(|v| v.target.clone()).collect(),
        made,
    })
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

    /// The master of the container's terminal (with [`ContainerSpec::tty`]; once): what
    /// the command writes to its stdout and stderr is read here, its stdin written here.
    pub fn console(&mut self) -> Result<Option<OwnedFd>> {
        let Some(sock) = self.console_socket.take() else {
            return Ok(None);
        };
        process::recv_fd(&sock)
            .map_err(|e| Error::io("receive the container's terminal", "console socket", e))
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
    fn plan(
        &mut self,
        spec: &mut ContainerSpec,
        process: &ProcessSpec,
        hostname: &str,
    ) -> Result<(ChildPlan, String)> {
        let target = self
            .target
            .as_ref()
            .map(|t| t.path.clone())
            .unwrap_or_default();
        let ns = spec.namespaces;
        let env = &process.env;
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
            argv: process::CArray::new(to_c("argument", &process.argv)?),
            envp: process::CArray::new(to_c("environment entry", env)?),
            exec_paths: process::exec_candidates(&process.argv[0], &path_var)?,
            cwd: match &process.cwd {
                Some(w) => Some(process::cstr("working directory", w)?),
                None => None,
            },
            volumes: process.volumes.clone(),
            console: match spec.tty {
                Some((rows, cols)) => {
                    let (ours, theirs) = process::socketpair()
                        .map_err(|e| Error::io("socketpair for the terminal", &target, e))?;
                    self.console_socket = Some(ours);
                    Some(process::ChildConsole {
                        socket: theirs,
                        rows,
                        cols,
                        uid: process.ids.as_ref().map_or(0, |i| i.uid),
                    })
                }
                None => None,
            },
            ids: process.ids.as_ref().map(|i| process::ChildIds {
                uid: i.uid,
                gid: i.gid,
                groups: i.groups.clone(),
                set_groups: !unprivileged_userns(spec),
            }),
        };
        Ok((plan, path_var))
    }

    /// Clones the child and waits until it has exec'd.
    fn launch(
        &mut self,
        spec: &mut ContainerSpec,
        process: &ProcessSpec,
        hostname: &str,
    ) -> Result<()> {
        let (plan, path_var) = self.plan(spec, process, hostname)?;
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
                let msg = exec_message(&process.argv[0], &path_var, rep.errno, &target);
                self.exec_failed = Some((code, msg));
                self.timings
                    .record("exec", "child", last_child, self.exec_end);
                Ok(())
            }
            _ => {
                let _ = self.reap();
                Err(setup_error(&rep, &target, &self.volume_targets))
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
                exclude: self.exclude.clone(),
            };
            committed = Some(m.commit_file_with(&opts, out)?);
            t = self.timings.since("commit", t);
        }
        let mut committed_image = None;
        if let (Some((r, store, created_by)), Some(m)) = (&self.commit_image, &self.mount) {
            committed_image = Some(crate::image::commit::commit_image_as(
                store,
                m,
                r,
                created_by,
                &self.exclude,
            )?);
            t = self.timings.since("commit_image", t);
        }
        let mut kept = None;
        let mut first_err = None;
        if let Some(m) = self.mount.take() {
            if self.keep {
                let (rec, written) = m.keep_excluding(std::mem::take(&mut self.made));
                if let Err(e) = written {
                    first_err.get_or_insert(e);
                }
                kept = Some(rec);
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
            committed_image,
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

fn setup_error(rep: &Report, target: &Path, volumes: &[String]) -> Error {
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
        Step::ResolveVolume | Step::MountVolume => {
            let v = volumes.get(rep.detail as usize).map_or("?", String::as_str);
            Error::io(
                step.op(),
                format!(
                    "{} (volume {v})",
                    target.join(v.trim_start_matches('/')).display()
                ),
                e,
            )
        }
        _ => Error::io(step.op(), at, e),
    }
}

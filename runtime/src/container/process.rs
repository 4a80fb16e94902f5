//! The container process: clone, the child's setup up to exec, the report pipe, wait.
//!
//! The parent prepares everything the child needs (C strings, fds, flags) in a [`ChildPlan`];
//! the child, a fork-like clone of a possibly multi-threaded process, then only makes system
//! calls: no allocation, no locks, no formatting. It reports over a close-on-exec pipe with
//! fixed-size binary [`Report`]s: its timing spans just before exec, or the step and errno
//! that failed. End of file on the pipe without a failure report means exec succeeded.
//!
//! Exec failures end the child with 127 (126 when the file exists but cannot be executed),
//! as shells do; any other setup failure ends it with 1 and becomes an error of `start`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::c_char;

use super::namespaces::Namespace;
use super::rootfs_setup::{self, SetupPlan};
use super::switch::{self, Switch};
use super::timing::now_ns;

/// Every step the child takes, reported by number when it fails.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    DeathSignal = 1,
    CgroupAttach,
    UserMapWait,
    Unshare,
    Propagation,
    RootMountShared,
    Hostname,
    Loopback,
    BindRoot,
    OpenRoot,
    ResolveProc,
    MountProc,
    ResolveDev,
    MountDev,
    Devices,
    MountDevpts,
    MountShm,
    ResolveSys,
    MountSys,
    EnterRoot,
    PivotRoot,
    DetachOldRoot,
    HideHostProc,
    HideHostSys,
    MoveRoot,
    Chroot,
    ChdirRoot,
    VerifyRoot,
    Stdio,
    CloseFds,
    ResolveVolume,
    MountVolume,
    Console,
    Chdir,
    SetGroups,
    SetGid,
    SetUid,
    Exec,
}

impl Step {
    const LAST: u32 = Step::Exec as u32;

    fn from_u32(n: u32) -> Option<Step> {
        if (1..=Self::LAST).contains(&n) {
            // SAFETY: Step is repr(u32) with contiguous discriminants 1..=LAST.
            Some(unsafe { std::mem::transmute::<u32, Step>(n) })
        } else {
            None
        }
    }

    /// What the step does, for error messages.
    pub fn op(self) -> &'static str {
        match self {
            Step::DeathSignal => "set the parent-death signal",
            Step::CgroupAttach => "join the cgroup (write 0 to cgroup.procs)",
            Step::UserMapWait => "wait for the user namespace id maps",
            Step::Unshare => "unshare the namespace",
            Step::Propagation => "make / rprivate in the container's mount namespace",
            Step::RootMountShared => {
                "check mount propagation: the current root is not a mount point, so it cannot be made private; its mount or the target's must not be shared (bind the root directory on itself first)"
            }
            Step::Hostname => "set the hostname",
            Step::Loopback => "bring the loopback interface up",
            Step::BindRoot => "bind the root filesystem on itself",
            Step::OpenRoot => "open the root filesystem",
            Step::ResolveProc => "resolve /proc inside the root (no symlinks)",
            Step::MountProc => "mount proc on /proc",
            Step::ResolveDev => "resolve /dev inside the root (no symlinks)",
            Step::MountDev => "mount tmpfs on /dev",
            Step::Devices => "create the device nodes in /dev",
            Step::MountDevpts => "mount devpts on /dev/pts",
            Step::MountShm => "create /dev/shm",
            Step::ResolveSys => "resolve /sys inside the root (no symlinks)",
            Step::MountSys => "mount sysfs read-only on /sys",
            Step::EnterRoot => "enter the root filesystem (fchdir)",
            Step::PivotRoot => "pivot_root(\".\", \".\")",
            Step::DetachOldRoot => "detach the old root (umount2 MNT_DETACH)",
            Step::HideHostProc => "hide the host /proc",
            Step::HideHostSys => "hide the host /sys",
            Step::MoveRoot => "move the root filesystem onto / (MS_MOVE)",
            Step::Chroot => "chroot(\".\")",
            Step::ChdirRoot => "chdir(\"/\")",
            Step::VerifyRoot => "verify that / and the working directory are the new root",
            Step::Stdio => "set up stdin, stdout and stderr",
            Step::CloseFds => "mark every fd above 2 close-on-exec",
            Step::ResolveVolume => "open a volume's mount point inside the root",
            Step::MountVolume => "mount a volume",
            Step::Console => {
                "make the container's terminal (open /dev/pts/ptmx, the peer, setsid, TIOCSCTTY, send the master)"
            }
            Step::Chdir => "change to the working directory",
            Step::SetGroups => "set the supplementary groups (setgroups)",
            Step::SetGid => "set the group id (setgid)",
            Step::SetUid => "set the user id (setuid)",
            Step::Exec => "execve",
        }
    }

    /// The path inside the root the step concerns, if any.
    pub fn path(self) -> Option<&'static str> {
        match self {
            Step::ResolveProc | Step::MountProc => Some("proc"),
            Step::ResolveDev | Step::MountDev | Step::Devices => Some("dev"),
            Step::MountDevpts => Some("dev/pts"),
            Step::MountShm => Some("dev/shm"),
            Step::ResolveSys | Step::MountSys => Some("sys"),
            _ => None,
        }
    }
}

/// The child's timing spans, by number.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildSpan {
    CgroupAttach = 1,
    UserMap,
    NsMount,
    NsUts,
    NsIpc,
    NsNet,
    Propagation,
    Hostname,
    Loopback,
    BindRoot,
    MountProc,
    MountDev,
    MountSys,
    Mounts,
    RootSwitch,
    PreExec,
}

impl ChildSpan {
    const LAST: u32 = ChildSpan::PreExec as u32;

    fn from_u32(n: u32) -> Option<ChildSpan> {
        if (1..=Self::LAST).contains(&n) {
            // SAFETY: ChildSpan is repr(u32) with contiguous discriminants 1..=LAST.
            Some(unsafe { std::mem::transmute::<u32, ChildSpan>(n) })
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ChildSpan::CgroupAttach => "cgroup_attach",
            ChildSpan::UserMap => "ns:user_map",
            ChildSpan::NsMount => "ns:mount",
            ChildSpan::NsUts => "ns:uts",
            ChildSpan::NsIpc => "ns:ipc",
            ChildSpan::NsNet => "ns:net",
            ChildSpan::Propagation => "propagation",
            ChildSpan::Hostname => "hostname",
            ChildSpan::Loopback => "loopback_up",
            ChildSpan::BindRoot => "bind_root",
            ChildSpan::MountProc => "mount:proc",
            ChildSpan::MountDev => "mount:dev",
            ChildSpan::MountSys => "mount:sys",
            ChildSpan::Mounts => "mounts",
            ChildSpan::RootSwitch => "root_switch",
            ChildSpan::PreExec => "pre_exec",
        }
    }

    fn of_namespace(n: Namespace) -> ChildSpan {
        match n {
            Namespace::Mount => ChildSpan::NsMount,
            Namespace::Uts => ChildSpan::NsUts,
            Namespace::Ipc => ChildSpan::NsIpc,
            _ => ChildSpan::NsNet,
        }
    }
}

const MAX_SPANS: usize = 24;

// A report is one write(2) of at most PIPE_BUF bytes: atomic, never interleaved or split.
const _: () = assert!(Report::SIZE <= libc::PIPE_BUF);

/// Report kinds.
pub const READY: u32 = 1;
pub const FAILED: u32 = 2;
pub const EXEC_FAILED: u32 = 3;

/// What the child tells the parent (fixed size, well under PIPE_BUF: one atomic write).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Report {
    pub kind: u32,
    pub step: u32,
    pub errno: i32,
    /// Non-zero: pivot_root failed with this errno and the root was switched with MS_MOVE.
    pub pivot_errno: i32,
    /// The switch used (`Switch as u32`).
    pub switch_used: u32,
    /// EXEC_FAILED: which of the command's candidate paths gave `errno`; a failed unshare:
    /// the CLONE_NEW* flag.
    pub detail: u32,
    pub nspans: u32,
    /// When the child began (CLOCK_MONOTONIC ns): the end of the clone.
    pub started: u64,
    /// (span number, start, end), CLOCK_MONOTONIC ns.
    pub spans: [[u64; 3]; MAX_SPANS],
}

impl Report {
    fn new() -> Report {
        Report {
            kind: 0,
            step: 0,
            errno: 0,
            pivot_errno: 0,
            switch_used: 0,
            detail: 0,
            nspans: 0,
            started: 0,
            spans: [[0; 3]; MAX_SPANS],
        }
    }

    /// The failed step, if any.
    pub fn failed_step(&self) -> Option<Step> {
        Step::from_u32(self.step)
    }

    /// The spans, named.
    pub fn spans(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        self.spans[..(self.nspans as usize).min(MAX_SPANS)]
            .iter()
            .filter_map(|s| ChildSpan::from_u32(s[0] as u32).map(|n| (n.name(), s[1], s[2])))
    }

    const SIZE: usize = std::mem::size_of::<Report>();

    fn from_bytes(b: &[u8; Report::SIZE]) -> Report {
        // SAFETY: Report is repr(C), made only of integers: every bit pattern is valid.
        unsafe { std::ptr::read_unaligned(b.as_ptr() as *const Report) }
    }
}

/// A NULL-terminated array of C strings for execve.
pub struct CArray {
    _strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CArray {
    pub fn new(strings: Vec<CString>) -> CArray {
        let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CArray {
            _strings: strings,
            ptrs,
        }
    }

    fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }
}

/// Everything the child needs, prepared by the parent.
pub struct ChildPlan {
    /// Namespaces clone(2) creates (pid, user).
    pub clone_flags: u64,
    /// Namespaces the child unshares, in order.
    pub unshare: Vec<Namespace>,
    /// The child waits for the parent to write its user namespace's id maps.
    pub user_maps: bool,
    pub hostname: Option<CString>,
    /// Bring `lo` up (a new network namespace starts with it down).
    pub loopback_up: bool,
    /// The merged root filesystem (absolute).
    pub target: CString,
    pub setup: SetupPlan,
    pub switch: Switch,
    /// `cgroup.procs` of each cgroup to join.
    pub cgroup_procs: Vec<OwnedFd>,
    /// Replacements for fds 0, 1, 2 (None: inherit).
    pub stdio: [Option<OwnedFd>; 3],
    pub argv: CArray,
    pub envp: CArray,
    /// Paths to try for the command, in order (one when it names a path; PATH search else).
    pub exec_paths: Vec<CString>,
    /// Volumes, mounted after /sys (`Report::detail` names the one that failed).
    pub volumes: Vec<ChildVolume>,
    /// A terminal for the command: made on the container's own devpts, its master sent over
    /// this socket, its peer the command's stdin, stdout, stderr and controlling terminal.
    pub console: Option<ChildConsole>,
    /// The working directory, entered after the root switch (None: /).
    pub cwd: Option<CString>,
    /// The user and groups the command runs as (None: stay root).
    pub ids: Option<ChildIds>,
}

/// The child's terminal.
pub struct ChildConsole {
    /// The child's end of the socket the master goes back over.
    pub socket: OwnedFd,
    /// Rows and columns (0: leave the kernel's default).
    pub rows: u16,
    pub cols: u16,
    /// Owner of the terminal (the command's user).
    pub uid: u32,
}

/// A volume as the child mounts it.
#[derive(Clone, Debug)]
pub struct ChildVolume {
    /// The host path of a bind (None: a tmpfs).
    pub source: Option<CString>,
    /// The mount point, relative to the root.
    pub target: CString,
    pub is_dir: bool,
    /// tmpfs options (size, mode).
    pub tmpfs_opts: Vec<(CString, CString)>,
    pub readonly: bool,
}

/// Credentials the child takes just before exec.
pub struct ChildIds {
    pub uid: u32,
    pub gid: u32,
    /// setgroups(2) list.
    pub groups: Vec<libc::gid_t>,
    /// False in a user namespace whose setgroups is denied (the group list stays empty).
    pub set_groups: bool,
}

/// A failed child step: which, and the errno.
pub type Fail = (Step, i32);

pub fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Checks a libc return value.
pub fn ck(step: Step, r: libc::c_int) -> Result<libc::c_int, Fail> {
    if r < 0 { Err((step, errno())) } else { Ok(r) }
}

/// Maps a rustix error.
pub fn rx<T>(step: Step, r: rustix::io::Result<T>) -> Result<T, Fail> {
    r.map_err(|e| (step, e.raw_os_error()))
}

/// The child's state: its report under construction.
pub struct Child<'a> {
    pub plan: &'a ChildPlan,
    pub report: Report,
    report_fd: RawFd,
    /// "/" was made rprivate (false: the root is not a mount point; see
    /// [`make_root_private`]).
    pub root_private: bool,
}

impl Child<'_> {
    /// Records span `s` from `start` to now; returns now.
    pub fn span(&mut self, s: ChildSpan, start: u64) -> u64 {
        let now = now_ns();
        let i = self.report.nspans as usize;
        if i < MAX_SPANS {
            self.report.spans[i] = [s as u64, start, now];
            self.report.nspans += 1;
        }
        now
    }

    fn send(&self) {
        let r = &self.report as *const Report as *const libc::c_void;
        // SAFETY: writes the bytes of a plain repr(C) value to our own pipe.
        unsafe { libc::write(self.report_fd, r, Report::SIZE) };
    }

    fn setup(&mut self, sync_fd: Option<RawFd>) -> Result<(), Fail> {
        let plan = self.plan;
        // Die with strata: a container must never outlive the process that tears it down.
        // SAFETY: prctl with integer arguments.
        ck(Step::DeathSignal, unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        })?;
        let mut t = now_ns();
        if !plan.cgroup_procs.is_empty() {
            for fd in &plan.cgroup_procs {
                // "0" is the writing process: join before anything is charged or forked.
                // SAFETY: write of a static one-byte buffer to an fd the plan owns.
                let n = unsafe { libc::write(fd.as_raw_fd(), c"0".as_ptr().cast(), 1) };
                if n < 0 {
                    return Err((Step::CgroupAttach, errno()));
                }
            }
            t = self.span(ChildSpan::CgroupAttach, t);
        }
        if let Some(fd) = sync_fd {
            let mut b = 0u8;
            // The parent writes our uid/gid maps, then one byte (or closes on failure).
            // SAFETY: one-byte read into a local.
            let n = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
            if n != 1 {
                return Err((Step::UserMapWait, if n < 0 { errno() } else { libc::EPIPE }));
            }
            t = self.span(ChildSpan::UserMap, t);
        }
        for ns in &plan.unshare {
            // One namespace per call, so each gets its own span.
            // SAFETY: unshare with a CLONE_NEW* flag.
            if unsafe { libc::unshare(ns.flag()) } < 0 {
                self.report.detail = ns.flag() as u32;
                return Err((Step::Unshare, errno()));
            }
            t = self.span(ChildSpan::of_namespace(*ns), t);
        }
        self.root_private = make_root_private(&plan.target)?;
        t = self.span(ChildSpan::Propagation, t);
        if let Some(h) = &plan.hostname {
            // SAFETY: h is a valid buffer of the given length.
            ck(Step::Hostname, unsafe {
                libc::sethostname(h.as_ptr(), h.as_bytes().len())
            })?;
            t = self.span(ChildSpan::Hostname, t);
        }
        if plan.loopback_up {
            loopback_up()?;
            t = self.span(ChildSpan::Loopback, t);
        }
        let root = rootfs_setup::prepare(self, t)?;
        let t = now_ns();
        let done = switch::switch_root(plan.switch, &root)?;
        self.report.switch_used = done.used as u32;
        self.report.pivot_errno = done.pivot_errno;
        let t = self.span(ChildSpan::RootSwitch, t);
        switch::verify_root(&root)?;
        drop(root);
        if let Some(cwd) = &plan.cwd {
            // SAFETY: chdir with a valid C string.
            ck(Step::Chdir, unsafe { libc::chdir(cwd.as_ptr()) })?;
        }
        self.stdio()?;
        if let Some(con) = &plan.console {
            console(con)?;
        }
        close_fds_on_exec()?;
        if let Some(ids) = &plan.ids {
            set_ids(ids)?;
        }
        self.span(ChildSpan::PreExec, t);
        Ok(())
    }

    fn stdio(&self) -> Result<(), Fail> {
        // First move every replacement above 2, so one cannot clobber another.
        let mut high = [-1; 3];
        for (i, fd) in self.plan.stdio.iter().enumerate() {
            if let Some(fd) = fd {
                // SAFETY: fcntl on an fd the plan owns.
                high[i] = ck(Step::Stdio, unsafe {
                    libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3)
                })?;
            }
        }
        for (i, fd) in high.iter().enumerate() {
            if *fd >= 0 {
                // dup2 clears close-on-exec on the new fd 0, 1 or 2.
                // SAFETY: dup2 of valid fds.
                ck(Step::Stdio, unsafe { libc::dup2(*fd, i as libc::c_int) })?;
            }
        }
        Ok(())
    }

    /// Execs the command (trying each candidate path); returns only on failure.
    fn exec(&mut self) -> Fail {
        let plan = self.plan;
        let mut best = (0u32, libc::ENOENT);
        for (i, path) in plan.exec_paths.iter().enumerate() {
            // SAFETY: NULL-terminated arrays of valid C strings, prepared by the parent.
            unsafe { libc::execve(path.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr()) };
            let e = errno();
            // Like execvp: a file that exists but cannot run beats "not found".
            if e != libc::ENOENT && e != libc::ENOTDIR && best.1 == libc::ENOENT {
                best = (i as u32, e);
            }
        }
        self.report.detail = best.0;
        (Step::Exec, best.1)
    }
}

/// The child process: never returns.
fn child_main(plan: &ChildPlan, report_fd: RawFd, sync_fd: Option<RawFd>) -> ! {
    let mut c = Child {
        plan,
        report: Report::new(),
        report_fd,
        root_private: true,
    };
    c.report.started = now_ns();
    // Device nodes and directories get exactly the modes asked for.
    // SAFETY: umask has no failure mode.
    let old_umask = unsafe { libc::umask(0) };
    match c.setup(sync_fd) {
        Ok(()) => {
            // SAFETY: restores the caller's umask and default signal handling for exec.
            unsafe {
                libc::umask(old_umask);
                reset_signals();
            }
            c.report.kind = READY;
            c.send();
            let (step, e) = c.exec();
            c.report.kind = EXEC_FAILED;
            c.report.step = step as u32;
            c.report.errno = e;
            c.send();
            let code = if e == libc::ENOENT || e == libc::ENOTDIR {
                127
            } else {
                126
            };
            // SAFETY: _exit skips atexit handlers and destructors of the parent's copy.
            unsafe { libc::_exit(code) }
        }
        Err((step, e)) => {
            c.report.kind = FAILED;
            c.report.step = step as u32;
            c.report.errno = e;
            c.send();
            // SAFETY: as above.
            unsafe { libc::_exit(1) }
        }
    }
}

/// Opens a terminal on the container's devpts (after the root switch, so it is the
/// container's /dev/pts/N), makes its peer fds 0-2 and the controlling terminal of a new
/// session, and sends the master to the parent (SCM_RIGHTS).
fn console(con: &ChildConsole) -> Result<(), Fail> {
    let f = |r: libc::c_int| ck(Step::Console, r);
    // SAFETY: open/ioctl/sendmsg/dup2/close on fds this function owns, with stack buffers
    // of the sizes the kernel expects.
    unsafe {
        let master = f(libc::open(
            c"/dev/pts/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?;
        let unlock: libc::c_int = 0;
        f(libc::ioctl(master, libc::TIOCSPTLCK, &unlock))?;
        let peer = f(libc::ioctl(
            master,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY,
        ))?;
        if con.rows > 0 && con.cols > 0 {
            let ws = libc::winsize {
                ws_row: con.rows,
                ws_col: con.cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            f(libc::ioctl(peer, libc::TIOCSWINSZ, &ws))?;
        }
        if con.uid != 0 {
            f(libc::fchown(peer, con.uid, u32::MAX))?;
        }
        // One byte of data carries the fd.
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cbuf = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), master);
        if libc::sendmsg(con.socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err((Step::Console, errno()));
        }
        libc::close(master);
        f(libc::setsid())?;
        f(libc::ioctl(peer, libc::TIOCSCTTY, 0))?;
        for i in 0..3 {
            f(libc::dup2(peer, i))?;
        }
        if peer > 2 {
            libc::close(peer);
        }
    }
    Ok(())
}

/// setgroups, setgid, setuid as raw system calls: the libc wrappers make every thread of
/// the process change credentials, and this child may share the parent's memory (vfork).
/// A credential change clears the parent-death signal, so it is set again.
fn set_ids(ids: &ChildIds) -> Result<(), Fail> {
    // SAFETY: raw credential system calls with a valid group array; prctl with integers.
    unsafe {
        if ids.set_groups
            && libc::syscall(libc::SYS_setgroups, ids.groups.len(), ids.groups.as_ptr()) < 0
        {
            return Err((Step::SetGroups, errno()));
        }
        if libc::syscall(libc::SYS_setresgid, ids.gid, ids.gid, ids.gid) < 0 {
            return Err((Step::SetGid, errno()));
        }
        if libc::syscall(libc::SYS_setresuid, ids.uid, ids.uid, ids.uid) < 0 {
            return Err((Step::SetUid, errno()));
        }
        ck(
            Step::SetUid,
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ),
        )?;
    }
    Ok(())
}

/// Before any mount: nothing done from here on may propagate back to the host. Makes /
/// rprivate and returns true. When / is not a mount point (a chroot into a plain directory)
/// its mount cannot be named, so it cannot be changed: then the mounts holding / and the
/// target must already propagate nothing out (private or slave, checked with statmount), and
/// the caller makes its bind of the target rprivate as soon as it exists; returns false.
fn make_root_private(target: &CStr) -> Result<bool, Fail> {
    // SAFETY: mount(2) with NULL source/fstype/data changes propagation only.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r == 0 {
        return Ok(true);
    }
    if errno() != libc::EINVAL {
        return Err((Step::Propagation, errno()));
    }
    for p in [c"/", target] {
        if mount_is_shared(p).map_err(|e| (Step::RootMountShared, e))? {
            return Err((Step::RootMountShared, libc::EINVAL));
        }
    }
    Ok(false)
}

/// True when the mount holding `path` is shared (statx STATX_MNT_ID_UNIQUE, then
/// statmount STATMOUNT_MNT_BASIC; Linux 6.8).
fn mount_is_shared(path: &CStr) -> Result<bool, i32> {
    const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
    const STATMOUNT_MNT_BASIC: u64 = 2;
    const SYS_STATMOUNT: libc::c_long = 457;
    /// struct statmount: offset of mnt_propagation.
    const PROPAGATION_AT: usize = 72;
    #[repr(C)]
    struct MntIdReq {
        size: u32,
        spare: u32,
        mnt_id: u64,
        param: u64,
    }
    // SAFETY: statx and statmount with valid, correctly sized buffers.
    unsafe {
        let mut stx: libc::statx = std::mem::zeroed();
        if libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            0,
            STATX_MNT_ID_UNIQUE,
            &mut stx,
        ) < 0
        {
            return Err(errno());
        }
        if stx.stx_mask & STATX_MNT_ID_UNIQUE == 0 {
            return Err(libc::ENOSYS);
        }
        let req = MntIdReq {
            size: std::mem::size_of::<MntIdReq>() as u32,
            spare: 0,
            mnt_id: stx.stx_mnt_id,
            param: STATMOUNT_MNT_BASIC,
        };
        let mut buf = [0u64; 128];
        let r = libc::syscall(
            SYS_STATMOUNT,
            &req as *const MntIdReq,
            buf.as_mut_ptr(),
            std::mem::size_of_val(&buf),
            0u32,
        );
        if r < 0 {
            return Err(errno());
        }
        let propagation = buf[PROPAGATION_AT / 8];
        // MS_SHARED is a c_ulong: u64 here, u32 on 32-bit targets.
        #[allow(clippy::unnecessary_cast)]
        let shared = libc::MS_SHARED as u64;
        Ok(propagation & shared != 0)
    }
}

/// Restores default dispositions the parent may have changed (Rust ignores SIGPIPE) and an
/// empty signal mask, as a freshly exec'd program expects.
///
/// # Safety
/// Only in the child, just before exec.
unsafe fn reset_signals() {
    // SAFETY: signal and sigprocmask with valid arguments.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// No fd above 2 may reach the container: mark them all close-on-exec (the report pipe
/// closes at exec too, which is how the parent learns that exec succeeded).
fn close_fds_on_exec() -> Result<(), Fail> {
    // SAFETY: close_range with the CLOEXEC flag only changes fd flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    if errno() != libc::ENOSYS && errno() != libc::EINVAL {
        return Err((Step::CloseFds, errno()));
    }
    // Before Linux 5.11: one fcntl per possible fd.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    for fd in 3..(lim.rlim_cur.min(1 << 20) as libc::c_int) {
        // SAFETY: fcntl on a possibly closed fd fails harmlessly with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// ioctl(SIOCSIFFLAGS) IFF_UP on `lo`.
fn loopback_up() -> Result<(), Fail> {
    // SAFETY: a datagram socket, ioctls on a zeroed ifreq naming "lo", close.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err((Step::Loopback, errno()));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as c_char;
        req.ifr_name[1] = b'o' as c_char;
        let mut r = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            r = libc::ioctl(s, libc::SIOCSIFFLAGS, &req);
        }
        let e = errno();
        libc::close(s);
        if r < 0 {
            return Err((Step::Loopback, e));
        }
    }
    Ok(())
}

/// clone3's argument block (CLONE_ARGS_SIZE_VER0 fields are enough).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// fork(2) with namespace flags: clone3, or clone where clone3 is missing. Returns 0 in the
/// child, the child's pid in the parent.
fn clone_fork(flags: u64) -> io::Result<libc::pid_t> {
    let args = CloneArgs {
        flags,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
    };
    // SAFETY: no CLONE_VM and no stack: the child runs on a copy of this stack, like fork.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r >= 0 {
        return Ok(r as libc::pid_t);
    }
    if errno() != libc::ENOSYS {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; on x86_64 and aarch64 the flags come first, the rest are unused.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD as u64) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as libc::pid_t)
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// A connected pair of close-on-exec unix stream sockets.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid out-array of two ints.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair returned two fresh fds we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Receives one fd sent with SCM_RIGHTS (None: the peer closed without sending one).
pub fn recv_fd(sock: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: recvmsg into stack buffers of the sizes given; the control message is read
    // only when the kernel filled one of the expected type.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        let n = loop {
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            break n;
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n == 0 || cmsg.is_null() {
            return Ok(None);
        }
        if (*cmsg).cmsg_level != libc::SOL_SOCKET || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Ok(None);
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}

/// A started child, before exec is confirmed.
pub struct Spawned {
    pub pid: libc::pid_t,
    /// The read end of the report pipe.
    pub reports: OwnedFd,
    /// The write end of the id-map sync pipe (user namespaces only).
    pub sync: Option<OwnedFd>,
}

/// Clones the child, which runs `plan` up to exec.
///
/// Without a user namespace the child shares this process's memory and this thread waits
/// until it has exec'd (CLONE_VM | CLONE_VFORK, what posix_spawn does): no page table is
/// copied and none torn down at exec. The child runs on a stack of its own with every signal
/// blocked (so no handler of ours runs in it) and only makes system calls. With a user
/// namespace the parent must write the id maps while the child waits, so the child is a
/// fork-like copy instead.
pub fn spawn(plan: &ChildPlan) -> io::Result<Spawned> {
    let (rd, wr) = pipe()?;
    if plan.user_maps {
        let (sync_rd, sync_wr) = pipe()?;
        let pid = clone_fork(plan.clone_flags)?;
        if pid == 0 {
            child_main(plan, wr.as_raw_fd(), Some(sync_rd.as_raw_fd()));
        }
        drop(wr);
        return Ok(Spawned {
            pid,
            reports: rd,
            sync: Some(sync_wr),
        });
    }
    let pid = clone_vfork(plan, wr.as_raw_fd())?;
    drop(wr);
    Ok(Spawned {
        pid,
        reports: rd,
        sync: None,
    })
}

/// What the vfork child gets.
struct VforkArgs<'a> {
    plan: &'a ChildPlan,
    report_fd: RawFd,
}

extern "C" fn vfork_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the VforkArgs of the parent's frame, which stays alive while
    // the parent is suspended (CLONE_VFORK) until this child execs or exits.
    let a = unsafe { &*(arg as *const VforkArgs<'_>) };
    child_main(a.plan, a.report_fd, None)
}

/// The child's stack: enough for the setup's frames (no recursion, no allocation).
const CHILD_STACK: usize = 256 << 10;

fn clone_vfork(plan: &ChildPlan, report_fd: RawFd) -> io::Result<libc::pid_t> {
    let page = 4096;
    // SAFETY: an anonymous private mapping, a guard page at its low end, and libc::clone with
    // a stack top inside it; the signal mask is restored and the mapping freed afterwards.
    unsafe {
        let len = CHILD_STACK + page;
        let stack = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        );
        if stack == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        libc::mprotect(stack, page, libc::PROT_NONE);
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let args = VforkArgs { plan, report_fd };
        let flags =
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD | plan.clone_flags as libc::c_int;
        let pid = libc::clone(
            vfork_entry,
            (stack as *mut u8).add(len) as *mut libc::c_void,
            flags,
            &args as *const VforkArgs<'_> as *mut libc::c_void,
        );
        let err = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        libc::munmap(stack, len);
        if pid < 0 { Err(err) } else { Ok(pid) }
    }
}

/// Reads the child's reports until the pipe closes; returns the last one (None: the child
/// ended before reporting anything, e.g. killed).
pub fn read_reports(fd: &OwnedFd) -> io::Result<Option<Report>> {
    let mut last = None;
    let mut buf = [0u8; Report::SIZE];
    let mut have = 0;
    loop {
        // SAFETY: reads into the unfilled tail of a local buffer.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf[have..].as_mut_ptr().cast(),
                Report::SIZE - have,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(last);
        }
        have += n as usize;
        if have == Report::SIZE {
            last = Some(Report::from_bytes(&buf));
            have = 0;
        }
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
}

/// Waits for `pid` (retrying on EINTR).
pub fn wait(pid: libc::pid_t) -> io::Result<Status> {
    use rustix::process::{Pid, WaitOptions, waitpid};
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::from_raw_os_error(libc::ECHILD))?;
    let st = loop {
        match waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, st))) => break st,
            Ok(None) | Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    match st.terminating_signal() {
        Some(sig) => Ok(Status::Signaled(sig)),
        None => Ok(Status::Exited(st.exit_status().unwrap_or(0))),
    }
}

/// A C string for the child, naming `what` in the error.
pub fn cstr(what: &str, s: &str) -> crate::Result<CString> {
    CString::new(s).map_err(|_| crate::Error::Usage(format!("{what} {s:?} holds a NUL byte")))
}

/// The candidate paths of `cmd` inside the container: itself when it holds a `/`, else each
/// directory of `path_var` joined with it (execvp's search, done by the child).
pub fn exec_candidates(cmd: &str, path_var: &str) -> crate::Result<Vec<CString>> {
    if cmd.is_empty() {
        return Err(crate::Error::Usage("the command is an empty string".into()));
    }
    if cmd.contains('/') {
        return Ok(vec![cstr("command", cmd)?]);
    }
    path_var
        .split(':')
        .map(|d| if d.is_empty() { "." } else { d })
        .map(|d| cstr("command", &format!("{}/{cmd}", d.trim_end_matches('/'))))
        .collect()
}

/// `CStr` of a report's failed candidate, for messages.
pub fn candidate(plan_paths: &[CString], i: u32) -> Option<&CStr> {
    plan_paths.get(i as usize).map(|c| c.as_c_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_spans_round_trip() {
        for n in 1..=Step::LAST {
            assert_eq!(Step::from_u32(n).unwrap() as u32, n);
        }
        assert!(Step::from_u32(0).is_none() && Step::from_u32(Step::LAST + 1).is_none());
        for n in 1..=ChildSpan::LAST {
            assert_eq!(ChildSpan::from_u32(n).unwrap() as u32, n);
        }
    }

    #[test]
    fn exec_candidates_search_path_only_for_bare_names() {
        let c = exec_candidates("ls", "/usr/bin:/bin").unwrap();
        assert_eq!(c, vec![c"/usr/bin/ls".to_owned(), c"/bin/ls".to_owned()]);
        assert_eq!(
            exec_candidates("/x/y", "/bin").unwrap(),
            vec![c"/x/y".to_owned()]
        );
        assert!(exec_candidates("", "/bin").is_err());
    }
}

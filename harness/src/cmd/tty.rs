//! `strata run -t`: the caller's side of the container's terminal. The container makes its
//! terminal on its own devpts and sends the master back; strata copies the master to its
//! stdout and (with `-i`) its stdin to the master, puts its own terminal in raw mode
//! meanwhile (so keys such as Ctrl-C reach the container's line discipline, which signals
//! the container's foreground process) and forwards window size changes (SIGWINCH).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::libc;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::termios::{self, SetArg, Termios};

use crate::output::CmdResult;

/// The size of the caller's terminal (stdin, else stdout): rows, columns.
pub fn caller_size() -> Option<(u16, u16)> {
    for fd in [0, 1] {
        let mut ws: libc::winsize = empty_winsize();
        // SAFETY: TIOCGWINSZ into a valid winsize.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

fn empty_winsize() -> libc::winsize {
    libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

static WINCH: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: i32) {
    WINCH.store(true, Ordering::SeqCst);
}

/// The caller's terminal in raw mode until dropped.
struct Raw {
    saved: Termios,
}

impl Raw {
    fn enter() -> Option<Raw> {
        // SAFETY: fd 0 stays open for the life of the process.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let saved = termios::tcgetattr(stdin).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(Raw { saved })
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: as in `enter`.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let _ = termios::tcsetattr(stdin, SetArg::TCSAFLUSH, &self.saved);
    }
}

fn write_all(fd: i32, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: write from a valid slice.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Sets the master's window size to the caller's terminal's after a SIGWINCH (the kernel
/// then signals the container's foreground process group).
fn forward_size(master: i32) {
    if WINCH.swap(false, Ordering::SeqCst)
        && let Some((rows, cols)) = caller_size()
    {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ with a valid winsize on our master.
        unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) };
    }
}

/// Copies between the master and strata's stdio until the container's side of the terminal
/// is closed (every process holding it has ended).
pub fn relay(master: OwnedFd, interactive: bool) -> CmdResult<()> {
    let io = |what: &'static str, e: std::io::Error| {
        strata_runtime::Error::io(what, "the container's terminal", e)
    };
    let _raw = if interactive && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        Raw::enter()
    } else {
        None
    };
    let action = SigAction::new(
        SigHandler::Handler(on_winch),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores an atomic.
    unsafe { signal::sigaction(Signal::SIGWINCH, &action) }
        .map_err(|e| io("install SIGWINCH handler", e.into()))?;
    let m = master.as_raw_fd();
    let mut stdin_open = interactive;
    let mut buf = [0u8; 16 << 10];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: m,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on a valid array of two pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        // A SIGWINCH that came before poll returned has run its handler by now: the new
        // size is set before any input that followed it is relayed.
        forward_size(m);
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io("poll", e));
        }
        if fds[0].revents != 0 {
            // SAFETY: read into a local buffer.
            let n = unsafe { libc::read(m, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
                    // EIO: no process holds the container's side any more.
                    Some(libc::EIO) => break,
                    _ => return Err(io("read", e)),
                }
            }
            if n == 0 {
                break;
            }
            write_all(1, &buf[..n as usize]).map_err(|e| io("write stdout", e))?;
        }
        if fds[1].revents != 0 {
            // SAFETY: read into a local buffer.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                // End of our stdin: the terminal's end-of-file character, as a user's ^D.
                stdin_open = false;
                let _ = write_all(m, &[4]);
                continue;
            }
            write_all(m, &buf[..n as usize]).map_err(|e| io("write", e))?;
        }
    }
    Ok(())
}

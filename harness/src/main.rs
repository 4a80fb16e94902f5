//! `strata`: the command line over strata-runtime. Thin: parsing, calling the library,
//! printing. Every error is one line `strata: error: ...` and exit status 1.
//!
//! The entry point is C's `main`, not Rust's: std's start-up (it reads /proc/self/maps to
//! place a stack guard and maps an alternate signal stack for the overflow message) costs
//! about 0.15 ms, a fifth of a whole `strata --version`. Of what it does strata keeps what
//! it relies on: SIGPIPE ignored (writes to a closed pipe fail with EPIPE) and fds 0-2 open.
#![no_main]

mod check;
mod cli;
mod cmd;
mod kernel;
mod output;
mod runner;

use std::ffi::{OsString, c_char, c_int};
use std::io::Write;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::process::ExitCode;

use clap::Parser;
use nix::sys::signal::{SigHandler, Signal, signal};
use rustix::fs::{Mode, OFlags};

/// The process's entry point (see the module comment). std's `args_os` and `vars_os` work
/// without Rust's `main`: glibc hands them to std's initializer.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    runtime_init();
    // A panic ends strata with 101, as it would from Rust's `main` (not with an abort).
    let code = std::panic::catch_unwind(strata_main).unwrap_or(ExitCode::from(101));
    let _ = std::io::stdout().flush();
    // ExitCode keeps its value private: find the u8 it was made from.
    (0..=u8::MAX)
        .find(|n| ExitCode::from(*n) == code)
        .map_or(1, c_int::from)
}

/// What std's start-up does that strata relies on: SIGPIPE ignored (Rust programs see
/// EPIPE instead of dying), and fds 0, 1 and 2 open (on /dev/null when the caller closed
/// them), so that no file strata opens becomes its stdout.
fn runtime_init() {
    // SAFETY: SIG_IGN runs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    for fd in 0..3 {
        // SAFETY: F_GETFD only reads the flags of a possibly closed fd.
        if unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) } < 0 {
            // Opens the lowest free fd, which is `fd`, and leaves it open.
            let _ = rustix::fs::open("/dev/null", OFlags::RDWR, Mode::empty())
                .map(OwnedFd::into_raw_fd);
        }
    }
}

/// Rust's `main`, called by [`main`].
fn strata_main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let args = argv.get(1..).unwrap_or_default();
    if let [v] = args
        && (v == "--version" || v == "-V")
    {
        // What clap prints, without building its whole command tree for one line.
        println!("strata {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let parsed = if cli::RunCli::applies(args) {
        cli::RunCli::try_parse_from(&argv).map(cli::Cli::from)
    } else {
        cli::Cli::try_parse_from(&argv)
    };
    let args = match parsed {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's message up to its usage block, on one line: the first line and the
            // argument names listed below it ("...were not provided: <TARGET>").
            let text = e.to_string();
            let msg: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect();
            let msg = msg.join(" ");
            let usage = text
                .lines()
                .find_map(|l| l.strip_prefix("Usage: "))
                .map(|u| format!(" (usage: {})", u.trim()))
                .unwrap_or_default();
            eprintln!(
                "strata: error: {}{usage}",
                msg.trim_start_matches("error: ").trim()
            );
            return ExitCode::from(1);
        }
    };
    match cmd::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strata: error: {e}");
            ExitCode::from(1)
        }
    }
}

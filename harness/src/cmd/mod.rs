//! One module per command.

pub(crate) mod check;
mod drivers;
mod exec_ops;
mod gc;
mod image;
mod layer;
mod mount;
mod report;
mod rootfs;
mod run;
mod suite;
mod tty;

use std::process::ExitCode;

use strata_runtime::store::Store;

use crate::cli::{Cli, Command};
use crate::output::CmdResult;

/// What every command gets: the store root and the output mode.
pub struct Ctx {
    pub root: std::path::PathBuf,
    pub json: bool,
}

impl Ctx {
    /// Opens (creating) the store.
    pub fn store(&self) -> CmdResult<Store> {
        Store::open(&self.root)
    }
}

pub fn run(cli: Cli) -> CmdResult<ExitCode> {
    let ctx = Ctx {
        root: cli.globals.root.unwrap_or_else(Store::default_root),
        json: cli.globals.json,
    };
    match cli.command {
        Command::Drivers => drivers::run(&ctx),
        Command::Layer(c) => layer::run(&ctx, c),
        Command::Mount(a) => mount::mount(&ctx, a),
        Command::Umount(a) => mount::umount(&ctx, a),
        Command::Commit(a) => mount::commit(&ctx, a),
        Command::Gc(a) => gc::run(&ctx, a),
        Command::Rootfs(c) => rootfs::run(&ctx, c),
        Command::Run(a) => run::run(&ctx, *a),
        Command::Image(c) => image::run(&ctx, c),
        Command::Check(a) => check::run(&ctx, a),
        Command::Suite(a) => suite::run(&ctx, a),
        Command::Report(a) => report::run(&ctx, a),
        Command::ExecOps(a) => exec_ops::run(a),
    }
}

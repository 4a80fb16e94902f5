//! The command-line grammar (DESIGN.md, "The CLI contract").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Test and benchmark container root filesystems: storage drivers, root switches, commits"
)]
pub struct Cli {
    /// State directory (layer store, mount records) [default: /var/lib/strata as root, else $XDG_DATA_HOME/strata]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Machine-readable output on stdout
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List storage drivers, each with the reason when unavailable
    Drivers,
    /// Import and list layers
    #[command(subcommand)]
    Layer(LayerCmd),
    /// Mount layers (lowest first) at TARGET with a fresh writable layer on top
    Mount(MountArgs),
    /// Unmount a strata mount and drop its writable layer
    Umount(UmountArgs),
    /// Write a mount's writable layer as an OCI layer tar
    Commit(CommitArgs),
}

#[derive(Debug, Subcommand)]
pub enum LayerCmd {
    /// Import an OCI layer tar (.tar, .tar.gz, .tar.zst) or a directory in OCI layer form;
    /// prints its sha256 diff-id
    Import {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// List the layers in the store
    Ls,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// Storage driver (see `strata drivers`)
    #[arg(long, default_value = "overlay")]
    pub driver: String,
    /// Layers, lowest first (tar, directory or digest), then the empty TARGET directory
    #[arg(required = true, num_args = 2.., value_name = "LAYER... TARGET")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The mount's target directory
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub target: Option<PathBuf>,
    /// Unmount every recorded mount and remove stale imports (after a crash)
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// The mount's target directory
    pub target: PathBuf,
    /// Where to write the layer tar
    #[arg(short = 'o', long = "output", value_name = "OUT.tar")]
    pub out: PathBuf,
}

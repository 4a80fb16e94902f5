//! The command-line grammar (the README's "Architecture" section lists it).

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
    /// Write a mount's writable layer as an OCI layer tar, or as a new image (--image)
    Commit(CommitArgs),
    /// Remove what a crash left in the store (never what a live process holds)
    Gc(GcArgs),
    /// Import, list, inspect, remove, push and export images (OCI layouts, docker-save tars)
    #[command(subcommand)]
    Image(ImageCmd),
    /// Build root filesystems
    #[command(subcommand)]
    Rootfs(RootfsCmd),
    /// Run a command in a container over layers (lowest first); exit status = the command's
    Run(RunArgs),
    /// The conformance matrix: every catalog case on every available driver
    Check(CheckArgs),
    /// The main job: conformance check, benchmarks (quick profile with --quick) and the
    /// report, with the result record
    Suite(SuiteArgs),
    /// Charts, index.html and REPORT.md from criterion output and result records
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// The quick profile: a few minutes instead of the full sweeps
    #[arg(long)]
    pub quick: bool,
    /// Where the result record, criterion output and report go
    #[arg(long, value_name = "DIR", default_value = "strata-out")]
    pub out: PathBuf,
    /// Skip the benchmarks (conformance and report only)
    #[arg(long)]
    pub no_bench: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A criterion output directory (target/criterion)
    #[arg(long, value_name = "DIR")]
    pub criterion: Option<PathBuf>,
    /// strata-result/1 records, from any number of runners
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub results: Vec<PathBuf>,
    /// A record (or criterion directory) to compare with: exit 1 on a slowdown
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// How much slower (percent, beyond the confidence intervals) fails the gate [default: 10]
    #[arg(long, value_name = "PCT")]
    pub threshold: Option<f64>,
    /// The report directory (made whole or not at all)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Import an OCI image layout (directory or tar) or a docker-save tar; every blob is
    /// verified, layers the store has are shared
    Import {
        /// The layout or archive, with the tag to pick when it holds several
        #[arg(value_name = "PATH[:TAG]")]
        path: String,
        /// Name in the store [default: the image's own reference, else the file name]
        #[arg(long = "name", value_name = "NAME[:TAG]")]
        name: Option<String>,
    },
    /// List the images in the store
    Ls,
    /// An image's manifest, config and layers (digests, sizes, diff-ids)
    Inspect {
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// Remove an image tag; its blobs and layers go when no other image or mount uses them
    Rm {
        #[arg(required = true, value_name = "REF")]
        references: Vec<String>,
    },
    /// Remove the blobs no image names and the image layers nothing uses any more (those
    /// `rm` kept for a mount that has ended since)
    Prune,
    /// Push an image to an OCI layout directory (DIR[:TAG]) or a registry
    /// (docker://HOST:PORT/NAME[:TAG], plain HTTP)
    Push {
        #[arg(value_name = "REF")]
        reference: String,
        #[arg(value_name = "DEST")]
        dest: String,
    },
    /// Export an image as an OCI layout directory or a docker-save tar (OUT ending in .tar)
    Export {
        #[arg(value_name = "REF")]
        reference: String,
        #[arg(value_name = "OUT")]
        out: std::path::PathBuf,
        /// oci or docker-save [default: docker-save for OUT.tar, else oci]
        #[arg(long)]
        format: Option<String>,
    },
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
    /// Unmount every idle recorded mount and remove stale imports (a mount a running
    /// container or another command holds is left alone)
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// List what would be removed; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Change nothing; exit 1 when anything is left over or the store is inconsistent
    #[arg(long, conflicts_with = "dry_run")]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// The mount's target directory
    pub target: PathBuf,
    /// Where to write the layer tar
    #[arg(
        short = 'o',
        long = "output",
        value_name = "OUT.tar",
        required_unless_present = "image"
    )]
    pub out: Option<PathBuf>,
    /// Commit into a new image NAME:TAG on top of the image the mount was made from
    #[arg(long, value_name = "NAME:TAG")]
    pub image: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RootfsCmd {
    /// A minimal root filesystem from host binaries and every shared library they load
    FromHost {
        /// The output directory (absent or empty)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Also write the tree as a layer tar (import it once, then run by digest)
        #[arg(long, value_name = "FILE")]
        tar: Option<PathBuf>,
        /// Binaries (paths, or names looked up in PATH)
        #[arg(required = true, value_name = "BIN")]
        bins: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Storage driver (see `strata drivers`)
    #[arg(long, default_value = "overlay")]
    pub driver: String,
    /// Root switch: pivot_root, move (MS_MOVE + chroot) or chroot (not an isolation boundary)
    #[arg(long = "switch", default_value = "pivot_root", value_name = "HOW")]
    pub switch: String,
    /// Namespaces, comma-separated: mount (required), uts, ipc, pid, net, user
    #[arg(long, default_value = "mount,uts,ipc,pid,net", value_name = "LIST")]
    pub ns: String,
    /// Hostname (needs the uts namespace) [default: strata]
    #[arg(long, value_name = "H")]
    pub hostname: Option<String>,
    /// Memory limit in bytes (k, m, g suffixes: powers of 1024); no swap on top
    #[arg(long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Limit on processes and threads
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,
    /// Commit the writable layer to this tar after the command exits (init layer left out)
    #[arg(long, value_name = "OUT.tar")]
    pub commit: Option<PathBuf>,
    /// Print per-phase timing spans (JSON, ns) on stderr
    #[arg(long)]
    pub timings: bool,
    /// Keep the root filesystem mounted and its writable layer (see `strata commit`, `strata umount`)
    #[arg(long)]
    pub keep: bool,
    /// Mount the root filesystem here (empty or missing directory) [default: under --root]
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Set an environment variable in the container
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Layers, lowest first: tar, directory (imported each time: slow) or digest
    #[arg(value_name = "LAYER")]
    pub layers: Vec<String>,
    /// The command and its arguments, after `--`
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Drivers to check: names (comma-separated or repeated), or `all`
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "all",
        value_name = "NAME|all"
    )]
    pub driver: Vec<String>,
    /// Read the catalog from this directory's *.toml files instead of the built-in one
    #[arg(long, value_name = "DIR")]
    pub cases: Option<std::path::PathBuf>,
    /// Only the cases whose id starts with one of these (comma-separated or repeated)
    #[arg(long = "case", value_delimiter = ',', value_name = "ID")]
    pub only: Vec<String>,
    /// Cases run at once, each in its own thread and mount namespace [default: cores, at most 4]
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// With --json: write the strata-result/1 record to FILE and the table to stdout
    /// (`strata check --json FILE`); --json alone prints the record on stdout
    #[arg(value_name = "FILE")]
    pub json_file: Option<std::path::PathBuf>,
}

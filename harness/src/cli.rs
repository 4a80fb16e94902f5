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
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

/// `strata run`'s line in the help.
const RUN_ABOUT: &str =
    "Run a command in a container over layers (lowest first); exit status = the command's";

/// The options every command takes.
#[derive(Debug, Args)]
pub struct Globals {
    /// State directory (layer store, mount records), global: it means nothing to `rootfs` and
    /// `check` (each case has a store of its own) [default: /var/lib/strata as root, else
    /// $XDG_DATA_HOME/strata]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Machine-readable output (JSON) on stdout, global: every command has it; `run` writes
    /// it to stderr (its stdout is the container's)
    #[arg(long, global = true)]
    pub json: bool,
}

/// The grammar of `strata run` alone: what [`Cli`] parses for a `run` command line, without
/// building every other command's arguments first (clap builds the whole tree it is given,
/// about 0.2 ms, a tenth of a whole `strata run` of /bin/true).
#[derive(Debug, Parser)]
#[command(name = "strata")]
pub struct RunCli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: RunOnly,
}

#[derive(Debug, Subcommand)]
pub enum RunOnly {
    #[command(about = RUN_ABOUT)]
    Run(Box<RunArgs>),
}

impl RunCli {
    /// True when `args` (without the program name) is a `run` command line: its first word
    /// that is neither a global option nor its value is `run`.
    pub fn applies(args: &[std::ffi::OsString]) -> bool {
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.to_str() {
                Some("--json") => {}
                Some("--root") => {
                    it.next();
                }
                Some(s) if s.starts_with("--root=") => {}
                Some(s) => return s == "run",
                None => return false,
            }
        }
        false
    }
}

impl From<RunCli> for Cli {
    fn from(r: RunCli) -> Cli {
        let RunOnly::Run(a) = r.command;
        Cli {
            globals: r.globals,
            command: Command::Run(a),
        }
    }
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
    #[command(about = RUN_ABOUT)]
    Run(Box<RunArgs>),
    /// The conformance matrix: every catalog case on every available driver
    Check(CheckArgs),
    /// The main job: conformance check, benchmarks (quick profile with --quick) and the
    /// report, with the result record
    Suite(SuiteArgs),
    /// Charts, index.html and REPORT.md from criterion output and result records
    Report(ReportArgs),
    /// Do model operations (a JSON list) with real syscalls in DIR, print each outcome and
    /// its clock window as JSON: the executor property 6 runs inside a container
    #[command(hide = true)]
    ExecOps(ExecOpsArgs),
}

#[derive(Debug, Args)]
pub struct ExecOpsArgs {
    /// The directory the operations' paths are resolved in (never left)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub dir: PathBuf,
    /// The operations: a JSON list of strata_runtime::model::ops::Op
    #[arg(value_name = "OPS_JSON")]
    pub ops: String,
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
    /// Show criterion's and strata check's own output (by default they go to OUT/bench.log
    /// and OUT/check.txt, and stderr gets one progress line per step, or bars on a terminal)
    #[arg(long)]
    pub verbose: bool,
    /// Also run the suite without its benchmarks (catalog, phases, disk) under these kernels,
    /// each in a microVM (repeatable; KERNEL as in `strata check --kernel`; `host` is this
    /// run): their records go to OUT/kernels.json and the report has a column each
    #[arg(long = "kernel", value_name = "KERNEL")]
    pub kernel: Vec<String>,
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
    /// Also write the README's measured tables, naming the run, as a Markdown fragment
    #[arg(long, value_name = "FILE")]
    pub readme_fragment: Option<PathBuf>,
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
    /// Remove dangling images (those that lost their last tag), then the blobs no image
    /// names and the image layers nothing uses any more (those `rm` kept for a mount that
    /// has ended since)
    Prune,
    /// Give an image another tag (NAME alone: NAME:latest); an image the tag named before
    /// stays as a dangling image until `image prune`
    Tag {
        #[arg(value_name = "SRC")]
        source: String,
        #[arg(value_name = "NAME[:TAG]")]
        target: String,
    },
    /// Push an image to a registry (docker://HOST[:PORT]/NAME[:TAG], HTTPS; TAG
    /// defaults to latest) or an OCI layout directory (oci:DIR[:TAG], TAG defaults to the
    /// image's); a destination without a transport is refused
    Push {
        #[arg(value_name = "REF")]
        reference: String,
        #[arg(value_name = "DEST")]
        dest: String,
        /// Allow plain HTTP to a registry on another machine that does not speak TLS
        /// (trusted networks only; certificates are always verified)
        #[arg(long)]
        insecure: bool,
    },
    /// Pull an image from a registry (docker://HOST[:PORT]/NAME[:TAG|@DIGEST], HTTPS;
    /// an index picks linux and this machine's architecture); every blob is verified and
    /// blobs and layers the store holds are shared
    Pull {
        #[arg(value_name = "SRC")]
        source: String,
        /// Name in the store [default: HOST[:PORT]/NAME:TAG]
        #[arg(long = "name", value_name = "NAME[:TAG]")]
        name: Option<String>,
        /// Allow plain HTTP to a registry on another machine that does not speak TLS
        /// (trusted networks only; certificates are always verified)
        #[arg(long)]
        insecure: bool,
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
#[command(override_usage = "strata mount [OPTIONS] <LAYER>... <TARGET>")]
pub struct MountArgs {
    /// Storage driver (see `strata drivers`)
    #[arg(long, default_value = "overlay")]
    pub driver: String,
    /// Layers, lowest first: an image (NAME[:TAG] or id: its layers), a stored layer's
    /// digest, or a path (a tar or directory; write ./NAME when NAME could be an image).
    /// The last argument is TARGET, the empty directory to mount on
    #[arg(required = true, num_args = 1.., value_name = "LAYER")]
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
    /// Commit the writable layer as a new image NAME[:TAG] on top of the image it ran (the
    /// layers must be one image), its history appended
    #[arg(long, value_name = "NAME[:TAG]")]
    pub commit_image: Option<String>,
    /// Print per-phase timing spans (JSON, ns) on stderr
    #[arg(long)]
    pub timings: bool,
    /// Keep the root filesystem mounted and its writable layer (see `strata commit`, `strata umount`)
    #[arg(long)]
    pub keep: bool,
    /// Mount the root filesystem here (empty or missing directory) [default: under --root]
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Set an environment variable in the container (NAME alone: its value here, if set);
    /// wins over the image's Env and --env-file
    #[arg(short = 'e', long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Read environment variables from a file: NAME=VALUE lines (NAME alone: its value
    /// here); blank lines and lines starting with # are skipped
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory in the container, created when missing [default: the image's
    /// WorkingDir, else /]
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User to run as: UID[:GID] or NAME[:GROUP] (names from the image's /etc/passwd and
    /// /etc/group) [default: the image's User, else root]
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Bind a host directory or file into the container (HOST absolute or ./relative; ro:
    /// read-only); what the container writes there is never committed
    #[arg(short = 'v', long = "volume", value_name = "HOST:CTR[:ro]")]
    pub volume: Vec<String>,
    /// A mount: type=bind,source=HOST,target=CTR[,readonly] or
    /// type=tmpfs,target=CTR[,tmpfs-size=SIZE][,tmpfs-mode=OCTAL][,readonly]
    #[arg(long = "mount", value_name = "type=bind|tmpfs,...")]
    pub mount: Vec<String>,
    /// Give the command a terminal of the container's own (/dev/pts/0 in it), the caller's
    /// terminal in raw mode and its window size forwarded
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Keep stdin open for the command (without it the command's stdin is /dev/null)
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Replace the image's Entrypoint (and its Cmd); "" for none
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Layers, lowest first: an image (NAME[:TAG] or id: its layers, its config applies), a
    /// stored layer's digest, or a path (a tar or directory, imported each time: slow; write
    /// ./NAME when NAME could be an image)
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
    /// Run the catalog under this kernel (repeatable; one record each): host, debian:SERIES
    /// (debian:6.1), a Debian package (linux-image-...) or a kernel image path; any but the
    /// host's boots in a microVM (virtme-ng)
    #[arg(long = "kernel", value_name = "KERNEL")]
    pub kernel: Vec<String>,
}

//! `strata rootfs from-host`: the built-in image from host binaries.

use std::process::ExitCode;

use strata_runtime::rootfs;

use super::Ctx;
use crate::cli::RootfsCmd;
use crate::output::{CmdResult, emit};

pub fn run(ctx: &Ctx, c: RootfsCmd) -> CmdResult<ExitCode> {
    match c {
        RootfsCmd::FromHost { out, tar, bins } => {
            let built = match &tar {
                Some(t) => rootfs::from_host_tar(&out, &bins, t)?,
                None => rootfs::from_host(&out, &bins)?,
            };
            emit(ctx.json, &built, |b| {
                let mut s = format!(
                    "{}: {} binaries, {} libraries, {} files ({} bytes), {} symlinks, {} directories\n",
                    b.out.display(),
                    b.binaries.len(),
                    b.libraries.len(),
                    b.files,
                    b.bytes,
                    b.symlinks,
                    b.dirs
                );
                if let (Some(t), Some(d)) = (&b.tar, &b.digest) {
                    s.push_str(&format!("{}: {d}\n", t.display()));
                }
                s
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

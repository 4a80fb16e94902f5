//! `strata mount`, `strata umount`, `strata commit`.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use strata_runtime::mounts;

use super::Ctx;
use crate::cli::{CommitArgs, MountArgs, UmountArgs};
use crate::output::{CmdResult, emit};

#[derive(Serialize)]
struct Mounted {
    target: PathBuf,
    driver: String,
    id: String,
    layers: Vec<String>,
}

pub fn mount(ctx: &Ctx, a: MountArgs) -> CmdResult<ExitCode> {
    let store = ctx.store()?;
    let (target, layers) = match a.args.split_last() {
        Some((t, l)) if !l.is_empty() => (t, l),
        _ => {
            return Err(strata_runtime::Error::Usage(format!(
                "mount needs LAYER... TARGET, the last argument being the empty directory to mount on: {:?} alone is only one of them (usage: strata mount [OPTIONS] <LAYER>... <TARGET>)",
                a.args.join(" ")
            )));
        }
    };
    let m = mounts::mount_refs(&store, &a.driver, layers, std::path::Path::new(target))?;
    let rec = m.keep();
    let out = Mounted {
        target: rec.target.clone(),
        driver: rec.driver.clone(),
        id: rec.id.clone(),
        layers: rec.layers.iter().map(|d| d.to_string()).collect(),
    };
    emit(ctx.json, &out, |m| {
        format!(
            "mounted {} layer(s) at {} with {}",
            m.layers.len(),
            m.target.display(),
            m.driver
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Unmounted {
    target: PathBuf,
    driver: String,
    error: Option<String>,
    /// Why it was left alone (a live process uses it), with `--all`.
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
}

pub fn umount(ctx: &Ctx, a: UmountArgs) -> CmdResult<ExitCode> {
    let store = ctx.store()?;
    if a.all {
        let results = mounts::unmount_all(&store)?;
        let rows: Vec<Unmounted> = results
            .into_iter()
            .map(|(rec, r)| {
                let (error, skipped) = match r {
                    mounts::Outcome::Unmounted => (None, None),
                    mounts::Outcome::Busy(why) => (None, Some(why)),
                    mounts::Outcome::Failed(e) => (Some(e.to_string()), None),
                };
                Unmounted {
                    target: rec.target,
                    driver: rec.driver,
                    error,
                    skipped,
                }
            })
            .collect();
        let failed = rows.iter().filter(|r| r.error.is_some()).count();
        emit(ctx.json, &rows, |rows| {
            rows.iter()
                .map(|r| match (&r.error, &r.skipped) {
                    (Some(e), _) => format!("failed {}: {e}\n", r.target.display()),
                    (None, Some(why)) => format!("skipped {}\n", why),
                    (None, None) => format!("unmounted {}\n", r.target.display()),
                })
                .collect()
        })?;
        if failed > 0 {
            return Err(strata_runtime::Error::Usage(format!(
                "{failed} mount(s) could not be removed (see above)"
            )));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let target = a
        .target
        .ok_or_else(|| strata_runtime::Error::Usage("missing TARGET".into()))?;
    let rec = mounts::unmount_target(&store, &target)?;
    let row = Unmounted {
        target: rec.target,
        driver: rec.driver,
        error: None,
        skipped: None,
    };
    emit(ctx.json, &row, |r| {
        format!("unmounted {}", r.target.display())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Committed {
    target: PathBuf,
    output: PathBuf,
    digest: String,
    size: u64,
}

pub fn commit(ctx: &Ctx, a: CommitArgs) -> CmdResult<ExitCode> {
    let store = ctx.store()?;
    let m = mounts::open(&store, &a.target)?;
    if let Some(image) = &a.image {
        return super::image::commit(ctx, &store, &m, image, a.out.as_deref());
    }
    let path = a
        .out
        .ok_or_else(|| strata_runtime::Error::Usage("missing -o OUT.tar".into()))?;
    // A kept container's init layer files (hosts, hostname, resolv.conf) are never committed.
    let digest = m.commit_file_with(
        &strata_runtime::image::commit::commit_options(&store, &m)?,
        &path,
    )?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let out = Committed {
        target: m.target().to_path_buf(),
        output: path.clone(),
        digest: digest.to_string(),
        size,
    };
    emit(ctx.json, &out, |c| c.digest.clone())?;
    Ok(ExitCode::SUCCESS)
}

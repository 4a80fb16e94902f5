//! `strata image import|ls|inspect|rm|push|export`, and `strata commit TARGET --image`.

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;
use strata_runtime::image::{self, ExportFormat, ImportOptions};
use strata_runtime::mounts::Mount;
use strata_runtime::store::Store;

use super::Ctx;
use crate::cli::ImageCmd;
use crate::output::{CmdResult, emit};

pub fn run(ctx: &Ctx, cmd: ImageCmd) -> CmdResult<ExitCode> {
    let store = ctx.store()?;
    match cmd {
        ImageCmd::Import { path, name } => import(ctx, &store, &path, name),
        ImageCmd::Ls => ls(ctx, &store),
        ImageCmd::Inspect { reference } => inspect(ctx, &store, &reference),
        ImageCmd::Rm { references } => rm(ctx, &store, &references),
        ImageCmd::Prune => prune(ctx, &store),
        ImageCmd::Tag { source, target } => {
            let t = image::records::tag(&store, &source, &target)?;
            emit(ctx.json, &t, |t| match &t.replaced {
                Some(old) => format!(
                    "tagged {} {} (it named {old} before: that image stays, dangling, until `strata image prune`)",
                    t.reference, t.manifest
                ),
                None => format!("tagged {} {}", t.reference, t.manifest),
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ImageCmd::Push {
            reference,
            dest,
            insecure,
        } => push(ctx, &store, &reference, &dest, insecure),
        ImageCmd::Pull {
            source,
            name,
            insecure,
        } => pull(ctx, &store, &source, name, insecure),
        ImageCmd::Export {
            reference,
            out,
            format,
        } => export(ctx, &store, &reference, &out, format.as_deref()),
    }
}

/// `1.5 MiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn import(ctx: &Ctx, store: &Store, path: &str, name: Option<String>) -> CmdResult<ExitCode> {
    let rep = image::import(store, path, &ImportOptions { name })?;
    emit(ctx.json, &rep, |r| {
        let new = r.layers.iter().filter(|l| l.layer_new).count();
        let moved = match &r.replaced {
            Some(old) => format!(
                "\n  the tag {}:{} named {old} before: that image stays, dangling, until `strata image prune`",
                r.name, r.tag
            ),
            None => String::new(),
        };
        moved
            + &format!(
                "imported {}:{} {}\n  {} layer(s): {new} new, {} shared; {} of blobs stored, {} shared ({} of layers not extracted again)",
                r.name,
                r.tag,
                r.manifest,
                r.layers.len(),
                r.layers.len() - new,
                human_bytes(r.blob_bytes_new),
                human_bytes(r.blob_bytes_shared),
                human_bytes(r.layer_bytes_shared),
            )
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Row {
    name: String,
    tag: String,
    /// The config digest (what `docker images` calls the image id).
    id: String,
    manifest: String,
    layers: usize,
    /// Uncompressed bytes of the layers (their tars): the same for an image whatever
    /// format or compression it came in.
    size: u64,
    /// Bytes of the layer blobs as stored (compressed or not, as received).
    blob_size: u64,
    created: u64,
}

fn ls(ctx: &Ctx, store: &Store) -> CmdResult<ExitCode> {
    let rows: Vec<Row> = image::images(store)?
        .into_iter()
        .map(|i| Row {
            name: i.record.name.clone(),
            tag: if i.record.is_dangling() {
                image::records::DANGLING.to_string()
            } else {
                i.record.tag.clone()
            },
            id: i.record.config.to_string(),
            manifest: i.record.manifest.to_string(),
            layers: i.manifest.layers.len(),
            size: i
                .diff_ids()
                .iter()
                .filter_map(|d| store.get(d).ok())
                .map(|l| l.info.tar_size)
                .sum(),
            blob_size: i.manifest.layers.iter().map(|l| l.size).sum(),
            created: i.record.created,
        })
        .collect();
    emit(ctx.json, &rows, |rows| {
        let mut s = format!(
            "{:<40} {:<12} {:<12} {:>6} {:>10}\n",
            "NAME", "TAG", "IMAGE ID", "LAYERS", "SIZE"
        );
        for r in rows {
            s.push_str(&format!(
                "{:<40} {:<12} {:<12} {:>6} {:>10}\n",
                r.name,
                r.tag,
                &r.id.trim_start_matches("sha256:")[..12],
                r.layers,
                human_bytes(r.size)
            ));
        }
        s
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RootFs {
    #[serde(rename = "Type")]
    kind: String,
    layers: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LayerRow {
    digest: String,
    media_type: String,
    size: u64,
    #[serde(rename = "DiffID")]
    diff_id: String,
    tar_size: Option<u64>,
}

/// Shaped like `docker image inspect`, plus the manifest and each layer's blob.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    created: Option<String>,
    architecture: String,
    os: String,
    /// Bytes of the layer blobs.
    size: u64,
    #[serde(rename = "RootFS")]
    root_fs: RootFs,
    manifest: String,
    manifest_media_type: String,
    layers: Vec<LayerRow>,
    history: usize,
    /// How a container of the image runs: User, Env, Entrypoint, Cmd, WorkingDir.
    config: image::oci::ExecConfig,
}

fn inspect(ctx: &Ctx, store: &Store, reference: &str) -> CmdResult<ExitCode> {
    let img = image::get(store, reference)?;
    let layers: Vec<LayerRow> = img
        .manifest
        .layers
        .iter()
        .zip(img.diff_ids())
        .map(|(l, d)| LayerRow {
            digest: l.digest.to_string(),
            media_type: l.media_type.clone(),
            size: l.size,
            diff_id: d.to_string(),
            tar_size: store.get(d).ok().map(|s| s.info.tar_size),
        })
        .collect();
    let tags: Vec<String> = image::records::records(store)?
        .into_iter()
        .filter(|r| r.manifest == img.record.manifest)
        .map(|r| r.reference())
        .collect();
    let out = Inspect {
        id: img.record.config.to_string(),
        repo_digests: vec![format!("{}@{}", img.record.name, img.record.manifest)],
        repo_tags: tags,
        created: img.config.created.clone(),
        architecture: img.config.architecture.clone(),
        os: img.config.os.clone(),
        size: img.manifest.layers.iter().map(|l| l.size).sum(),
        root_fs: RootFs {
            kind: img.config.rootfs.kind.clone(),
            layers: img.diff_ids().iter().map(|d| d.to_string()).collect(),
        },
        manifest: img.record.manifest.to_string(),
        manifest_media_type: img.manifest.media_type().to_string(),
        layers,
        history: img.config.history.len(),
        config: img.config.config.clone().unwrap_or_default(),
    };
    emit(ctx.json, &out, |i| {
        let mut s = format!(
            "{}\n  id        {}\n  manifest  {} ({})\n  platform  {}/{}\n  created   {}\n  layers    {} ({} of blobs)\n",
            i.repo_tags.join(" "),
            i.id,
            i.manifest,
            i.manifest_media_type,
            i.os,
            i.architecture,
            i.created.as_deref().unwrap_or("-"),
            i.layers.len(),
            human_bytes(i.size)
        );
        let c = &i.config;
        let list = |v: &Option<Vec<String>>| match v {
            Some(v) => serde_json::to_string(v).unwrap_or_default(),
            None => "-".into(),
        };
        s.push_str(&format!(
            "  user      {}\n  workdir   {}\n  entrypoint {}\n  cmd       {}\n",
            c.user
                .as_deref()
                .filter(|u| !u.is_empty())
                .unwrap_or("- (root)"),
            c.working_dir
                .as_deref()
                .filter(|w| !w.is_empty())
                .unwrap_or("- (/)"),
            list(&c.entrypoint),
            list(&c.cmd),
        ));
        for e in c.env.iter().flatten() {
            s.push_str(&format!("  env       {e}\n"));
        }
        for (n, l) in i.layers.iter().enumerate() {
            s.push_str(&format!(
                "  {:>3}  blob {} {:>10}  {}\n       diff {} {:>10}\n",
                n + 1,
                l.digest,
                human_bytes(l.size),
                l.media_type,
                l.diff_id,
                l.tar_size.map(human_bytes).unwrap_or_else(|| "-".into()),
            ));
        }
        s
    })?;
    Ok(ExitCode::SUCCESS)
}

fn rm(ctx: &Ctx, store: &Store, references: &[String]) -> CmdResult<ExitCode> {
    let mut out = Vec::new();
    for r in references {
        out.push(image::remove(store, r)?);
    }
    emit(ctx.json, &out, |v| {
        v.iter()
            .map(|r| {
                format!(
                    "removed {}: {} blob(s), {} layer(s) and {} overlay chain dir(s), {} freed; {} layer(s) kept (used elsewhere)\n",
                    r.reference,
                    r.released.blobs_removed.len(),
                    r.released.layers_removed.len(),
                    r.released.chains_removed.len(),
                    human_bytes(r.released.bytes_freed),
                    r.released.layers_kept.len()
                )
            })
            .collect()
    })?;
    Ok(ExitCode::SUCCESS)
}

fn prune(ctx: &Ctx, store: &Store) -> CmdResult<ExitCode> {
    let r = image::prune(store)?;
    emit(ctx.json, &r, |r| {
        format!(
            "pruned {} dangling image(s), {} blob(s), {} layer(s) and {} overlay chain dir(s), {} freed",
            r.images_removed.len(),
            r.blobs_removed.len(),
            r.layers_removed.len(),
            r.chains_removed.len(),
            human_bytes(r.bytes_freed)
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
#[serde(untagged)]
enum Pushed {
    Layout(image::LayoutPush),
    Registry(image::RegistryPush),
}

fn pull(
    ctx: &Ctx,
    store: &Store,
    source: &str,
    name: Option<String>,
    insecure: bool,
) -> CmdResult<ExitCode> {
    let Some(src) = image::registry::parse_dest(source) else {
        return Err(strata_runtime::Error::Usage(format!(
            "pull source {source:?}: write docker://HOST[:PORT]/NAME[:TAG|@DIGEST] (for an OCI layout or docker-save tar, use `strata image import`)"
        )));
    };
    let src = src?;
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
    )
    .map_err(|e| strata_runtime::Error::Usage(e.to_string()))?
    .progress_chars("=> ");
    let mut bar: Option<(strata_runtime::Digest, indicatif::ProgressBar)> = None;
    let mut progress = |d: &strata_runtime::Digest, size: u64, done: u64| {
        if bar.as_ref().is_none_or(|(cur, _)| cur != d) {
            if let Some((_, b)) = bar.take() {
                b.finish();
            }
            let b = indicatif::ProgressBar::new(size).with_style(style.clone());
            b.set_message(format!("blob {}", &d.hex()[..12]));
            bar = Some((*d, b));
        }
        if let Some((_, b)) = &bar {
            b.set_position(done);
        }
    };
    let rep = image::pull(store, &src, name, insecure, &mut progress);
    if let Some((_, b)) = bar.take() {
        b.finish();
    }
    let rep = rep?;
    emit(ctx.json, &rep, |r| {
        format!(
            "pulled {} as {}:{} {}{}\n  {} blob(s) fetched ({}), {} shared with the store; {} layer(s), {} new",
            r.import.source,
            r.import.name,
            r.import.tag,
            r.import.manifest,
            r.platform
                .as_ref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            r.blobs_fetched,
            human_bytes(r.bytes_fetched),
            r.blobs_shared,
            r.import.layers.len(),
            r.import.layers.iter().filter(|l| l.layer_new).count(),
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

fn push(
    ctx: &Ctx,
    store: &Store,
    reference: &str,
    dest: &str,
    insecure: bool,
) -> CmdResult<ExitCode> {
    if image::registry::parse_dest(dest).is_none() && !dest.starts_with("oci:") {
        return Err(strata_runtime::Error::Usage(format!(
            "push destination {dest:?} names no transport: write docker://HOST[:PORT]/NAME[:TAG] for a registry or oci:DIR[:TAG] for an OCI layout directory"
        )));
    }
    let img = image::get(store, reference)?;
    let out = match image::registry::parse_dest(dest) {
        Some(r) => Pushed::Registry(image::push_registry(store, &img, &r?, insecure)?),
        None => {
            let Some(dest) = dest.strip_prefix("oci:") else {
                return Err(strata_runtime::Error::Usage(format!(
                    "push destination {dest:?} names no transport: write docker://HOST[:PORT]/NAME[:TAG] for a registry or oci:DIR[:TAG] for an OCI layout directory"
                )));
            };
            let (dir, tag) = if Path::new(dest).exists() {
                (dest, None)
            } else {
                match dest.rsplit_once(':') {
                    Some((d, t)) if !t.contains('/') => (d, Some(t)),
                    _ => (dest, None),
                }
            };
            let tag = tag.unwrap_or(&img.record.tag);
            Pushed::Layout(image::push_layout(store, &img, Path::new(dir), tag)?)
        }
    };
    emit(ctx.json, &out, |o| match o {
        Pushed::Layout(p) => format!(
            "pushed {} to {}:{} ({} blob(s) written, {}; {} present)",
            reference,
            p.dir,
            p.tag,
            p.written.blobs_written,
            human_bytes(p.written.bytes_written),
            p.written.blobs_present
        ),
        Pushed::Registry(p) => format!(
            "pushed {} to {} ({} blob(s) uploaded, {}; {} mounted from another repository; {} present) {}",
            reference,
            p.dest,
            p.blobs_uploaded,
            human_bytes(p.bytes_uploaded),
            p.blobs_mounted,
            p.blobs_present,
            p.manifest
        ),
    })?;
    Ok(ExitCode::SUCCESS)
}

fn export(
    ctx: &Ctx,
    store: &Store,
    reference: &str,
    out: &Path,
    format: Option<&str>,
) -> CmdResult<ExitCode> {
    let img = image::get(store, reference)?;
    let format = match format {
        Some(f) => ExportFormat::parse(f)?,
        None => ExportFormat::for_path(out),
    };
    let rep = image::export(store, &img, out, format)?;
    emit(ctx.json, &rep, |r| {
        format!(
            "exported {} to {} ({}, {})",
            r.reference,
            r.out,
            r.format.name(),
            human_bytes(r.bytes)
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `strata commit TARGET --image NAME:TAG [-o OUT.tar]`.
pub fn commit(
    ctx: &Ctx,
    store: &Store,
    m: &Mount,
    new_ref: &str,
    out: Option<&Path>,
) -> CmdResult<ExitCode> {
    let rep = image::commit_image(store, m, new_ref)?;
    if let Some(out) = out {
        m.commit_file_with(&image::commit::commit_options(store, m)?, out)?;
    }
    emit(ctx.json, &rep, |r| {
        format!(
            "committed {} on {} {}\n  new layer {} ({}), diff {}",
            r.reference,
            r.base,
            r.manifest,
            r.blob,
            human_bytes(r.blob_size),
            r.diff_id
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

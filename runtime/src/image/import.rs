//! `strata image import`: an OCI image layout (directory or tar) or a docker-save archive into
//! the store, verified before anything becomes visible.
//!
//! 1. The manifest and config are read and checked: digest and size against their
//!    descriptors, media types, `rootfs.type`, one diff-id per layer, every layer blob present
//!    with its descriptor's size. Nothing is written yet.
//! 2. Each layer blob is read once: hashed, copied into the operation's staging directory and
//!    decompressed (gzip, zstd or none, told by its magic bytes) into
//!    [`Store::import_reader_from`], which extracts it safely and computes its diff-id. A blob
//!    the store holds already, for this diff-id, is only hashed (and reported as shared).
//! 3. Any mismatch (blob digest or size, diff-id, a corrupt or truncated stream) fails the
//!    import with one line naming the blob and the reason; the [`Staging`] drop then removes
//!    the staged blobs and the layers this import extracted, so the store is unchanged.
//! 4. Otherwise the blobs move into `ROOT/blobs/sha256/`, and the tag record is written last.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::blobs::{Staging, TeeReader};
use super::docker_save;
use super::input::Input;
use super::layout;
use super::oci::{self, Compression, Config, Descriptor, Manifest};
use super::records::{self, IMAGE_LAYER_SOURCE, ImageRecord};
use super::reference;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::store::Store;

/// How an import names the image.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// `NAME[:TAG]` for the store; default: the layout's ref name or the archive's RepoTags,
    /// else the file name and the tag asked for (or `latest`).
    pub name: Option<String>,
}

/// One layer of an import.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    /// The blob's digest (as the manifest names it).
    pub blob: Digest,
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
    pub diff_id: Digest,
    /// The uncompressed tar's size.
    pub tar_size: u64,
    /// The blob was not in the store before.
    pub blob_new: bool,
    /// The layer was extracted by this import (not in the store before).
    pub layer_new: bool,
}

/// What an import did.
#[derive(Clone, Debug, Serialize)]
pub struct ImportReport {
    pub name: String,
    pub tag: String,
    pub manifest: Digest,
    pub config: Digest,
    pub source: String,
    pub layers: Vec<LayerReport>,
    /// Bytes of blobs newly stored.
    pub blob_bytes_new: u64,
    /// Bytes of this image's blobs the store held already (shared with other images).
    pub blob_bytes_shared: u64,
    /// Uncompressed bytes of this image's layers the store held already (not extracted again).
    pub layer_bytes_shared: u64,
    /// The manifest the tag named before, when the import moved it.
    pub replaced: Option<Digest>,
}

/// Splits `PATH[:TAG]`: the whole string when it exists, else at the last colon.
pub fn split_path_tag(spec: &str) -> Result<(PathBuf, Option<String>)> {
    let p = Path::new(spec);
    if p.exists() {
        return Ok((p.to_path_buf(), None));
    }
    if let Some((path, tag)) = spec.rsplit_once(':')
        && Path::new(path).exists()
    {
        return Ok((PathBuf::from(path), Some(tag.to_string())));
    }
    Err(Error::io(
        "open image",
        p,
        io::Error::from(io::ErrorKind::NotFound),
    ))
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A decompressing reader over a layer blob, chosen by its magic bytes.
pub(crate) fn decompress<'a>(
    mut r: Box<dyn BufRead + Send + 'a>,
    label: &Path,
) -> Result<Box<dyn Read + Send + 'a>> {
    decompress_kind(&mut r, label)?.wrap(r, label)
}

impl Compression {
    fn wrap<'a>(
        self,
        r: Box<dyn BufRead + Send + 'a>,
        label: &Path,
    ) -> Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::Gzip => Box::new(BufReader::with_capacity(
                1 << 17,
                flate2::read::MultiGzDecoder::new(r),
            )),
            Compression::Zstd => {
                let d =
                    zstd::stream::read::Decoder::with_buffer(r).map_err(|e| Error::BadArchive {
                        path: label.to_path_buf(),
                        reason: format!("bad zstd stream: {e}"),
                    })?;
                Box::new(BufReader::with_capacity(1 << 17, d))
            }
            Compression::None => Box::new(r),
        })
    }
}

fn decompress_kind(r: &mut dyn BufRead, label: &Path) -> Result<Compression> {
    let head = r.fill_buf().map_err(|e| Error::io("read", label, e))?;
    Ok(if head.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

fn bad(path: PathBuf, reason: impl Into<String>) -> Error {
    Error::BadArchive {
        path,
        reason: reason.into(),
    }
}

/// A layer to bring in.
struct LayerPlan {
    rel: String,
    /// The descriptor the manifest gives (a docker-save archive gives none).
    desc: Option<Descriptor>,
    diff_id: Digest,
}

/// Everything read and checked before a byte is written.
struct Plan {
    name: String,
    tag: String,
    /// The manifest as received (a docker-save archive has none: one is made).
    manifest: Option<Vec<u8>>,
    config: Vec<u8>,
    config_media_type: String,
    layers: Vec<LayerPlan>,
}

/// Imports the image at `spec` (`PATH[:TAG]`).
pub fn import(store: &Store, spec: &str, opts: &ImportOptions) -> Result<ImportReport> {
    let (path, tag) = split_path_tag(spec)?;
    let input = Input::from_path(&path)?;
    let plan = if layout::is_layout(&input) {
        plan_layout(&input, tag.as_deref(), opts)?
    } else if docker_save::is_docker_save(&input) {
        plan_docker_save(&input, tag.as_deref(), opts)?
    } else {
        return Err(bad(
            path,
            "neither an OCI image layout (index.json) nor a docker-save archive (manifest.json)",
        ));
    };
    let _lock = records::lock(store)?;
    run(store, &input, plan).map_err(|e| e.no_space("image import", || store.place()))
}

/// Reads a manifest, index or config blob of a layout and checks it against `desc`.
fn read_verified(input: &Input, desc: &Descriptor, what: &str) -> Result<Vec<u8>> {
    let rel = layout::blob_rel(&desc.digest);
    let label = input.label(&rel);
    if desc.size > oci::MAX_JSON_BLOB {
        return Err(bad(
            label,
            format!("{what} of {} bytes is too large", desc.size),
        ));
    }
    let bytes = input
        .read(&rel, oci::MAX_JSON_BLOB)?
        .ok_or_else(|| bad(label.clone(), format!("missing (the {what} blob)")))?;
    check_blob(&label, desc, Digest::of(&bytes), bytes.len() as u64)?;
    Ok(bytes)
}

fn check_blob(label: &Path, desc: &Descriptor, got: Digest, size: u64) -> Result<()> {
    if got != desc.digest {
        return Err(bad(
            label.to_path_buf(),
            format!(
                "digest mismatch: the content is {got}, the descriptor says {}",
                desc.digest
            ),
        ));
    }
    if size != desc.size {
        return Err(bad(
            label.to_path_buf(),
            format!(
                "size mismatch: {size} bytes, the descriptor says {}",
                desc.size
            ),
        ));
    }
    Ok(())
}

fn parse_json<T: serde::de::DeserializeOwned>(
    label: PathBuf,
    bytes: &[u8],
    what: &str,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| bad(label, format!("not a valid {what}: {e}")))
}

/// A store name from a file name: `ubuntu-22.04.tar` -> `ubuntu-22.04`.
fn name_from_path(p: &Path) -> String {
    let stem = p
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem
        .strip_suffix(".tar")
        .unwrap_or(&stem)
        .to_ascii_lowercase();
    let s: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches(|c| c == '.' || c == '-').to_string();
    if s.is_empty() { "image".into() } else { s }
}

/// The store name: the option, else a full reference the image carries, else file name + tag.
fn choose_name(
    input: &Input,
    opts: &ImportOptions,
    carried: Option<&str>,
    tag: Option<&str>,
) -> Result<(String, String)> {
    if let Some(n) = &opts.name {
        return reference::parse_name_tag(n);
    }
    if let Some(c) = carried {
        if (c.contains(':') || c.contains('/'))
            && let Ok(nt) = reference::parse_name_tag(c)
        {
            return Ok(nt);
        }
        if reference::check_tag(c).is_ok() {
            return Ok((name_from_path(input.path()), c.to_string()));
        }
    }
    let tag = tag.unwrap_or(reference::DEFAULT_TAG);
    reference::check_tag(tag)?;
    Ok((name_from_path(input.path()), tag.to_string()))
}

fn check_config(config: &Config, label: &Path, layers: usize) -> Result<()> {
    if config.rootfs.kind != "layers" {
        return Err(bad(
            label.to_path_buf(),
            format!(
                "rootfs.type {:?}: only \"layers\" is known",
                config.rootfs.kind
            ),
        ));
    }
    if config.rootfs.diff_ids.len() != layers {
        return Err(bad(
            label.to_path_buf(),
            format!(
                "the config lists {} diff_ids for {layers} layers",
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    Ok(())
}

fn plan_layout(input: &Input, tag: Option<&str>, opts: &ImportOptions) -> Result<Plan> {
    let index = layout::read_index(input)?;
    let top = layout::select(input, &index, tag)?;
    let carried = top.ref_name().map(str::to_string);
    let mut desc = top.clone();
    if oci::is_index(&desc.media_type) {
        let label = input.label(&layout::blob_rel(&desc.digest));
        let bytes = read_verified(input, &desc, "index")?;
        let nested: oci::Index = parse_json(label.clone(), &bytes, "image index")?;
        desc = layout::select_platform(&nested, &label)?.clone();
    }
    let mlabel = input.label(&layout::blob_rel(&desc.digest));
    if !oci::is_manifest(&desc.media_type) {
        return Err(bad(
            mlabel,
            format!("media type {} is not an image manifest", desc.media_type),
        ));
    }
    let mbytes = read_verified(input, &desc, "manifest")?;
    let manifest: Manifest = parse_json(mlabel.clone(), &mbytes, "image manifest")?;
    if let Some(t) = &manifest.media_type
        && !oci::is_manifest(t)
    {
        return Err(bad(
            mlabel,
            format!("media type {t} is not an image manifest"),
        ));
    }
    let clabel = input.label(&layout::blob_rel(&manifest.config.digest));
    if !oci::is_config(&manifest.config.media_type) {
        return Err(bad(
            clabel,
            format!(
                "media type {} is not an image config",
                manifest.config.media_type
            ),
        ));
    }
    let cbytes = read_verified(input, &manifest.config, "config")?;
    let config: Config = parse_json(clabel.clone(), &cbytes, "image config")?;
    check_config(&config, &clabel, manifest.layers.len())?;
    let n = manifest.layers.len();
    let mut layers = Vec::with_capacity(n);
    for (i, (d, diff_id)) in manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .enumerate()
    {
        let rel = layout::blob_rel(&d.digest);
        let label = input.label(&rel);
        if oci::layer_compression(&d.media_type).is_none() {
            return Err(bad(
                label,
                format!(
                    "media type {} is not a layer (layer {} of {n})",
                    d.media_type,
                    i + 1
                ),
            ));
        }
        match input.open(&rel)? {
            None => {
                return Err(bad(
                    label,
                    format!("missing: the manifest names it as layer {} of {n}", i + 1),
                ));
            }
            Some((_, size)) if size != d.size => {
                return Err(bad(
                    label,
                    format!(
                        "size mismatch: {size} bytes, the descriptor says {} (truncated or replaced)",
                        d.size
                    ),
                ));
            }
            Some(_) => {}
        }
        layers.push(LayerPlan {
            rel,
            desc: Some(d.clone()),
            diff_id: *diff_id,
        });
    }
    let (name, tag) = choose_name(input, opts, carried.as_deref(), tag)?;
    Ok(Plan {
        name,
        tag,
        manifest: Some(mbytes),
        config: cbytes,
        config_media_type: manifest.config.media_type.clone(),
        layers,
    })
}

fn plan_docker_save(input: &Input, tag: Option<&str>, opts: &ImportOptions) -> Result<Plan> {
    let entries = docker_save::read_manifest(input)?;
    let entry = docker_save::select(input, &entries, tag)?;
    let clabel = input.label(&entry.config);
    let cbytes = input
        .read(&entry.config, oci::MAX_JSON_BLOB)?
        .ok_or_else(|| bad(clabel.clone(), "missing (the config manifest.json names)"))?;
    let got = Digest::of(&cbytes);
    if let Some(want) = docker_save::digest_in_name(&entry.config)
        && want != got
    {
        return Err(bad(
            clabel,
            format!("digest mismatch: the content is {got}, its name says {want}"),
        ));
    }
    let config: Config = parse_json(clabel.clone(), &cbytes, "image config")?;
    check_config(&config, &clabel, entry.layers.len())?;
    let n = entry.layers.len();
    let mut layers = Vec::with_capacity(n);
    for (i, (rel, diff_id)) in entry.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
        let Some((_, size)) = input.open(rel)? else {
            return Err(bad(
                input.label(rel),
                format!("missing: manifest.json names it as layer {} of {n}", i + 1),
            ));
        };
        // The media type is told by the content (an empty one here).
        let desc = docker_save::digest_in_name(rel).map(|d| Descriptor::new("", d, size));
        layers.push(LayerPlan {
            rel: rel.clone(),
            desc,
            diff_id: *diff_id,
        });
    }
    let wanted = entry.tags().iter().find(|t| match tag {
        Some(tag) => *t == tag || t.ends_with(&format!(":{tag}")),
        None => true,
    });
    let (name, tag) = choose_name(input, opts, wanted.map(String::as_str), tag)?;
    Ok(Plan {
        name,
        tag,
        manifest: None,
        config: cbytes,
        config_media_type: oci::OCI_CONFIG.into(),
        layers,
    })
}

fn run(store: &Store, input: &Input, plan: Plan) -> Result<ImportReport> {
    let mut staging = Staging::new(store)?;
    let blobs = staging.blobs().clone();
    let pairs = records::known_pairs(store)?;
    let n = plan.layers.len();
    let mut reports = Vec::with_capacity(n);
    let mut descs = Vec::with_capacity(n);
    for (i, lp) in plan.layers.iter().enumerate() {
        let (rep, desc) = store_layer(store, &mut staging, input, lp, &pairs, i, n)?;
        reports.push(rep);
        descs.push(desc);
    }
    let config_digest = staging.add_bytes(&plan.config)?;
    let manifest_bytes = match plan.manifest {
        Some(b) => b,
        None => {
            let m = Manifest {
                schema_version: 2,
                media_type: Some(oci::OCI_MANIFEST.into()),
                config: Descriptor::new(
                    &plan.config_media_type,
                    config_digest,
                    plan.config.len() as u64,
                ),
                layers: descs,
                annotations: Default::default(),
            };
            serde_json::to_vec(&m).map_err(|e| bad(input.path().to_path_buf(), e.to_string()))?
        }
    };
    let all_blobs: Vec<(Digest, u64)> = {
        let mut v: Vec<(Digest, u64)> = reports.iter().map(|r| (r.blob, r.size)).collect();
        v.push((config_digest, plan.config.len() as u64));
        v.push((Digest::of(&manifest_bytes), manifest_bytes.len() as u64));
        v
    };
    let shared_before: Vec<bool> = all_blobs.iter().map(|(d, _)| blobs.has(d)).collect();
    let manifest_digest = staging.add_bytes(&manifest_bytes)?;
    let old = records::record(store, &plan.name, &plan.tag)?;

    let rec = ImageRecord {
        name: plan.name.clone(),
        tag: plan.tag.clone(),
        manifest: manifest_digest,
        config: config_digest,
        created: crate::store::now_secs(),
        source: input.path().display().to_string(),
    };
    staging.commit(|| records::write_record(store, &rec))?;
    if let Some(o) = old.as_ref().filter(|o| o.manifest != manifest_digest) {
        // The image the tag named before stays, dangling, until `image prune`.
        records::keep_dangling(store, o)?;
    }
    records::settle(store)?;
    let mut seen = std::collections::HashSet::new();
    let (mut new_b, mut shared_b) = (0, 0);
    for ((d, size), was) in all_blobs.iter().zip(shared_before) {
        if !seen.insert(*d) {
            continue;
        }
        if was {
            shared_b += size;
        } else {
            new_b += size;
        }
    }
    Ok(ImportReport {
        name: plan.name,
        tag: plan.tag,
        manifest: manifest_digest,
        config: config_digest,
        source: rec.source,
        layer_bytes_shared: reports
            .iter()
            .filter(|r| !r.layer_new)
            .map(|r| r.tar_size)
            .sum(),
        layers: reports,
        blob_bytes_new: new_b,
        blob_bytes_shared: shared_b,
        replaced: old.map(|o| o.manifest).filter(|d| *d != manifest_digest),
    })
}

/// Brings in one layer blob: verified, staged, extracted unless the store has it.
fn store_layer(
    store: &Store,
    staging: &mut Staging,
    input: &Input,
    lp: &LayerPlan,
    pairs: &HashMap<Digest, Digest>,
    i: usize,
    n: usize,
) -> Result<(LayerReport, Descriptor)> {
    let label = input.label(&lp.rel);
    let Some((reader, size)) = input.open(&lp.rel)? else {
        return Err(bad(label, format!("missing (layer {} of {n})", i + 1)));
    };
    let present = store.get(&lp.diff_id).ok();
    // Shared: the store has this blob for this diff-id; the source is only hashed.
    if let (Some(desc), Some(layer)) = (&lp.desc, &present)
        && !desc.media_type.is_empty()
        && staging.blobs().has(&desc.digest)
        && pairs.get(&desc.digest) == Some(&lp.diff_id)
    {
        let (got, len) = Digest::of_reader(reader).map_err(|e| Error::io("read", &label, e))?;
        check_blob(&label, desc, got, len)?;
        return Ok((
            LayerReport {
                blob: desc.digest,
                media_type: desc.media_type.clone(),
                size: len,
                diff_id: lp.diff_id,
                tar_size: layer.info.tar_size,
                blob_new: false,
                layer_new: false,
            },
            desc.clone(),
        ));
    }
    let tmp = staging.tmp_path("layer");
    let file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    // A failed write of the staged blob names it (not the source being read).
    let file = crate::error::TagWrites::new(file, &tmp);
    let mut tee = TeeReader::new(reader, io::BufWriter::with_capacity(1 << 17, file));
    let mut compression = Compression::None;
    // (diff-id, tar size, newly extracted)
    let outcome: Result<(Digest, u64, bool)> = (|| {
        let mut br: Box<dyn BufRead + Send + '_> =
            Box::new(BufReader::with_capacity(1 << 17, &mut tee));
        compression = decompress_kind(&mut br, &label)?;
        let dec = compression.wrap(br, &label)?;
        match &present {
            Some(_) => {
                let (d, len) = Digest::of_reader(dec).map_err(|e| {
                    bad(
                        label.clone(),
                        format!("cannot decompress: {}", one_line(&e)),
                    )
                })?;
                Ok((d, len, false))
            }
            None => {
                let source = format!("{IMAGE_LAYER_SOURCE}{}", label.display());
                let imp = store.import_reader_from(dec, &label, &source)?;
                Ok((imp.layer.info.diff_id, imp.layer.info.tar_size, !imp.reused))
            }
        }
    })();
    if let Ok((d, _, true)) = &outcome {
        staging.layer_created(*d);
    }
    let (blob, blob_size, _) = tee.finish().map_err(|e| Error::io("read", &label, e))?;
    if let Some(desc) = &lp.desc {
        check_blob(&label, desc, blob, blob_size)?;
    } else if blob_size != size {
        return Err(bad(
            label,
            format!("size mismatch: read {blob_size} bytes of {size}"),
        ));
    }
    let (diff_id, tar_size, layer_new) = outcome?;
    if diff_id != lp.diff_id {
        return Err(bad(
            label,
            format!(
                "diff_id mismatch: the uncompressed layer is {diff_id}, the config says {} (layer {} of {n})",
                lp.diff_id,
                i + 1
            ),
        ));
    }
    let blob_new = !staging.has(&blob);
    staging.add_file(blob, tmp)?;
    let desc = match &lp.desc {
        Some(d) if !d.media_type.is_empty() => d.clone(),
        _ => Descriptor::new(oci::oci_layer_type(compression), blob, blob_size),
    };
    Ok((
        LayerReport {
            blob,
            media_type: desc.media_type.clone(),
            size: blob_size,
            diff_id,
            tar_size,
            blob_new,
            layer_new,
        },
        desc,
    ))
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}

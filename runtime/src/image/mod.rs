//! Real images: OCI image layouts and docker-save archives in and out of the store.
//!
//! An image is a manifest naming a config and layer blobs by digest. The store keeps the
//! blobs as received (`ROOT/blobs/sha256/`), each layer also extracted once under
//! `ROOT/layers/` (by diff-id, shared with every image and mount), and a tag record per
//! `NAME:TAG` (`ROOT/images/`).
//!
//! - [`oci`]: media types and the serde shapes of descriptor, index, manifest, config.
//! - [`reference`]: `NAME[:TAG]`, `NAME@sha256:...`, image ids.
//! - [`input`], [`layout`], [`docker_save`]: reading (and writing) the two formats.
//! - [`import`]: verified, all-or-nothing import.
//! - [`blobs`], [`records`]: the store side: blobs, staging, tags, refcounted removal.
//! - [`commit`]: a mount's writable layer as a new image on top of its base.
//! - [`push_layout`], [`registry`], [`export`]: publishing.

pub mod auth;
pub mod blobs;
pub mod commit;
pub mod docker_save;
pub mod export;
pub mod import;
pub mod input;
pub mod layout;
pub mod oci;
pub mod pull;
pub mod push_layout;
pub mod records;
pub mod reference;
pub mod registry;

pub use commit::{CommitReport, commit_image};
pub use export::{ExportFormat, Exported, export};
pub use import::{ImportOptions, ImportReport, LayerReport, import};
pub use pull::{Pulled, pull};
pub use push_layout::{LayoutPush, push_layout};
pub use records::{Image, ImageRecord, Released, Removed, find, get, images, prune, remove};
pub use registry::{RegistryPush, RegistryRef, push as push_registry};

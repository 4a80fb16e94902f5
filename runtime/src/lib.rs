//! strata-runtime: everything that touches the kernel, plus the pure union model it is checked
//! against.
//!
//! - [`model`]: the spec. A pure, I/O-free application of OCI layer change sets.
//! - [`layer`]: parsing and safe import of OCI layer tars and directories.
//! - [`store`]: the content-addressed layer store and the records of live mounts.
//! - [`driver`]: one storage driver per file behind the [`driver::Driver`] trait.
//! - [`diff`]: a writable layer's changes, by tree compare or from an upper directory.
//! - [`commit`]: the writable layer of a mount as an OCI layer tar.
//! - [`conformance`]: the conformance engine behind `strata check` and the property tests.
//! - [`loopfs`]: loop-mounted btrfs and xfs images (for the btrfs driver and reflinks).
//! - [`scan`]: a real directory read into the model's [`model::Tree`].
//! - [`ops_exec`]: the model's operations done for real on a mounted view.
//! - [`container`]: namespaces, /proc /dev /sys, root switch, cgroups, exec: `strata run`.
//! - [`rootfs`]: a minimal root filesystem from host binaries and their libraries.
//! - [`image`]: OCI image layouts and docker-save archives: import, commit, push, export.
//! - [`require`]: what a test skips without, and `STRATA_REQUIRE`, which makes a skip fail.

pub mod commit;
pub mod conformance;
pub mod container;
pub mod diff;
pub mod digest;
pub mod driver;
pub mod error;
pub mod fixture;
pub mod fsutil;
pub mod gc;
pub mod image;
pub mod layer;
pub mod loopfs;
pub mod model;
pub mod mountinfo;
pub mod mounts;
#[cfg(feature = "mutants")]
pub mod mutants;
pub mod ops_exec;
pub mod probe;
pub mod require;
pub mod rootfs;
pub mod sandbox;
pub mod scan;
pub mod store;
pub mod tarw;

pub use digest::Digest;
pub use error::{Error, Result};

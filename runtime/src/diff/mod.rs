//! Finding a writable layer's changes, for [`crate::commit`] to write as a layer tar:
//!
//! - [`tree`]: a whole merged tree compared with the model of its stack (copy, btrfs);
//! - [`upper`]: an overlay-style upper directory read as it is (overlay, fuse-overlayfs).

pub mod tree;
pub mod upper;

pub use tree::tree_diff;
pub use upper::{UpperForm, upper_items};

//! OCI layers: entry names and whiteouts, and the safe import of a tar or directory into a
//! layer directory in overlayfs's lower form.

pub mod import;
pub mod name;
pub mod source;
pub mod tarread;

pub use import::{ImportedLayer, import_tar};
pub use name::{Name, classify};
pub use source::{LayerSource, open_source};

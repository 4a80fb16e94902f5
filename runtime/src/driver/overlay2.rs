//! Docker's overlay2 layout: kernel overlayfs over the store's per-layer directories, each
//! layer extracted alone. Kept beside [`super::overlay`] (the chain layout) so the
//! conformance matrix and the report show, side by side, how one image differs between the
//! two: a directory a layer only implies shows 0755 root with mtime 0 instead of the
//! attributes below, and a layer's directory hides a lower symlink at the same path
//! (`lib -> usr/lib`, then `lib/x`: `lib` becomes a real directory). Both are declared.
//! The kernel mechanics (options, mount APIs, commit of the upper directory) are overlay's.

use std::io::Write;

use super::overlay::{MAX_LAYERS, OverlayApi, commit_view, mount_view};
use super::{Capabilities, Driver, MountView, Overlay, umount};
use crate::commit::CommitOptions;
use crate::error::Result;

/// The overlay2 driver.
#[derive(Clone, Copy, Debug)]
pub struct Overlay2 {
    pub api: OverlayApi,
}

impl Driver for Overlay2 {
    fn name(&self) -> &'static str {
        "overlay2"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            follows_lower_symlinks: false,
            implied_dirs_keep_lower_attrs: false,
            max_layers: Some(MAX_LAYERS),
            ..Overlay { api: self.api }.capabilities()
        }
    }

    fn availability(&self) -> std::result::Result<(), String> {
        Overlay { api: self.api }.availability()
    }

    fn mount(&self, view: &MountView) -> Result<()> {
        mount_view(self.api, view)
    }

    fn unmount(&self, view: &MountView) -> Result<()> {
        umount(&view.target)
    }

    fn commit(&self, view: &MountView, opts: &CommitOptions, out: &mut dyn Write) -> Result<()> {
        commit_view(view, opts, out)
    }
}

//! `STRATA_BENCH=quick` (CI and `strata suite`, all benches within 3 minutes here) or the
//! default full profile: sample counts, times and how far each sweep goes.

use std::time::Duration;

use criterion::Criterion;

/// How much to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Quick,
    Full,
}

impl Profile {
    /// From `STRATA_BENCH` (`quick` or `full`; default full).
    pub fn from_env() -> Profile {
        match std::env::var("STRATA_BENCH").as_deref() {
            Ok("quick") => Profile::Quick,
            _ => Profile::Full,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Full => "full",
        }
    }

    /// Criterion settings for a group whose one sample takes about `per_iter`.
    pub fn criterion(self) -> Criterion {
        let c = Criterion::default().without_plots();
        match self {
            Profile::Quick => c
                .sample_size(10)
                .warm_up_time(Duration::from_millis(200))
                .measurement_time(Duration::from_millis(800)),
            Profile::Full => c
                .sample_size(30)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(4)),
        }
    }

    /// Host mount counts for `rootfs_switch`.
    pub fn mount_counts(self) -> &'static [usize] {
        match self {
            Profile::Quick => &[30, 300, 3000],
            Profile::Full => &[30, 300, 1000, 3000],
        }
    }

    /// Layer counts for `union_prepare`.
    pub fn layer_counts(self) -> &'static [usize] {
        match self {
            Profile::Quick => &[1, 16, 128, 500],
            Profile::Full => &[1, 4, 16, 64, 128, 256, 500],
        }
    }

    /// File counts for `union_prepare` (one layer).
    pub fn file_counts(self) -> &'static [usize] {
        match self {
            Profile::Quick => &[100, 1000, 10_000],
            Profile::Full => &[100, 1000, 10_000, 100_000],
        }
    }

    /// Total bytes for `union_prepare` (one layer, 16 files).
    pub fn byte_counts(self) -> &'static [u64] {
        match self {
            Profile::Quick => &[1 << 20, 16 << 20, 64 << 20],
            Profile::Full => &[1 << 20, 16 << 20, 256 << 20, 1 << 30],
        }
    }

    /// File sizes for `copy_up`.
    pub fn copy_up_sizes(self) -> &'static [u64] {
        match self {
            Profile::Quick => &[4 << 10, 1 << 20, 32 << 20],
            Profile::Full => &[4 << 10, 64 << 10, 1 << 20, 16 << 20, 256 << 20],
        }
    }

    /// Changed files for `commit` (each 4 KiB).
    pub fn commit_files(self) -> &'static [usize] {
        match self {
            Profile::Quick => &[1, 100, 1000],
            Profile::Full => &[1, 10, 100, 1000, 10_000],
        }
    }

    /// Changed bytes for `commit` (one file).
    pub fn commit_bytes(self) -> &'static [u64] {
        match self {
            Profile::Quick => &[1 << 20, 32 << 20],
            Profile::Full => &[1 << 20, 16 << 20, 128 << 20],
        }
    }
}

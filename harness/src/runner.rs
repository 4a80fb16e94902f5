//! This host as a result record's runner: the runtime's probe in the record's shape.

use std::path::Path;

use strata_reports::record::{Fs, Runner};
use strata_runtime::probe::{self, Probe};

/// A runner id that tells hosts apart in merged reports: `STRATA_RUNNER_ID`, else
/// hostname and kernel.
pub fn runner_id(p: &Probe) -> String {
    if let Ok(id) = std::env::var("STRATA_RUNNER_ID")
        && !id.is_empty()
    {
        return id;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), p.kernel)
}

/// The probe of this host, with the store at `store_root`, as a record runner.
pub fn runner(store_root: &Path) -> Runner {
    from_probe(&probe::probe(store_root))
}

/// A probe in the record's shape.
pub fn from_probe(p: &Probe) -> Runner {
    let mut overlay_params: std::collections::BTreeMap<String, serde_json::Value> = p
        .overlay
        .params
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
        .collect();
    if let Some(b) = p.overlay.lowerdir_plus {
        overlay_params.insert("lowerdir_plus".into(), b.into());
    }
    if let Some(b) = p.overlay.userxattr {
        overlay_params.insert("userxattr".into(), b.into());
    }
    overlay_params.insert("max_layers".into(), p.overlay.max_layers.into());
    // The report marks this in its layer charts (the one-page limit of mount(2) options).
    overlay_params.insert(
        "mount_page_layers".into(),
        p.overlay.mount_page_layers.into(),
    );
    Runner {
        id: runner_id(p),
        kernel: Some(p.kernel.clone()),
        os: Some(p.os.clone()),
        cpu: Some(p.cpu.clone()),
        cores: Some(p.cores),
        memory: Some(p.memory),
        cgroup: Some(p.cgroup.clone()),
        fs: Some(Fs {
            fs_type: Some(p.store_fs.fs_type.clone()),
            options: Some(p.store_fs.options.clone()),
        }),
        host_mounts: Some(p.host_mounts as u64),
        privileged: Some(p.privileged),
        overlay_params,
        kernel_source: None,
        virtualization: None,
    }
}

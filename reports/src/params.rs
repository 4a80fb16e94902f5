//! Benchmark parameters: parsing criterion's parameter string and picking the sweep axis.
//!
//! Benchmarks use `BenchmarkId::new(function, param)`, where the param is either `name=value`
//! (`layers=16`, several joined by `,`) or a bare value (`16`). A bare value gets the name the
//! group sweeps over (see [`default_param_name`]).

use std::collections::BTreeMap;

use serde_json::Value;

/// Parameter names in the order the report prefers them as the x axis.
const SWEEP_PREFERENCE: &[&str] = &[
    "layers",
    "files",
    "bytes",
    "host_mounts",
    "mounts",
    "concurrency",
];

/// The parameter a group sweeps over when criterion's param is a bare value.
pub fn default_param_name(group: &str, bytes_throughput: bool) -> &'static str {
    match group {
        "rootfs_switch" => "host_mounts",
        "union_prepare" => "layers",
        "copy_up" => "bytes",
        _ if bytes_throughput => "bytes",
        "commit" => "files",
        _ => "param",
    }
}

/// Parses criterion's `value_str` into named parameters. Numbers become JSON numbers
/// (`4KiB` = 4096); anything else stays a string.
pub fn parse_param(
    group: &str,
    value_str: &str,
    bytes_throughput: bool,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let value_str = value_str.trim();
    if value_str.is_empty() {
        return out;
    }
    if !value_str.contains('=') {
        let name = default_param_name(group, bytes_throughput);
        out.insert(name.to_string(), to_value(value_str));
        return out;
    }
    for part in value_str
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match part.split_once('=') {
            Some((name, value)) => {
                out.insert(name.trim().to_string(), to_value(value.trim()));
            }
            None => {
                out.insert(
                    default_param_name(group, bytes_throughput).to_string(),
                    to_value(part),
                );
            }
        }
    }
    out
}

fn to_value(s: &str) -> Value {
    match parse_number(s) {
        Some(n) if n.fract() == 0.0 && (0.0..9.0e15).contains(&n) => Value::from(n as u64),
        Some(n) => serde_json::Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or_else(|| Value::from(s)),
        None => Value::from(s),
    }
}

/// `16`, `1e6`, `1_000`, `4k`, `4KiB`, `1M`, `1MB`, `2GiB` (binary multiples).
pub fn parse_number(s: &str) -> Option<f64> {
    let s: String = s.trim().chars().filter(|c| *c != '_').collect();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.trim().parse().ok()?;
    let k = match suffix.trim().to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = n * k;
    v.is_finite().then_some(v)
}

/// The parameter to put on the x axis and its value: the preferred numeric parameter.
pub fn sweep(params: &BTreeMap<String, Value>) -> Option<(String, f64)> {
    let numeric = |name: &str| {
        params
            .get(name)
            .and_then(Value::as_f64)
            .map(|v| (name.to_string(), v))
    };
    SWEEP_PREFERENCE
        .iter()
        .find_map(|name| numeric(name))
        .or_else(|| {
            params
                .iter()
                .find_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
        })
}

/// The parameters other than `sweep_name`, as `name=value` joined by `, ` (for series labels).
pub fn others_label(params: &BTreeMap<String, Value>, sweep_name: Option<&str>) -> String {
    params
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != sweep_name)
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A parameter value without JSON quotes.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// All parameters as `name=value` joined by `, `.
pub fn label(params: &BTreeMap<String, Value>) -> String {
    others_label(params, None)
}

/// Like [`label`], for people: byte sizes in binary units (`bytes=64 MiB`).
pub fn display_label(params: &BTreeMap<String, Value>) -> String {
    params
        .iter()
        .map(|(k, v)| match v.as_f64() {
            Some(n) if k == "bytes" || k.ends_with("_bytes") => {
                format!("{k}={}", crate::chart::axis::bytes_label(n))
            }
            _ => format!("{k}={}", value_text(v)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn both_param_forms() {
        let p = parse_param("union_prepare", "layers=16", false);
        assert_eq!(p.get("layers"), Some(&Value::from(16u64)));
        let p = parse_param("union_prepare", "16", false);
        assert_eq!(p.get("layers"), Some(&Value::from(16u64)));
        let p = parse_param("rootfs_switch", "300", false);
        assert_eq!(sweep(&p), Some(("host_mounts".to_string(), 300.0)));
        let p = parse_param("copy_up", "4KiB", true);
        assert_eq!(p.get("bytes"), Some(&Value::from(4096u64)));
        let p = parse_param("commit", "files=100, bytes=1M", false);
        assert_eq!(sweep(&p), Some(("files".to_string(), 100.0)));
        assert_eq!(others_label(&p, Some("files")), "bytes=1048576");
        assert_eq!(display_label(&p), "bytes=1 MiB, files=100");
        let p = parse_param("other", "tmpfs", false);
        assert_eq!(p.get("param"), Some(&Value::from("tmpfs")));
        assert_eq!(sweep(&p), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("1e3"), Some(1000.0));
        assert_eq!(parse_number("1_000"), Some(1000.0));
        assert_eq!(parse_number("2GiB"), Some(2147483648.0));
        assert_eq!(parse_number("abc"), None);
        assert_eq!(parse_number("3x"), None);
    }
}

//! Axes: a numeric axis that is logarithmic when the data spans decades, a category axis for
//! bar charts, and the choice of a time unit.

use std::ops::Range;

use plotters::coord::ranged1d::{
    KeyPointHint, KeyPointWeight, NoDefaultFormatting, Ranged, ValueFormatter,
};

/// How tick labels are written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Format {
    /// 1, 20, 1.5k, 2M.
    Count,
    /// 4 KiB, 1 MiB.
    Bytes,
    /// Nanoseconds, each label in its own unit: 500 ns, 2 µs, 1.5 ms.
    Time,
}

impl Format {
    /// The format for a sweep parameter.
    pub(crate) fn for_param(name: &str) -> Format {
        if name == "bytes" || name.ends_with("_bytes") || name == "size" {
            Format::Bytes
        } else {
            Format::Count
        }
    }
}

/// A numeric axis, linear or logarithmic.
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    format: Format,
}

/// Data spanning at least this ratio (one decade) gets a log axis.
const LOG_RATIO: f64 = 10.0;

impl Axis {
    /// An axis covering `min..=max`, logarithmic when all values are positive and span a decade
    /// or more, with some padding so markers are not cut at the edges.
    pub(crate) fn auto(min: f64, max: f64, format: Format) -> Axis {
        let (min, max) = sane(min, max);
        if min > 0.0 && max / min >= LOG_RATIO {
            let pad = (max / min).powf(0.04);
            Axis {
                lo: min / pad,
                hi: max * pad,
                log: true,
                format,
            }
        } else {
            let span = if max > min {
                max - min
            } else {
                max.abs().max(1.0)
            };
            let lo = if min >= 0.0 && min - span * 0.08 < 0.0 {
                0.0
            } else {
                min - span * 0.08
            };
            Axis {
                lo,
                hi: max + span * 0.08,
                log: false,
                format,
            }
        }
    }

    /// A linear axis from zero (bar lengths must start at zero).
    pub(crate) fn from_zero(max: f64, format: Format) -> Axis {
        let max = if max.is_finite() && max > 0.0 {
            max
        } else {
            1.0
        };
        Axis {
            lo: 0.0,
            hi: max * 1.12,
            log: false,
            format,
        }
    }

    pub(crate) fn is_log(&self) -> bool {
        self.log
    }

    pub(crate) fn lo(&self) -> f64 {
        self.lo
    }

    pub(crate) fn hi(&self) -> f64 {
        self.hi
    }

    fn major_ticks(&self, max_points: usize) -> Vec<f64> {
        if self.log && self.format == Format::Bytes {
            binary_ticks(self.lo, self.hi, max_points.clamp(4, 10))
        } else if self.log {
            let mut out = Vec::new();
            let (a, b) = (
                self.lo.log10().floor() as i32,
                self.hi.log10().ceil() as i32,
            );
            // The densest of 1-2-5, 1-3, 1 per decade that fits: a few decades get a label
            // every 1, 2, 5 (so a reader never has to count unlabelled grid lines).
            let limit = max_points.clamp(4, 12);
            for mult in [&[1.0, 2.0, 5.0][..], &[1.0, 3.0], &[1.0]] {
                out.clear();
                for e in a..=b {
                    for m in mult {
                        let v = m * 10f64.powi(e);
                        if v >= self.lo && v <= self.hi {
                            out.push(v);
                        }
                    }
                }
                if out.len() <= limit {
                    break;
                }
            }
            thin(out, max_points.max(4))
        } else if self.format == Format::Bytes {
            // Nice steps in the binary unit of the range: 0, 0.5 GiB, 1 GiB, ...
            let unit = 1024f64.powi((self.hi.max(1.0).log2() / 10.0).floor() as i32);
            linear_ticks(self.lo / unit, self.hi / unit, max_points.clamp(2, 10))
                .into_iter()
                .map(|v| v * unit)
                .collect()
        } else {
            linear_ticks(self.lo, self.hi, max_points.clamp(2, 10))
        }
    }

    fn minor_ticks(&self, max_points: usize) -> Vec<f64> {
        if self.log && self.format == Format::Bytes {
            binary_ticks(self.lo, self.hi, max_points.clamp(2, 40))
        } else if self.log {
            let (a, b) = (
                self.lo.log10().floor() as i32,
                self.hi.log10().ceil() as i32,
            );
            let out: Vec<f64> = (a..=b)
                .flat_map(|e| (1..10).map(move |m| m as f64 * 10f64.powi(e)))
                .filter(|v| *v >= self.lo && *v <= self.hi)
                .collect();
            if out.len() <= max_points {
                out
            } else {
                self.major_ticks(max_points)
            }
        } else {
            linear_ticks(self.lo, self.hi, max_points.clamp(2, 40))
        }
    }
}

fn sane(min: f64, max: f64) -> (f64, f64) {
    let min = if min.is_finite() { min } else { 0.0 };
    let max = if max.is_finite() { max } else { min + 1.0 };
    if max > min {
        (min, max)
    } else {
        (min, min + min.abs().max(1.0))
    }
}

fn thin(v: Vec<f64>, max_points: usize) -> Vec<f64> {
    if max_points == 0 || v.len() <= max_points {
        return v;
    }
    let step = v.len().div_ceil(max_points);
    v.into_iter().step_by(step).collect()
}

/// Powers of two (every 1st, 2nd, 4th, 5th or 10th), for byte sizes on a log axis.
fn binary_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let (a, b) = (lo.log2().ceil() as i32, hi.log2().floor() as i32);
    for step in [1, 2, 4, 5, 10, 20] {
        let out: Vec<f64> = (a..=b)
            .filter(|e| e.rem_euclid(step) == 0)
            .map(|e| 2f64.powi(e))
            .collect();
        if out.len() <= n {
            return out;
        }
    }
    vec![lo, hi]
}

/// Ticks at a "nice" step (1, 2 or 5 times a power of ten).
pub(crate) fn linear_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi <= lo || n == 0 {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let frac = if self.log {
            let v = value.max(self.lo * 1e-3);
            (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (value - self.lo) / (self.hi - self.lo)
        };
        let px = limit.0 as f64 + frac * (limit.1 - limit.0) as f64;
        px.clamp(-1e6, 1e6).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        match hint.weight() {
            KeyPointWeight::Bold => self.major_ticks(hint.max_num_points()),
            KeyPointWeight::Any => self.minor_ticks(hint.max_num_points()),
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, v: &f64) -> String {
        match self.format {
            Format::Count => count_label(*v),
            Format::Bytes => bytes_label(*v),
            Format::Time => time_label(*v),
        }
    }
}

fn trim_float(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub(crate) fn count_label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{}G", trim_float(v / 1e9, 1))
    } else if a >= 1e6 {
        format!("{}M", trim_float(v / 1e6, 1))
    } else if a >= 1e4 {
        format!("{}k", trim_float(v / 1e3, 1))
    } else {
        plain_label(v)
    }
}

pub(crate) fn bytes_label(v: f64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = v;
    let mut i = 0;
    while x.abs() >= 1024.0 && i + 1 < UNITS.len() {
        x /= 1024.0;
        i += 1;
    }
    format!("{} {}", trim_float(x, 1), UNITS[i])
}

/// A time in nanoseconds with the unit that reads best: `0`, `850 ns`, `2.5 µs`, `1 ms`.
pub(crate) fn time_label(ns: f64) -> String {
    let a = ns.abs();
    let (k, unit) = if a >= 1e9 {
        (1e9, "s")
    } else if a >= 1e6 {
        (1e6, "ms")
    } else if a >= 1e3 {
        (1e3, "µs")
    } else {
        (1.0, "ns")
    };
    if a == 0.0 {
        "0".to_string()
    } else {
        format!("{} {unit}", trim_float(ns / k, 2))
    }
}

pub(crate) fn plain_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        trim_float(v, 0)
    } else if a >= 1.0 {
        trim_float(v, 2)
    } else if a >= 0.001 {
        trim_float(v, 4)
    } else {
        format!("{v:.0e}")
    }
}

/// Bar-chart categories, top to bottom. Category `i` occupies `[n-1-i, n-i)` on the axis.
#[derive(Debug, Clone)]
pub(crate) struct Categories {
    names: Vec<String>,
}

impl Categories {
    pub(crate) fn new(names: Vec<String>) -> Self {
        Categories { names }
    }

    /// The axis span of category `i`: `(bottom, top)`.
    pub(crate) fn span(&self, i: usize) -> (f64, f64) {
        let n = self.names.len() as f64;
        (n - 1.0 - i as f64, n - i as f64)
    }
}

impl Ranged for Categories {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let n = self.names.len().max(1) as f64;
        (limit.0 as f64 + value / n * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        (0..self.names.len())
            .map(|i| self.span(i).0 + 0.5)
            .collect()
    }

    fn range(&self) -> Range<f64> {
        0.0..self.names.len().max(1) as f64
    }
}

impl ValueFormatter<f64> for Categories {
    fn format_ext(&self, v: &f64) -> String {
        let n = self.names.len();
        let from_top = n as f64 - v.floor() - 1.0;
        if from_top >= 0.0 && (from_top as usize) < n {
            self.names[from_top as usize].clone()
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_only_across_decades() {
        assert!(Axis::auto(1.0, 500.0, Format::Count).is_log());
        assert!(!Axis::auto(100.0, 400.0, Format::Count).is_log());
        assert!(!Axis::auto(0.0, 400.0, Format::Count).is_log());
        let a = Axis::auto(30.0, 3000.0, Format::Count);
        assert_eq!(
            a.major_ticks(10),
            vec![50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
        );
        // Five decades: one label per decade would be too few to read; 1-3 fits.
        let t = Axis::auto(1e4, 1e9, Format::Time).major_ticks(12);
        assert!(t.len() >= 8, "{t:?}");
    }

    #[test]
    fn labels() {
        assert_eq!(bytes_label(4096.0), "4 KiB");
        assert_eq!(bytes_label(1048576.0), "1 MiB");
        assert_eq!(count_label(500.0), "500");
        assert_eq!(count_label(30000.0), "30k");
        assert_eq!(plain_label(0.25), "0.25");
        assert_eq!(plain_label(0.00001), "1e-5");
        assert_eq!(time_label(2_500_000.0), "2.5 ms");
        assert_eq!(time_label(850.0), "850 ns");
        assert_eq!(time_label(1e9), "1 s");
        let b = Axis::auto(4096.0, 67108864.0, Format::Bytes);
        let ticks: Vec<String> = b.major_ticks(8).iter().map(|v| bytes_label(*v)).collect();
        assert_eq!(
            ticks,
            vec![
                "4 KiB", "16 KiB", "64 KiB", "256 KiB", "1 MiB", "4 MiB", "16 MiB", "64 MiB"
            ]
        );
        assert_eq!(
            linear_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        let c = Categories::new(vec!["a".into(), "b".into()]);
        assert_eq!(c.format_ext(&1.5), "a");
        assert_eq!(c.format_ext(&0.5), "b");
    }
}

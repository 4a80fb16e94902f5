//! The phases of a container start (layers, union mount, clone, namespaces, root switch,
//! exec, wait, teardown, ...): per phase the median over the runs as a bar, the spread
//! (lowest to highest run) as a whisker, the first run and outlier runs as marks, so one
//! slow run neither hides nor squashes the others. One colour per runner's driver.

use plotters::coord::Shift;
use plotters::element::{PathElement, Rectangle};
use plotters::prelude::*;
use plotters::style::RGBColor;

use super::axis::{Axis, Categories, Format};
use super::legend::{self, Entry, Swatch};
use super::style;
use super::{Chart, de};

/// One phase of one series: the median, spread and marks, in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PhaseStat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// The first run's time (often slower: caches cold).
    pub first: Option<f64>,
    /// Runs beyond 1.5 interquartile ranges from the quartiles and 25% from the median.
    pub outliers: Vec<f64>,
    pub runs: usize,
}

impl PhaseStat {
    /// Statistics of the runs' times, in run order (the first is the first run).
    pub(crate) fn of(times: &[f64]) -> Option<PhaseStat> {
        let first = times.first().copied();
        let mut v: Vec<f64> = times.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let i = p * (v.len() - 1) as f64;
            let (a, b) = (i.floor() as usize, i.ceil() as usize);
            v[a] + (v[b] - v[a]) * (i - a as f64)
        };
        let (q1, q3) = (q(0.25), q(0.75));
        let fence = 1.5 * (q3 - q1);
        let med = q(0.5);
        // Beyond the fences and a quarter away from the median: with a handful of runs the
        // quartiles are close, and microsecond jitter is no outlier.
        let outliers = if v.len() >= 4 {
            v.iter()
                .copied()
                .filter(|x| *x < q1 - fence || *x > q3 + fence)
                .filter(|x| (x - med).abs() > 0.25 * med)
                .collect()
        } else {
            Vec::new()
        };
        Some(PhaseStat {
            median: med,
            min: v[0],
            max: v[v.len() - 1],
            first: if v.len() > 1 { first } else { None },
            outliers,
            runs: v.len(),
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PhaseSeries {
    /// `overlay · 5 runs` (with the runner when there are several).
    pub label: String,
    pub color: RGBColor,
    /// One entry per phase (same order as the chart's `phases`).
    pub stats: Vec<Option<PhaseStat>>,
}

#[derive(Debug, Clone)]
pub(crate) struct PhasesChart {
    pub id: String,
    pub title: String,
    pub caption: String,
    /// Phase names in start order, top to bottom.
    pub phases: Vec<String>,
    pub series: Vec<PhaseSeries>,
}

impl Chart for PhasesChart {
    fn id(&self) -> String {
        self.id.clone()
    }
    fn title(&self) -> String {
        self.title.clone()
    }
    fn caption(&self) -> String {
        self.caption.clone()
    }
    fn series(&self) -> Vec<String> {
        self.legend_entries().into_iter().map(|e| e.label).collect()
    }
    fn size(&self) -> (u32, u32) {
        (
            WIDTH,
            self.plot_h() + legend::height(&self.legend_entries(), WIDTH),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (plot, legend_area) = root.split_vertically(self.plot_h());
        let all = || {
            self.series
                .iter()
                .flat_map(|s| s.stats.iter().flatten())
                .flat_map(|p| [p.min, p.max, p.median])
                .filter(|v| v.is_finite() && *v > 0.0)
        };
        let max = all().fold(0.0, f64::max);
        let min = all().fold(f64::INFINITY, f64::min);
        // Log when the phases span a decade or more; else linear from zero (bar lengths).
        let axis = Some(Axis::auto(min, max, Format::Time))
            .filter(|a| min.is_finite() && a.is_log())
            .unwrap_or_else(|| Axis::from_zero(max, Format::Time));
        let base = if axis.is_log() { axis.lo() } else { 0.0 };
        let desc = format!(
            "time per phase{}: bar = median, whisker = lowest to highest run, ▲ first run, ✕ outlier",
            if axis.is_log() { " (log scale)" } else { "" }
        );
        let label_w = style::max_text_width(self.phases.iter().map(String::as_str), 13);
        let cats = Categories::new(self.phases.clone());
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, style::font(22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size((label_w + 20).clamp(60, 420))
            .build_cartesian_2d(axis, cats.clone())
            .map_err(de)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(desc)
            .label_style(style::font(13))
            .axis_desc_style(style::font(14))
            .light_line_style(style::GRID_LIGHT)
            .bold_line_style(style::GRID_BOLD)
            .draw()
            .map_err(de)?;
        let k = self.series.len().max(1) as f64;
        let slot = 0.8 / k;
        for (si, s) in self.series.iter().enumerate() {
            let mut rects = Vec::new();
            let mut whiskers = Vec::new();
            let mut firsts = Vec::new();
            let mut outs = Vec::new();
            for (pi, st) in s.stats.iter().enumerate() {
                let Some(st) = st else { continue };
                let (_, top) = cats.span(pi);
                let y1 = top - 0.1 - slot * si as f64;
                let y0 = y1 - slot * 0.8;
                let yc = (y0 + y1) / 2.0;
                if st.median > base {
                    rects.push(Rectangle::new(
                        [(base, y0), (st.median, y1)],
                        s.color.mix(0.85).filled(),
                    ));
                }
                let ink = BLACK.mix(0.7).stroke_width(1);
                let cap = slot * 0.25;
                whiskers.push(PathElement::new(vec![(st.min, yc), (st.max, yc)], ink));
                whiskers.push(PathElement::new(
                    vec![(st.min, yc - cap), (st.min, yc + cap)],
                    ink,
                ));
                whiskers.push(PathElement::new(
                    vec![(st.max, yc - cap), (st.max, yc + cap)],
                    ink,
                ));
                if let Some(f) = st.first {
                    firsts.push(TriangleMarker::new((f, yc), 5, BLACK.filled()));
                }
                for &o in &st.outliers {
                    outs.push(Cross::new((o, yc), 5, style::WALL.stroke_width(2)));
                }
            }
            chart.draw_series(rects).map_err(de)?;
            chart.draw_series(whiskers).map_err(de)?;
            chart.draw_series(firsts).map_err(de)?;
            chart.draw_series(outs).map_err(de)?;
        }
        legend::draw(&legend_area, &self.legend_entries())
    }
}

const WIDTH: u32 = 960;

impl PhasesChart {
    /// Height of the plot above the legend.
    fn plot_h(&self) -> u32 {
        let k = self.series.len().max(1) as u32;
        (120 + self.phases.len() as u32 * (14 + 12 * k)).clamp(280, 2400)
    }

    fn legend_entries(&self) -> Vec<Entry> {
        self.series
            .iter()
            .map(|s| Entry {
                label: s.label.clone(),
                swatch: Swatch::Box(s.color),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_run_is_an_outlier_not_the_scale() {
        let s = PhaseStat::of(&[90e6, 3e6, 3.1e6, 2.9e6, 3.2e6, 3.0e6]).expect("stats");
        assert_eq!(s.median, 3.05e6);
        assert_eq!(s.first, Some(90e6));
        assert_eq!(s.outliers, vec![90e6]);
        assert_eq!((s.min, s.max, s.runs), (2.9e6, 90e6, 6));
    }
}

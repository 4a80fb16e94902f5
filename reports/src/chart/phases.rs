//! A stacked bar of the phases of a container start (prepare, mount, switch, exec, ...),
//! one bar per run (or per runner, as the median of its runs when there are many).

use plotters::coord::Shift;
use plotters::element::Rectangle;
use plotters::prelude::*;

use super::axis::{Axis, Categories, Format, TimeUnit};
use super::style;
use super::{Chart, de};

#[derive(Debug, Clone)]
pub(crate) struct PhasesChart {
    pub id: String,
    pub title: String,
    pub caption: String,
    /// Phase names in start order; colours follow this order.
    pub phases: Vec<String>,
    /// One bar per category: its label and nanoseconds per phase (same order as `phases`).
    pub bars: Vec<(String, Vec<f64>)>,
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
        self.phases.clone()
    }
    fn size(&self) -> (u32, u32) {
        (960, (170 + self.bars.len() as u32 * 34).clamp(320, 2400))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let total = |v: &Vec<f64>| v.iter().filter(|x| x.is_finite()).sum::<f64>();
        let max = self.bars.iter().map(|(_, v)| total(v)).fold(0.0, f64::max);
        let unit = TimeUnit::for_max_ns(max);
        let names: Vec<String> = self.bars.iter().map(|(n, _)| n.clone()).collect();
        let label_chars = names.iter().map(|c| c.chars().count()).max().unwrap_or(4) as u32;
        let cats = Categories::new(names);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, style::font(22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size((label_chars * 8 + 16).clamp(60, 360))
            .build_cartesian_2d(Axis::from_zero(max / unit.ns, Format::Plain), cats.clone())
            .map_err(de)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(format!(
                "time ({}), phases stacked in start order",
                unit.name
            ))
            .label_style(style::font(13))
            .axis_desc_style(style::font(15))
            .light_line_style(style::GRID_LIGHT)
            .bold_line_style(style::GRID_BOLD)
            .draw()
            .map_err(de)?;
        for (pi, phase) in self.phases.iter().enumerate() {
            let color = style::color(pi);
            let rects = self.bars.iter().enumerate().filter_map(|(bi, (_, v))| {
                let start: f64 = v[..pi].iter().filter(|x| x.is_finite()).sum::<f64>() / unit.ns;
                let len = v.get(pi).copied().filter(|x| x.is_finite() && *x > 0.0)? / unit.ns;
                let (bottom, top) = cats.span(bi);
                Some(Rectangle::new(
                    [(start, bottom + 0.18), (start + len, top - 0.18)],
                    color.filled(),
                ))
            });
            chart
                .draw_series(rects)
                .map_err(de)?
                .label(phase.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x - 2, y - 5), (x + 14, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.35))
            .label_font(style::font(12))
            .draw()
            .map_err(de)?;
        Ok(())
    }
}

//! Charts: each kind of chart is drawn once, generically over the plotters backend, and rendered
//! to both SVG (text stays text) and PNG (pixels from the embedded font).

pub(crate) mod axis;
pub(crate) mod bars;
pub(crate) mod legend;
pub(crate) mod lines;
pub(crate) mod matrix;
pub(crate) mod phases;
pub(crate) mod plan;
pub(crate) mod style;

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::ReportError;

/// One chart written by the report: `<id>.svg` and `<id>.png` beside index.html.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartFile {
    /// File stem and HTML anchor (`chart-<id>`).
    pub id: String,
    pub title: String,
    /// What the chart shows, in one sentence (for the page and for alt text).
    pub caption: String,
    /// File names, relative to the report directory.
    pub svg: PathBuf,
    pub png: PathBuf,
    /// Series (legend entries) drawn, in order.
    pub series: Vec<String>,
    pub width: u32,
    pub height: u32,
}

/// A chart that can draw itself on any plotters backend.
pub(crate) trait Chart {
    fn id(&self) -> String;
    fn title(&self) -> String;
    fn caption(&self) -> String;
    fn series(&self) -> Vec<String>;
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Every chart kind, so a report can hold a list of them.
pub(crate) enum AnyChart {
    Lines(lines::LinesChart),
    Bars(bars::BarsChart),
    Phases(phases::PhasesChart),
    Matrix(matrix::MatrixChart),
}

macro_rules! delegate {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            AnyChart::Lines($c) => $e,
            AnyChart::Bars($c) => $e,
            AnyChart::Phases($c) => $e,
            AnyChart::Matrix($c) => $e,
        }
    };
}

impl Chart for AnyChart {
    fn id(&self) -> String {
        delegate!(self, c => c.id())
    }
    fn title(&self) -> String {
        delegate!(self, c => c.title())
    }
    fn caption(&self) -> String {
        delegate!(self, c => c.caption())
    }
    fn series(&self) -> Vec<String> {
        delegate!(self, c => c.series())
    }
    fn size(&self) -> (u32, u32) {
        delegate!(self, c => c.size())
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        delegate!(self, c => c.draw(root))
    }
}

/// Plotters errors as strings (the backend error types differ between SVG and PNG).
pub(crate) fn de<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}

/// Draws `chart` into `dir` as SVG and PNG.
pub(crate) fn render<C: Chart>(chart: &C, dir: &Path) -> Result<ChartFile, ReportError> {
    crate::font::register().map_err(|reason| ReportError::output(dir, reason))?;
    let id = chart.id();
    let (w, h) = chart.size();
    let svg_name = PathBuf::from(format!("{id}.svg"));
    let png_name = PathBuf::from(format!("{id}.png"));

    let svg_path = dir.join(&svg_name);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| ReportError::output(&svg_path, de(e)))?;
        chart.draw(&root).map_err(|reason| {
            ReportError::output(&svg_path, format!("cannot draw chart: {reason}"))
        })?;
        root.present()
            .map_err(|e| ReportError::output(&svg_path, de(e)))?;
    }
    std::fs::write(&svg_path, svg.as_bytes()).map_err(|e| ReportError::write(&svg_path, &e))?;

    let png_path = dir.join(&png_name);
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| ReportError::output(&png_path, de(e)))?;
        chart.draw(&root).map_err(|reason| {
            ReportError::output(&png_path, format!("cannot draw chart: {reason}"))
        })?;
        root.present()
            .map_err(|e| ReportError::output(&png_path, de(e)))?;
    }
    write_png(&png_path, w, h, &rgb)?;

    Ok(ChartFile {
        id,
        title: chart.title(),
        caption: chart.caption(),
        svg: svg_name,
        png: png_name,
        series: chart.series(),
        width: w,
        height: h,
    })
}

fn write_png(path: &Path, w: u32, h: u32, rgb: &[u8]) -> Result<(), ReportError> {
    let file = std::fs::File::create(path).map_err(|e| ReportError::write(path, &e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let err = |e: png::EncodingError| ReportError::output(path, format!("cannot encode PNG: {e}"));
    let mut writer = enc.write_header().map_err(err)?;
    writer.write_image_data(rgb).map_err(err)?;
    writer.finish().map_err(err)
}

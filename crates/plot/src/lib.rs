//! Charts for reports: a grid of small line-plot panels written as one PNG.
//!
//! Text is drawn with a bundled font (DejaVu Sans, `assets/`, its licence next to it), so a
//! chart needs no system font libraries and looks the same everywhere.
//!
//! This crate does not depend on the deep-learning stack.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // the bytes are the bundled font, known to parse; a failure would be a build defect
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            panic!("bundled font DejaVuSans.ttf does not parse");
        }
    });
}

/// Errors of plotting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Drawing or writing the PNG failed.
    #[error("{path}: cannot draw chart: {message}")]
    Draw {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Writing the PNG file failed.
    #[error("{path}: cannot write PNG: {message}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Nothing to draw.
    #[error("{path}: {message}")]
    Empty {
        /// The output file.
        path: PathBuf,
        /// What was missing.
        message: String,
    },
}

/// One line of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// (x, y) points in drawing order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
}

/// One chart of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Title above the chart.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Logarithmic y axis (non-positive values are skipped).
    pub log_y: bool,
    /// Fixed y range; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
    /// The lines, drawn in palette order.
    pub series: Vec<Series>,
}

/// Size and layout of a grid of panels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    /// Panels per row.
    pub columns: usize,
    /// Width of one panel, pixels.
    pub panel_width: u32,
    /// Height of one panel, pixels.
    pub panel_height: u32,
}

impl Default for Grid {
    fn default() -> Self {
        Self { columns: 4, panel_width: 360, panel_height: 260 }
    }
}

/// Twelve distinguishable colours (the benchmark draws eleven lines in one panel).
const COLOURS: [RGBColor; 12] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(90, 90, 90),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(174, 199, 232),
];

fn finite_points(s: &Series, log_y: bool) -> impl Iterator<Item = (f64, f64)> + '_ {
    s.points.iter().copied().filter(move |(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
}

fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |r, v| match r {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A logarithmic axis spans at most this many decades below its largest value: a value near
/// zero (an error that vanishes at severity 0) would otherwise squash every other line.
const LOG_DECADES: f64 = 4.0;

fn widen(lo: f64, hi: f64, log: bool) -> (f64, f64) {
    if log {
        let lo = lo.max(hi * 10f64.powf(-LOG_DECADES));
        let (lo, hi) = if hi / lo < 10.0 { (lo / 3.0, hi * 3.0) } else { (lo / 1.5, hi * 1.5) };
        (lo, hi)
    } else if hi - lo < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    }
}

/// Draws `panels` as a grid into the PNG at `path`.
pub fn panels_png(path: &Path, panels: &[Panel], grid: Grid) -> Result<(), Error> {
    if panels.is_empty() {
        return Err(Error::Empty { path: path.into(), message: "no panel to draw".into() });
    }
    grid_png(path, panels, grid, draw_panel)
}

/// Renders one chart per item into a grid and writes it as PNG.
fn grid_png<P>(
    path: &Path,
    panels: &[P],
    grid: Grid,
    draw: impl Fn(&Area<'_>, &P) -> Result<(), String>,
) -> Result<(), Error> {
    register_font();
    let err = |e: &dyn std::fmt::Display| Error::Draw { path: path.into(), message: e.to_string() };
    let columns = grid.columns.clamp(1, panels.len());
    let rows = panels.len().div_ceil(columns);
    let size = (grid.panel_width * columns as u32, grid.panel_height * rows as u32);
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        for (area, panel) in root.split_evenly((rows, columns)).iter().zip(panels) {
            draw(area, panel).map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    write_rgb_png(path, &rgb, size.0, size.1)
}

/// Writes RGB pixels ([height, width, 3]) as a PNG with strong compression: charts and fault
/// grids are mostly flat colour, and plotters' own encoder writes files ten times larger.
pub fn write_rgb_png(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<(), Error> {
    let encode = || -> Result<(), png::EncodingError> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut encoder = png::Encoder::new(file, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::High);
        encoder.set_filter(png::Filter::Adaptive);
        encoder.write_header()?.write_image_data(rgb)
    };
    encode().map_err(|e| Error::Write { path: path.into(), message: e.to_string() })
}

/// A picture made of equal tiles in rows and columns, such as a fault × severity grid of
/// frames, to be written with its title and the names of its rows and columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Tiles<'a> {
    /// RGB pixels of the whole grid, [height, width, 3].
    pub rgb: &'a [u8],
    /// Width of the grid, pixels.
    pub width: usize,
    /// Height of the grid, pixels.
    pub height: usize,
    /// Title above the grid.
    pub title: String,
    /// Name of each row of tiles, top to bottom, written to its left.
    pub rows: Vec<String>,
    /// Name of each column of tiles, left to right, written above it.
    pub columns: Vec<String>,
}

/// Writes `tiles` as a PNG at `path` with the title on top, the column names under it and the
/// row names in a margin on the left.
pub fn tiles_png(path: &Path, tiles: &Tiles<'_>) -> Result<(), Error> {
    if tiles.rows.is_empty()
        || tiles.columns.is_empty()
        || tiles.width == 0
        || tiles.height == 0
        || tiles.rgb.len() != tiles.width * tiles.height * 3
    {
        let message = format!(
            "{} × {} tiles in {} bytes for {} × {} pixels",
            tiles.rows.len(),
            tiles.columns.len(),
            tiles.rgb.len(),
            tiles.width,
            tiles.height
        );
        return Err(Error::Empty { path: path.into(), message });
    }
    register_font();
    let err = |e: &dyn std::fmt::Display| Error::Draw { path: path.into(), message: e.to_string() };
    const FONT_PX: u32 = 13;
    // DejaVu Sans at 13 px is under 8 px per character
    let left = 8 * tiles.rows.iter().map(|r| r.chars().count()).max().unwrap_or(0) + 12;
    let top = 2 * FONT_PX as usize + 14;
    let size = ((left + tiles.width) as u32, (top + tiles.height) as u32);
    let mut rgb = vec![255u8; size.0 as usize * size.1 as usize * 3];
    for (r, row) in tiles.rgb.chunks(tiles.width * 3).enumerate() {
        let start = ((top + r) * size.0 as usize + left) * 3;
        rgb[start..start + row.len()].copy_from_slice(row);
    }
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        let font = ("sans-serif", FONT_PX).into_font().color(&BLACK);
        let centred = |pos: Pos| font.clone().pos(pos);
        let middle = Pos::new(HPos::Center, VPos::Center);
        root.draw(&Text::new(tiles.title.as_str(), (size.0 as i32 / 2, 4 + FONT_PX as i32 / 2), centred(middle)))
            .map_err(|e| err(&e))?;
        let column_width = tiles.width as f64 / tiles.columns.len() as f64;
        for (c, name) in tiles.columns.iter().enumerate() {
            let x = left as f64 + (c as f64 + 0.5) * column_width;
            root.draw(&Text::new(name.as_str(), (x as i32, top as i32 - 2 - FONT_PX as i32 / 2), centred(middle)))
                .map_err(|e| err(&e))?;
        }
        let row_height = tiles.height as f64 / tiles.rows.len() as f64;
        for (r, name) in tiles.rows.iter().enumerate() {
            let y = top as f64 + (r as f64 + 0.5) * row_height;
            let pos = Pos::new(HPos::Right, VPos::Center);
            root.draw(&Text::new(name.as_str(), (left as i32 - 6, y as i32), centred(pos))).map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    write_rgb_png(path, &rgb, size.0, size.1)
}

/// One bar: a mean with a ±1 standard deviation error bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Label under the bar.
    pub label: String,
    /// Height.
    pub mean: f64,
    /// Half-length of the error bar (0 draws none).
    pub std: f64,
}

/// A bar chart of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct BarPanel {
    /// Title above the chart.
    pub title: String,
    /// Label of the y axis.
    pub y_label: String,
    /// The bars, left to right, in palette order.
    pub bars: Vec<Bar>,
}

/// Draws bar charts as a grid into the PNG at `path`.
pub fn bars_png(path: &Path, panels: &[BarPanel], grid: Grid) -> Result<(), Error> {
    if panels.is_empty() || panels.iter().any(|p| p.bars.is_empty()) {
        return Err(Error::Empty { path: path.into(), message: "no bar to draw".into() });
    }
    grid_png(path, panels, grid, draw_bars)
}

fn draw_bars(area: &Area<'_>, panel: &BarPanel) -> Result<(), String> {
    // a segmented axis over 0..k has a segment for k itself: k = bars − 1 leaves no empty one
    let n = panel.bars.len() as u32;
    let top = panel.bars.iter().map(|b| b.mean + b.std).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.12 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 15))
        .margin(6)
        .x_label_area_size(30)
        .y_label_area_size(52)
        .build_cartesian_2d((0..n.saturating_sub(1).max(1)).into_segmented(), 0.0..top)
        .map_err(text)?;
    let labels: Vec<String> = panel.bars.iter().map(|b| b.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc(&panel.y_label)
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(text)?;
    for (i, b) in panel.bars.iter().enumerate().filter(|(_, b)| b.mean.is_finite()) {
        let (i, colour) = (i as u32, COLOURS[i % COLOURS.len()]);
        let mut rect =
            Rectangle::new([(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), b.mean)], colour.filled());
        rect.set_margin(0, 0, 10, 10);
        chart.draw_series([rect]).map_err(text)?;
        if b.std > 0.0 {
            let (lo, hi) = (b.mean - b.std, b.mean + b.std);
            let bar = ErrorBar::new_vertical(SegmentValue::CenterOf(i), lo, b.mean, hi, BLACK.stroke_width(2), 12);
            chart.draw_series([bar]).map_err(text)?;
        }
    }
    Ok(())
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_panel(area: &Area<'_>, panel: &Panel) -> Result<(), String> {
    let points = || panel.series.iter().flat_map(|s| finite_points(s, panel.log_y));
    let (x0, x1) = range(points().map(|p| p.0)).unwrap_or((0.0, 1.0));
    let (x0, x1) = if x1 - x0 < 1e-12 { (x0 - 0.5, x1 + 0.5) } else { (x0, x1) };
    let (y0, y1) = panel.y_range.unwrap_or_else(|| {
        let (lo, hi) = range(points().map(|p| p.1)).unwrap_or(if panel.log_y { (1e-3, 1.0) } else { (0.0, 1.0) });
        widen(lo, hi, panel.log_y)
    });
    let mut builder = ChartBuilder::on(area);
    builder.caption(&panel.title, ("sans-serif", 15)).margin(6).x_label_area_size(30).y_label_area_size(48);
    if panel.log_y {
        let mut chart = builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(text)?;
        chart
            .configure_mesh()
            .x_desc(&panel.x_label)
            .y_desc(&panel.y_label)
            .label_style(("sans-serif", 11))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .map_err(text)?;
        lines(&mut chart, panel, (y0, y1))?;
    } else {
        let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(text)?;
        chart
            .configure_mesh()
            .x_desc(&panel.x_label)
            .y_desc(&panel.y_label)
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(text)?;
        lines(&mut chart, panel, (y0, y1))?;
    }
    Ok(())
}

/// Draws the panel's series in palette order, values outside `y` at its edge, and their legend.
fn lines<'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
    panel: &Panel,
    y: (f64, f64),
) -> Result<(), String> {
    let style = |i: usize| COLOURS[i % COLOURS.len()];
    for (i, s) in panel.series.iter().enumerate() {
        let points = finite_points(s, panel.log_y).map(|(px, py)| (px, py.clamp(y.0, y.1)));
        chart
            .draw_series(LineSeries::new(points, style(i).stroke_width(2)))
            .map_err(text)?
            .label(&s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], style(i).stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 10))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(log_y: bool) -> Panel {
        Panel {
            title: "camera/blur".into(),
            x_label: "severity".into(),
            y_label: "MSE".into(),
            log_y,
            y_range: None,
            series: vec![
                Series { label: "faulty input".into(), points: vec![(0.0, 1e-4), (0.5, 1e-2), (1.0, 5e-2)] },
                Series { label: "MMSSL".into(), points: vec![(0.0, 2e-3), (0.5, f64::NAN), (1.0, 3e-3)] },
            ],
        }
    }

    fn read(path: &Path) -> (u32, u32, Vec<u8>) {
        let mut dec =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).read_info().unwrap();
        let mut buf = vec![0; dec.output_buffer_size().unwrap()];
        let info = dec.next_frame(&mut buf).unwrap();
        (info.width, info.height, buf)
    }

    #[test]
    fn grid_has_the_size_of_its_panels_and_draws_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        let grid = Grid { columns: 2, panel_width: 300, panel_height: 200 };
        panels_png(&path, &[panel(true), panel(false), panel(true)], grid).unwrap();
        let (w, h, px) = read(&path);
        assert_eq!((w, h), (600, 400));
        // the first series' red is on the picture
        let red = px.chunks(3).filter(|p| p[0] > 200 && p[1] < 60 && p[2] < 60).count();
        assert!(red > 100, "{red} red pixels");
    }

    #[test]
    fn bars_are_drawn_in_palette_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.png");
        let bars =
            vec![Bar { label: "MMSSL".into(), mean: 1.0, std: 0.1 }, Bar { label: "MMAE".into(), mean: 2.0, std: 0.0 }];
        let panel = BarPanel { title: "combined".into(), y_label: "MSE × 10⁻²".into(), bars };
        bars_png(&path, &[panel.clone(), panel], Grid { columns: 2, panel_width: 300, panel_height: 200 }).unwrap();
        let (w, h, px) = read(&path);
        assert_eq!((w, h), (600, 200));
        let count = |r: u8, g: u8, b: u8| px.chunks(3).filter(|p| p[0] == r && p[1] == g && p[2] == b).count();
        // the second bar is twice as tall as the first, same width
        let (first, second) = (count(214, 39, 40), count(31, 119, 180));
        assert!(second as f64 > 1.6 * first as f64 && first > 500, "{first} {second}");
    }

    #[test]
    fn tiles_keep_their_pixels_and_get_names_in_the_margins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiles.png");
        // two rows × three columns of 20-pixel tiles, all pure green
        let green: Vec<u8> = [0u8, 200, 0].repeat(60 * 40);
        let tiles = Tiles {
            rgb: &green,
            width: 60,
            height: 40,
            title: "camera fault × severity".into(),
            rows: vec!["noise".into(), "salt_pepper".into()],
            columns: vec!["0".into(), "0.5".into(), "1".into()],
        };
        tiles_png(&path, &tiles).unwrap();
        let (w, h, px) = read(&path);
        assert!(w > 60 && h > 40, "{w} × {h}");
        let pixel = |x: u32, y: u32| &px[((y * w + x) * 3) as usize..][..3];
        // the grid sits in the lower right corner, untouched
        assert_eq!(pixel(w - 1, h - 1), [0, 200, 0]);
        assert_eq!(pixel(w - 60, h - 40), [0, 200, 0]);
        // the margins hold dark text: the row names left of the grid, the title and columns above
        let dark = |x0: u32, x1: u32, y0: u32, y1: u32| {
            (y0..y1).flat_map(|y| (x0..x1).map(move |x| (x, y))).filter(|&(x, y)| pixel(x, y)[0] < 100).count()
        };
        assert!(dark(0, w - 60, h - 40, h) > 20, "no row names");
        assert!(dark(w - 60, w, 0, h - 40) > 20, "no column names");
        let wrong = Tiles { rows: vec![], ..tiles };
        let e = tiles_png(&path, &wrong).unwrap_err().to_string();
        assert!(e.contains("tiles.png") && e.contains("0 × 3 tiles"), "{e}");
    }

    #[test]
    fn nothing_to_draw_is_an_error_naming_the_file() {
        let e = panels_png(Path::new("/tmp/none.png"), &[], Grid::default()).unwrap_err().to_string();
        assert!(e.contains("/tmp/none.png") && e.contains("no panel"), "{e}");
    }
}

//! Figures drawn with `plotters`, each rendered twice from one drawing routine: a PNG (bitmap
//! backend, text rasterised with the embedded DejaVu Sans through `ab_glyph`, so no system
//! font library is needed) and an SVG.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// DejaVu Sans 2.37 (Bitstream Vera licence, `assets/fonts/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();
const FAMILY: &str = "sans-serif";

fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in and known to parse (tested); a failure would only lose text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// An RGB colour.
pub type Rgb = (u8, u8, u8);

/// Colour of a cell in every figure (colour-blind-safe Okabe-Ito palette).
pub fn arch_color(arch: &str) -> Rgb {
    match arch {
        "lstm" => (0, 114, 178),
        "gru" => (213, 94, 0),
        "rnn" => (0, 158, 115),
        "asrnn" => (204, 121, 167),
        "cornn" => (230, 159, 0),
        _ => (86, 86, 86),
    }
}

/// Viridis at `t` in [0, 1] (piecewise linear through 9 anchors).
pub fn viridis(t: f64) -> Rgb {
    const A: [(f64, f64, f64); 9] = [
        (68.0, 1.0, 84.0),
        (71.0, 44.0, 122.0),
        (59.0, 81.0, 139.0),
        (44.0, 113.0, 142.0),
        (33.0, 144.0, 141.0),
        (39.0, 173.0, 129.0),
        (92.0, 200.0, 99.0),
        (170.0, 220.0, 50.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let x = t * 8.0;
    let i = (x.floor() as usize).min(7);
    let f = x - i as f64;
    let (a, b) = (A[i], A[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// A line with a +-std band.
#[derive(Debug, Clone)]
pub struct BandSeries {
    pub label: String,
    pub color: Rgb,
    /// `(x, mean, std)`.
    pub points: Vec<(f64, f64, f64)>,
}

/// A coloured point.
#[derive(Debug, Clone, Copy)]
pub struct Dot {
    pub x: f64,
    pub y: f64,
    pub color: Rgb,
}

/// What one panel shows.
#[derive(Debug, Clone)]
pub enum PanelContent {
    Bands(Vec<BandSeries>),
    Scatter {
        dots: Vec<Dot>,
        /// Discrete legend entries.
        legend: Vec<(String, Rgb)>,
        /// Continuous colour scale `(min, max, label)` drawn as a bar (viridis).
        colorbar: Option<(f64, f64, String)>,
    },
}

/// One chart.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub content: PanelContent,
}

/// A figure of panels side by side.
#[derive(Debug, Clone)]
pub struct Figure {
    pub panels: Vec<Panel>,
    pub width: u32,
    pub height: u32,
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> Result<(), String> {
    let (xs, ys): (Vec<f64>, Vec<f64>) = match &panel.content {
        PanelContent::Bands(series) => series
            .iter()
            .flat_map(|s| s.points.iter())
            .flat_map(|&(x, m, s)| [(x, m - s), (x, m + s)])
            .unzip(),
        PanelContent::Scatter { dots, .. } => dots.iter().map(|d| (d.x, d.y)).unzip(),
    };
    let (x0, x1) = padded_range(xs.into_iter());
    let (y0, y1) = padded_range(ys.into_iter());
    let has_colorbar = matches!(&panel.content, PanelContent::Scatter { colorbar: Some(_), .. });
    let (chart_area, bar_area) = if has_colorbar {
        let (w, _) = area.dim_in_pixel();
        let (a, b) = area.split_horizontally(w.saturating_sub(70));
        (a, Some(b))
    } else {
        (area.clone(), None)
    };
    let integer_x =
        matches!(&panel.content, PanelContent::Bands(_)) && xs_are_integers(&panel.content);
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(&panel.title, (FAMILY, 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let int_fmt = |x: &f64| format!("{x:.0}");
    // Tick values that round to zero print as "0.00", never "-0.00".
    let num_fmt = |x: &f64| format!("{:.2}", if x.abs() < 5e-3 { 0.0 } else { *x });
    let x_fmt: &dyn Fn(&f64) -> String = if integer_x { &int_fmt } else { &num_fmt };
    chart
        .configure_mesh()
        .x_label_formatter(x_fmt)
        .y_label_formatter(&num_fmt)
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .max_light_lines(2)
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(err)?;
    match &panel.content {
        PanelContent::Bands(series) => {
            for s in series {
                let c = rgb(s.color);
                if s.points.len() > 1 {
                    let mut poly: Vec<(f64, f64)> =
                        s.points.iter().map(|&(x, m, d)| (x, m + d)).collect();
                    poly.extend(s.points.iter().rev().map(|&(x, m, d)| (x, m - d)));
                    chart
                        .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.15))))
                        .map_err(err)?;
                }
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().map(|&(x, m, _)| (x, m)),
                        c.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(s.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
                    });
                if s.points.len() <= 12 {
                    chart
                        .draw_series(
                            s.points.iter().map(|&(x, m, _)| Circle::new((x, m), 3, c.filled())),
                        )
                        .map_err(err)?;
                }
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font((FAMILY, 13))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(err)?;
        }
        PanelContent::Scatter { dots, legend, colorbar } => {
            chart
                .draw_series(
                    dots.iter().map(|d| Circle::new((d.x, d.y), 3, rgb(d.color).mix(0.8).filled())),
                )
                .map_err(err)?;
            if !legend.is_empty() {
                for (label, color) in legend {
                    let c = rgb(*color);
                    chart
                        .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                        .map_err(err)?
                        .label(label.clone())
                        .legend(move |(x, y)| Circle::new((x + 8, y), 5, c.filled()));
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(200, 200, 200))
                    .label_font((FAMILY, 13))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(err)?;
            }
            if let (Some((lo, hi, label)), Some(bar)) = (colorbar, bar_area) {
                draw_colorbar(&bar, *lo, *hi, label)?;
            }
        }
    }
    Ok(())
}

fn xs_are_integers(content: &PanelContent) -> bool {
    match content {
        PanelContent::Bands(series) => {
            series.iter().flat_map(|s| &s.points).all(|p| p.0.fract() == 0.0)
        }
        PanelContent::Scatter { dots, .. } => dots.iter().all(|d| d.x.fract() == 0.0),
    }
}

fn draw_colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lo: f64,
    hi: f64,
    label: &str,
) -> Result<(), String> {
    let (_, h) = area.dim_in_pixel();
    let (top, bottom) = (50i32, h as i32 - 60);
    let steps = 64;
    for i in 0..steps {
        let t = i as f64 / (steps - 1) as f64;
        let y_hi = bottom - ((bottom - top) as f64 * (i + 1) as f64 / steps as f64) as i32;
        let y_lo = bottom - ((bottom - top) as f64 * i as f64 / steps as f64) as i32;
        area.draw(&Rectangle::new([(8, y_hi), (24, y_lo)], rgb(viridis(t)).filled()))
            .map_err(err)?;
    }
    let style = TextStyle::from((FAMILY, 12).into_font()).color(&BLACK);
    area.draw(&Text::new(format!("{hi:.3}"), (27, top - 6), style.clone())).map_err(err)?;
    area.draw(&Text::new(format!("{lo:.3}"), (27, bottom - 6), style.clone())).map_err(err)?;
    area.draw(&Text::new(label.to_string(), (2, top - 30), style)).map_err(err)?;
    Ok(())
}

fn draw_figure<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    fig: &Figure,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let n = fig.panels.len().max(1);
    let areas = root.split_evenly((1, n));
    for (area, panel) in areas.iter().zip(&fig.panels) {
        draw_panel(area, panel)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Renders `fig` to PNG bytes and SVG text.
pub fn render(fig: &Figure) -> anyhow::Result<(Vec<u8>, String)> {
    register_font();
    let (w, h) = (fig.width, fig.height);
    let mut pixels = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        draw_figure(root, fig).map_err(|e| anyhow::anyhow!("drawing a PNG figure: {e}"))?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        draw_figure(root, fig).map_err(|e| anyhow::anyhow!("drawing an SVG figure: {e}"))?;
    }
    Ok((encode_png(&pixels, w, h)?, svg))
}

/// RGB8 pixels to PNG.
pub fn encode_png(pixels: &[u8], w: u32, h: u32) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(pixels)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_font_parses() {
        assert!(plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    }

    #[test]
    fn renders_png_and_svg_with_text() {
        let fig = Figure {
            width: 500,
            height: 300,
            panels: vec![Panel {
                title: "accuracy".into(),
                x_label: "epoch".into(),
                y_label: "acc".into(),
                content: PanelContent::Bands(vec![BandSeries {
                    label: "lstm".into(),
                    color: arch_color("lstm"),
                    points: vec![(0.0, 0.1, 0.01), (1.0, 0.5, 0.05), (2.0, 0.8, 0.02)],
                }]),
            }],
        };
        let (png_bytes, svg) = render(&fig).unwrap();
        assert_eq!(&png_bytes[1..4], b"PNG");
        assert!(svg.contains("<svg") && svg.contains("accuracy") && svg.contains("lstm"));
        // decode: not blank (the line and text add non-white pixels)
        let dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        let non_white = buf.chunks(3).filter(|p| p != &[255, 255, 255]).count();
        assert!(non_white > 2000, "{non_white}");
    }
}

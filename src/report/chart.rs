//! Line charts of metrics against steps, all runs overlaid, drawn with
//! plotters onto any backend: SVG for the page, a bitmap for `--format png`.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::series::{min_max_buckets, Points};
use super::ReportError;

/// How a curve is drawn: training curves solid, validation dashed with a
/// marker at each evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stroke {
    Solid,
    Dashed,
}

pub struct Curve {
    /// Index of the run (its colour).
    pub run: usize,
    pub points: Points,
    pub stroke: Stroke,
    /// The run was pruned: its curve ends in a cross.
    pub pruned: bool,
    /// A member of a group, drawn thin and pale behind the group's mean.
    pub thin: bool,
}

/// A group of runs: its mean curve in a band, in its runs' colour.
pub struct BandCurve {
    /// A member run (its colour).
    pub run: usize,
    pub label: String,
    pub mean: Points,
    pub lo: Points,
    pub hi: Points,
    pub stroke: Stroke,
}

pub struct LineChart {
    /// Used in element ids and PNG file names.
    pub slug: String,
    pub title: String,
    pub x_label: String,
    pub curves: Vec<Curve>,
    /// Groups' means and bands, drawn over their members' thin curves.
    pub bands: Vec<BandCurve>,
    /// Whether larger is better (puts the legend where curves rarely go).
    pub higher_is_better: bool,
    /// Allow a log y axis when the values span decades.
    pub log_allowed: bool,
    /// The x range, shared by the charts of one page; None: the data's.
    pub x_range: Option<(f64, f64)>,
}

/// What every drawing of a chart needs besides the chart.
#[derive(Clone, Copy)]
pub struct Look<'a> {
    pub colours: &'a [RGBColor],
    /// Legend labels by run; no legend when None.
    pub legend: Option<&'a [String]>,
    pub size: (u32, u32),
    /// Drawing for the SVG backend (dashed curves as one marked polyline).
    pub svg: bool,
}

/// plotters' SVG backend has no dash attribute, so a dashed curve would be
/// one element per dash (half a megabyte a chart with a hundred runs). In
/// SVG, dashed curves are drawn as one polyline of this otherwise unused
/// width and given a dash pattern afterwards.
const SVG_DASH_MARK: u32 = 9;

fn dash_svg_polylines(svg: &str) -> String {
    let mark = format!("stroke-width=\"{SVG_DASH_MARK}\"");
    svg.lines()
        .map(|line| {
            if line.starts_with("<polyline") {
                line.replacen(&mark, "stroke-width=\"1.6\" stroke-dasharray=\"6 4\"", 1)
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub const FONT: &str = "sans-serif";
const MAX_MARKERS: usize = 60;

impl LineChart {
    /// Whether the y axis is logarithmic: every value positive and the range
    /// over 1.5 decades (losses that fall by orders of magnitude).
    pub fn log_y(&self) -> bool {
        if !self.log_allowed {
            return false;
        }
        let ys = || {
            let bands = self.bands.iter().flat_map(|b| b.lo.iter().chain(&b.hi));
            self.curves
                .iter()
                .flat_map(|c| c.points.iter())
                .chain(bands)
                .map(|p| p.1)
        };
        let min = ys().fold(f64::INFINITY, f64::min);
        let max = ys().fold(f64::NEG_INFINITY, f64::max);
        min > 0.0 && max.is_finite() && max / min > 30.0
    }
}

/// Anything drawn with plotters that the report shows as SVG and can write as PNG.
pub trait Figure {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        look: &Look,
    ) -> Result<(), String>;

    fn svg(&self, look: &Look) -> Result<String, ReportError> {
        let look = Look { svg: true, ..*look };
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, look.size).into_drawing_area();
            self.draw(&root, &look).map_err(ReportError::Chart)?;
            root.present()
                .map_err(|e| ReportError::Chart(e.to_string()))?;
        }
        Ok(dash_svg_polylines(&out))
    }

    fn png(&self, look: &Look) -> Result<Vec<u8>, ReportError> {
        let look = Look {
            svg: false,
            ..*look
        };
        super::png::render(look.size, |root| self.draw(root, &look))
    }
}

impl Figure for LineChart {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        look: &Look,
    ) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let log = self.log_y();
        let to_y = |y: f64| if log { y.log10() } else { y };
        let transform = |points: &Points| -> Points {
            points
                .iter()
                .map(|&(x, y)| (x, to_y(y)))
                .filter(|p| p.0.is_finite() && !p.1.is_nan())
                .map(|(x, y)| (drawn(x), drawn(y)))
                .collect()
        };
        let curves: Vec<(&Curve, Points)> = self
            .curves
            .iter()
            .map(|c| (c, transform(&c.points)))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        let bands: Vec<(&BandCurve, [Points; 3])> = self
            .bands
            .iter()
            .map(|b| (b, [transform(&b.mean), transform(&b.lo), transform(&b.hi)]))
            .filter(|(_, [m, lo, hi])| !m.is_empty() && lo.len() == m.len() && hi.len() == m.len())
            .collect();
        let caption = (FONT, 17).into_font();
        if curves.is_empty() {
            root.titled(&self.title, caption.clone()).map_err(e)?;
            root.draw(&Text::new(
                "no data recorded",
                (look.size.0 as i32 / 2 - 50, look.size.1 as i32 / 2),
                (FONT, 14).into_font().color(&RGBColor(120, 120, 120)),
            ))
            .map_err(e)?;
            return Ok(());
        }
        let bounds = |f: fn(&(f64, f64)) -> f64| {
            let band_points = bands
                .iter()
                .flat_map(|(_, [_, lo, hi])| lo.iter().chain(hi));
            let values = curves
                .iter()
                .flat_map(|(_, p)| p.iter())
                .chain(band_points)
                .map(f);
            values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
        };
        let (x0, x1) = match self.x_range {
            Some((a, b)) => axis_range(a, b, 0.0),
            None => {
                let (a, b) = bounds(|p| p.0);
                axis_range(a, b, 0.0)
            }
        };
        let (y0, y1) = {
            let (a, b) = bounds(|p| p.1);
            axis_range(a, b, 0.04)
        };
        let y_label_area = 62;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, caption)
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(y_label_area)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(e)?;
        let y_format = |v: &f64| tick(if log { 10f64.powf(*v) } else { *v });
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .axis_style(RGBColor(90, 90, 90))
            .label_style((FONT, 12).into_font().color(&RGBColor(60, 60, 60)))
            .x_labels(7)
            .y_labels(6)
            .x_label_formatter(&|v| steps(*v))
            .y_label_formatter(&y_format)
            .x_desc(self.x_label.as_str())
            .draw()
            .map_err(e)?;

        // One bucket per pixel column of the plotting area.
        let buckets = (look.size.0 as usize)
            .saturating_sub(y_label_area as usize + 20)
            .max(50);
        let width = if look.colours.len() <= 10 { 2 } else { 1 };
        let mut labelled = vec![false; look.colours.len()];
        // Groups' members first, thin and pale, then the bands, then the rest.
        let mut order: Vec<&(&Curve, Points)> = curves.iter().filter(|c| c.0.thin).collect();
        order.extend(curves.iter().filter(|c| !c.0.thin));
        let first_solid = order.iter().position(|c| !c.0.thin).unwrap_or(order.len());
        for (n, (curve, points)) in order.into_iter().enumerate() {
            if n == first_solid {
                draw_bands(&mut chart, &bands, look, buckets, &mut labelled).map_err(e)?;
            }
            let full = look.colours[curve.run];
            let colour = if curve.thin {
                full.mix(0.45)
            } else {
                full.mix(1.0)
            };
            let width = if curve.thin { 1 } else { width };
            let style = colour.stroke_width(width);
            let points = min_max_buckets(points, buckets);
            let end = points.last().copied().filter(|_| curve.pruned);
            let drawn = match curve.stroke {
                Stroke::Solid => chart
                    .draw_series(LineSeries::new(points, style))
                    .map_err(e)?,
                Stroke::Dashed => {
                    // A dot per evaluation while they stay apart.
                    if !curve.thin && points.len() <= MAX_MARKERS && look.colours.len() <= 10 {
                        chart
                            .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                            .map_err(e)?;
                    }
                    if look.svg {
                        let mark = colour.stroke_width(SVG_DASH_MARK);
                        chart
                            .draw_series(LineSeries::new(points, mark))
                            .map_err(e)?
                    } else {
                        chart
                            .draw_series(DashedLineSeries::new(points, 6, 4, style))
                            .map_err(e)?
                    }
                }
            };
            if let Some(labels) = look.legend.filter(|_| !curve.thin) {
                if !labelled[curve.run] {
                    labelled[curve.run] = true;
                    drawn
                        .label(labels[curve.run].as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], full.stroke_width(2))
                        });
                }
            }
            if let Some(end) = end {
                chart
                    .draw_series(std::iter::once(Cross::new(end, 5, colour.stroke_width(2))))
                    .map_err(e)?;
            }
        }
        if first_solid == curves.len() {
            draw_bands(&mut chart, &bands, look, buckets, &mut labelled).map_err(e)?;
        }
        if look.legend.is_some() {
            chart
                .configure_series_labels()
                .position(if self.higher_is_better {
                    SeriesLabelPosition::LowerRight
                } else {
                    SeriesLabelPosition::UpperRight
                })
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font((FONT, 12))
                .draw()
                .map_err(e)?;
        }
        Ok(())
    }
}

type Cartesian<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Each group's band (its runs' colour, pale) and its mean (full, thick),
/// labelled with the group. Only bands whose run has no legend entry yet
/// are labelled, so a group is named once per chart.
fn draw_bands<DB: DrawingBackend>(
    chart: &mut Cartesian<'_, DB>,
    bands: &[(&BandCurve, [Points; 3])],
    look: &Look,
    buckets: usize,
    labelled: &mut [bool],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (band, [mean, lo, hi]) in bands {
        let colour = look.colours[band.run];
        let mut outline: Points = hi.clone();
        outline.extend(lo.iter().rev());
        chart.draw_series(std::iter::once(Polygon::new(
            outline,
            colour.mix(0.2).filled(),
        )))?;
        let mean = min_max_buckets(mean, buckets);
        let style = colour.stroke_width(3);
        let drawn = match band.stroke {
            Stroke::Solid => chart.draw_series(LineSeries::new(mean, style))?,
            Stroke::Dashed if look.svg => {
                chart.draw_series(LineSeries::new(mean, colour.stroke_width(SVG_DASH_MARK)))?
            }
            Stroke::Dashed => chart.draw_series(DashedLineSeries::new(mean, 6, 4, style))?,
        };
        if look.legend.is_some() && !labelled[band.run] {
            labelled[band.run] = true;
            drawn.label(band.label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(3))
            });
        }
    }
    Ok(())
}

/// A tick label: short, and in scientific notation only when it must be.
/// The largest magnitude drawn: values beyond it (up to f64's ±1.8e308)
/// are drawn at the edge, so that no span or padding overflows.
pub const DRAWN_LIMIT: f64 = 1e300;

/// A value as it is drawn: within ±DRAWN_LIMIT (NaN stays NaN, and is left
/// out by the callers).
pub fn drawn(v: f64) -> f64 {
    v.clamp(-DRAWN_LIMIT, DRAWN_LIMIT)
}

/// An axis over [lo, hi] padded by `fraction` of its span on each side,
/// that plotters can draw: finite, with a span that neither overflows
/// (±1e308 once made plotters loop for minutes) nor vanishes against the
/// values (a flat curve at 1e300 gets ±1 % of itself, one at 0 ±0.5).
pub fn axis_range(lo: f64, hi: f64, fraction: f64) -> (f64, f64) {
    let (lo, hi) = if lo <= hi {
        (drawn(lo), drawn(hi))
    } else {
        // Nothing to draw (an empty fold), or NaN.
        (0.0, 0.0)
    };
    let span = hi - lo;
    let least = lo.abs().max(hi.abs()) * 1e-9;
    if span > least {
        let pad = span * fraction;
        (lo - pad, hi + pad)
    } else {
        let half = (lo.abs().max(hi.abs()) * 0.01).max(0.5);
        (lo - half, hi + half)
    }
}

pub fn tick(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        s.replace(".0e", "e")
    } else {
        let digits = (3 - a.log10().floor() as i32).clamp(0, 5) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

/// A step count: 950, 12k, 1.5M.
fn steps(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", tick(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", tick(v / 1e3))
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod axis_tests {
    use super::*;

    #[test]
    fn axes_are_finite_and_never_empty() {
        for (lo, hi) in [
            (0.0, 1.7e308),
            (-1.7e308, 1.7e308),
            (1.7e308, 1.7e308),
            (5e-324, 5e-324),
            (0.0, 0.0),
            (f64::INFINITY, f64::NEG_INFINITY),
            (f64::NAN, 1.0),
            (-f64::INFINITY, f64::INFINITY),
        ] {
            let (a, b) = axis_range(lo, hi, 0.04);
            assert!(
                a.is_finite() && b.is_finite() && b - a > 0.0,
                "{lo}, {hi}: {a}, {b}"
            );
            assert!((b - a).is_finite(), "{lo}, {hi}: span overflows");
        }
        assert_eq!(axis_range(0.0, 1.0, 0.0), (0.0, 1.0));
        assert_eq!(axis_range(2.0, 4.0, 0.5), (1.0, 5.0));
    }
}

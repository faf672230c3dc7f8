//! The report's figures, drawn with plotters' SVG backend (text is SVG `<text>`, so neither
//! system fonts nor a network are needed; the HTML report inlines these files).

use super::stats::Estimate;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Okabe-Ito: a palette that colour-blind readers tell apart; one colour per grid.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing a figure: {e}")
}

/// A range holding every value, padded by 8 % (and never empty).
fn span(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo {
        0.08 * (hi - lo)
    } else {
        0.5 * lo.abs().max(1e-3)
    };
    lo - pad..hi + pad
}

/// Every figure's legend: a framed, nearly opaque box at `at` (MiddleRight: plotters' default).
fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    at: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

fn svg(size: (u32, u32), draw: impl FnOnce(&Area) -> Result<(), String>) -> Result<String, String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(s)
}

/// One configuration on the Pareto plot.
pub struct ParetoPoint {
    pub series: usize,
    pub abs_dp: Estimate,
    pub reward: Estimate,
    pub front: bool,
}

/// Reward against |DP|, one point per configuration with 95 % whiskers on both axes, coloured
/// by grid; the non-dominated configurations ringed and joined.
pub fn pareto(
    title: &str,
    reward_label: &str,
    series: &[String],
    points: &[ParetoPoint],
) -> Result<String, String> {
    svg((760, 520), |root| {
        let xs = span(points.iter().flat_map(|p| [p.abs_dp.lo, p.abs_dp.hi]));
        let ys = span(points.iter().flat_map(|p| [p.reward.lo, p.reward.hi]));
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(xs, ys)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("|DP| (lower is fairer)")
            .y_desc(reward_label)
            .draw()
            .map_err(err)?;
        for (s, name) in series.iter().enumerate() {
            let c = colour(s);
            let mine: Vec<&ParetoPoint> = points.iter().filter(|p| p.series == s).collect();
            chart
                .draw_series(mine.iter().flat_map(|p| {
                    let (x, y) = (p.abs_dp.value, p.reward.value);
                    [
                        PathElement::new(vec![(p.abs_dp.lo, y), (p.abs_dp.hi, y)], c.mix(0.5)),
                        PathElement::new(vec![(x, p.reward.lo), (x, p.reward.hi)], c.mix(0.5)),
                    ]
                }))
                .map_err(err)?;
            chart
                .draw_series(
                    mine.iter()
                        .map(|p| Circle::new((p.abs_dp.value, p.reward.value), 4, c.filled())),
                )
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x, y), 4, c.filled()));
        }
        let mut front: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.front)
            .map(|p| (p.abs_dp.value, p.reward.value))
            .collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(front.clone(), BLACK.stroke_width(1)))
            .map_err(err)?
            .label("non-dominated")
            .legend(|(x, y)| Circle::new((x, y), 7, BLACK.stroke_width(2)));
        chart
            .draw_series(
                front
                    .iter()
                    .map(|&p| Circle::new(p, 8, BLACK.stroke_width(2))),
            )
            .map_err(err)?;
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// One algorithm's learning curve: per iteration the mean over seeds and its interval.
pub struct Curve {
    pub series: usize,
    pub label: String,
    pub points: Vec<(u32, Estimate)>,
}

fn curve_panel(area: &Area, title: &str, y_label: &str, curves: &[Curve]) -> Result<(), String> {
    let last = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(1);
    let xs = 0..last + 1;
    let ys = span(
        curves
            .iter()
            .flat_map(|c| c.points.iter().flat_map(|p| [p.1.lo, p.1.hi])),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(xs, ys)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("iteration")
        .y_desc(y_label)
        .draw()
        .map_err(err)?;
    for c in curves {
        let col = colour(c.series);
        let mut band: Vec<(u32, f64)> = c.points.iter().map(|p| (p.0, p.1.hi)).collect();
        band.extend(c.points.iter().rev().map(|p| (p.0, p.1.lo)));
        chart
            .draw_series(std::iter::once(Polygon::new(band, col.mix(0.18).filled())))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                c.points.iter().map(|p| (p.0, p.1.value)),
                col.stroke_width(2),
            ))
            .map_err(err)?
            .label(c.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], col.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::MiddleRight)
}

/// Learning curves per algorithm (rollout reward and rollout |DP|), mean and 95 % band.
pub fn curves(title: &str, reward: &[Curve], abs_dp: &[Curve]) -> Result<String, String> {
    svg((760, 760), |root| {
        let panels = root.split_evenly((2, 1));
        curve_panel(
            &panels[0],
            &format!("{title}: rollout reward"),
            "reward",
            reward,
        )?;
        curve_panel(
            &panels[1],
            &format!("{title}: rollout |DP|"),
            "|DP|",
            abs_dp,
        )
    })
}

/// A heat map over α (columns) × β (rows); `cells[b][a]` is None where no run finished.
pub struct Heat {
    pub title: String,
    pub cells: Vec<Vec<Option<f64>>>,
}

fn heat_panel(area: &Area, alphas: &[String], betas: &[String], h: &Heat) -> Result<(), String> {
    let (na, nb) = (alphas.len() as i32, betas.len() as i32);
    let vals: Vec<f64> = h.cells.iter().flatten().flatten().copied().collect();
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(&h.title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(38)
        .y_label_area_size(48)
        .build_cartesian_2d((0..na - 1).into_segmented(), (0..nb - 1).into_segmented())
        .map_err(err)?;
    let label = |names: &[String], v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
            names.get(*i as usize).cloned().unwrap_or_default()
        }
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("α (retrospective)")
        .y_desc("β (prospective)")
        .x_label_formatter(&|v| label(alphas, v))
        .y_label_formatter(&|v| label(betas, v))
        .draw()
        .map_err(err)?;
    for (b, row) in h.cells.iter().enumerate() {
        for (a, cell) in row.iter().enumerate() {
            let (a, b) = (a as i32, b as i32);
            // A segmented range 0..n−1 has n segments; the last one's far edge is `Last`.
            let edge = |i: i32, n: i32| {
                if i == n {
                    SegmentValue::Last
                } else {
                    SegmentValue::Exact(i)
                }
            };
            let corners = [
                (SegmentValue::Exact(a), edge(b + 1, nb)),
                (edge(a + 1, na), SegmentValue::Exact(b)),
            ];
            let (fill, text) = match cell {
                Some(v) => {
                    let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                    (
                        ViridisRGB::get_color_normalized(t, 0.0, 1.0),
                        super::fmt(*v),
                    )
                }
                None => (RGBColor(220, 220, 220), "—".to_string()),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(corners, fill.filled())))
                .map_err(err)?;
            let ink = if cell.is_none_or(|v| hi > lo && (v - lo) / (hi - lo) > 0.6) {
                BLACK
            } else {
                WHITE
            };
            let style = TextStyle::from(("sans-serif", 12).into_font())
                .color(&ink)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ));
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (SegmentValue::CenterOf(a), SegmentValue::CenterOf(b)),
                    style,
                )))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// Side-by-side heat maps (|DP| and reward) over one α × β grid.
pub fn heat_maps(alphas: &[String], betas: &[String], maps: &[Heat]) -> Result<String, String> {
    svg((420 * maps.len() as u32, 400), |root| {
        for (area, h) in root.split_evenly((1, maps.len())).iter().zip(maps) {
            heat_panel(area, alphas, betas, h)?;
        }
        Ok(())
    })
}

/// One algorithm's action profile: per group (non-sensitive, sensitive) the fraction of
/// turns on each action.
pub struct Radar {
    pub title: String,
    pub groups: [Vec<f64>; 2],
}

fn radar_panel(area: &Area, actions: &[&str], r: &Radar) -> Result<(), String> {
    let max = r.groups.iter().flatten().copied().fold(1e-9, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(&r.title, ("sans-serif", 15))
        .margin(8)
        .build_cartesian_2d(-1.45f64..1.45f64, -1.75f64..1.3f64)
        .map_err(err)?;
    let n = actions.len();
    let at = |k: usize, radius: f64| {
        let t = std::f64::consts::FRAC_PI_2 - std::f64::consts::TAU * k as f64 / n as f64;
        (radius * t.cos(), radius * t.sin())
    };
    for ring in [0.25, 0.5, 0.75, 1.0] {
        let pts: Vec<(f64, f64)> = (0..=n).map(|k| at(k % n, ring)).collect();
        chart
            .draw_series(std::iter::once(PathElement::new(pts, BLACK.mix(0.15))))
            .map_err(err)?;
    }
    let style = TextStyle::from(("sans-serif", 11).into_font()).pos(
        plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ),
    );
    for (k, name) in actions.iter().enumerate() {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), at(k, 1.0)],
                BLACK.mix(0.25),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                name.to_string(),
                at(k, 1.2),
                style.clone(),
            )))
            .map_err(err)?;
    }
    for (g, (values, name)) in r
        .groups
        .iter()
        .zip(["non-sensitive", "sensitive"])
        .enumerate()
    {
        let col = colour(g);
        let pts: Vec<(f64, f64)> = (0..=n).map(|k| at(k % n, values[k % n] / max)).collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                pts.clone(),
                col.mix(0.2).filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(pts, col.stroke_width(2))))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], col.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// The AH action profile per group, one radar per algorithm (radius: fraction of turns,
/// scaled to the largest fraction in the panel; rings at quarters of it).
pub fn radars(actions: &[&str], radars: &[Radar]) -> Result<String, String> {
    svg((340 * radars.len().max(1) as u32, 360), |root| {
        for (area, r) in root
            .split_evenly((1, radars.len().max(1)))
            .iter()
            .zip(radars)
        {
            radar_panel(area, actions, r)?;
        }
        Ok(())
    })
}

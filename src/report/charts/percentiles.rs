//! The latency percentile distribution of every technique at one point, as HdrHistogram
//! draws it, each curve drawn only as far as its sample count supports: the 99.9th
//! percentile of 400 deliveries is just the largest of them, not a percentile.

use plotters::prelude::*;

use super::canvas::{Area, FLOOR, INK, Res};
use super::header::{Legend, Swatch, context_line, header, legend, technique_label};
use super::marks::{Dash, draw_marker};
use super::plot::{Axis, no_caption, plot, series_line, technique_line};
use super::scale::Scale;
use super::style::style;
use crate::model::results::CellResult;
use crate::report::figures::has_warnings;
use crate::report::fmt::{int, num};
use crate::report::models::link_delays_ms;
use crate::report::plan::{ChartPlan, Point, View};

/// Plot x of a percentile: log10(1 / (1 − p)), so 90%, 99%, 99.9% are evenly spaced.
pub(super) fn percentile_x(percentile: f64) -> f64 {
    (100.0 / (100.0 - percentile)).log10()
}

pub(super) const PERCENTILE_TICKS: [f64; 5] = [50.0, 90.0, 99.0, 99.9, 99.99];

/// Whether `count` samples support the `percentile`: at least one sample must lie above it,
/// so p99 needs 100 samples, p99.9 1,000 and p99.99 10,000.
pub(crate) fn supports(count: u64, percentile: f64) -> bool {
    count as f64 * (1.0 - percentile / 100.0) >= 1.0 - 1e-9
}

/// The highest percentile `count` samples support: 100 × (1 − 1/count).
pub(crate) fn highest_supported(count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        100.0 * (1.0 - 1.0 / count as f64)
    }
}

/// The labelled percentiles a cell with `count` deliveries gets a mark at.
fn drawable_ticks(count: u64) -> Vec<f64> {
    PERCENTILE_TICKS
        .into_iter()
        .filter(|&p| supports(count, p))
        .collect()
}

pub(super) fn percentile_curve(cell: &CellResult) -> Vec<(f64, f64)> {
    let l = &cell.latency;
    if l.count == 0 {
        return Vec::new();
    }
    let top = highest_supported(l.count).min(99.99);
    let summary = [l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.p9999_us];
    // The summary percentiles the count supports are the marks; the curve passes through
    // them, since the stored distribution's steps may stop short of the last one.
    let marks = PERCENTILE_TICKS
        .iter()
        .zip(summary)
        .filter(|&(&p, _)| supports(l.count, p))
        .map(|(&p, us)| (p, us));
    let mut points: Vec<(f64, u64)> = l
        .percentiles
        .iter()
        .filter(|p| p.percentile >= 50.0 - 1e-9 && p.percentile <= top + 1e-9)
        .map(|p| (p.percentile, p.latency_us))
        .chain(marks)
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    points.dedup_by(|a, b| (a.0 - b.0).abs() < 1e-9);
    points
        .into_iter()
        .map(|(p, us)| (percentile_x(p), us as f64 / 1000.0))
        .collect()
}

/// A technique's legend label, with its sample count when that cuts its curve short.
fn label(cell: &CellResult) -> String {
    let mut text = technique_label(cell);
    let count = cell.latency.count;
    if count > 0 && !supports(count, 99.99) {
        text.push_str(&format!(" ({} samples)", int(count)));
    }
    text
}

pub(super) fn draw(root: &Area, view: &View, plan: &ChartPlan, point: &Point) -> Res {
    let cells = view.cells_at(point);
    let curves: Vec<(&CellResult, Vec<(f64, f64)>)> =
        cells.iter().map(|c| (*c, percentile_curve(c))).collect();
    let mut items: Vec<Legend> = cells
        .iter()
        .map(|c| legend(Swatch::Technique(c.technique), label(c)))
        .collect();
    if cells.iter().any(|c| has_warnings(c)) {
        items.push(legend(Swatch::Ring, "cell with warnings"));
    }
    if cells
        .iter()
        .any(|c| c.latency.count > 0 && !supports(c.latency.count, 99.99))
    {
        // A blank swatch: this entry explains where the curves end.
        items.push(legend(
            Swatch::Line(WHITE, 1, Dash::Solid),
            "a curve ends where its sample count does: p99 needs 100, p99.9 1,000, p99.99 10,000",
        ));
    }
    // Over an emulated link, the floor no technique can beat: its one-way delays.
    let link_ms = cells
        .iter()
        .find_map(|c| link_delays_ms(view, c))
        .map(|(publisher, one_way)| publisher + one_way)
        .filter(|&ms| ms > 0.0);
    if let Some(ms) = link_ms {
        items.push(legend(
            Swatch::Line(FLOOR, 3, Dash::Dashed),
            format!("the link's one-way delay ({} ms)", num(ms)),
        ));
    }
    let y = Scale::for_values(
        curves
            .iter()
            .flat_map(|(_, curve)| curve.iter().map(|&(_, v)| v))
            .chain(link_ms),
    );
    let y = Axis::latency(y, "delivery latency");
    // The axis ends where the longest curve does (at least at p99, at most at p99.99).
    let most = cells.iter().map(|c| c.latency.count).max().unwrap_or(0);
    let last = highest_supported(most).clamp(99.0, 99.99);
    let ticks: Vec<f64> = PERCENTILE_TICKS
        .into_iter()
        .filter(|&p| p <= last + 1e-9)
        .collect();
    // The x axis is linear in log10(1/(1 − p)) already, so its ticks are transformed here
    // and its labels transform back.
    let x = Axis {
        scale: Scale::fixed(
            percentile_x(50.0) - 0.08,
            percentile_x(last) + 0.08,
            ticks.iter().map(|&p| percentile_x(p)).collect(),
        ),
        title: "percentile (log scale of 1/(1 − p), as HdrHistogram draws it)".into(),
        label: Box::new(|t| {
            let p = 100.0 - 100.0 / 10f64.powf(t);
            let text = format!("{:.2}", (p * 100.0).round() / 100.0);
            format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
        }),
    };
    let subtitle = context_line(view, &point.describe());
    let body = header(root, &plan.title, &subtitle, &items)?;
    let mut chart = plot(&body, &x, &y, no_caption())?;
    if let Some(ms) = link_ms {
        let level = y.scale.t(ms);
        let ends = [percentile_x(50.0), percentile_x(last)].map(|px| (px, level));
        series_line(&mut chart, &ends, FLOOR, 3, Dash::Dashed)?;
    }
    for (cell, curve) in &curves {
        let pts: Vec<(f64, f64)> = curve.iter().map(|&(px, v)| (px, y.scale.t(v))).collect();
        technique_line(&mut chart, &pts, cell.technique)?;
    }
    for (cell, curve) in &curves {
        if curve.is_empty() {
            continue;
        }
        let l = &cell.latency;
        let marks = [l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.p9999_us];
        let ticks = drawable_ticks(l.count);
        for (&p, us) in PERCENTILE_TICKS
            .iter()
            .zip(marks)
            .filter(|&(p, _)| ticks.contains(p))
        {
            let at = chart.backend_coord(&(percentile_x(p), y.scale.t(us as f64 / 1000.0)));
            draw_marker(
                root,
                style(cell.technique).shape,
                at,
                style(cell.technique).marker_size - 1,
                style(cell.technique).colour,
            )?;
        }
        if has_warnings(cell) {
            let &(px, v) = curve.last().expect("not empty");
            let at = chart.backend_coord(&(px, y.scale.t(v)));
            root.draw(&Circle::new(at, 17, INK.stroke_width(3)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// p99.9 needs 1,000 samples and p99.99 10,000: 400 deliveries get marks up to p99 and
    /// a curve up to p99.75, never the 99.9% and 99.99% points they cannot have.
    #[test]
    fn percentiles_are_drawn_only_as_far_as_the_count_supports() {
        assert_eq!(drawable_ticks(400), [50.0, 90.0, 99.0]);
        assert_eq!(drawable_ticks(999), [50.0, 90.0, 99.0]);
        assert_eq!(drawable_ticks(1_000), [50.0, 90.0, 99.0, 99.9]);
        assert_eq!(drawable_ticks(10_000), PERCENTILE_TICKS);
        assert_eq!(drawable_ticks(50), [50.0, 90.0]);
        assert_eq!(drawable_ticks(5), [50.0]);
        assert!(drawable_ticks(0).is_empty());
        assert_eq!(highest_supported(400), 99.75);
    }

    #[test]
    fn a_short_curve_stops_at_its_highest_supported_percentile() {
        let mut cell = crate::report::fixture::client_sweep().cells[0].clone();
        cell.latency.count = 400;
        let curve = percentile_curve(&cell);
        assert!(!curve.is_empty());
        let end = curve.last().unwrap().0;
        assert!(end <= percentile_x(99.75) + 1e-9, "{end}");
        assert!(label(&cell).ends_with("(400 samples)"), "{}", label(&cell));
    }
}

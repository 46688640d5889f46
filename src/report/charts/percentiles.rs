//! The latency percentile distribution of every technique at one point, as HdrHistogram
//! draws it.

use plotters::prelude::*;

use super::canvas::{Area, FLOOR, INK, Res};
use super::header::{Legend, Swatch, context_line, header, legend, technique_label};
use super::marks::{Dash, draw_marker};
use super::plot::{Axis, no_caption, plot, series_line};
use super::scale::Scale;
use super::style::style;
use crate::model::results::CellResult;
use crate::report::figures::has_warnings;
use crate::report::fmt::num;
use crate::report::models::link_delays_ms;
use crate::report::plan::{ChartPlan, Point, View};

/// Plot x of a percentile: log10(1 / (1 − p)), so 90%, 99%, 99.9% are evenly spaced.
pub(super) fn percentile_x(percentile: f64) -> f64 {
    (100.0 / (100.0 - percentile)).log10()
}

pub(super) const PERCENTILE_TICKS: [f64; 5] = [50.0, 90.0, 99.0, 99.9, 99.99];

pub(super) fn percentile_curve(cell: &CellResult) -> Vec<(f64, f64)> {
    let l = &cell.latency;
    if l.count == 0 {
        return Vec::new();
    }
    let curve: Vec<(f64, f64)> = l
        .percentiles
        .iter()
        .filter(|p| p.percentile >= 50.0 - 1e-9 && p.percentile <= 99.99 + 1e-9)
        .map(|p| (percentile_x(p.percentile), p.latency_us as f64 / 1000.0))
        .collect();
    if curve.len() >= 2 {
        return curve;
    }
    // No distribution stored: fall back to the five summary percentiles.
    let summary = [l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.p9999_us];
    PERCENTILE_TICKS
        .iter()
        .zip(summary)
        .map(|(&p, us)| (percentile_x(p), us as f64 / 1000.0))
        .collect()
}

pub(super) fn draw(root: &Area, view: &View, plan: &ChartPlan, point: &Point) -> Res {
    let cells = view.cells_at(point);
    let curves: Vec<(&CellResult, Vec<(f64, f64)>)> =
        cells.iter().map(|c| (*c, percentile_curve(c))).collect();
    let mut items: Vec<Legend> = cells
        .iter()
        .map(|c| legend(Swatch::Technique(c.technique), technique_label(c)))
        .collect();
    if cells.iter().any(|c| has_warnings(c)) {
        items.push(legend(Swatch::Ring, "cell with warnings"));
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
    let y = Axis::new(y, "delivery latency", "ms", num);
    // The x axis is linear in log10(1/(1 − p)) already, so its ticks are transformed here
    // and its labels transform back.
    let x = Axis {
        scale: Scale::fixed(
            percentile_x(50.0) - 0.08,
            percentile_x(99.99) + 0.08,
            PERCENTILE_TICKS.iter().map(|&p| percentile_x(p)).collect(),
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
        let ends = [percentile_x(50.0), percentile_x(99.99)].map(|px| (px, level));
        series_line(&mut chart, &ends, FLOOR, 3, Dash::Dashed)?;
    }
    for (cell, curve) in &curves {
        let pts: Vec<(f64, f64)> = curve.iter().map(|&(px, v)| (px, y.scale.t(v))).collect();
        series_line(
            &mut chart,
            &pts,
            style(cell.technique).colour,
            style(cell.technique).line_width,
            Dash::Solid,
        )?;
    }
    for (cell, curve) in &curves {
        if curve.is_empty() {
            continue;
        }
        let l = &cell.latency;
        let marks = [l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.p9999_us];
        for (&p, us) in PERCENTILE_TICKS.iter().zip(marks) {
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

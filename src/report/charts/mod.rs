//! PNG charts drawn with plotters, pure functions of a `RunSummary` (through `plan::View`).
//!
//! Made to be projected: 1600×900, large type, a title naming the scenario, axis titles with
//! units, the legend in a strip above the plot (never over the data) listing only what the
//! chart draws, one colour (Okabe–Ito), marker shape and stroke per technique in every chart,
//! latency ticks in µs, ms or s, and cells with warnings marked on the chart itself. Lines
//! get a log scale wherever values span decades (the axis title then says so); bars, and
//! every CPU axis, are always linear from zero, and a zero bar is labelled "0". Nothing is
//! drawn that the data cannot support: no percentile beyond its sample count, no per-second
//! p99 of fewer than 100 deliveries, no partial second at a window's edge.
//!
//! Pixels are encoded to PNG here rather than by plotters, so the bytes are ours to keep
//! deterministic and errors can name the file.
//!
//! # Layout
//! - One file per chart kind: `percentiles`, `sweep` (latency, wire and server along a
//!   sweep), `cost`, `timeline`, `faults` (connections open with faults marked, and the
//!   times faults took).
//! - What they share: `style` (each technique's colour, marker, line width), `canvas`
//!   (fonts, text styles, neutral colours), `header` (title, subtitle, legend), `marks`
//!   (markers and signs drawn at a pixel), `scale` (axis ranges and ticks), `plot` (one
//!   plot frame with its axes, and line series).

mod canvas;
mod cost;
mod faults;
mod header;
mod marks;
mod memory;
mod percentiles;
mod plot;
mod scale;
pub(crate) mod style;
mod sweep;
pub(crate) mod timeline;

use plotters::prelude::*;

/// Which percentiles a sample count supports, shared with the report's sentences.
pub(crate) use percentiles::{highest_supported, supports};

use super::plan::{ChartKind, ChartPlan, View};
use canvas::{Area, Res, register_fonts};

/// Size of every chart, in pixels: 16:9, the shape of a projector.
pub const WIDTH: u32 = 1600;
pub const HEIGHT: u32 = 900;

/// Draws one chart of the plan and returns the PNG file's bytes.
pub fn render(view: &View, plan: &ChartPlan) -> Result<Vec<u8>, String> {
    register_fonts()?;
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root, view, plan).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    encode_png(&rgb).map_err(|e| format!("cannot encode PNG: {e}"))
}

fn encode_png(rgb: &[u8]) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Default compression: a quarter of the size of `Fast` (about 80 kB a chart), for a
    // few milliseconds more per chart.
    encoder.set_compression(png::Compression::Default);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

fn draw(root: &Area, view: &View, plan: &ChartPlan) -> Res {
    match &plan.kind {
        ChartKind::Percentiles(point) => percentiles::draw(root, view, plan, point),
        ChartKind::SweepLatency(sweep) => sweep::latency(root, view, plan, sweep),
        ChartKind::SweepWire(sweep) => sweep::wire(root, view, plan, sweep),
        ChartKind::SweepServer(sweep) => sweep::server(root, view, plan, sweep),
        ChartKind::SweepHttp(sweep) => sweep::http_costs(root, view, plan, sweep),
        ChartKind::Cost => cost::draw(root, view, plan),
        ChartKind::Timeline(point) => timeline::draw(root, view, plan, point),
        ChartKind::FaultConnections(point) => faults::connections(root, view, plan, point),
        ChartKind::FaultTimes(point) => faults::times(root, view, plan, point),
        ChartKind::IdleMemory => memory::draw(root, view, plan),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::results::TimelinePoint;
    use crate::model::technique::Technique;
    use crate::report::fixture;

    /// A cell that delivered nothing has no latency to draw; its chart must still come out
    /// and say so, rather than fail or pretend.
    #[test]
    fn a_cell_that_delivered_nothing_still_draws() {
        let mut summary = fixture::one_point();
        let dead = summary
            .cells
            .iter_mut()
            .find(|c| c.technique == Technique::Sse)
            .unwrap();
        dead.latency = Default::default();
        dead.deliveries.missing = dead.deliveries.expected;
        dead.deliveries.delivered = 0;
        for t in &mut dead.timeline {
            *t = TimelinePoint {
                second: t.second,
                ..Default::default()
            };
        }
        let view = View::new(&summary);
        for plan in view.charts() {
            let png = render(&view, &plan).unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{}", plan.file_name);
        }
    }
}

//! How each technique looks in every chart: its colour, marker shape, line width and marker
//! size, read from the technique's descriptor (`model::technique`), so a new technique brings
//! its style with it.

use plotters::style::RGBColor;

pub use crate::model::technique::Shape;
use crate::model::technique::Technique;

/// A technique's visual properties, the same in every chart.
#[derive(Debug, Clone, Copy)]
pub struct TechniqueStyle {
    /// From the Okabe–Ito palette, which stays distinct under the common colour-vision
    /// deficiencies: orange and reddish purple for the two polling techniques, blue and
    /// bluish green for the two push techniques.
    pub colour: RGBColor,
    /// Whether its lines are dashed: a third cue, so the pairs that sit close together on a
    /// chart (short polling and long polling's costs, WebSocket and SSE's latencies) differ
    /// in stroke as well as colour, and a dashed line drawn over a solid one lets both show.
    pub dashed: bool,
    /// A second cue besides colour, for grey-scale printouts and washed-out projectors.
    pub shape: Shape,
    /// Line width in pixels. Techniques drawn first get wider lines and larger markers, so one
    /// whose values coincide with a later one still shows as an outline around it.
    pub line_width: u32,
    /// Marker radius in pixels on sweep lines; legends and percentile marks draw one smaller.
    pub marker_size: i32,
}

/// A technique's style, from its descriptor in the technique list.
pub fn style(technique: Technique) -> TechniqueStyle {
    let d = technique.descriptor();
    let (r, g, b) = d.colour;
    TechniqueStyle {
        colour: RGBColor(r, g, b),
        shape: d.shape,
        dashed: matches!(technique, Technique::ShortPolling | Technique::Sse),
        line_width: d.line_width,
        marker_size: d.marker_size,
    }
}

/// The payload part of a stacked bar: the technique's colour, much lighter.
pub fn tint(c: RGBColor) -> RGBColor {
    let mix = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * 0.62).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every technique is told apart by colour and by shape alone.
    #[test]
    fn every_technique_has_its_own_colour_and_shape() {
        let styles: Vec<TechniqueStyle> = Technique::ALL.into_iter().map(style).collect();
        for (i, a) in styles.iter().enumerate() {
            for b in &styles[i + 1..] {
                assert_ne!(a.colour, b.colour);
                assert_ne!(format!("{:?}", a.shape), format!("{:?}", b.shape));
            }
        }
    }

    /// The pairs a reader compares most often differ in stroke too, not only in colour.
    #[test]
    fn close_pairs_differ_in_stroke() {
        let dashed = |t| style(t).dashed;
        assert_ne!(
            dashed(Technique::ShortPolling),
            dashed(Technique::LongPolling)
        );
        assert_ne!(dashed(Technique::WebSocket), dashed(Technique::Sse));
    }
}

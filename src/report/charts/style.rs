//! How each technique looks in every chart: its colour, marker shape, line width and marker
//! size, all from one `match`, so a new technique is a compile error here rather than a
//! wrong index at run time.

use plotters::style::RGBColor;

use crate::techniques::Technique;

/// A technique's visual properties, the same in every chart.
#[derive(Debug, Clone, Copy)]
pub struct TechniqueStyle {
    /// From the Okabe–Ito palette, which stays distinct under the common colour-vision
    /// deficiencies: warm for the two polling techniques, cool for the two push techniques.
    pub colour: RGBColor,
    /// A second cue besides colour, for grey-scale printouts and washed-out projectors.
    pub shape: Shape,
    /// Line width in pixels. Techniques drawn first get wider lines and larger markers, so one
    /// whose values coincide with a later one still shows as an outline around it.
    pub line_width: u32,
    /// Marker radius in pixels on sweep lines; legends and percentile marks draw one smaller.
    pub marker_size: i32,
}

/// The marker shapes a technique can have.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Triangle,
    Square,
    Circle,
    Diamond,
}

pub fn style(technique: Technique) -> TechniqueStyle {
    let (r, g, b, shape, line_width, marker_size) = match technique {
        Technique::ShortPolling => (213, 94, 0, Shape::Triangle, 7, 13),
        Technique::LongPolling => (230, 159, 0, Shape::Square, 6, 11),
        Technique::WebSocket => (0, 114, 178, Shape::Circle, 5, 9),
        Technique::Sse => (0, 158, 115, Shape::Diamond, 4, 8),
    };
    TechniqueStyle {
        colour: RGBColor(r, g, b),
        shape,
        line_width,
        marker_size,
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
}

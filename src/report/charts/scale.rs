//! Axis ranges in data units, linear or logarithmic, and the ticks they get: chosen here
//! rather than by plotters, so every chart puts its grid lines on round values.

/// An axis range in data units, linear or base-10 logarithmic, with the values that get a
/// labelled grid line (`ticks`) and an unlabelled light one (`minor`).
#[derive(Debug, Clone)]
pub(super) struct Scale {
    pub(super) log: bool,
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) ticks: Vec<f64>,
    pub(super) minor: Vec<f64>,
}

impl Scale {
    /// Data value to plot coordinate: plotters draws every axis as linear, and log axes are
    /// plotted in log10 units, so one coordinate type serves both and the tick positions are
    /// ours to choose.
    pub(super) fn t(&self, value: f64) -> f64 {
        if self.log {
            value.max(self.lo).log10()
        } else {
            value
        }
    }

    pub(super) fn inverse(&self, t: f64) -> f64 {
        if self.log { 10f64.powf(t) } else { t }
    }

    /// For values measured from zero (bars, counts): linear from 0 unless the positive
    /// values span more than `LOG_RATIO`, then log.
    pub(super) fn for_values(values: impl IntoIterator<Item = f64>) -> Scale {
        Scale::with_headroom(values, 1.0)
    }

    /// As `for_values`, with the top raised by `headroom` (linear) or `headroom²` (log) for
    /// labels above the tallest bar; the choice of log or linear ignores the headroom.
    pub(super) fn with_headroom(values: impl IntoIterator<Item = f64>, headroom: f64) -> Scale {
        let positive: Vec<f64> = values
            .into_iter()
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let max = positive.iter().copied().fold(0.0, f64::max);
        let min = positive.iter().copied().fold(f64::INFINITY, f64::min);
        if positive.is_empty() {
            return Scale::linear(1.0);
        }
        if max / min > LOG_RATIO {
            Scale::logarithmic(min, max * headroom * headroom)
        } else {
            Scale::linear(max * headroom)
        }
    }

    /// For bars: always linear from 0, whatever the spread, since a bar's length only means
    /// something on a linear axis (on a log axis a stacked split misstates its shares). The
    /// top is raised by `headroom` for the labels above the tallest bar.
    pub(super) fn bars(values: impl IntoIterator<Item = f64>, headroom: f64) -> Scale {
        let max = values
            .into_iter()
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold(0.0, f64::max);
        if max > 0.0 {
            Scale::linear(max * headroom)
        } else {
            Scale::linear(1.0)
        }
    }

    pub(super) fn linear(max: f64) -> Scale {
        let step = nice_ceil(max / 5.0);
        let hi = ((max * 1.04) / step).ceil().max(1.0) * step;
        let count = (hi / step).round() as i64;
        let ticks = (0..=count).map(|i| i as f64 * step).collect();
        Scale {
            log: false,
            lo: 0.0,
            hi,
            ticks,
            minor: Vec::new(),
        }
    }

    pub(super) fn logarithmic(min: f64, max: f64) -> Scale {
        let lo = nice_floor(min / 1.5);
        let hi = nice_ceil(max * 1.05);
        let decades = (hi / lo).log10();
        let mut ticks = Vec::new();
        let mut minor = Vec::new();
        let first = (lo.log10() + 1e-9).floor() as i32;
        let last = (hi.log10() - 1e-9).ceil() as i32;
        for exponent in first..=last {
            for mantissa in [1.0, 2.0, 5.0] {
                let value = mantissa * 10f64.powi(exponent);
                if value < lo * (1.0 - 1e-9) || value > hi * (1.0 + 1e-9) {
                    continue;
                }
                // Over a few decades, 1-2-5 labels would crowd; label decades only, and the 2
                // and 5 below the first decade, so the bottom of the axis (where the fastest
                // values sit) is never left without a label.
                let below_first_decade = value < 10f64.powf((lo.log10() - 1e-9).ceil());
                if decades <= 2.0 || mantissa == 1.0 || below_first_decade {
                    ticks.push(value);
                } else {
                    minor.push(value);
                }
            }
        }
        Scale {
            log: true,
            lo,
            hi,
            ticks,
            minor,
        }
    }

    /// For the swept values on an x axis: every swept value gets its tick, with a margin so
    /// the markers at the ends stay inside the plot.
    pub(super) fn for_sweep(values: &[f64]) -> Scale {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if min > 0.0 && max / min >= 10.0 {
            Scale {
                log: true,
                lo: min / 10f64.powf((max / min).log10() * 0.05),
                hi: max * 10f64.powf((max / min).log10() * 0.05),
                ticks: values.to_vec(),
                minor: Vec::new(),
            }
        } else {
            let pad = ((max - min) * 0.06).max(max.abs() * 0.05).max(0.5);
            Scale {
                log: false,
                lo: min - pad,
                hi: max + pad,
                ticks: values.to_vec(),
                minor: Vec::new(),
            }
        }
    }

    /// A fixed plot-coordinate range with given ticks (the percentile axis, bar groups).
    pub(super) fn fixed(lo: f64, hi: f64, ticks: Vec<f64>) -> Scale {
        Scale {
            log: false,
            lo,
            hi,
            ticks,
            minor: Vec::new(),
        }
    }
}

/// Positive values further apart than this ratio get a log axis.
pub(super) const LOG_RATIO: f64 = 20.0;

/// The 1-2-5 value at or below `v`.
pub(super) fn nice_floor(v: f64) -> f64 {
    let base = 10f64.powf((v.log10() + 1e-9).floor());
    let m = v / base;
    let m = if m >= 5.0 - 1e-9 {
        5.0
    } else if m >= 2.0 - 1e-9 {
        2.0
    } else {
        1.0
    };
    m * base
}

/// The 1-2-5 value at or above `v`.
pub(super) fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let base = 10f64.powf((v.log10() + 1e-9).floor());
    let m = v / base;
    let m = if m <= 1.0 + 1e-9 {
        1.0
    } else if m <= 2.0 + 1e-9 {
        2.0
    } else if m <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    m * base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_two_five_steps() {
        assert_eq!(nice_floor(4.4), 2.0);
        assert_eq!(nice_floor(1000.0), 1000.0);
        assert_eq!(nice_ceil(1000.0), 1000.0);
        assert_eq!(nice_ceil(1001.0), 2000.0);
        assert_eq!(nice_ceil(0.03), 0.05);
    }

    #[test]
    fn values_spanning_decades_get_a_log_scale_with_decade_ticks() {
        let scale = Scale::for_values([0.8, 5.0, 1010.0]);
        assert!(scale.log);
        assert!(scale.lo < 0.8 && scale.hi >= 1010.0);
        // Decades, and the 0.5 below the first one.
        assert_eq!(scale.ticks, [0.5, 1.0, 10.0, 100.0, 1000.0]);
        let scale = Scale::for_values([0.0, 40.0, 65.0]);
        assert!(!scale.log);
        assert_eq!(scale.lo, 0.0);
        assert!(scale.hi >= 65.0);
        let scale = Scale::for_values([]);
        assert!(!scale.log && scale.hi > scale.lo);
    }

    /// A log axis whose bottom lies below its first decade labels the 2 and 5 there too:
    /// values around 0.3 ms must not sit under an unlabelled stretch of axis.
    #[test]
    fn the_bottom_of_a_log_axis_gets_labels() {
        let scale = Scale::for_values([0.45, 1000.0]);
        assert!(scale.log);
        assert_eq!(scale.lo, 0.2);
        assert_eq!(&scale.ticks[..3], &[0.2, 0.5, 1.0], "{:?}", scale.ticks);
        assert!(
            !scale.ticks.contains(&20.0),
            "decades only above: {:?}",
            scale.ticks
        );
    }

    /// Bars get a linear axis from zero even when their values span decades.
    #[test]
    fn bars_are_always_linear() {
        let scale = Scale::bars([0.1, 50.0, 1000.0], 1.2);
        assert!(!scale.log);
        assert_eq!(scale.lo, 0.0);
        assert!(scale.hi >= 1200.0);
        assert!(!Scale::bars([], 1.2).log);
    }
}

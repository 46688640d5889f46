//! Every number and unit the report prints, in one place, so the table, `report.md` and the
//! charts spell a figure the same way.
//!
//! # Units
//! - **Bytes on the wire** (traffic, payloads, bytes per delivery) are decimal SI, the
//!   network convention: B, kB, MB, GB ([`bytes()`]).
//! - **Memory** (resident set size) is binary MiB, as `ps` and `top` show it ([`mib`]).
//! - No other byte unit: KiB, GiB and the like never appear.
//! - Latency is stored in microseconds and printed in milliseconds ([`ms`]), except in the
//!   terminal table, which picks µs, ms or s ([`format_us`]).
//!
//! The rules are fixed (no locale, no clock), so the same summary always prints the same text.

/// Bytes in one mebibyte, the unit of every memory figure.
const MIB: f64 = 1_048_576.0;

/// An integer with thousands separators: "12,000".
pub fn int(value: u64) -> String {
    group(&value.to_string())
}

/// A number with about three significant digits (all digits from 100 up), thousands
/// separators, and no trailing zeros: "12,345", "12.3", "0.0123".
pub fn num(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    if value == 0.0 {
        return "0".into();
    }
    let magnitude = value.abs();
    let decimals = if magnitude >= 100.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        (2 - magnitude.log10().floor() as i32).clamp(0, 12) as usize
    };
    let text = format!("{:.*}", decimals, magnitude);
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w.to_string(), format!(".{f}")),
        None => (text, String::new()),
    };
    // Rounding can leave nothing but zeros, which must not read "-0".
    let sign = if value < 0.0 && (whole != "0" || !fraction.is_empty()) {
        "-"
    } else {
        ""
    };
    format!("{sign}{}{fraction}", group(&whole))
}

/// Commas every three digits from the right: "1234567" → "1,234,567".
fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds as milliseconds, with the unit: "1.23 ms".
pub fn ms(us: f64) -> String {
    format!("{} ms", num(us / 1000.0))
}

/// A latency tick label from milliseconds, in the unit that keeps it short: "20 µs",
/// "500 µs", "1 ms", "250 ms", "2 s". Push techniques sit below a millisecond, so a chart
/// labelled in ms alone would show them against "0.02".
pub fn latency_tick(ms: f64) -> String {
    if ms > 0.0 && ms < 1.0 {
        format!("{} µs", num(ms * 1000.0))
    } else if ms >= 1000.0 {
        format!("{} s", num(ms / 1000.0))
    } else {
        format!("{} ms", num(ms))
    }
}

/// A fraction as a percentage: "97%", "0.012%". Never rounds a non-zero share to "0%".
pub fn pct(fraction: f64) -> String {
    format!("{}%", num(fraction * 100.0))
}

/// Bytes on the wire, in decimal units: "950 B", "12.3 kB", "1.5 MB".
pub fn bytes(value: f64) -> String {
    let units = [(1e9, "GB"), (1e6, "MB"), (1e3, "kB")];
    for (scale, unit) in units {
        if value.abs() >= scale {
            return format!("{} {unit}", num(value / scale));
        }
    }
    format!("{} B", num(value))
}

/// Memory, in MiB with its unit: "212 MiB".
pub fn mib(value: u64) -> String {
    format!("{} MiB", num(in_mib(value)))
}

/// Memory as a number of MiB, for chart axes whose title carries the unit.
pub fn in_mib(value: u64) -> f64 {
    value as f64 / MIB
}

/// Microseconds in the unit a reader takes in at a glance in the terminal: µs, ms or s.
pub fn format_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// A publish rate as the scenario file would write it: "10", "0.5", "33.333".
pub fn format_rate(rate: f64) -> String {
    let text = format!("{rate:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_get_thousands_separators() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(12_000), "12,000");
        assert_eq!(int(1_234_567), "1,234,567");
    }

    #[test]
    fn numbers_keep_about_three_significant_digits() {
        assert_eq!(num(1234.6), "1,235");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.000123), "0.000123");
        assert_eq!(num(-2.0), "-2");
        assert_eq!(num(-0.0000000000001), "0");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(f64::NAN), "n/a");
        assert_eq!(num(f64::INFINITY), "n/a");
    }

    #[test]
    fn latency_and_shares() {
        assert_eq!(ms(1234.0), "1.23 ms");
        assert_eq!(ms(250_000.0), "250 ms");
        assert_eq!(pct(0.97), "97%");
        assert_eq!(pct(0.000001), "0.0001%");
    }

    #[test]
    fn wire_bytes_are_decimal_and_memory_is_mib() {
        assert_eq!(bytes(950.0), "950 B");
        assert_eq!(bytes(12_345.0), "12.3 kB");
        assert_eq!(bytes(1_500_000.0), "1.5 MB");
        assert_eq!(bytes(2_000_000_000.0), "2 GB");
        assert_eq!(mib(212 * 1_048_576), "212 MiB");
        assert_eq!(mib(1_572_864), "1.5 MiB");
        assert_eq!(in_mib(3 * 1_048_576), 3.0);
    }

    #[test]
    fn latency_ticks_pick_their_unit() {
        assert_eq!(latency_tick(0.01), "10 µs");
        assert_eq!(latency_tick(0.5), "500 µs");
        assert_eq!(latency_tick(1.0), "1 ms");
        assert_eq!(latency_tick(250.0), "250 ms");
        assert_eq!(latency_tick(2000.0), "2 s");
        assert_eq!(latency_tick(0.0), "0 ms");
    }

    #[test]
    fn terminal_latency_picks_its_unit() {
        assert_eq!(format_us(999), "999 µs");
        assert_eq!(format_us(1_240), "1.2 ms");
        assert_eq!(format_us(2_500_000), "2.50 s");
    }

    #[test]
    fn rates_print_as_written() {
        assert_eq!(format_rate(10.0), "10");
        assert_eq!(format_rate(0.5), "0.5");
        assert_eq!(format_rate(100.0 / 3.0), "33.333");
    }
}

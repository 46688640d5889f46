//! HdrHistogram's percentile-distribution text (`.hgrm`), in the layout of the Java
//! `outputPercentileDistribution` (values in milliseconds), which HdrHistogram's plotter and
//! other tools read; and the V2 serialised form, so runs can be merged later.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

/// Microseconds per output unit: values print in milliseconds.
const SCALE: f64 = 1000.0;

/// The percentile distribution with five ticks per half distance, as HdrHistogram prints it.
pub fn percentile_distribution(histogram: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !histogram.is_empty() {
        for value in histogram.iter_quantiles(5) {
            total += value.count_since_last_iteration();
            let quantile = value.quantile_iterated_to();
            let shown = histogram.highest_equivalent(value.value_iterated_to()) as f64 / SCALE;
            if quantile < 1.0 {
                let _ = writeln!(
                    out,
                    "{shown:12.3} {quantile:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - quantile)
                );
            } else {
                let _ = writeln!(out, "{shown:12.3} {quantile:2.12} {total:10}");
            }
        }
    }
    let (mean, stdev, max) = if histogram.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            histogram.mean() / SCALE,
            histogram.stdev() / SCALE,
            histogram.max() as f64 / SCALE,
        )
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max:12.3}, Total count    = {:12}]",
        histogram.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        histogram.buckets(),
        histogram.distinct_values() / histogram.buckets().max(1) as usize
    );
    out
}

/// The V2 serialised histogram.
pub fn serialize(histogram: &Histogram<u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(histogram, &mut bytes)
        .expect("serialising into a Vec cannot fail");
    bytes
}

/// Several histograms (a cell's second by second) in one file: each V2-serialised, after
/// its length as a 4-byte big-endian integer.
pub fn serialize_all(histograms: &[Histogram<u64>]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for histogram in histograms {
        let one = serialize(histogram);
        bytes.extend_from_slice(&(one.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&one);
    }
    bytes
}

/// Reads histograms written by `serialize_all`.
pub fn deserialize_all(mut bytes: &[u8]) -> Result<Vec<Histogram<u64>>, String> {
    let mut histograms = Vec::new();
    while !bytes.is_empty() {
        let (length, rest) = bytes.split_first_chunk::<4>().ok_or("a length cut short")?;
        let length = u32::from_be_bytes(*length) as usize;
        let one = rest.get(..length).ok_or("a histogram cut short")?;
        histograms.push(deserialize(one)?);
        bytes = &rest[length..];
    }
    Ok(histograms)
}

/// The file beside a cell's `.hist` that holds its latencies second by second.
pub fn seconds_file(histogram_file: &str) -> String {
    format!("{}.seconds.hist", histogram_file.trim_end_matches(".hist"))
}

/// Reads a histogram written by `serialize`.
pub fn deserialize(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_prints_the_distribution() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            histogram.record(v * 100).unwrap();
        }
        let back = deserialize(&serialize(&histogram)).unwrap();
        assert_eq!(back.len(), 1000);
        assert_eq!(
            back.value_at_quantile(0.5),
            histogram.value_at_quantile(0.5)
        );
        let text = percentile_distribution(&histogram);
        assert!(text.contains("#[Max     =      100.031"), "{text}");
        assert!(text.lines().any(|l| l.contains("0.500000000000")), "{text}");
    }

    #[test]
    fn several_histograms_round_trip_in_one_file() {
        let mut a = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        a.record(100).unwrap();
        let mut b = a.clone();
        b.record(5_000).unwrap();
        let back = deserialize_all(&serialize_all(&[a, b])).unwrap();
        assert_eq!(back.iter().map(|h| h.len()).collect::<Vec<_>>(), [1, 2]);
        assert!(deserialize_all(&[0, 0, 0, 9, 1]).is_err());
        assert_eq!(
            seconds_file("cell-000-sse.hist"),
            "cell-000-sse.seconds.hist"
        );
    }
}

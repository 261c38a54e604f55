//! The block codec: the points of one series, sorted by unique step, packed for disk.
//!
//! Steps and times are delta-of-delta zig-zag varints (a steady cadence costs one byte per point before
//! compression); values are XORed with their predecessor and split into eight byte planes, so the slowly
//! changing sign and exponent bytes sit together; zstd then squeezes the lot. Values keep every bit: NaN
//! payloads, infinities and -0.0 come back exactly.

use trackstack_store::{StoreError, StoreResult};

/// One stored point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub step: i64,
    pub value: f64,
    pub time_ms: i64,
}

const FORMAT_V1: u8 = 1;
const ZSTD_LEVEL: i32 = 3;
/// Worst case per point before compression: two 10-byte varints and eight value bytes.
const MAX_RAW_BYTES_PER_POINT: usize = 28;

pub(crate) fn encode(points: &[Point]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(points.len() * 12);
    put_delta_of_delta(&mut raw, points.iter().map(|p| p.step));
    put_delta_of_delta(&mut raw, points.iter().map(|p| p.time_ms));
    let mut previous = 0u64;
    let xored: Vec<u64> = points
        .iter()
        .map(|p| {
            let bits = p.value.to_bits();
            let x = bits ^ previous;
            previous = bits;
            x
        })
        .collect();
    for plane in (0..8).rev() {
        raw.extend(xored.iter().map(|x| (x >> (plane * 8)) as u8));
    }
    let mut block = vec![FORMAT_V1];
    put_varint(&mut block, points.len() as u64);
    block.extend(zstd::bulk::compress(&raw, ZSTD_LEVEL).expect("zstd compresses an in-memory buffer"));
    block
}

pub(crate) fn decode(block: &[u8]) -> StoreResult<Vec<Point>> {
    let corrupt = |what: &str| StoreError::Backend(format!("corrupt series block: {what}"));
    let (&format, rest) = block.split_first().ok_or_else(|| corrupt("empty"))?;
    if format != FORMAT_V1 {
        return Err(corrupt(&format!("unknown format {format}")));
    }
    let mut cursor = Cursor { bytes: rest, at: 0 };
    let count = cursor.varint().ok_or_else(|| corrupt("no point count"))? as usize;
    let raw = zstd::bulk::decompress(&rest[cursor.at..], count.saturating_mul(MAX_RAW_BYTES_PER_POINT) + 16)
        .map_err(|e| corrupt(&e.to_string()))?;
    let mut cursor = Cursor { bytes: &raw, at: 0 };
    let steps = cursor.delta_of_delta(count).ok_or_else(|| corrupt("steps"))?;
    let times = cursor.delta_of_delta(count).ok_or_else(|| corrupt("times"))?;
    let planes = raw.get(cursor.at..cursor.at + count * 8).ok_or_else(|| corrupt("values"))?;
    let mut previous = 0u64;
    let points = (0..count)
        .map(|i| {
            let xored = (0..8).fold(0u64, |x, plane| (x << 8) | u64::from(planes[plane * count + i]));
            previous ^= xored;
            Point { step: steps[i], value: f64::from_bits(previous), time_ms: times[i] }
        })
        .collect();
    Ok(points)
}

fn put_delta_of_delta(out: &mut Vec<u8>, values: impl Iterator<Item = i64>) {
    let (mut previous, mut previous_delta) = (0i64, 0i64);
    for value in values {
        let delta = value.wrapping_sub(previous);
        put_varint(out, zigzag(delta.wrapping_sub(previous_delta)));
        (previous, previous_delta) = (value, delta);
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    fn delta_of_delta(&mut self, count: usize) -> Option<Vec<i64>> {
        let (mut previous, mut previous_delta) = (0i64, 0i64);
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            let delta = previous_delta.wrapping_add(unzigzag(self.varint()?));
            previous = previous.wrapping_add(delta);
            previous_delta = delta;
            values.push(previous);
        }
        Some(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bits(points: &[Point]) -> Vec<(i64, u64, i64)> {
        points.iter().map(|p| (p.step, p.value.to_bits(), p.time_ms)).collect()
    }

    #[test]
    fn a_steady_float_series_packs_under_ten_bytes_a_point() {
        // A noisy, decaying loss: the mantissa is close to random, the cadence perfectly steady.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let points: Vec<Point> = (0..1024)
            .map(|step| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state >> 11) as f64 / (1u64 << 53) as f64;
                Point {
                    step,
                    value: 2.0 / (1.0 + step as f64 / 100.0) + 0.05 * noise,
                    time_ms: 1_700_000_000_000 + step * 37,
                }
            })
            .collect();
        let block = encode(&points);
        assert!(block.len() < 10 * points.len(), "{} bytes for {} points", block.len(), points.len());
        assert_eq!(bits(&decode(&block).unwrap()), bits(&points));
    }

    #[test]
    fn special_values_keep_every_bit() {
        let odd_nan = f64::from_bits(0x7ff8_dead_beef_0001);
        let values = [f64::NAN, odd_nan, -0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY, f64::MIN_POSITIVE / 2.0];
        let points: Vec<Point> = values
            .iter()
            .enumerate()
            .map(|(i, &value)| Point {
                step: [i64::MIN, -1, 0, 1, 1 << 53, i64::MAX - 1, i64::MAX][i],
                value,
                time_ms: -(i as i64),
            })
            .collect();
        assert_eq!(bits(&decode(&encode(&points)).unwrap()), bits(&points));
        assert!(decode(&encode(&[])).unwrap().is_empty());
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let block = encode(&[Point { step: 1, value: 1.0, time_ms: 1 }; 1]);
        for cut in 0..block.len() {
            let _ = decode(&block[..cut]);
        }
        assert!(decode(&[9, 1, 2]).is_err());
    }

    proptest! {
        #[test]
        fn blocks_round_trip_bit_exact(raw in proptest::collection::vec((any::<i64>(), any::<u64>(), any::<i64>()), 0..600)) {
            let points: Vec<Point> =
                raw.iter().map(|&(step, value, time_ms)| Point { step, value: f64::from_bits(value), time_ms }).collect();
            prop_assert_eq!(bits(&decode(&encode(&points)).unwrap()), raw);
        }
    }
}

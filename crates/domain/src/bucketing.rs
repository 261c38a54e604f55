//! Bucketed reads: a step range cut into at most N buckets whose width is a power of two and whose boundaries
//! are multiples of that width, each aggregated so that non-finite values are counted but never poison min,
//! max or mean.
//!
//! Aligning buckets to step 0 is what lets storage answer in O(buckets): every bucket is a whole cell of a
//! precomputed rollup level (see DESIGN.md §4), and zooming or panning a chart reuses the same boundaries
//! instead of shifting every bucket. Every series backend aggregates through [`Summary`] (or reproduces it
//! exactly), so all backends agree.

use crate::model::{Bucket, SeriesStats};

/// Buckets of width `2^width_log2`, aligned to multiples of the width and clipped to `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketLayout {
    pub start: i64,
    pub end: i64,
    pub width_log2: u32,
}

impl BucketLayout {
    /// The narrowest aligned power-of-two layout that covers `start..=end` with at most `buckets` buckets.
    pub fn new(start: i64, end: i64, buckets: u32) -> Self {
        debug_assert!(start <= end && buckets > 0);
        let most = i128::from(buckets.max(1));
        let mut width_log2 = 0;
        while width_log2 < 63 && i128::from((end >> width_log2) - (start >> width_log2)) + 1 > most {
            width_log2 += 1;
        }
        Self { start, end, width_log2 }
    }

    pub fn width(&self) -> i64 {
        1i64 << self.width_log2
    }

    /// How many buckets the range spans (some may hold no point).
    pub fn bucket_count(&self) -> usize {
        ((self.end >> self.width_log2) - (self.start >> self.width_log2)) as usize + 1
    }

    /// The index of the bucket holding `step`, which must lie within the range.
    pub fn index_of(&self, step: i64) -> usize {
        ((step >> self.width_log2) - (self.start >> self.width_log2)) as usize
    }

    /// The inclusive steps of bucket `index`, clipped to the range.
    pub fn bounds(&self, index: usize) -> (i64, i64) {
        let cell = (self.start >> self.width_log2) + index as i64;
        let lo = (i128::from(cell) << self.width_log2) as i64;
        let hi = ((i128::from(cell + 1) << self.width_log2) - 1).min(i128::from(i64::MAX)) as i64;
        (lo.max(self.start), hi.min(self.end))
    }
}

/// The aggregate of a set of points: what a bucket reports, and what every rollup cell stores.
///
/// Summaries of disjoint step ranges merge in any order; `min`, `max` and `sum` cover finite values only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub finite: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub first_step: i64,
    pub first_value: f64,
    pub last_step: i64,
    pub last_value: f64,
}

impl Default for Summary {
    fn default() -> Self {
        Self {
            count: 0,
            finite: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            first_step: i64::MAX,
            first_value: f64::NAN,
            last_step: i64::MIN,
            last_value: f64::NAN,
        }
    }
}

impl Summary {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds one point whose step is not yet in the summary.
    pub fn push(&mut self, step: i64, value: f64) {
        self.count += 1;
        if value.is_finite() {
            self.finite += 1;
            self.sum += value;
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        if step < self.first_step {
            (self.first_step, self.first_value) = (step, value);
        }
        if step > self.last_step {
            (self.last_step, self.last_value) = (step, value);
        }
    }

    /// Adds the summary of a disjoint set of steps.
    pub fn merge(&mut self, other: &Summary) {
        if other.count == 0 {
            return;
        }
        self.count += other.count;
        self.finite += other.finite;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.first_step < self.first_step {
            (self.first_step, self.first_value) = (other.first_step, other.first_value);
        }
        if other.last_step > self.last_step {
            (self.last_step, self.last_value) = (other.last_step, other.last_value);
        }
    }

    pub fn of(points: impl IntoIterator<Item = (i64, f64)>) -> Self {
        let mut summary = Self::default();
        for (step, value) in points {
            summary.push(step, value);
        }
        summary
    }

    fn finite_range(&self) -> (Option<f64>, Option<f64>) {
        let has_finite = self.finite > 0;
        (has_finite.then_some(self.min), has_finite.then_some(self.max))
    }

    pub fn to_bucket(&self) -> Option<Bucket> {
        if self.count == 0 {
            return None;
        }
        let (min, max) = self.finite_range();
        Some(Bucket {
            first_step: self.first_step,
            last_step: self.last_step,
            count: self.count,
            min,
            max,
            mean: (self.finite > 0).then(|| self.sum / self.finite as f64),
            last: self.last_value,
        })
    }

    pub fn to_stats(&self, key: &str) -> Option<SeriesStats> {
        if self.count == 0 {
            return None;
        }
        let (min, max) = self.finite_range();
        Some(SeriesStats {
            key: key.to_owned(),
            count: self.count,
            last_step: self.last_step,
            last_value: self.last_value,
            min,
            max,
        })
    }
}

/// Buckets points given in ascending step order, all inside the layout's range.
pub fn bucketize(layout: BucketLayout, points: impl IntoIterator<Item = (i64, f64)>) -> Vec<Bucket> {
    let mut buckets = Vec::new();
    let mut current: Option<(usize, Summary)> = None;
    for (step, value) in points {
        let index = layout.index_of(step);
        match &mut current {
            Some((open, summary)) if *open == index => summary.push(step, value),
            _ => {
                buckets.extend(current.take().and_then(|(_, summary)| summary.to_bucket()));
                current = Some((index, Summary::of([(step, value)])));
            }
        }
    }
    buckets.extend(current.and_then(|(_, summary)| summary.to_bucket()));
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn non_finite_values_are_counted_but_do_not_poison() {
        let layout = BucketLayout::new(0, 3, 1);
        let buckets = bucketize(layout, [(0, 1.0), (1, f64::NAN), (2, f64::INFINITY), (3, 3.0)]);
        assert_eq!(buckets.len(), 1);
        let b = &buckets[0];
        assert_eq!((b.count, b.min, b.max, b.mean, b.last), (4, Some(1.0), Some(3.0), Some(2.0), 3.0));
        let only_nan = bucketize(layout, [(0, f64::NAN)]);
        assert_eq!((only_nan[0].min, only_nan[0].mean), (None, None));
        assert!(only_nan[0].last.is_nan());
    }

    #[test]
    fn layout_covers_the_range_with_at_most_n_aligned_buckets() {
        let layout = BucketLayout::new(0, 999_999, 2000);
        assert_eq!(layout.width(), 512);
        assert_eq!((layout.bucket_count(), layout.index_of(999_999)), (1954, 1953));
        assert_eq!((layout.bounds(0), layout.bounds(1953)), ((0, 511), (999_936, 999_999)));
        let shifted = BucketLayout::new(100, 1099, 10);
        assert_eq!((shifted.width(), shifted.bucket_count()), (128, 9));
        assert_eq!((shifted.bounds(0), shifted.bounds(8)), ((100, 127), (1024, 1099)));
        let extreme = BucketLayout::new(0, crate::limits::STEP_MAX, 3);
        assert!(extreme.index_of(crate::limits::STEP_MAX) < 3);
        let one = BucketLayout::new(7, 7, 1);
        assert_eq!((one.width(), one.bucket_count(), one.bounds(0)), (1, 1, (7, 7)));
    }

    #[test]
    fn summaries_merge_like_one_pass() {
        let points: Vec<(i64, f64)> = (0..100).map(|s| (s, if s % 7 == 0 { f64::NAN } else { s as f64 })).collect();
        let whole = Summary::of(points.iter().copied());
        let mut merged = Summary::of(points[60..].iter().copied());
        merged.merge(&Summary::of(points[..30].iter().copied()));
        merged.merge(&Summary::default());
        merged.merge(&Summary::of(points[30..60].iter().copied()));
        assert_eq!((merged.count, merged.finite, merged.min, merged.max), (whole.count, whole.finite, 1.0, 99.0));
        assert_eq!((merged.first_step, merged.last_step, merged.last_value), (0, 99, 99.0));
        assert!(merged.first_value.is_nan());
        assert_eq!(merged.sum, whole.sum);
    }

    proptest! {
        #[test]
        fn buckets_partition_the_points(steps in proptest::collection::btree_set(0i64..10_000, 1..500), n in 1u32..300) {
            let steps: Vec<i64> = steps.into_iter().collect();
            let layout = BucketLayout::new(steps[0], *steps.last().unwrap(), n);
            prop_assert!(layout.bucket_count() <= n as usize);
            let narrower = BucketLayout { width_log2: layout.width_log2.saturating_sub(1), ..layout };
            prop_assert!(layout.width_log2 == 0 || narrower.bucket_count() > n as usize, "not the narrowest layout");
            let buckets = bucketize(layout, steps.iter().map(|s| (*s, *s as f64)));
            prop_assert!(buckets.len() <= n as usize);
            prop_assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), steps.len() as u64);
            for pair in buckets.windows(2) {
                prop_assert!(pair[0].last_step < pair[1].first_step);
            }
            for b in &buckets {
                let (lo, hi) = layout.bounds(layout.index_of(b.first_step));
                prop_assert!(lo <= b.first_step && b.last_step <= hi);
                prop_assert_eq!(b.min, Some(b.first_step as f64));
                prop_assert_eq!(b.last, b.last_step as f64);
            }
        }
    }
}

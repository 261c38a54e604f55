//! Bucketed reads: a step range cut into N equal-width buckets, each aggregated so that non-finite values
//! are counted but never poison min, max or mean. Every series backend aggregates through [`BucketAccumulator`]
//! (or reproduces it exactly), so all backends agree.

use crate::model::Bucket;

/// Equal-width buckets over an inclusive step range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketLayout {
    pub start: i64,
    pub end: i64,
    pub width: i64,
}

impl BucketLayout {
    /// Cuts `start..=end` into at most `buckets` buckets of equal integer width (the last may be narrower).
    pub fn new(start: i64, end: i64, buckets: u32) -> Self {
        debug_assert!(start <= end && buckets > 0);
        let span = (end - start) as i128 + 1;
        let n = buckets.max(1) as i128;
        let width = ((span + n - 1) / n).max(1) as i64;
        Self { start, end, width }
    }

    /// The index of the bucket holding `step`, which must lie within the range.
    pub fn index_of(&self, step: i64) -> usize {
        ((step - self.start) / self.width) as usize
    }
}

/// Aggregates the points of one bucket, fed in ascending step order.
#[derive(Debug, Clone, Default)]
pub struct BucketAccumulator {
    count: u64,
    finite: u64,
    sum: f64,
    min: f64,
    max: f64,
    first_step: i64,
    last_step: i64,
    last: f64,
}

impl BucketAccumulator {
    pub fn push(&mut self, step: i64, value: f64) {
        if self.count == 0 {
            self.first_step = step;
            self.min = f64::INFINITY;
            self.max = f64::NEG_INFINITY;
        }
        self.count += 1;
        self.last_step = step;
        self.last = value;
        if value.is_finite() {
            self.finite += 1;
            self.sum += value;
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn finish(&self) -> Option<Bucket> {
        if self.count == 0 {
            return None;
        }
        let has_finite = self.finite > 0;
        Some(Bucket {
            first_step: self.first_step,
            last_step: self.last_step,
            count: self.count,
            min: has_finite.then_some(self.min),
            max: has_finite.then_some(self.max),
            mean: has_finite.then(|| self.sum / self.finite as f64),
            last: self.last,
        })
    }
}

/// Buckets points given in ascending step order, all inside the layout's range.
pub fn bucketize(layout: BucketLayout, points: impl IntoIterator<Item = (i64, f64)>) -> Vec<Bucket> {
    let mut buckets = Vec::new();
    let mut current: Option<(usize, BucketAccumulator)> = None;
    for (step, value) in points {
        let index = layout.index_of(step);
        match &mut current {
            Some((open, acc)) if *open == index => acc.push(step, value),
            _ => {
                if let Some(bucket) = current.take().and_then(|(_, acc)| acc.finish()) {
                    buckets.push(bucket);
                }
                let mut acc = BucketAccumulator::default();
                acc.push(step, value);
                current = Some((index, acc));
            }
        }
    }
    buckets.extend(current.and_then(|(_, acc)| acc.finish()));
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
    fn layout_covers_the_range_with_at_most_n_buckets() {
        let layout = BucketLayout::new(0, 999_999, 2000);
        assert_eq!(layout.width, 500);
        assert_eq!(layout.index_of(999_999), 1999);
        let extreme = BucketLayout::new(0, crate::limits::STEP_MAX, 3);
        assert!(extreme.index_of(crate::limits::STEP_MAX) < 3);
    }

    proptest! {
        #[test]
        fn buckets_partition_the_points(steps in proptest::collection::btree_set(0i64..10_000, 1..500), n in 1u32..300) {
            let steps: Vec<i64> = steps.into_iter().collect();
            let layout = BucketLayout::new(steps[0], *steps.last().unwrap(), n);
            let buckets = bucketize(layout, steps.iter().map(|s| (*s, *s as f64)));
            prop_assert!(buckets.len() <= n as usize);
            prop_assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), steps.len() as u64);
            for pair in buckets.windows(2) {
                prop_assert!(pair[0].last_step < pair[1].first_step);
            }
            for b in &buckets {
                prop_assert_eq!(b.min, Some(b.first_step as f64));
                prop_assert_eq!(b.last, b.last_step as f64);
            }
        }
    }
}

//! A log-linear histogram of `u64` values (nanoseconds here), HdrHistogram-style.
//!
//! Values below 256 get one bucket each (exact). Above that, every power-of-two
//! range `[2^k, 2^(k+1))` is split into 128 equal sub-buckets, so a bucket's width
//! is at most 1/128 (0.78%) of the values in it. The whole `u64` range takes
//! 7,424 counters (58 KiB), allocated once in [`Histogram::new`]: recording never
//! allocates, whatever the number of values.
//!
//! A percentile is the *nearest rank* one: the smallest recorded value `v` such
//! that at least `q` of all values are `<= v`. It is reported as the highest value
//! of that bucket (clamped to the recorded min and max), so it is never below the
//! exact percentile and at most 0.78% above it.

/// log2 of the sub-buckets per power of two: 2^7 = 128, relative width <= 1/128.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Exact buckets `[0, 2 * SUB)`, then `SUB` buckets for each shift 1..=(63 - SUB_BITS).
const BUCKETS: usize = ((65 - SUB_BITS) as usize) << SUB_BITS;

/// Counts of values in log-linear buckets, plus the exact count, min, max and sum.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket a value falls in.
fn index_of(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let shift = (63 - v.leading_zeros()) - SUB_BITS;
    // (v >> shift) is in [SUB, 2 * SUB): shift 1 starts right after the exact buckets.
    (u64::from(shift) * SUB + (v >> shift)) as usize
}

/// The lowest and highest value of a bucket (inclusive).
fn bounds_of(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < 2 * SUB {
        return (index, index);
    }
    let shift = index / SUB - 1;
    let low = (index % SUB + SUB) << shift;
    (low, low + ((1u64 << shift) - 1))
}

impl Histogram {
    /// An empty histogram covering every `u64` value.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Count one value.
    pub fn record(&mut self, v: u64) {
        self.counts[index_of(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Add all of `other`'s values to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The smallest value recorded (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 { 0 } else { self.min }
    }

    /// The largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The exact mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The nearest-rank percentile `q` (0 to 100): the bucket holding the
    /// `ceil(q / 100 * count)`-th smallest value, as that bucket's highest value
    /// clamped to `[min, max]`. 0 when empty; `q >= 100` gives the exact max.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q / 100.0) * self.total as f64).ceil() as u64;
        let rank = rank.clamp(1, self.total);
        if rank == self.total {
            return self.max;
        }
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (_, high) = bounds_of(i);
                return high.clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact nearest-rank percentile of sorted values.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    /// A small deterministic generator (xorshift64*), so the data is the same every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn buckets_cover_every_value_once_and_in_order() {
        let mut probes = vec![
            0, 1, 127, 128, 255, 256, 257, 511, 512, 513, 1000, 1_000_000,
        ];
        for k in 0..64 {
            let p = 1u64 << k;
            probes.extend([p - 1, p, p.saturating_add(1), p | (p >> 1)]);
        }
        probes.extend([u64::MAX - 1, u64::MAX]);
        for v in probes {
            let i = index_of(v);
            assert!(i < BUCKETS, "{v} -> bucket {i} out of range");
            let (low, high) = bounds_of(i);
            assert!(
                low <= v && v <= high,
                "{v} not in bucket {i} = [{low}, {high}]"
            );
            // Width at most 1/128 of the bucket's low end (exact below 256).
            assert!(
                (high - low) as u128 * 128 <= u128::from(low.max(1)),
                "bucket {i} too wide"
            );
        }
        // Consecutive buckets tile the range without gaps or overlaps.
        for i in 1..BUCKETS {
            assert_eq!(
                bounds_of(i - 1).1 + 1,
                bounds_of(i).0,
                "gap before bucket {i}"
            );
        }
        assert_eq!(bounds_of(BUCKETS - 1).1, u64::MAX);
    }

    #[test]
    fn percentiles_of_small_exact_sets() {
        // (values, percentile, expected): below 256 every value has its own bucket,
        // so these are exact nearest-rank results.
        let cases: &[(&[u64], f64, u64)] = &[
            (&[5], 0.0, 5),
            (&[5], 50.0, 5),
            (&[5], 100.0, 5),
            (&[1, 2, 3, 4], 50.0, 2),
            (&[1, 2, 3, 4], 50.1, 3),
            (&[1, 2, 3, 4], 75.0, 3),
            (&[1, 2, 3, 4], 99.0, 4),
            (&[4, 3, 2, 1], 25.0, 1),
            (&[0, 0, 0, 200], 75.0, 0),
            (&[0, 0, 0, 200], 76.0, 200),
            (&[10; 100], 99.9, 10),
        ];
        for &(values, q, want) in cases {
            let mut h = Histogram::new();
            values.iter().for_each(|&v| h.record(v));
            assert_eq!(h.percentile(q), want, "p{q} of {values:?}");
        }
    }

    #[test]
    fn percentiles_of_one_to_hundred_thousand() {
        // 1..=100_000 ns: p(q) is exactly q * 1000 ns; the histogram may report up to
        // the top of that value's bucket (< 0.79% above).
        let mut h = Histogram::new();
        (1..=100_000u64).for_each(|v| h.record(v));
        for (q, exact) in [
            (50.0, 50_000u64),
            (90.0, 90_000),
            (99.0, 99_000),
            (99.9, 99_900),
        ] {
            let got = h.percentile(q);
            assert!(
                got >= exact && (got - exact) as f64 <= exact as f64 / 128.0,
                "p{q}: {got}"
            );
        }
        assert_eq!(h.percentile(100.0), 100_000);
        assert_eq!(h.percentile(0.0), 1);
        assert_eq!((h.min(), h.max(), h.count()), (1, 100_000, 100_000));
        assert!((h.mean() - 50_000.5).abs() < 1e-6);
    }

    #[test]
    fn percentiles_within_one_percent_of_exact_on_latency_like_data() {
        // Log-uniform values from 10 us to 1 s (the range a latency run sees),
        // with a few outliers: every percentile is >= the exact one and < 0.8% above.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut values: Vec<u64> = (0..200_000)
            .map(|_| {
                let x = (rng.next() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
                (1e4 * 1e5f64.powf(x)) as u64
            })
            .collect();
        values.extend([3, 40_000_000_000, u64::MAX / 2]);
        let mut h = Histogram::new();
        values.iter().for_each(|&v| h.record(v));
        values.sort_unstable();
        for q in [0.0, 1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0] {
            let (got, want) = (h.percentile(q), exact(&values, q));
            assert!(got >= want, "p{q}: {got} below exact {want}");
            assert!(
                (got - want) as f64 <= want as f64 / 128.0,
                "p{q}: {got} vs exact {want}"
            );
        }
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut rng = Rng(42);
        let values: Vec<u64> = (0..10_000).map(|_| rng.next() % 50_000_000).collect();
        let mut all = Histogram::new();
        let mut parts = [Histogram::new(), Histogram::new(), Histogram::new()];
        for (i, &v) in values.iter().enumerate() {
            all.record(v);
            parts[i % 3].record(v);
        }
        let mut merged = Histogram::new();
        parts.iter().for_each(|p| merged.merge(p));
        for q in [0.0, 50.0, 99.0, 99.9, 100.0] {
            assert_eq!(merged.percentile(q), all.percentile(q));
        }
        assert_eq!(
            (merged.count(), merged.min(), merged.max()),
            (all.count(), all.min(), all.max())
        );
        assert_eq!(merged.mean(), all.mean());
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let h = Histogram::new();
        assert_eq!(
            (h.count(), h.min(), h.max(), h.percentile(99.0)),
            (0, 0, 0, 0)
        );
        assert_eq!(h.mean(), 0.0);
    }
}

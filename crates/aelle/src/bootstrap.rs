//! Bootstrap intervals over networks.
//!
//! A population of `n` networks in groups (architectures) is resampled **within each group**
//! with replacement (a stratified bootstrap: every resample has each group's size, so the
//! architecture mix of the population is kept), `B` times from a seeded ChaCha8 generator. A
//! statistic computed on each resample gives the percentile interval
//! `[q_{(1 - c) / 2}, q_{(1 + c) / 2}]` at confidence `c` (linear interpolation between order
//! statistics). Resamples on which the statistic is undefined (e.g. an AUROC of a resample
//! with one class) are left out and counted.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// `B` stratified resamples of network indices.
#[derive(Debug, Clone)]
pub struct Resamples {
    /// `indices[b]`: the networks (indices into the caller's network list) of resample `b`,
    /// grouped by group in the order of the groups' first appearance.
    pub indices: Vec<Vec<usize>>,
}

impl Resamples {
    /// `count` resamples of `networks` (indices into the caller's list) with group labels
    /// `group_of[network]`, each group resampled with replacement to its own size.
    pub fn stratified(networks: &[usize], group_of: &[usize], count: usize, seed: u64) -> Self {
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for &n in networks {
            match groups.iter_mut().find(|(g, _)| *g == group_of[n]) {
                Some((_, members)) => members.push(n),
                None => groups.push((group_of[n], vec![n])),
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let indices = (0..count)
            .map(|_| {
                let mut sample = Vec::with_capacity(networks.len());
                for (_, members) in &groups {
                    for _ in 0..members.len() {
                        sample.push(members[rng.random_range(0..members.len())]);
                    }
                }
                sample
            })
            .collect();
        Self { indices }
    }
}

/// A point estimate with its bootstrap percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimate on the full sample.
    pub value: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
    /// Resamples on which the statistic was defined (the interval's basis).
    pub resamples_used: usize,
}

impl Interval {
    /// Whether `x` lies in `[low, high]`.
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }

    /// `value [low, high]` with `digits` decimals.
    pub fn display(&self, digits: usize) -> String {
        format!("{:.digits$} [{:.digits$}, {:.digits$}]", self.value, self.low, self.high)
    }
}

/// The percentile interval at `confidence` of the defined values in `replicates` around
/// `value`; `None` when `value` is undefined or fewer than half the replicates are defined
/// (the statistic is too often undefined for an interval to mean anything).
pub fn percentile_interval(
    value: Option<f64>,
    replicates: &[Option<f64>],
    confidence: f64,
) -> Option<Interval> {
    let value = value?;
    let mut defined: Vec<f64> = replicates.iter().flatten().copied().collect();
    if defined.is_empty() || 2 * defined.len() < replicates.len() {
        return None;
    }
    defined.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    Some(Interval {
        value,
        low: quantile_sorted(&defined, tail),
        high: quantile_sorted(&defined, 1.0 - tail),
        resamples_used: defined.len(),
    })
}

/// The `q`-quantile of sorted, non-empty `v` (linear interpolation, `numpy.quantile`'s
/// default rule: position `q (n - 1)`).
pub fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_numpy_linear_rule() {
        // numpy.quantile([1, 2, 3, 4], [0, 0.25, 0.5, 0.9, 1]) = [1, 1.75, 2.5, 3.7, 4].
        let v = [1.0, 2.0, 3.0, 4.0];
        for (q, want) in [(0.0, 1.0), (0.25, 1.75), (0.5, 2.5), (0.9, 3.7), (1.0, 4.0)] {
            assert!((quantile_sorted(&v, q) - want).abs() < 1e-12, "q = {q}");
        }
    }

    #[test]
    fn stratified_resamples_keep_group_sizes_and_are_seeded() {
        let group_of = [0, 0, 0, 1, 1, 2];
        let nets: Vec<usize> = (0..6).collect();
        let a = Resamples::stratified(&nets, &group_of, 200, 7);
        let b = Resamples::stratified(&nets, &group_of, 200, 7);
        assert_eq!(a.indices, b.indices);
        for s in &a.indices {
            let count = |g| s.iter().filter(|&&n| group_of[n] == g).count();
            assert_eq!((count(0), count(1), count(2)), (3, 2, 1));
        }
        // Every network of a group is drawn at some point.
        assert!((0..6).all(|n| a.indices.iter().any(|s| s.contains(&n))));
    }

    #[test]
    fn interval_of_a_mean_covers_the_truth_at_about_the_nominal_rate() {
        // 200 experiments: the 90 % interval of the mean of 40 seeded U(-0.5, 0.5) draws covers
        // the true mean 0 in about 90 % of them (percentile intervals run a little narrow at
        // n = 40, hence the lower bound of 80 %).
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut covered = 0;
        for e in 0..200 {
            let x: Vec<f64> = (0..40).map(|_| rng.random::<f64>() - 0.5).collect();
            let nets: Vec<usize> = (0..40).collect();
            let r = Resamples::stratified(&nets, &[0; 40], 400, e);
            let mean = |idx: &[usize]| idx.iter().map(|&i| x[i]).sum::<f64>() / idx.len() as f64;
            let reps: Vec<Option<f64>> = r.indices.iter().map(|s| Some(mean(s))).collect();
            let iv = percentile_interval(Some(mean(&nets)), &reps, 0.9).unwrap();
            covered += usize::from(iv.contains(0.0));
        }
        assert!((160..=195).contains(&covered), "{covered} of 200");
    }

    #[test]
    fn mostly_undefined_statistics_get_no_interval() {
        assert!(percentile_interval(Some(0.5), &[None, None, Some(0.4)], 0.95).is_none());
        assert!(percentile_interval(None, &[Some(0.4)], 0.95).is_none());
        let iv = percentile_interval(Some(0.5), &[Some(0.4), Some(0.6), None], 0.95).unwrap();
        assert_eq!(iv.resamples_used, 2);
    }
}

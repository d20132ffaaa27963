//! Summaries of small samples (tens of runs): nearest-rank percentiles, no
//! interpolation, so every figure reported is one that was measured.

/// Milliseconds of one series of runs.
#[derive(Debug, Clone, Default)]
pub struct Series {
    values: Vec<f64>,
}

/// Median, p90, min and max of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
}

impl Series {
    pub fn push(&mut self, value: f64) {
        if value.is_finite() {
            self.values.push(value);
        }
    }

    pub fn summary(&self) -> Option<Summary> {
        if self.values.is_empty() {
            return None;
        }
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            n: sorted.len(),
            median: median(&sorted),
            p90: nearest_rank(&sorted, 0.90),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// The median of sorted values: the middle one, or the mean of the middle two.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n.is_multiple_of(2) {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    } else {
        sorted[n / 2]
    }
}

/// The smallest value with at least `q` of the values at or below it.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() -> Result<(), String> {
        let mut s = Series::default();
        for v in [5.0, 1.0, 4.0, 2.0, 3.0, f64::NAN] {
            s.push(v);
        }
        let sum = s.summary().ok_or("empty")?;
        assert_eq!((sum.n, sum.median, sum.min, sum.max), (5, 3.0, 1.0, 5.0));
        assert_eq!(sum.p90, 5.0);
        let mut s = Series::default();
        for v in 1..=25 {
            s.push(f64::from(v));
        }
        let sum = s.summary().ok_or("empty")?;
        assert_eq!((sum.median, sum.p90), (13.0, 23.0));
        s.push(26.0);
        assert_eq!(s.summary().map(|s| s.median), Some(13.5));
        assert!(Series::default().summary().is_none());
        Ok(())
    }
}

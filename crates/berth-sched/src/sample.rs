//! Random placement by rejection sampling.
//!
//! With no constraint and no strategy but `random`, placement puts each task on an
//! instance chosen uniformly among those it fits on. Drawing an instance uniformly
//! from all of them and keeping it only if the task fits gives exactly that
//! distribution (each fitting instance is equally likely to be the first kept), at a
//! cost per task rather than per instance: the engine ([`place()`](crate::place()))
//! orders every instance for each request, which on thousands of instances is most
//! of a decision's work.
//!
//! Sampling cannot tell that nothing fits, and gets slow when little does: after
//! `misses` draws in a row that do not fit it stops, and the caller hands the tasks
//! left to the engine, which places them or says why each instance cannot.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Places up to `count` tasks on `len` instances: draws an instance uniformly and
/// calls `take(instance)`, which takes the task's resources and returns true if the
/// task fits there (so the next draw sees what is left). Returns the instances the
/// tasks went to, in order; shorter than `count` when `misses` draws in a row found
/// no room. The same `seed` and answers give the same result.
pub fn sample_random(
    len: usize,
    count: usize,
    misses: u32,
    seed: u64,
    mut take: impl FnMut(usize) -> bool,
) -> Vec<usize> {
    let mut placed = Vec::with_capacity(count.min(1 << 16));
    if len == 0 {
        return placed;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut missed = 0;
    while placed.len() < count && missed < misses {
        let at = rng.random_range(0..len);
        if take(at) {
            placed.push(at);
            missed = 0;
        } else {
            missed += 1;
        }
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_fitting_instance_is_equally_likely() {
        // Instances 0..10; the odd ones never fit. 20,000 single draws.
        let mut counts = [0u32; 10];
        for seed in 0..20_000u64 {
            for at in sample_random(10, 1, 1_000, seed, |i| i % 2 == 0) {
                counts[at] += 1;
            }
        }
        assert!(
            counts.iter().skip(1).step_by(2).all(|&c| c == 0),
            "{counts:?}"
        );
        // Each even instance expects 4,000; a fair draw stays well within 10%.
        for c in counts.iter().step_by(2) {
            assert!((3_600..=4_400).contains(c), "{counts:?}");
        }
    }

    #[test]
    fn stops_after_the_misses_and_on_no_instances() {
        let mut asked = 0;
        let placed = sample_random(5, 3, 64, 7, |_| {
            asked += 1;
            false
        });
        assert!(placed.is_empty());
        assert_eq!(asked, 64);
        assert!(sample_random(0, 3, 64, 7, |_| true).is_empty());
    }

    proptest! {
        /// Never more tasks on an instance than it has room for, never more tasks
        /// than asked; when room is plentiful, every task is placed.
        #[test]
        fn never_overfills(
            room in proptest::collection::vec(0u32..4, 1..40),
            count in 0usize..60,
            seed in any::<u64>(),
        ) {
            let mut left = room.clone();
            let placed = sample_random(room.len(), count, 10_000, seed, |i| {
                if left[i] > 0 { left[i] -= 1; true } else { false }
            });
            prop_assert!(placed.len() <= count);
            for (i, &r) in room.iter().enumerate() {
                let n = placed.iter().filter(|&&p| p == i).count() as u32;
                prop_assert!(n <= r);
            }
            let total: u32 = room.iter().sum();
            // With 10,000 misses allowed, a task finds the room that is left.
            prop_assert_eq!(placed.len(), count.min(total as usize));
        }
    }
}

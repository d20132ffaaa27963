//! One shared copy of strings that many tasks repeat (their instance's ARN, their
//! group, their deployment), for the indexes that hold a record per task: a million
//! tasks on ten thousand instances then hold ten thousand ARNs, not a million.

use std::collections::HashSet;
use std::sync::Arc;

/// A set of shared strings. A string leaves the set when the last holder outside it
/// gives it back with [`Interner::release`]; one given back while someone else still
/// held a clone leaves at the next sweep (when the set has doubled since the last),
/// so the set holds what is in use and a bounded remainder.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>, foldhash::fast::RandomState>,
    swept_at: usize,
}

impl Interner {
    /// The shared copy of `text`, made if there is none.
    pub fn intern(&mut self, text: &str) -> Arc<str> {
        match self.strings.get(text) {
            Some(shared) => Arc::clone(shared),
            None => {
                if self.strings.len() >= 2 * self.swept_at + 64 {
                    self.strings.retain(|held| Arc::strong_count(held) > 1);
                    self.swept_at = self.strings.len();
                }
                let shared: Arc<str> = Arc::from(text);
                self.strings.insert(Arc::clone(&shared));
                shared
            }
        }
    }

    /// Gives back a string [`Interner::intern`] returned; it leaves the set when no
    /// one else holds it.
    pub fn release(&mut self, shared: Arc<str>) {
        // Held by the set and by `shared` alone.
        if Arc::strong_count(&shared) == 2 && self.strings.contains(&*shared) {
            self.strings.remove(&*shared);
        }
    }

    /// How many distinct strings are held.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_copy_until_the_last_is_released() {
        let mut interner = Interner::default();
        let a = interner.intern("service:web");
        let b = interner.intern("service:web");
        let c = interner.intern("service:api");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(interner.len(), 2);
        interner.release(a);
        assert_eq!(interner.len(), 2, "b still holds it");
        interner.release(b);
        assert_eq!(interner.len(), 1);
        interner.release(c);
        assert!(interner.is_empty());
    }

    #[test]
    fn a_string_released_while_held_elsewhere_stays() {
        let mut interner = Interner::default();
        let a = interner.intern("x");
        let kept = Arc::clone(&a);
        interner.release(a);
        assert_eq!(interner.len(), 1);
        let again = interner.intern("x");
        assert!(Arc::ptr_eq(&again, &kept));
    }

    #[test]
    fn strings_no_one_holds_are_swept() {
        let mut interner = Interner::default();
        for i in 0..64 {
            // Dropped without being released: only the set holds them.
            let _ = interner.intern(&i.to_string());
        }
        assert_eq!(interner.len(), 64);
        let kept = interner.intern("kept");
        assert_eq!(interner.len(), 1);
        assert!(Arc::ptr_eq(&kept, &interner.intern("kept")));
    }
}

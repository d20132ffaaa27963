//! The read side of the store: immutable snapshots of the whole key space.
//!
//! Every key lives in memory in a persistent ordered map (`imbl::OrdMap`): the writer
//! derives each new version from the previous one sharing all untouched nodes, and a
//! reader holds one version for as long as it likes without copying or locking. So a
//! snapshot is an `Arc` clone, reads never wait for writes, and one request sees one
//! consistent revision for all of its gets and scans. SQLite is only the durable copy.
//!
//! Keys are `Arc<str>` and entries `Arc<KeyValue>`: deriving a version copies the
//! B-tree nodes on the path to each written key, and copying a node clones every entry
//! in it (up to 64), so entries must be cheap to clone: a reference-count increment
//! each, not a key and a value allocated and copied. An entry's key is the same
//! allocation as the map's key for it.
//!
//! A second map by hash for reads of one key (`imbl::HashMap`) was tried: in isolation
//! it read a key of a million in ~0.6 µs against the ordered map's ~2.8 µs, but writing
//! both maps made the control plane slower end to end (see BENCHMARKS.md).

use std::ops::Bound;
use std::sync::Arc;

use imbl::{OrdMap, Vector};

use crate::KeyValue;

/// The key space at one revision, as the writer publishes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    pub(crate) entries: Entries,
    pub(crate) revision: i64,
    /// The keys the latest revisions up to `revision` changed.
    pub(crate) log: ChangeLog,
}

/// How many changed keys a [`ChangeLog`] keeps: at a few keys per transaction, the
/// last seconds of writes under load, and ~2 MB at most.
pub(crate) const LOG_KEPT: usize = 1 << 16;

/// The keys changed by the latest revisions, oldest first, each with the revision
/// that changed it: what lets a reader that derived something from an older
/// snapshot bring it up to date by looking at the keys changed since, not at every
/// key. Persistent like the entries: each index shares all but the tail with the
/// one before it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChangeLog {
    keys: Vector<(i64, Arc<str>)>,
    /// Every key changed by a revision after this one is in `keys`.
    complete_after: i64,
}

impl ChangeLog {
    /// An empty log of a store at `revision`: it tells nothing of what came before.
    pub(crate) fn starting_at(revision: i64) -> ChangeLog {
        ChangeLog {
            keys: Vector::new(),
            complete_after: revision,
        }
    }

    /// Records that `revision` (later than any recorded) changed `key`, forgetting
    /// the oldest keys beyond [`LOG_KEPT`].
    pub(crate) fn push(&mut self, revision: i64, key: Arc<str>) {
        self.keys.push_back((revision, key));
        while self.keys.len() > LOG_KEPT {
            if let Some((forgotten, _)) = self.keys.pop_front() {
                self.complete_after = self.complete_after.max(forgotten);
            }
        }
    }
}

/// Every entry of the key space in key order, each under its own key: changed only
/// through [`Entries::insert`] and [`Entries::remove`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Entries {
    ordered: OrdMap<Arc<str>, Arc<KeyValue>>,
}

impl Entries {
    pub(crate) fn get(&self, key: &str) -> Option<&Arc<KeyValue>> {
        self.ordered.get(key)
    }

    /// Puts `kv` under its own key, replacing the entry there.
    pub(crate) fn insert(&mut self, kv: Arc<KeyValue>) {
        self.ordered.insert(Arc::clone(&kv.key), kv);
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Arc<KeyValue>> {
        self.ordered.remove(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.ordered.len()
    }

    fn range<'a>(
        &'a self,
        bounds: (Bound<&str>, Bound<&str>),
    ) -> impl DoubleEndedIterator<Item = &'a Arc<KeyValue>> + use<'a> {
        self.ordered.range::<_, str>(bounds).map(|(_, kv)| kv)
    }
}

/// A consistent, immutable view of the whole key space at one revision. Cheap to clone
/// and to keep: it shares its data with the store and with every other snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    index: Arc<Index>,
}

impl Snapshot {
    pub(crate) fn new(index: Arc<Index>) -> Self {
        Snapshot { index }
    }

    /// The store revision this snapshot shows: every transaction up to it, none after.
    pub fn revision(&self) -> i64 {
        self.index.revision
    }

    /// Number of keys in the whole key space.
    pub fn len(&self) -> usize {
        self.index.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.entries.len() == 0
    }

    pub fn get(&self, key: &str) -> Option<&KeyValue> {
        self.index.entries.get(key).map(|kv| &**kv)
    }

    /// The entry of `key` as the shared allocation the snapshot holds (see
    /// [`iter_prefix_shared`](Self::iter_prefix_shared)).
    pub fn get_shared(&self, key: &str) -> Option<&Arc<KeyValue>> {
        self.index.entries.get(key)
    }

    /// Every key starting with `prefix`, ascending (`.rev()` for descending).
    pub fn iter_prefix<'a>(
        &'a self,
        prefix: &str,
    ) -> impl DoubleEndedIterator<Item = &'a KeyValue> + 'a {
        self.range(prefix, None, None)
    }

    /// Every entry under `prefix`, ascending, as the shared allocation the snapshot
    /// holds: an entry that is the same allocation as one seen in another snapshot
    /// (`Arc::ptr_eq`) is the same key at the same revision, found without comparing
    /// keys. A holder of such an `Arc` keeps the entry alive, so its address is not
    /// reused while it is held.
    pub fn iter_prefix_shared<'a>(
        &'a self,
        prefix: &str,
    ) -> impl DoubleEndedIterator<Item = &'a Arc<KeyValue>> + 'a {
        self.range_shared(prefix, None, None)
    }

    /// The keys changed by the revisions after `since` up to this snapshot's, newest
    /// first (a key changed by several appears once for each), or `None` when the
    /// snapshot no longer knows them all (it keeps the last [`LOG_KEPT`] keys
    /// changed) or `since` is later than the snapshot. O(keys changed since).
    pub fn changed_since(&self, since: i64) -> Option<impl Iterator<Item = &Arc<str>> + '_> {
        let log = &self.index.log;
        (log.complete_after <= since && since <= self.index.revision).then(|| {
            log.keys
                .iter()
                .rev()
                .take_while(move |(revision, _)| *revision > since)
                .map(|(_, key)| key)
        })
    }

    /// How many keys start with `prefix`. Walks them: O(count).
    pub fn count_prefix(&self, prefix: &str) -> usize {
        self.range(prefix, None, None).count()
    }

    /// One page of the keys starting with `prefix`, ascending, strictly after
    /// `start_after` when given (the last key of the previous page), at most `limit`.
    pub fn scan_prefix(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Vec<KeyValue> {
        self.range(prefix, start_after, None)
            .take(limit)
            .cloned()
            .collect()
    }

    /// One page of the keys starting with `prefix`, descending, strictly before
    /// `start_before` when given (the last key of the previous page), at most `limit`.
    pub fn scan_prefix_rev(
        &self,
        prefix: &str,
        start_before: Option<&str>,
        limit: usize,
    ) -> Vec<KeyValue> {
        self.range(prefix, None, start_before)
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }

    /// Keys starting with `prefix`, strictly after `after` and strictly before `before`.
    fn range<'a>(
        &'a self,
        prefix: &str,
        after: Option<&str>,
        before: Option<&str>,
    ) -> impl DoubleEndedIterator<Item = &'a KeyValue> + 'a {
        self.range_shared(prefix, after, before).map(|kv| &**kv)
    }

    fn range_shared<'a>(
        &'a self,
        prefix: &str,
        after: Option<&str>,
        before: Option<&str>,
    ) -> impl DoubleEndedIterator<Item = &'a Arc<KeyValue>> + 'a {
        let end = prefix_end(prefix);
        let lower = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let upper = match (before, end.as_deref()) {
            (Some(b), Some(e)) if b < e => Bound::Excluded(b),
            (Some(b), None) => Bound::Excluded(b),
            (_, Some(e)) => Bound::Excluded(e),
            (None, None) => Bound::Unbounded,
        };
        // An empty or inverted range yields nothing; checked here rather than relying
        // on how the map treats inverted bounds.
        let nonempty = match (lower, upper) {
            (Bound::Included(l), Bound::Excluded(u)) | (Bound::Excluded(l), Bound::Excluded(u)) => {
                l < u
            }
            _ => true,
        };
        nonempty
            .then(|| self.index.entries.range((lower, upper)))
            .into_iter()
            .flatten()
    }
}

/// The least string greater than every string that starts with `prefix`; `None` when
/// there is none (empty prefix, or a prefix of only `char::MAX`). Keys order by their
/// UTF-8 bytes, which is code point order, so bumping the last char that can be bumped
/// gives the exclusive upper bound of the prefix's range.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut end = prefix.to_owned();
    while let Some(last) = end.pop() {
        let mut next = u32::from(last) + 1;
        if next == 0xD800 {
            next = 0xE000; // surrogates are not chars
        }
        if let Some(c) = char::from_u32(next) {
            end.push(c);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn snapshot(keys: &[&str]) -> Snapshot {
        let mut entries = Entries::default();
        for (i, k) in keys.iter().enumerate() {
            let rev = i as i64 + 1;
            entries.insert(Arc::new(KeyValue {
                key: Arc::from(*k),
                value: Bytes::from(k.to_string()),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
            }));
        }
        Snapshot::new(Arc::new(Index {
            entries,
            revision: keys.len() as i64,
            log: ChangeLog::default(),
        }))
    }

    fn keys(kvs: &[KeyValue]) -> Vec<&str> {
        kvs.iter().map(|kv| &*kv.key).collect()
    }

    #[test]
    fn the_change_log_keeps_the_latest_keys_and_says_when_it_no_longer_reaches_back() {
        let mut log = ChangeLog::starting_at(10);
        let mut revision = 10;
        // Three keys per revision, well past what the log keeps.
        while revision < 10 + (LOG_KEPT as i64) {
            revision += 1;
            for k in 0..3 {
                log.push(revision, Arc::from(format!("k/{revision}/{k}").as_str()));
            }
        }
        assert_eq!(log.keys.len(), LOG_KEPT);
        let s = Snapshot::new(Arc::new(Index {
            entries: Entries::default(),
            revision,
            log,
        }));
        // The oldest revisions are forgotten, whole: one partly kept counts as gone.
        let oldest_whole = revision - (LOG_KEPT as i64) / 3;
        assert!(s.changed_since(oldest_whole - 1).is_none());
        assert_eq!(
            s.changed_since(oldest_whole).map(Iterator::count),
            Some(LOG_KEPT / 3 * 3)
        );
        let last: Option<Vec<&str>> = s
            .changed_since(revision - 1)
            .map(|keys| keys.map(|k| &**k).collect());
        let newest = [2, 1, 0].map(|k| format!("k/{revision}/{k}"));
        assert_eq!(
            last,
            Some(newest.iter().map(String::as_str).collect::<Vec<_>>())
        );
        assert!(
            s.changed_since(revision + 1).is_none(),
            "after the snapshot"
        );
    }

    #[test]
    fn prefix_end_bumps_the_last_bumpable_char() {
        assert_eq!(prefix_end("a/"), Some("a0".to_owned()));
        assert_eq!(prefix_end("az"), Some("a{".to_owned()));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end("a\u{10FFFF}"), Some("b".to_owned()));
        assert_eq!(prefix_end("a\u{D7FF}"), Some("a\u{E000}".to_owned()));
        assert_eq!(prefix_end("é"), Some("ê".to_owned()));
    }

    #[test]
    fn scans_stay_inside_the_prefix() {
        let s = snapshot(&["a", "a/", "a/1", "a/2", "a/2/x", "a0", "b/1", "a\u{10FFFF}"]);
        assert_eq!(
            keys(&s.scan_prefix("a/", None, 100)),
            ["a/", "a/1", "a/2", "a/2/x"]
        );
        assert_eq!(s.count_prefix("a/"), 4);
        assert_eq!(s.count_prefix("a"), 7);
        assert_eq!(s.count_prefix(""), 8);
        assert_eq!(s.count_prefix("c"), 0);
        assert_eq!(
            keys(&s.scan_prefix_rev("a/", None, 100)),
            ["a/2/x", "a/2", "a/1", "a/"]
        );
        assert_eq!(keys(&s.scan_prefix_rev("a", None, 1)), ["a\u{10FFFF}"]);
        assert_eq!(keys(&s.scan_prefix_rev("", None, 1)), ["b/1"]);
    }

    #[test]
    fn pages_resume_strictly_after_and_before() {
        let s = snapshot(&["p/1", "p/2", "p/3", "p/4", "p/5", "q"]);
        assert_eq!(keys(&s.scan_prefix("p/", Some("p/2"), 2)), ["p/3", "p/4"]);
        assert_eq!(keys(&s.scan_prefix("p/", Some("p/4"), 2)), ["p/5"]);
        assert!(s.scan_prefix("p/", Some("p/5"), 2).is_empty());
        // A cursor outside the prefix: before it starts from the top, past it is empty.
        assert_eq!(keys(&s.scan_prefix("p/", Some("a"), 1)), ["p/1"]);
        assert!(s.scan_prefix("p/", Some("z"), 1).is_empty());
        // A cursor between keys resumes at the next one.
        assert_eq!(keys(&s.scan_prefix("p/", Some("p/25"), 1)), ["p/3"]);
        assert_eq!(
            keys(&s.scan_prefix_rev("p/", Some("p/4"), 2)),
            ["p/3", "p/2"]
        );
        assert!(s.scan_prefix_rev("p/", Some("p/1"), 2).is_empty());
        assert_eq!(keys(&s.scan_prefix_rev("p/", Some("z"), 1)), ["p/5"]);
        assert!(s.scan_prefix_rev("p/", Some("a"), 1).is_empty());
        assert!(s.scan_prefix("p/", None, 0).is_empty());
    }

    #[test]
    fn iter_prefix_goes_both_ways() {
        let s = snapshot(&["k/a", "k/b", "k/c", "l"]);
        let fwd: Vec<_> = s.iter_prefix("k/").map(|kv| &*kv.key).collect();
        let back: Vec<_> = s.iter_prefix("k/").rev().map(|kv| &*kv.key).collect();
        assert_eq!(fwd, ["k/a", "k/b", "k/c"]);
        assert_eq!(back, ["k/c", "k/b", "k/a"]);
        assert_eq!(s.get("k/b").map(|kv| kv.create_revision), Some(2));
        assert!(s.get("k/").is_none());
        assert_eq!(s.revision(), 4);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn reads_of_one_key_and_scans_agree_through_inserts_and_removals() {
        // A walk of inserts, replacements and removals: after every step each key reads
        // back as the scan shows it, and a removed key is gone from both.
        let mut entries = Entries::default();
        let mut expected = std::collections::BTreeMap::new();
        for step in 0..2_000_i64 {
            let key = format!("k/{}", (step * 7919) % 301);
            if step % 5 == 4 {
                assert_eq!(
                    entries.remove(&key).is_some(),
                    expected.remove(&key).is_some()
                );
            } else {
                entries.insert(Arc::new(KeyValue {
                    key: Arc::from(key.as_str()),
                    value: Bytes::from(step.to_string()),
                    create_revision: step + 1,
                    mod_revision: step + 1,
                    version: 1,
                }));
                expected.insert(key, step + 1);
            }
        }
        let s = Snapshot::new(Arc::new(Index {
            entries,
            revision: 2_000,
            log: ChangeLog::default(),
        }));
        let scanned: Vec<(String, i64)> = s
            .iter_prefix("k/")
            .map(|kv| (kv.key.to_string(), kv.mod_revision))
            .collect();
        let wanted: Vec<(String, i64)> = expected.clone().into_iter().collect();
        assert_eq!(scanned, wanted);
        assert_eq!(s.len(), expected.len());
        for step in 0..301 {
            let key = format!("k/{step}");
            assert_eq!(
                s.get(&key).map(|kv| kv.mod_revision),
                expected.get(&key).copied()
            );
        }
    }
}

//! The acknowledgements a session owes its agent for reports it has recorded. They
//! are not written on their own: they wait, up to [`ACK_DELAY`], for the next message
//! the session sends (a payload, a heartbeat) and go out in its write. An instance
//! is sent a new task every few seconds under load, so most acknowledgements cost no
//! write, no system call and no wakeup of the agent of their own. The agent re-sends
//! a report only after [`berth_proto::RESEND_AFTER`], far past the delay.

use berth_proto::ACK_DELAY;
use tokio::time::Instant;

/// The most acknowledgements held: more are written at once.
const MAX_HELD: usize = 256;

/// Message ids of recorded reports not yet acknowledged, and when they must be.
#[derive(Debug, Default)]
pub struct Acks {
    ids: Vec<String>,
    due: Option<Instant>,
}

impl Acks {
    /// Holds the acknowledgements of reports recorded at `now`. The first one held
    /// sets the deadline, which is returned then (for the session's timer); later
    /// ones go with it.
    pub fn hold(&mut self, ids: impl IntoIterator<Item = String>, now: Instant) -> Option<Instant> {
        let before = self.ids.len();
        self.ids.extend(ids);
        if self.ids.len() > before && self.due.is_none() {
            self.due = Some(now + ACK_DELAY);
            return self.due;
        }
        None
    }

    /// When the held acknowledgements must be written, if any are held.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Whether so many are held that they should be written now.
    pub fn full(&self) -> bool {
        self.ids.len() >= MAX_HELD
    }

    /// Every acknowledgement held, to be written now.
    pub fn take(&mut self) -> Vec<String> {
        self.due = None;
        std::mem::take(&mut self.ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_string()).collect()
    }

    #[test]
    fn the_first_held_acknowledgement_sets_the_deadline_for_all() {
        let start = Instant::now();
        let mut acks = Acks::default();
        assert_eq!(acks.due(), None);
        acks.hold(ids(&[]), start);
        assert_eq!(acks.due(), None, "nothing held, nothing due");
        acks.hold(ids(&["a"]), start);
        acks.hold(ids(&["b", "c"]), start + ACK_DELAY / 2);
        assert_eq!(acks.due(), Some(start + ACK_DELAY));
        assert_eq!(acks.take(), ids(&["a", "b", "c"]));
        assert_eq!(acks.due(), None);
        assert!(acks.take().is_empty());
        acks.hold(ids(&["d"]), start + ACK_DELAY);
        assert_eq!(acks.due(), Some(start + ACK_DELAY * 2));
    }

    #[test]
    fn too_many_held_are_written_at_once() {
        let now = Instant::now();
        let mut acks = Acks::default();
        acks.hold((0..MAX_HELD - 1).map(|n| n.to_string()), now);
        assert!(!acks.full());
        acks.hold(ids(&["last"]), now);
        assert!(acks.full());
        assert_eq!(acks.take().len(), MAX_HELD);
        assert!(!acks.full());
    }
}

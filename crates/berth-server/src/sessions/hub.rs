//! Which session is current for each container instance. A new session of an
//! instance replaces the old one (the old one is told to close), and only the current
//! session may mark its instance disconnected when it ends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

#[derive(Default)]
pub struct SessionHub {
    next: AtomicU64,
    current: Mutex<HashMap<String, (u64, watch::Sender<bool>)>>,
}

impl SessionHub {
    /// Registers a new session of `instance_arn`; returns its number and a receiver
    /// that changes when a newer session replaces it.
    pub fn open(&self, instance_arn: &str) -> (u64, watch::Receiver<bool>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = watch::channel(false);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, previous)) = current.insert(instance_arn.to_string(), (id, sender)) {
            let _ = previous.send(true);
        }
        (id, receiver)
    }

    /// Ends session `id` of `instance_arn`; true if it was still the current one.
    pub fn close(&self, instance_arn: &str, id: u64) -> bool {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        match current.get(instance_arn) {
            Some((current_id, _)) if *current_id == id => {
                current.remove(instance_arn);
                true
            }
            _ => false,
        }
    }

    /// Whether `instance_arn` has a session on this server now.
    pub fn is_connected(&self, instance_arn: &str) -> bool {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(instance_arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_session_replaces_the_old_one() {
        let hub = SessionHub::default();
        let (first, replaced) = hub.open("i");
        let (second, _) = hub.open("i");
        assert!(*replaced.borrow());
        assert!(
            !hub.close("i", first),
            "the replaced session must not mark the instance disconnected"
        );
        assert!(hub.is_connected("i"));
        assert!(hub.close("i", second));
        assert!(!hub.is_connected("i"));
    }
}

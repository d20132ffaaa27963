//! The agent's reports that the control plane has not acknowledged yet: the newest
//! of each task (a report carries the task's whole known state), and when it was
//! last sent. All of them are sent again when a session opens; within a session a
//! report is sent again only once it has waited [`RESEND_AFTER`], since the control
//! plane holds an acknowledgement for up to [`berth_proto::ACK_DELAY`] to send it
//! with its next message.

use std::collections::HashMap;

use berth_proto::{RESEND_AFTER, TaskStateChange};
use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct Unacknowledged {
    /// By task ARN.
    reports: HashMap<String, Sent>,
}

#[derive(Debug)]
struct Sent {
    report: TaskStateChange,
    at: Instant,
}

impl Unacknowledged {
    /// A report made (and sent, or about to be) at `now`; it replaces the task's
    /// older one.
    pub fn insert(&mut self, report: TaskStateChange, now: Instant) {
        self.reports
            .insert(report.task_arn.clone(), Sent { report, at: now });
    }

    /// The control plane recorded the report with this message id.
    pub fn acknowledge(&mut self, message_id: &str) {
        self.reports
            .retain(|_, sent| sent.report.message_id != message_id);
    }

    /// Every report, all to be sent at `now` (a session just opened).
    pub fn resend_all(&mut self, now: Instant) -> Vec<TaskStateChange> {
        self.reports
            .values_mut()
            .map(|sent| {
                sent.at = now;
                sent.report.clone()
            })
            .collect()
    }

    /// The reports that have waited [`RESEND_AFTER`] or longer for their
    /// acknowledgement, to be sent again at `now`.
    pub fn overdue(&mut self, now: Instant) -> Vec<TaskStateChange> {
        self.reports
            .values_mut()
            .filter(|sent| now.saturating_duration_since(sent.at) >= RESEND_AFTER)
            .map(|sent| {
                sent.at = now;
                sent.report.clone()
            })
            .collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.reports.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::TaskStatus::{Pending, Running};

    fn report(id: &str, task: &str, status: berth_proto::TaskStatus) -> TaskStateChange {
        TaskStateChange::of_status(id, "c", task, status)
    }

    fn ids(reports: &[TaskStateChange]) -> Vec<&str> {
        let mut ids: Vec<&str> = reports.iter().map(|r| r.message_id.as_str()).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn a_report_is_sent_again_only_once_its_acknowledgement_is_overdue() {
        let start = Instant::now();
        let mut unacknowledged = Unacknowledged::default();
        unacknowledged.insert(report("1", "t1", Pending), start);
        unacknowledged.insert(report("2", "t2", Pending), start + RESEND_AFTER / 2);
        // An acknowledgement may be held for a while: nothing is due yet.
        assert!(unacknowledged.overdue(start + RESEND_AFTER / 4).is_empty());
        let first = unacknowledged.overdue(start + RESEND_AFTER);
        assert_eq!(ids(&first), ["1"]);
        // Sent again just now: not again at once.
        assert!(unacknowledged.overdue(start + RESEND_AFTER).is_empty());
        assert_eq!(
            ids(&unacknowledged.overdue(start + RESEND_AFTER * 2)),
            ["1", "2"]
        );
    }

    #[test]
    fn the_newest_report_of_a_task_replaces_the_older_and_an_ack_removes_it() {
        let start = Instant::now();
        let mut unacknowledged = Unacknowledged::default();
        unacknowledged.insert(report("1", "t1", Pending), start);
        unacknowledged.insert(report("2", "t1", Running), start);
        unacknowledged.insert(report("3", "t2", Running), start);
        assert_eq!(unacknowledged.len(), 2);
        // The acknowledgement of a replaced report changes nothing.
        unacknowledged.acknowledge("1");
        assert_eq!(unacknowledged.len(), 2);
        unacknowledged.acknowledge("2");
        assert_eq!(ids(&unacknowledged.resend_all(start)), ["3"]);
        unacknowledged.acknowledge("3");
        assert_eq!(unacknowledged.len(), 0);
    }

    #[test]
    fn a_new_session_sends_everything_and_restarts_the_wait() {
        let start = Instant::now();
        let mut unacknowledged = Unacknowledged::default();
        unacknowledged.insert(report("1", "t1", Pending), start);
        unacknowledged.insert(report("2", "t2", Pending), start + RESEND_AFTER * 3);
        let later = start + RESEND_AFTER * 3;
        assert_eq!(ids(&unacknowledged.resend_all(later)), ["1", "2"]);
        assert!(unacknowledged.overdue(later + RESEND_AFTER / 2).is_empty());
    }
}

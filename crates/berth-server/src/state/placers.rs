//! Placement engines kept per cluster between decisions ([`berth_sched::Placer`]).
//!
//! A decision with constraints or strategies used to read every candidate's task
//! groups into a map of its own and build the engine's ordering of all of them:
//! O(n) allocations and O(n log n) work per RunTask or service pass, whatever the
//! request's size (at 10,000 instances, with a spread strategy, most of the control
//! plane's CPU). Here each cluster keeps a `Placer` whose instances are the
//! cluster's candidates as last read, and each decision first brings it up to date:
//!
//! - an instance whose record or usage revision differs from what the placer last
//!   read, or that this decision already took resources from, is read again;
//! - an instance whose tasks changed since (the task view's log of changed
//!   instances) is read again;
//! - an instance this placer placed on is read again at the next decision, whether
//!   or not that decision's write committed;
//! - a different set of candidates (an instance registered, deregistered, drained,
//!   disconnected), or a task view built again, starts a new placer.
//!
//! So a placer's instance is exactly what the decision's candidates and the task view
//! say; what it keeps is only the ordering, and the placement's write stays
//! conditional on every record it read, as before.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use berth_model::ApiResult;
use berth_sched::{InstanceView, PlacementRequest, PlacementResult, Placer};

use crate::api::tasks::Candidate;
use crate::state::views::TaskView;

/// The kept placers, by (region, cluster).
#[derive(Default)]
pub struct Placers {
    clusters: Mutex<HashMap<(String, String), Cluster>>,
}

/// One cluster's placer: decisions on the cluster take turns with it.
type Cluster = Arc<Mutex<Option<Kept>>>;

/// What a placer's instance was read from.
struct Slot {
    key: String,
    mod_revision: i64,
    usage_revision: i64,
}

struct Kept {
    slots: Vec<Slot>,
    /// Instance ARN -> position.
    by_arn: HashMap<String, usize>,
    /// How far into the task view's log of changed instances the placer has read.
    read: (u64, u64),
    /// Positions to read again at the next decision.
    dirty: Vec<usize>,
    placer: Placer,
}

impl Placers {
    /// Places `request` on `candidates` (their tasks as `view` has them) with the
    /// cluster's kept placer. The result's positions are the candidates'.
    pub(crate) fn place(
        &self,
        region: &str,
        cluster: &str,
        view: &TaskView,
        candidates: &[Candidate<'_>],
        request: &PlacementRequest,
        seed: u64,
    ) -> ApiResult<PlacementResult> {
        let entry = {
            let mut clusters = self
                .clusters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(
                clusters
                    .entry((region.to_string(), cluster.to_string()))
                    .or_default(),
            )
        };
        let mut guard = entry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = match guard.take() {
            Some(kept) if follows(&kept, candidates, view) => bring_forward(kept, candidates, view),
            _ => start(candidates, view),
        };
        let kept = guard.insert(current);
        let result = kept.placer.place(request, seed)?;
        kept.dirty.extend(result.placements.iter().copied());
        Ok(result)
    }
}

/// Whether `kept` can be brought forward to these candidates: the same instances in
/// the same order, and the task view it read is still there.
fn follows(kept: &Kept, candidates: &[Candidate<'_>], view: &TaskView) -> bool {
    kept.slots.len() == candidates.len()
        && kept
            .slots
            .iter()
            .zip(candidates)
            .all(|(slot, candidate)| slot.key == candidate.key())
        && view.changed_since(kept.read).is_some()
}

fn start(candidates: &[Candidate<'_>], view: &TaskView) -> Kept {
    let mut dirty = Vec::new();
    let views = candidates
        .iter()
        .enumerate()
        .map(|(i, candidate)| {
            if candidate.changed.is_some() {
                dirty.push(i);
            }
            instance_view(candidate, view)
        })
        .collect();
    Kept {
        slots: candidates.iter().map(slot).collect(),
        by_arn: candidates
            .iter()
            .enumerate()
            .map(|(i, candidate)| (candidate.arn().to_string(), i))
            .collect(),
        read: view.log_position(),
        dirty,
        placer: Placer::new(views),
    }
}

fn bring_forward(mut kept: Kept, candidates: &[Candidate<'_>], view: &TaskView) -> Kept {
    let mut changed = std::mem::take(&mut kept.dirty);
    for (i, (slot, candidate)) in kept.slots.iter().zip(candidates).enumerate() {
        if slot.mod_revision != candidate.mod_revision()
            || slot.usage_revision != candidate.read.usage_revision
            || candidate.changed.is_some()
        {
            changed.push(i);
        }
    }
    for arn in view.changed_since(kept.read).unwrap_or_default() {
        if let Some(&i) = kept.by_arn.get(&**arn) {
            changed.push(i);
        }
    }
    changed.sort_unstable();
    changed.dedup();
    for i in changed {
        let Some(candidate) = candidates.get(i) else {
            continue;
        };
        kept.placer.update(i, instance_view(candidate, view));
        if let Some(slot) = kept.slots.get_mut(i) {
            *slot = self::slot(candidate);
        }
        // What this decision took is not stored yet: read it again next time.
        if candidate.changed.is_some() {
            kept.dirty.push(i);
        }
    }
    kept.read = view.log_position();
    kept
}

fn slot(candidate: &Candidate<'_>) -> Slot {
    Slot {
        key: candidate.key().to_string(),
        mod_revision: candidate.mod_revision(),
        usage_revision: candidate.read.usage_revision,
    }
}

/// The candidate as placement sees it, with its tasks' groups and running count.
fn instance_view(candidate: &Candidate<'_>, view: &TaskView) -> InstanceView {
    let mut instance = candidate.view().into_owned();
    match view.instance(candidate.arn()) {
        Some(tasks) => {
            instance.task_groups = tasks.groups.clone();
            instance.running_tasks_count = tasks.running_desired;
        }
        None => {
            instance.task_groups = BTreeMap::new();
            instance.running_tasks_count = 0;
        }
    }
    instance
}

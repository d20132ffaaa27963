//! A cluster kept between placement requests.
//!
//! [`place()`](crate::place()) builds its view of the instances for every request:
//! O(n log n) for n instances, ~1-3 ms for 10,000, however few tasks the request
//! places. A [`Placer`] owns the instances and keeps, for each request shape it has
//! seen (resources, group, constraints, strategies: everything but the count), the
//! engine that request built. The next request of that shape brings the kept engine
//! forward by the instances that changed since (each O(log n)) instead of building
//! a new one, so a RunTask-sized request costs its placements, not the cluster.
//!
//! What can change cheaply is what placing and stopping tasks change: an
//! instance's remaining resources, running tasks and task groups
//! ([`Placer::update`] with the rest of the view as it was). Anything else (status,
//! agent, attributes, a new instance) makes every kept engine stale; each is built
//! again at its next use.
//!
//! Every placement follows the rules of [`place()`](crate::place()) exactly: the
//! task goes to a candidate ranked first by the strategies. When several tie, which
//! one the seed picks may differ from `place()` on the same instances (a kept
//! engine's tied candidates are in the order their changes left them); the same
//! calls on the same placer give the same placements.

use berth_model::ApiResult;

use crate::model::InstanceView;
use crate::place::{Engine, PlacementRequest, PlacementResult};

/// Request shapes a placer keeps engines for; the least recently used goes first.
const MAX_SHAPES: usize = 16;
/// Changed instances remembered, at least; an engine further behind is built again.
const MIN_LOG: usize = 4096;

/// A cluster's instances and the engines of recent request shapes.
#[derive(Default)]
pub struct Placer {
    instances: Vec<InstanceView>,
    /// Instances whose resources or tasks changed, in order of change.
    changed: Vec<usize>,
    /// The position, in all changes ever logged, of `changed[0]`.
    base: u64,
    /// Bumped by every change a kept engine cannot follow.
    generation: u64,
    kept: Vec<Kept>,
    /// Requests placed, to find the least recently used shape.
    requests: u64,
}

struct Kept {
    /// The request it was built for, with a count of zero.
    shape: PlacementRequest,
    engine: Engine,
    generation: u64,
    /// How many of all changes ever logged it has read.
    read: u64,
    used: u64,
}

impl Placer {
    pub fn new(instances: Vec<InstanceView>) -> Placer {
        Placer {
            instances,
            ..Placer::default()
        }
    }

    pub fn instances(&self) -> &[InstanceView] {
        &self.instances
    }

    /// Replaces instance `i`'s view; false when there is no instance `i`.
    pub fn update(&mut self, i: usize, view: InstanceView) -> bool {
        let Some(old) = self.instances.get_mut(i) else {
            return false;
        };
        let followable = old.id == view.id
            && old.arn == view.arn
            && old.ec2_instance_id == view.ec2_instance_id
            && old.status == view.status
            && old.agent_connected == view.agent_connected
            && old.agent_version == view.agent_version
            && old.registered_at == view.registered_at
            && (std::sync::Arc::ptr_eq(&old.attributes, &view.attributes)
                || old.attributes == view.attributes);
        *old = view;
        if followable {
            self.log(i);
        } else {
            self.generation += 1;
        }
        true
    }

    /// Adds an instance; its index is returned.
    pub fn push(&mut self, view: InstanceView) -> usize {
        self.instances.push(view);
        self.generation += 1;
        self.instances.len() - 1
    }

    /// Places `request.count` tasks as [`place()`](crate::place()) does and takes
    /// what they reserve from the instances they go to.
    pub fn place(&mut self, request: &PlacementRequest, seed: u64) -> ApiResult<PlacementResult> {
        self.requests += 1;
        let at = self.engine_for(request, seed)?;
        let Placer {
            instances,
            kept,
            requests,
            ..
        } = self;
        let Some(kept) = kept.get_mut(at) else {
            return Ok(PlacementResult::default());
        };
        kept.used = *requests;
        let engine = &mut kept.engine;
        engine.reseed(seed);
        let result = engine.place(instances.as_slice(), request.count);
        // The tasks are the instances' own now: their views count them, and the
        // engine reads them from there.
        let need = &request.resources;
        for &i in &result.placements {
            if let Some(view) = instances.get_mut(i) {
                view.remaining.cpu -= need.cpu;
                view.remaining.memory -= need.memory;
                view.remaining
                    .tcp_ports
                    .extend(need.tcp_ports.iter().copied());
                view.remaining
                    .udp_ports
                    .extend(need.udp_ports.iter().copied());
                view.running_tasks_count += 1;
                *view.task_groups.entry(request.group.clone()).or_insert(0) += 1;
            }
        }
        let mut placed = result.placements.clone();
        placed.sort_unstable();
        placed.dedup();
        for &i in &placed {
            engine.refresh(instances.as_slice(), i);
        }
        for i in placed {
            self.log(i);
        }
        if let Some(kept) = self.kept.get_mut(at) {
            kept.read = self.base + self.changed.len() as u64;
        }
        Ok(result)
    }

    /// The position of a kept engine for `request`'s shape, up to date.
    fn engine_for(&mut self, request: &PlacementRequest, seed: u64) -> ApiResult<usize> {
        let found = self.kept.iter().position(|k| same_shape(&k.shape, request));
        let end = self.base + self.changed.len() as u64;
        if let Some(at) = found
            && let Some(kept) = self.kept.get_mut(at)
            && kept.generation == self.generation
            && kept.read >= self.base
        {
            let from = usize::try_from(kept.read - self.base).unwrap_or(usize::MAX);
            for &i in self.changed.get(from..).unwrap_or_default() {
                kept.engine.refresh(&self.instances, i);
            }
            kept.read = end;
            return Ok(at);
        }
        let kept = Kept {
            shape: PlacementRequest {
                count: 0,
                ..request.clone()
            },
            engine: Engine::new(&self.instances, request, seed)?,
            generation: self.generation,
            read: end,
            used: self.requests,
        };
        match found {
            Some(at) => {
                if let Some(slot) = self.kept.get_mut(at) {
                    *slot = kept;
                }
                Ok(at)
            }
            None if self.kept.len() < MAX_SHAPES => {
                self.kept.push(kept);
                Ok(self.kept.len() - 1)
            }
            None => {
                let oldest = self
                    .kept
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, k)| k.used)
                    .map_or(0, |(at, _)| at);
                if let Some(slot) = self.kept.get_mut(oldest) {
                    *slot = kept;
                }
                Ok(oldest)
            }
        }
    }

    fn log(&mut self, i: usize) {
        if self.changed.len() >= MIN_LOG.max(2 * self.instances.len()) {
            // Engines that have not read this far are built again at their next use.
            self.base += self.changed.len() as u64;
            self.changed.clear();
        }
        self.changed.push(i);
    }
}

#[cfg(test)]
impl Placer {
    /// Brings every kept engine up to date.
    pub(crate) fn catch_up(&mut self) {
        let shapes: Vec<PlacementRequest> = self.kept.iter().map(|k| k.shape.clone()).collect();
        for shape in shapes {
            let _ = self.engine_for(&shape, 0);
        }
    }

    /// Each kept engine that is up to date, with its shape.
    pub(crate) fn kept_engines(&self) -> impl Iterator<Item = (&PlacementRequest, &Engine)> {
        let end = self.base + self.changed.len() as u64;
        self.kept
            .iter()
            .filter(move |k| k.generation == self.generation && k.read == end)
            .map(|k| (&k.shape, &k.engine))
    }
}

fn same_shape(shape: &PlacementRequest, request: &PlacementRequest) -> bool {
    shape.resources == request.resources
        && shape.group == request.group
        && shape.task_definition_constraints == request.task_definition_constraints
        && shape.constraints == request.constraints
        && shape.strategies == request.strategies
}

#[cfg(test)]
#[path = "placer_tests.rs"]
mod tests;

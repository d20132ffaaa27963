//! Task placement: choosing a container instance for each task of a request, as
//! the ECS developer guide describes it.
//!
//! For each task, in turn:
//!
//! 1. candidates are the instances that are ACTIVE, have their agent connected
//!    and have the CPU, memory and host ports the task needs (exactly
//!    [`fits`](berth_model::container_instance::fits));
//! 2. of those, the ones that satisfy every constraint, the task definition's and
//!    the request's: each `memberOf` expression holds for the instance, and with
//!    `distinctInstance` the instance runs no task of the request's group (neither
//!    one it already had nor one placed by this request);
//! 3. the strategies order the candidates, the first strategy first and each
//!    later one breaking the ties of those before it: `binpack` puts the
//!    instance with the least remaining CPU or memory first, `spread` on
//!    `instanceId`/`host` the instance with the fewest tasks of the group, and
//!    `spread` on an attribute the instances whose value of the attribute has the
//!    fewest tasks of the group (instances without the attribute share one value);
//!    `random` picks among the candidates the strategies before it tie;
//! 4. the task goes to the first candidate; when several tie on every strategy,
//!    to one of them chosen at random with the request's seed.
//!
//! Placing a task takes its CPU, memory and host ports from its instance and
//! counts it in the instance's running tasks and in its group before the next
//! task is placed. The group's tasks are what `spread` balances: the guide says
//! "service tasks are spread based on the tasks from that service; standalone
//! tasks are spread based on the tasks from the same task group".
//!
//! When a task finds no candidate, the tasks left are not placed and the result
//! says why, per instance: `INACTIVE` (a deregistered instance), `AGENT` (agent
//! disconnected), `RESOURCE:CPU`, `RESOURCE:MEMORY`, `RESOURCE:PORTS`, then
//! `MemberOf placement constraint unsatisfied.` and `DistinctInstance placement
//! constraint unsatisfied.`; an instance gets the reasons of the first of these
//! checks it fails. Instances that are neither ACTIVE nor INACTIVE (DRAINING,
//! REGISTERING, ...) are silently not candidates.
//!
//! Only the instance a task goes to changes when it is placed, so the engine
//! keeps the candidates ordered in trees and updates one instance per task: a
//! request costs O(n log n) to set up for n instances and O(log n) per task.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use berth_model::ApiResult;
use berth_model::container_instance::{RESOURCE_CPU, RESOURCE_MEMORY, RESOURCE_PORTS};
use berth_model::task::{PlacementConstraint, PlacementStrategy, TaskResources};
use berth_model::task_definition::TaskDefinitionPlacementConstraint;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::{ACTIVE, InstanceView};
use crate::query::{Expression, QueryTarget};
use crate::validate::{MAX_STRATEGIES, Rank, compile_constraints, compile_strategies};

/// The failure reason for an instance whose agent is disconnected.
pub const AGENT: &str = "AGENT";
/// The failure reason for a deregistered instance.
pub const INACTIVE: &str = "INACTIVE";
/// The status of a deregistered instance.
pub const INACTIVE_STATUS: &str = "INACTIVE";
/// The failure reason for an instance a `memberOf` expression does not select.
pub const MEMBER_OF: &str = "MemberOf placement constraint unsatisfied.";
/// The failure reason for an instance that already runs a task of the group
/// under `distinctInstance`.
pub const DISTINCT_INSTANCE: &str = "DistinctInstance placement constraint unsatisfied.";

/// What to place: `count` tasks of one task definition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlacementRequest {
    /// What each task reserves ([`TaskResources::of`] the task definition with
    /// its overrides).
    pub resources: TaskResources,
    /// The task group of the tasks (`service:NAME`, `family:NAME` or the
    /// RunTask `group`).
    pub group: String,
    /// How many tasks.
    pub count: u32,
    /// The task definition's `placementConstraints`.
    pub task_definition_constraints: Vec<TaskDefinitionPlacementConstraint>,
    /// The request's (or the service's) `placementConstraints`.
    pub constraints: Vec<PlacementConstraint>,
    /// The request's (or the service's) `placementStrategy`, in order.
    pub strategies: Vec<PlacementStrategy>,
}

/// Why an instance could not take a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementFailure {
    /// The index of the instance in the instances placed on.
    pub instance: usize,
    /// An ECS failure reason (`RESOURCE:MEMORY`, `AGENT`, [`MEMBER_OF`], ...).
    pub reason: &'static str,
}

/// Where the tasks of a request go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementResult {
    /// For each task placed, in order, the index of its instance in the
    /// instances placed on. Shorter than the request's count when not every task
    /// could be placed.
    pub placements: Vec<usize>,
    /// When a task could not be placed: why each instance could not take it, in
    /// instance order. Empty when every task was placed.
    pub failures: Vec<PlacementFailure>,
}

/// Places `request.count` tasks on `instances`; the same inputs and `seed` give
/// the same result. Invalid constraints or strategies are an
/// `InvalidParameterException`; finding no room is not an error but a short
/// result with failures.
pub fn place<P: Placeable>(
    instances: &[P],
    request: &PlacementRequest,
    seed: u64,
) -> ApiResult<PlacementResult> {
    Ok(Engine::new(instances, request, seed)?.place(instances, request.count))
}

/// A fast hasher for the engine's own small maps (attribute values to
/// buckets, buckets to cells): their keys come from the caller's data but the
/// maps live for one request and never face a client, so SipHash's flooding
/// resistance buys nothing here.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_u8(&mut self, byte: u8) {
        self.write_u64(u64::from(byte));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// The strategy keys of a candidate, compared lexicographically, lowest first.
type Key = [i64; MAX_STRATEGIES];

/// `u32::MAX`: an instance that is in no cell.
const NOWHERE: u32 = u32::MAX;

/// An instance as one request places tasks on it: its view, and its tasks. The
/// caller may keep the tasks apart from the view, so that one view (attributes,
/// resources) serves many requests without being copied.
pub trait Placeable {
    fn view(&self) -> &InstanceView;
    /// How many of the instance's tasks (not desired STOPPED) are in each group.
    fn task_groups(&self) -> &BTreeMap<String, u32> {
        &self.view().task_groups
    }
    /// The instance's `runningTasksCount`.
    fn running_tasks_count(&self) -> i64 {
        self.view().running_tasks_count
    }
}

impl Placeable for InstanceView {
    fn view(&self) -> &InstanceView {
        self
    }
}

/// An instance as the expressions see it while tasks are placed on it.
struct Planned<'a, P> {
    instance: &'a P,
    group: &'a str,
    placed: u32,
}

impl<P: Placeable> QueryTarget for Planned<'_, P> {
    fn agent_connected(&self) -> bool {
        self.instance.view().agent_connected
    }
    fn agent_version(&self) -> Option<&str> {
        self.instance.view().agent_version()
    }
    fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.instance.view().attribute(name)
    }
    fn ec2_instance_id(&self) -> Option<&str> {
        self.instance.view().ec2_instance_id()
    }
    fn registered_at(&self) -> Option<f64> {
        self.instance.view().registered_at
    }
    fn running_tasks_count(&self) -> i64 {
        self.instance.running_tasks_count() + i64::from(self.placed)
    }
    fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        (self.placed > 0 && test(self.group))
            || self
                .instance
                .task_groups()
                .iter()
                .any(|(group, count)| *count > 0 && test(group))
    }
}

/// One `spread` on an attribute: the instances grouped by the attribute's value
/// ("buckets") and the group's tasks per bucket.
struct Spread {
    /// The strategy's position in the key.
    rank: usize,
    /// Per instance, its bucket.
    bucket_of: Vec<u32>,
    /// Per bucket, the group's tasks on its instances.
    tasks: Vec<i64>,
    /// Per bucket, the cells in it.
    cells: Vec<Vec<u32>>,
}

/// The candidates that share a bucket of every attribute spread, so the same
/// spread keys: they differ only by their own keys (binpack, spread on the
/// instance).
#[derive(Default)]
struct Cell {
    /// Per attribute spread, the cell's bucket.
    buckets: [u32; MAX_STRATEGIES],
    /// The candidates by their own keys (the spread positions zero); those with
    /// the same key in a list.
    members: BTreeMap<Key, Vec<u32>>,
    /// The full key of its first members, as ranked.
    ranked: Option<Key>,
}

/// One request's view of the cluster: the candidates ordered by the request's
/// strategies. It borrows nothing, so that a [`Placer`](crate::Placer) can keep it
/// for the next request of the same shape; the instances are passed to each call.
pub(crate) struct Engine {
    need: TaskResources,
    group: String,
    ranks: Vec<Rank>,
    /// `memberOf` expressions whose value changes as tasks are placed.
    moving: Vec<Expression>,
    /// All `memberOf` expressions, for failure reasons.
    member_of: Vec<Expression>,
    distinct_instance: bool,
    task_ports: bool,

    /// Per instance: ACTIVE, agent connected, the steady expressions hold.
    usable: Vec<bool>,
    cpu: Vec<i64>,
    memory: Vec<i64>,
    ports_free: Vec<bool>,
    /// Tasks placed by this request.
    placed: Vec<u32>,
    /// Tasks of the group, before and by this request.
    in_group: Vec<u32>,
    cell_of: Vec<u32>,
    /// The key an instance is filed under in its cell, and where in the list.
    key_of: Vec<Key>,
    slot: Vec<u32>,

    spreads: Vec<Spread>,
    cells: Vec<Cell>,
    /// Every non-empty cell by the full key of its first members.
    ranking: BTreeSet<(Key, u32)>,
    rng: StdRng,
    /// Reused buffers: tied cells, cells to re-rank.
    scratch: Vec<(u32, usize)>,
    /// Per cell, whether it is already in the cells to re-rank.
    touched: Vec<bool>,
}

impl Engine {
    pub(crate) fn new<P: Placeable>(
        instances: &[P],
        request: &PlacementRequest,
        seed: u64,
    ) -> ApiResult<Engine> {
        let constraints =
            compile_constraints(&request.task_definition_constraints, &request.constraints)?;
        let ranks = compile_strategies(&request.strategies)?;
        let (moving, steady): (Vec<_>, Vec<_>) = constraints
            .member_of
            .iter()
            .cloned()
            .partition(Expression::depends_on_tasks);
        let n = instances.len();
        let need = &request.resources;
        let group = request.group.as_str();
        let mut engine = Engine {
            need: need.clone(),
            group: group.to_owned(),
            moving,
            member_of: constraints.member_of,
            distinct_instance: constraints.distinct_instance,
            task_ports: !need.tcp_ports.is_empty() || !need.udp_ports.is_empty(),
            usable: Vec::with_capacity(n),
            cpu: Vec::with_capacity(n),
            memory: Vec::with_capacity(n),
            ports_free: Vec::with_capacity(n),
            placed: vec![0; n],
            in_group: Vec::with_capacity(n),
            cell_of: vec![NOWHERE; n],
            key_of: vec![Key::default(); n],
            slot: vec![NOWHERE; n],
            spreads: Vec::new(),
            cells: Vec::new(),
            ranking: BTreeSet::new(),
            rng: StdRng::seed_from_u64(seed),
            scratch: Vec::new(),
            touched: Vec::new(),
            ranks,
        };
        for instance in instances {
            let view = instance.view();
            engine.usable.push(
                view.status == ACTIVE
                    && view.agent_connected
                    && steady.iter().all(|e| e.matches(view)),
            );
            engine.cpu.push(view.remaining.cpu);
            engine.memory.push(view.remaining.memory);
            engine.ports_free.push(view.remaining.ports_free(need));
            engine
                .in_group
                .push(instance.task_groups().get(group).copied().unwrap_or(0));
        }
        let candidates: Vec<u32> = (0..n)
            .filter(|&i| engine.eligible(instances, i))
            .map(|i| i as u32)
            .collect();
        engine.build_spreads(instances);
        // The usable instances that cannot take a task now get their cells too (after
        // the candidates', so that the candidates' cells are numbered as if alone): a
        // kept engine files them when they can again.
        let waiting: Vec<u32> = (0..n)
            .filter(|&i| engine.usable[i] && !engine.eligible(instances, i))
            .map(|i| i as u32)
            .collect();
        engine.build_cells(&candidates, &waiting);
        for &i in &candidates {
            engine.file(i as usize);
        }
        for cell in 0..engine.cells.len() {
            engine.rerank(cell as u32);
        }
        engine.touched = vec![false; engine.cells.len()];
        Ok(engine)
    }

    /// Buckets every instance by the value of each spread attribute and counts
    /// the group's tasks per bucket.
    fn build_spreads<P: Placeable>(&mut self, instances: &[P]) {
        for (rank, kind) in self.ranks.iter().enumerate() {
            let Rank::SpreadAttribute(name) = kind else {
                continue;
            };
            let mut ids: FastMap<Option<&str>, u32> = FastMap::default();
            let mut spread = Spread {
                rank,
                bucket_of: Vec::with_capacity(instances.len()),
                tasks: Vec::new(),
                cells: Vec::new(),
            };
            for (i, instance) in instances.iter().enumerate() {
                let value = instance
                    .view()
                    .attributes
                    .get(name.as_str())
                    .and_then(|v| v.as_deref());
                let next = ids.len() as u32;
                let bucket = *ids.entry(value).or_insert(next);
                if bucket as usize == spread.tasks.len() {
                    spread.tasks.push(0);
                    spread.cells.push(Vec::new());
                }
                spread.tasks[bucket as usize] += i64::from(self.in_group[i]);
                spread.bucket_of.push(bucket);
            }
            self.spreads.push(spread);
        }
    }

    /// Puts each instance of `first`, then of `then`, in the cell of its buckets: the
    /// cells are numbered in that order.
    fn build_cells(&mut self, first: &[u32], then: &[u32]) {
        let mut ids: FastMap<[u32; MAX_STRATEGIES], u32> = FastMap::default();
        for &i in first.iter().chain(then) {
            let mut buckets = [0; MAX_STRATEGIES];
            for (j, spread) in self.spreads.iter().enumerate() {
                buckets[j] = spread.bucket_of[i as usize];
            }
            let next = ids.len() as u32;
            let cell = *ids.entry(buckets).or_insert(next);
            if cell as usize == self.cells.len() {
                self.cells.push(Cell {
                    buckets,
                    ..Cell::default()
                });
                for (j, spread) in self.spreads.iter_mut().enumerate() {
                    spread.cells[buckets[j] as usize].push(cell);
                }
            }
            self.cell_of[i as usize] = cell;
        }
    }

    fn planned<'a, P: Placeable>(&'a self, instances: &'a [P], i: usize) -> Planned<'a, P> {
        Planned {
            instance: &instances[i],
            group: &self.group,
            placed: self.placed[i],
        }
    }

    /// Whether instance `i` can take the next task.
    fn eligible<P: Placeable>(&self, instances: &[P], i: usize) -> bool {
        self.usable[i]
            && self.cpu[i] >= self.need.cpu
            && self.memory[i] >= self.need.memory
            && self.ports_free[i]
            && !(self.distinct_instance && self.in_group[i] > 0)
            && (self.moving.is_empty() || {
                let planned = self.planned(instances, i);
                self.moving.iter().all(|e| e.matches(&planned))
            })
    }

    /// The instance's own keys; the attribute spread positions stay zero.
    fn own_key(&self, i: usize) -> Key {
        let mut key = Key::default();
        for (k, rank) in key.iter_mut().zip(&self.ranks) {
            *k = match rank {
                Rank::Cpu => self.cpu[i],
                Rank::Memory => self.memory[i],
                Rank::SpreadInstance => i64::from(self.in_group[i]),
                Rank::SpreadAttribute(_) => 0,
            };
        }
        key
    }

    /// Files a candidate in its cell under its current key.
    fn file(&mut self, i: usize) {
        let key = self.own_key(i);
        let list = self.cells[self.cell_of[i] as usize]
            .members
            .entry(key)
            .or_default();
        self.slot[i] = list.len() as u32;
        list.push(i as u32);
        self.key_of[i] = key;
    }

    /// Takes an instance out of its cell.
    fn unfile(&mut self, i: usize) {
        let slot = self.slot[i];
        if slot == NOWHERE {
            return;
        }
        let members = &mut self.cells[self.cell_of[i] as usize].members;
        let key = self.key_of[i];
        if let Some(list) = members.get_mut(&key) {
            list.swap_remove(slot as usize);
            if let Some(&moved) = list.get(slot as usize) {
                self.slot[moved as usize] = slot;
            }
            if list.is_empty() {
                members.remove(&key);
            }
        }
        self.slot[i] = NOWHERE;
    }

    /// Re-files a cell in the ranking under the full key of its first members.
    fn rerank(&mut self, cell: u32) {
        let c = &self.cells[cell as usize];
        let key = c.members.first_key_value().map(|(own, _)| {
            let mut key = *own;
            for (j, spread) in self.spreads.iter().enumerate() {
                key[spread.rank] = spread.tasks[c.buckets[j] as usize];
            }
            key
        });
        if key == c.ranked {
            return;
        }
        if let Some(old) = c.ranked {
            self.ranking.remove(&(old, cell));
        }
        if let Some(new) = key {
            self.ranking.insert((new, cell));
        }
        self.cells[cell as usize].ranked = key;
    }

    /// The instance for the next task: the first candidate, a random one of
    /// those tied first.
    pub(crate) fn choose(&mut self) -> Option<usize> {
        let &(best, _) = self.ranking.first()?;
        self.scratch.clear();
        let mut total = 0;
        for &(key, cell) in self.ranking.range((best, 0)..) {
            if key != best {
                break;
            }
            let tied = self.cells[cell as usize]
                .members
                .first_key_value()
                .map_or(0, |(_, list)| list.len());
            self.scratch.push((cell, tied));
            total += tied;
        }
        let mut pick = if total > 1 {
            self.rng.random_range(0..total)
        } else {
            0
        };
        for &(cell, tied) in &self.scratch {
            if pick < tied {
                let (_, list) = self.cells[cell as usize].members.first_key_value()?;
                return Some(list[pick] as usize);
            }
            pick -= tied;
        }
        None
    }

    /// Places a task on instance `i` and updates what that changes.
    pub(crate) fn commit<P: Placeable>(&mut self, instances: &[P], i: usize) {
        self.unfile(i);
        self.cpu[i] -= self.need.cpu;
        self.memory[i] -= self.need.memory;
        self.placed[i] += 1;
        self.in_group[i] += 1;
        if self.task_ports {
            // The next task needs the same ports.
            self.ports_free[i] = false;
        }
        if self.eligible(instances, i) {
            self.file(i);
        }
        self.moved(i, 1);
    }

    /// Re-ranks what a change to instance `i` moves: its cell, and when the group's
    /// tasks on it changed by `delta`, every cell of its spread buckets.
    fn moved(&mut self, i: usize, delta: i64) {
        let cell = self.cell_of[i];
        if self.spreads.is_empty() || delta == 0 {
            if cell != NOWHERE {
                self.rerank(cell);
            }
            return;
        }
        // The instance's buckets have `delta` more tasks (whether or not it is usable
        // itself): every cell in them moves, its own among them.
        let mut affected = std::mem::take(&mut self.scratch);
        affected.clear();
        for spread in &mut self.spreads {
            let bucket = spread.bucket_of[i] as usize;
            spread.tasks[bucket] += delta;
            for &c in &spread.cells[bucket] {
                if !self.touched[c as usize] {
                    self.touched[c as usize] = true;
                    affected.push((c, 0));
                }
            }
        }
        for &(c, _) in &affected {
            self.touched[c as usize] = false;
            self.rerank(c);
        }
        self.scratch = affected;
    }

    /// Places `count` tasks one after another, each on the instance ranked first;
    /// when one finds no instance, the rest are not placed and the result says why.
    pub(crate) fn place<P: Placeable>(&mut self, instances: &[P], count: u32) -> PlacementResult {
        let mut result = PlacementResult {
            placements: Vec::with_capacity(count.min(1 << 16) as usize),
            failures: Vec::new(),
        };
        for _ in 0..count {
            match self.choose() {
                Some(instance) => {
                    result.placements.push(instance);
                    self.commit(instances, instance);
                }
                None => {
                    result.failures = self.failures(instances);
                    break;
                }
            }
        }
        result
    }

    /// Reads instance `i` again from its view after its remaining resources, running
    /// tasks or task groups changed (and forgets what this engine placed on it: the
    /// view now counts it). A change to its status, agent, attributes or identity
    /// needs a new engine instead.
    pub(crate) fn refresh<P: Placeable>(&mut self, instances: &[P], i: usize) {
        let instance = &instances[i];
        let view = instance.view();
        self.unfile(i);
        self.cpu[i] = view.remaining.cpu;
        self.memory[i] = view.remaining.memory;
        self.ports_free[i] = view.remaining.ports_free(&self.need);
        self.placed[i] = 0;
        let in_group = instance
            .task_groups()
            .get(self.group.as_str())
            .copied()
            .unwrap_or(0);
        let delta = i64::from(in_group) - i64::from(self.in_group[i]);
        self.in_group[i] = in_group;
        // An instance in no cell is not usable: never a candidate of this engine.
        if self.cell_of[i] != NOWHERE && self.eligible(instances, i) {
            self.file(i);
        }
        self.moved(i, delta);
    }

    /// Ties of the next request are broken with `seed`.
    pub(crate) fn reseed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// The group's tasks per instance and per spread bucket, as this engine counts them.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (Vec<u32>, Vec<Vec<i64>>) {
        (
            self.in_group.clone(),
            self.spreads.iter().map(|s| s.tasks.clone()).collect(),
        )
    }

    /// Every instance tied first for the next task.
    #[cfg(test)]
    pub(crate) fn tied_best(&self) -> Vec<usize> {
        let Some(&(best, _)) = self.ranking.first() else {
            return Vec::new();
        };
        self.ranking
            .range((best, 0)..)
            .take_while(|(key, _)| *key == best)
            .filter_map(|&(_, cell)| self.cells[cell as usize].members.first_key_value())
            .flat_map(|(_, list)| list.iter().map(|&i| i as usize))
            .collect()
    }

    /// Why no instance can take the next task, per instance.
    pub(crate) fn failures<P: Placeable>(&self, instances: &[P]) -> Vec<PlacementFailure> {
        let mut failures = Vec::new();
        for (i, instance) in instances.iter().enumerate() {
            let view = instance.view();
            let mut fail = |reason| {
                failures.push(PlacementFailure {
                    instance: i,
                    reason,
                })
            };
            if view.status != ACTIVE {
                if view.status == INACTIVE_STATUS {
                    fail(INACTIVE);
                }
                continue;
            }
            if !view.agent_connected {
                fail(AGENT);
                continue;
            }
            let mut short = false;
            for (lacks, reason) in [
                (self.need.cpu > self.cpu[i], RESOURCE_CPU),
                (self.need.memory > self.memory[i], RESOURCE_MEMORY),
                (!self.ports_free[i], RESOURCE_PORTS),
            ] {
                if lacks {
                    fail(reason);
                    short = true;
                }
            }
            if short {
                continue;
            }
            let planned = self.planned(instances, i);
            if !self.member_of.iter().all(|e| e.matches(&planned)) {
                fail(MEMBER_OF);
            }
            if self.distinct_instance && self.in_group[i] > 0 {
                fail(DISTINCT_INSTANCE);
            }
        }
        failures
    }
}

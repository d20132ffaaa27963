//! RunTask, StartTask, StopTask, DescribeTasks, ListTasks, and the agents'
//! SubmitTaskStateChange and SubmitContainerStateChange.

use berth_model::arn::{cluster_name, cluster_resource_id};
use berth_model::common::{Failure, Tag};
use berth_model::container_instance::{Resource, fits, take_for_task};
use berth_model::pagination::{PageRequest, page};
use berth_model::tagging::validate_new_tags;
use berth_model::task::*;
use berth_model::task_definition::{NetworkMode, TaskDefinition, TaskDefinitionStatus};
use berth_model::{ApiError, ApiResult};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use berth_sched::{InstanceView, Placeable, PlacementRequest, Remaining};
use berth_store::{Compare, Snapshot, Txn};

use super::Ctx;
use super::clusters::read_active;
use super::container_instances::{instance_id, new_id, read_instance};
use super::task_definitions::{Reference, TaskDefinitionRecord, find, parse_reference};
use super::task_state::{self, KnownContainer, KnownState};
use crate::state::instance_cache::{CachedInstance, ClusterInstances};
use crate::state::records::{InstanceRecord, TaskRecord};
use crate::state::usage::{Usage, UsageRecord};
use crate::state::views::TaskSummary;
use crate::state::{self, Versioned, keys};

/// The task id an identifier names: a task ARN (of `cluster`) or an id.
pub fn task_id<'a>(cluster: &str, identifier: &'a str) -> ApiResult<&'a str> {
    cluster_resource_id("task", cluster, identifier)
}

/// The task definition a RunTask or StartTask names; it must be ACTIVE.
pub(crate) fn runnable_definition(
    ctx: &Ctx<'_>,
    snapshot: &Snapshot,
    text: &str,
) -> ApiResult<(String, Versioned<TaskDefinitionRecord>)> {
    let reference = parse_reference(ctx, text)?;
    let found = find(snapshot, ctx.region(), &reference)?;
    match found {
        Some((key, found))
            if found.value.task_definition.status == Some(TaskDefinitionStatus::Active) =>
        {
            Ok((key, found))
        }
        Some(_) => Err(ApiError::client(format!(
            "TaskDefinition is inactive: '{text}'. Register a new revision or use an ACTIVE one."
        ))),
        None => Err(ApiError::client(match reference {
            Reference::Family(_) => {
                format!("Unable to find an ACTIVE task definition of family '{text}'.")
            }
            Reference::Revision(..) => format!("TaskDefinition not found: '{text}'."),
        })),
    }
}

/// A new task's id: 32 hex digits, as ECS's are, that sort in the order this process
/// made them (a UUIDv7: milliseconds since the epoch, then random bits, with a
/// counter that keeps ids of one millisecond in order). A task's key ends with its id,
/// so the tasks a burst of placements creates, and that their agents then report on,
/// sit side by side at the end of the store's key space: the store's in-memory map
/// and the database file's key index change the same few nodes and pages for the
/// whole burst instead of one scattered leaf per task, and the lookups that follow a
/// new task's reports stay among recently used nodes. Nothing reads meaning into the
/// order: ids are opaque to ECS's API, and a task is found by its whole id.
pub(crate) fn new_task_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Everything a new task needs besides where it runs.
pub(crate) struct Launch<'r> {
    definition: &'r TaskDefinition,
    effective: TaskDefinition,
    need: TaskResources,
    overrides: TaskOverride,
    launch_type: Option<LaunchType>,
    capacity_provider: Option<String>,
    group: String,
    started_by: Option<String>,
    tags: Vec<Tag>,
    enable_execute_command: bool,
}

impl Launch<'_> {
    /// A new task record, PENDING (PROVISIONING for awsvpc, which has a network to set
    /// up first), placed on `instance_arn`.
    fn task(&self, ctx: &Ctx<'_>, cluster: &str, instance_arn: &str) -> TaskRecord {
        let id = new_task_id();
        let task_arn = ctx.scope.task_arn(cluster, &id);
        let containers = self
            .effective
            .container_definitions
            .iter()
            .flatten()
            .map(|definition| Container {
                container_arn: Some(format!(
                    "arn:aws:ecs:{}:{}:container/{cluster}/{id}/{}",
                    ctx.scope.region,
                    ctx.scope.account,
                    new_id()
                )),
                task_arn: Some(task_arn.clone()),
                name: definition.name.clone(),
                image: definition.image.clone(),
                last_status: Some("PENDING".to_string()),
                network_bindings: Some(Vec::new()),
                network_interfaces: Some(Vec::new()),
                health_status: definition
                    .health_check
                    .as_ref()
                    .map(|_| HealthStatus::Unknown),
                cpu: definition.cpu.map(|cpu| cpu.to_string()),
                memory: definition.memory.map(|memory| memory.to_string()),
                memory_reservation: definition.memory_reservation.map(|m| m.to_string()),
                ..Container::default()
            })
            .collect();
        let awsvpc = self.effective.network_mode == Some(NetworkMode::Awsvpc);
        let task = Task {
            attachments: Some(Vec::new()),
            attributes: Some(Vec::new()),
            capacity_provider_name: self.capacity_provider.clone(),
            cluster_arn: Some(ctx.scope.cluster_arn(cluster)),
            container_instance_arn: Some(instance_arn.to_string()),
            containers: Some(containers),
            cpu: self.effective.cpu.clone(),
            memory: self.effective.memory.clone(),
            created_at: Some(ctx.now),
            desired_status: Some(TaskStatus::Running.as_str().to_string()),
            enable_execute_command: Some(self.enable_execute_command),
            group: Some(self.group.clone()),
            health_status: Some(HealthStatus::Unknown),
            last_status: Some(
                if awsvpc {
                    TaskStatus::Provisioning
                } else {
                    TaskStatus::Pending
                }
                .as_str()
                .to_string(),
            ),
            launch_type: self.launch_type,
            overrides: Some(self.overrides.clone()),
            started_by: self.started_by.clone(),
            tags: Some(self.tags.clone()),
            task_arn: Some(task_arn),
            task_definition_arn: self.definition.task_definition_arn.clone(),
            version: Some(1),
            ephemeral_storage: self.effective.ephemeral_storage.clone(),
            ..Task::default()
        };
        TaskRecord {
            task,
            reserved: self.need.clone(),
            released: false,
            accounted: false,
        }
    }
}

/// An instance being considered, with what it has left as tasks are placed on it.
pub(crate) struct Candidate<'a> {
    /// The instance and its usage as the snapshot has them (borrowed from the
    /// cluster's cached instances: making a candidate of each of thousands of
    /// instances touches none of them).
    pub read: &'a CachedInstance,
    /// What the instance has left after this decision's reservations, once it took
    /// a task.
    pub changed: Option<Vec<Resource>>,
}

impl<'a> Candidate<'a> {
    pub fn new(read: &'a CachedInstance) -> Candidate<'a> {
        Candidate {
            read,
            changed: None,
        }
    }
    pub fn key(&self) -> &str {
        &self.read.key
    }
    pub fn mod_revision(&self) -> i64 {
        self.read.mod_revision
    }
    /// The instance id (last segment of the key).
    pub fn id(&self) -> &str {
        self.read.id()
    }
    /// The instance's ARN (empty if the record has none).
    pub fn arn(&self) -> &str {
        self.record()
            .instance
            .container_instance_arn
            .as_deref()
            .unwrap_or_default()
    }
    /// The instance record as read (its remaining resources are [`Self::remaining`]).
    pub fn record(&self) -> &InstanceRecord {
        &self.read.record
    }
    /// What the instance has left, with this decision's reservations.
    pub fn remaining(&self) -> &[Resource] {
        self.changed
            .as_deref()
            .unwrap_or(&self.read.usage.remaining_resources)
    }
    /// How placement sees the instance now (with this decision's reservations):
    /// the cached view, unless this decision already took resources from it.
    pub(crate) fn view(&self) -> Cow<'_, InstanceView> {
        match &self.changed {
            Some(left) => {
                let mut view = self.read.view.clone();
                view.remaining = Remaining::from_resources(left);
                Cow::Owned(view)
            }
            None => Cow::Borrowed(&self.read.view),
        }
    }
}

/// Whether a task may be placed on the instance at all: ACTIVE, with its agent connected.
pub(crate) fn placeable(record: &InstanceRecord) -> bool {
    record.instance.status.as_deref() == Some("ACTIVE")
        && record.instance.agent_connected == Some(true)
}

/// Takes `need` from the candidate's remaining resources if it fits; otherwise the
/// reasons it does not.
fn take(candidate: &mut Candidate<'_>, need: &TaskResources) -> Result<(), Vec<&'static str>> {
    fits(candidate.remaining(), need)?;
    let read = candidate.read;
    let left = candidate
        .changed
        .get_or_insert_with(|| read.usage.remaining_resources.clone());
    take_for_task(left, need);
    Ok(())
}

/// The records a placement decision read, besides the instances.
pub(crate) struct Read<'k> {
    pub cluster_revision: i64,
    pub definition_key: &'k str,
    pub definition_revision: i64,
}

/// The answer to RunTask or StartTask, and the transaction writing the new tasks and
/// the instances they took resources from, conditional on everything the decision read.
pub(crate) fn placement_decision(
    ctx: &Ctx<'_>,
    cluster: &str,
    read: &Read<'_>,
    candidates: &[Candidate<'_>],
    tasks: Vec<TaskRecord>,
    failures: Vec<Failure>,
) -> ApiResult<state::Decision<RunTaskResponse>> {
    let response = RunTaskResponse {
        tasks: tasks.iter().map(|t| t.task.clone()).collect(),
        failures,
    };
    if tasks.is_empty() {
        return Ok((None, response));
    }
    let txn = Txn::new()
        .when(Compare::unchanged(
            keys::cluster(ctx.region(), cluster),
            read.cluster_revision,
        ))
        .when(Compare::unchanged(
            read.definition_key,
            read.definition_revision,
        ));
    let mut txn = with_reservations(txn, candidates)?;
    for task in &tasks {
        let key = keys::task(ctx.region(), cluster, task.id());
        txn = state::put_task(txn.when(Compare::absent(&key)), key, task.clone())?;
    }
    Ok((Some(txn), response))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn launch<'r>(
    definition: &'r TaskDefinition,
    overrides: Option<&TaskOverride>,
    launch_type: Option<LaunchType>,
    capacity_provider_strategy: Option<&[berth_model::cluster::CapacityProviderStrategyItem]>,
    group: Option<&str>,
    started_by: Option<&str>,
    tags: Vec<Tag>,
    enable_execute_command: bool,
) -> ApiResult<Launch<'r>> {
    if launch_type.is_some() && capacity_provider_strategy.is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid_parameter(
            "Specify either a launchType or a capacityProviderStrategy, not both.",
        ));
    }
    let effective = apply_overrides(definition, overrides)?;
    let need = TaskResources::of(&effective);
    let family = definition.family.clone().unwrap_or_default();
    let capacity_provider = capacity_provider_strategy
        .and_then(|strategy| strategy.first())
        .map(|item| item.capacity_provider.clone());
    // Work written for Fargate runs on the cluster's instances; the task keeps the
    // launch type it asked for.
    let launch_type = launch_type.or(match capacity_provider.as_deref() {
        Some("FARGATE" | "FARGATE_SPOT") => Some(LaunchType::Fargate),
        Some(_) => None,
        None => Some(LaunchType::Ec2),
    });
    if started_by.is_some_and(|s| s.len() > 128) {
        return Err(ApiError::invalid_parameter(
            "startedBy can be at most 128 characters.",
        ));
    }
    validate_new_tags(&tags)?;
    Ok(Launch {
        definition,
        effective,
        need,
        overrides: overrides.cloned().unwrap_or_else(|| TaskOverride {
            container_overrides: Some(Vec::new()),
            inference_accelerator_overrides: Some(Vec::new()),
            ..TaskOverride::default()
        }),
        launch_type,
        capacity_provider,
        group: group
            .map(str::to_string)
            .unwrap_or_else(|| format!("family:{family}")),
        started_by: started_by.map(str::to_string),
        tags,
        enable_execute_command,
    })
}

fn with_propagated_tags(
    mut tags: Vec<Tag>,
    propagate: Option<PropagateTags>,
    record: &TaskDefinitionRecord,
) -> Vec<Tag> {
    if propagate == Some(PropagateTags::TaskDefinition) {
        for tag in &record.tags {
            if !tags.iter().any(|t| t.key == tag.key) {
                tags.push(tag.clone());
            }
        }
    }
    tags
}

/// Adds to `txn` the usage records of the instances the candidates took resources
/// from, each on the condition that it is still the version the decision read, and
/// that the instance record is too (its status and agent connection, read but not
/// written).
pub(crate) fn with_reservations(mut txn: Txn, candidates: &[Candidate<'_>]) -> ApiResult<Txn> {
    for candidate in candidates {
        if let Some(left) = &candidate.changed {
            // The usage as read, with what is left now: one more change.
            let usage = Usage {
                key: keys::usage_of_instance(candidate.key()),
                record: UsageRecord {
                    remaining_resources: left.clone(),
                    changes: candidate.read.usage.changes + 1,
                },
                mod_revision: candidate.read.usage_revision,
            };
            txn = usage.write(txn.when(Compare::unchanged(
                candidate.key(),
                candidate.mod_revision(),
            )))?;
        }
    }
    Ok(txn)
}

/// Of the cluster's instances, those that can take tasks now (ACTIVE, agent
/// connected), as candidates.
pub(crate) fn candidates_of(instances: &imbl::Vector<Arc<CachedInstance>>) -> Vec<Candidate<'_>> {
    let mut candidates = Vec::with_capacity(instances.len());
    candidates.extend(
        instances
            .iter()
            .filter(|cached| cached.placeable)
            .map(|cached| Candidate::new(cached)),
    );
    candidates
}

/// The fewest candidates a decision places on with the cluster's kept engine; fewer
/// (a DAEMON service's task placed on its own instance) are placed from scratch,
/// which costs next to nothing and leaves the kept engine for the whole cluster.
const KEEP_PLACER_FROM: usize = 64;

/// Whether the request has constraints (its own or its task definition's): then
/// the tasks placement reads must be those of the snapshot, not older.
fn hard_rules(launch: &Launch<'_>, rules: PlacementRules<'_>) -> bool {
    !rules.constraints.is_empty()
        || launch
            .effective
            .placement_constraints
            .as_ref()
            .is_some_and(|c| !c.is_empty())
}

/// Per candidate, in the candidates' order: the groups of its tasks not desired
/// STOPPED, and how many of them are RUNNING.
type TaskGroups = Vec<(BTreeMap<String, u32>, i64)>;

/// The task groups of the candidates' tasks, from the task view when it can be used
/// (it includes the snapshot, or nothing hard depends on it: without constraints the
/// groups only steer spread strategies), else from a scan of the cluster's tasks.
fn instance_task_groups(
    ctx: &Ctx<'_>,
    snapshot: &Snapshot,
    cluster: &str,
    launch: &Launch<'_>,
    rules: PlacementRules<'_>,
    candidates: &[Candidate<'_>],
) -> ApiResult<TaskGroups> {
    let hard = hard_rules(launch, rules);
    // Without constraints and spread strategies, placement reads neither the groups
    // nor the running counts (binpack and random read resources only).
    let spread = rules
        .strategies
        .iter()
        .any(|s| s.strategy_type == Some(PlacementStrategyType::Spread));
    if !hard && !spread {
        return Ok(candidates.iter().map(|_| (BTreeMap::new(), 0)).collect());
    }
    // Placement reads the counts of the request's own group (spread,
    // distinctInstance); only a `task:group` expression reads the other groups.
    let every_group = rules
        .constraints
        .iter()
        .filter_map(|c| c.expression.as_deref())
        .chain(
            launch
                .effective
                .placement_constraints
                .iter()
                .flatten()
                .filter_map(|c| c.expression.as_deref()),
        )
        .any(|expression| expression.contains("task:group"));
    let from_view = ctx.shared.views.now(|view| {
        if hard && view.revision() < snapshot.revision() {
            return None;
        }
        let found: TaskGroups = candidates
            .iter()
            .map(|candidate| match view.instance(candidate.arn()) {
                None => (BTreeMap::new(), 0),
                Some(tasks) if every_group => (tasks.groups.clone(), tasks.running_desired),
                Some(tasks) => (
                    tasks
                        .groups
                        .get_key_value(launch.group.as_str())
                        .map(|(group, count)| BTreeMap::from([(group.clone(), *count)]))
                        .unwrap_or_default(),
                    tasks.running_desired,
                ),
            })
            .collect();
        Some(found)
    });
    if let Some(Some(found)) = from_view {
        return Ok(found);
    }
    let mut groups: HashMap<String, BTreeMap<String, u32>> = HashMap::new();
    let mut running: HashMap<String, i64> = HashMap::new();
    for kv in snapshot.iter_prefix(&keys::tasks(ctx.region(), cluster)) {
        let Some(task) = TaskSummary::of(kv) else {
            return Err(state::decode_record::<TaskRecord>(kv)
                .err()
                .unwrap_or_else(|| {
                    ApiError::server(format!("The record {} is corrupt.", kv.key))
                }));
        };
        if task.desired() == Some(TaskStatus::Stopped) {
            continue;
        }
        let instance = task
            .container_instance_arn
            .clone()
            .unwrap_or_default()
            .into_owned();
        if task.last() == Some(TaskStatus::Running) {
            *running.entry(instance.clone()).or_default() += 1;
        }
        if let Some(group) = task.group {
            *groups
                .entry(instance)
                .or_default()
                .entry(group.into_owned())
                .or_default() += 1;
        }
    }
    Ok(candidates
        .iter()
        .map(|candidate| {
            let arn = candidate.arn();
            (
                groups.remove(arn).unwrap_or_default(),
                running.get(arn).copied().unwrap_or(0),
            )
        })
        .collect())
}

/// How placement and the cluster query language see an instance record. Its
/// `runningTasksCount` is the record's; `task_groups` is left empty: both come from
/// the tasks, which the caller knows better.
pub(crate) fn instance_view(record: &InstanceRecord) -> InstanceView {
    let instance = &record.instance;
    let arn = instance.container_instance_arn.clone().unwrap_or_default();
    InstanceView {
        id: arn.rsplit('/').next().unwrap_or_default().to_string(),
        ec2_instance_id: instance.ec2_instance_id.clone(),
        status: instance.status.clone().unwrap_or_default(),
        agent_connected: instance.agent_connected == Some(true),
        agent_version: instance
            .version_info
            .as_ref()
            .and_then(|v| v.agent_version.clone()),
        registered_at: instance.registered_at,
        attributes: instance
            .attributes
            .iter()
            .flatten()
            .map(|a| (a.name.clone(), a.value.clone()))
            .collect::<BTreeMap<_, _>>()
            .into(),
        remaining: Remaining::from_resources(
            instance.remaining_resources.as_deref().unwrap_or_default(),
        ),
        running_tasks_count: i64::from(instance.running_tasks_count.unwrap_or(0)),
        task_groups: Default::default(),
        arn,
    }
}

/// A candidate as one placement request sees it: its (shared) view and its tasks.
struct ForPlacement<'a> {
    view: Cow<'a, InstanceView>,
    groups: BTreeMap<String, u32>,
    running: i64,
}

impl Placeable for ForPlacement<'_> {
    fn view(&self) -> &InstanceView {
        &self.view
    }
    fn task_groups(&self) -> &BTreeMap<String, u32> {
        &self.groups
    }
    fn running_tasks_count(&self) -> i64 {
        self.running
    }
}

/// Whether placement is random among every instance the task fits on: no
/// constraint (the request's or the task definition's) and no strategy but
/// `random`.
pub(crate) fn only_random(launch: &Launch<'_>, rules: PlacementRules<'_>) -> bool {
    rules.constraints.is_empty()
        && launch
            .effective
            .placement_constraints
            .as_ref()
            .is_none_or(|c| c.is_empty())
        && rules.strategies.iter().all(|s| {
            s.strategy_type == Some(PlacementStrategyType::Random)
                && s.field.as_deref().is_none_or(|f| f.trim().is_empty())
        })
}

/// Draws in a row that find no room after which sampling leaves the rest of a
/// request to the engine (see [`berth_sched::sample`]).
const SAMPLING_MISSES: u32 = 64;

/// How old the cluster's instances as last read may be for RunTask's first attempt
/// at a random placement: within this, it samples them without reading every
/// instance again (a walk of the whole cluster per request). The placement's write
/// is conditional on the record and usage revisions it read, so an instance changed
/// since (resources taken, DRAINING, agent gone, deregistered) makes it fail to
/// commit, and the retry reads them all.
const RECENT_INSTANCES: Duration = Duration::from_millis(100);

/// Random placement by rejection sampling ([`berth_sched::sample_random`]): each
/// task goes to an instance chosen uniformly among the candidates it fits on,
/// taking its resources there. Returns how many tasks it placed (pushed onto
/// `tasks`); the engine places the rest.
fn place_by_sampling(
    ctx: &Ctx<'_>,
    cluster: &str,
    launch: &Launch<'_>,
    count: i32,
    candidates: &mut [Candidate<'_>],
    tasks: &mut Vec<TaskRecord>,
) -> i32 {
    let wanted = usize::try_from(count).unwrap_or(0);
    let placed = berth_sched::sample_random(
        candidates.len(),
        wanted,
        SAMPLING_MISSES,
        rand::random(),
        |at| {
            candidates
                .get_mut(at)
                .is_some_and(|c| take(c, &launch.need).is_ok())
        },
    );
    for &at in &placed {
        if let Some(candidate) = candidates.get(at) {
            tasks.push(launch.task(ctx, cluster, candidate.arn()));
        }
    }
    i32::try_from(placed.len()).unwrap_or(i32::MAX)
}

/// [`place_by_sampling`] among the placeable instances of `instances`, making a
/// candidate only of each instance drawn (into `touched`), not of every instance.
pub(crate) fn sample_placeable<'a>(
    ctx: &Ctx<'_>,
    cluster: &str,
    launch: &Launch<'_>,
    count: i32,
    instances: &'a ClusterInstances,
    touched: &mut Vec<Candidate<'a>>,
    tasks: &mut Vec<TaskRecord>,
) -> i32 {
    let placeable = instances.placeable();
    let list = instances.list();
    // Drawn position (among the placeable) -> its candidate in `touched`.
    let mut drawn: HashMap<usize, usize> = HashMap::new();
    let wanted = usize::try_from(count).unwrap_or(0);
    let placed = berth_sched::sample_random(
        placeable.len(),
        wanted,
        SAMPLING_MISSES,
        rand::random(),
        |at| {
            let slot = match drawn.get(&at) {
                Some(&slot) => slot,
                None => {
                    let Some(cached) = placeable.get(at).and_then(|&i| list.get(i)) else {
                        return false;
                    };
                    touched.push(Candidate::new(cached));
                    drawn.insert(at, touched.len() - 1);
                    touched.len() - 1
                }
            };
            touched
                .get_mut(slot)
                .is_some_and(|c| take(c, &launch.need).is_ok())
        },
    );
    for at in &placed {
        if let Some(candidate) = drawn.get(at).and_then(|&slot| touched.get(slot)) {
            tasks.push(launch.task(ctx, cluster, candidate.arn()));
        }
    }
    i32::try_from(placed.len()).unwrap_or(i32::MAX)
}

/// The placement constraints and strategies of a RunTask or a service.
#[derive(Clone, Copy)]
pub(crate) struct PlacementRules<'a> {
    pub constraints: &'a [PlacementConstraint],
    pub strategies: &'a [PlacementStrategy],
}

/// Places `count` tasks with the placement engine (resources, then the task
/// definition's and the request's constraints, then its strategies), taking their
/// resources from the candidates. Returns the tasks placed and, when not all could be,
/// each instance's reasons.
pub(crate) fn place_tasks(
    ctx: &Ctx<'_>,
    snapshot: &Snapshot,
    cluster: &str,
    launch: &Launch<'_>,
    count: i32,
    candidates: &mut [Candidate<'_>],
    rules: PlacementRules<'_>,
) -> ApiResult<(Vec<TaskRecord>, Vec<Failure>)> {
    let mut tasks = Vec::new();
    let mut count = count;
    if only_random(launch, rules) {
        count -= place_by_sampling(ctx, cluster, launch, count, candidates, &mut tasks);
        if count == 0 {
            return Ok((tasks, Vec::new()));
        }
    }
    let request = PlacementRequest {
        resources: launch.need.clone(),
        group: launch.group.clone(),
        count: u32::try_from(count).unwrap_or(0),
        task_definition_constraints: launch
            .effective
            .placement_constraints
            .clone()
            .unwrap_or_default(),
        constraints: rules.constraints.to_vec(),
        strategies: rules.strategies.to_vec(),
    };
    let seed = rand::random();
    // The cluster's kept engine, when the task view may be used: it has reached the
    // snapshot, or nothing hard depends on the tasks (without constraints they only
    // steer spread strategies).
    let keep = candidates.len() >= KEEP_PLACER_FROM;
    let kept = ctx.shared.views.now(|view| {
        (keep && (view.revision() >= snapshot.revision() || !hard_rules(launch, rules))).then(
            || {
                ctx.shared
                    .placers
                    .place(ctx.region(), cluster, view, candidates, &request, seed)
            },
        )
    });
    let result = match kept {
        Some(Some(result)) => result?,
        _ => {
            // The groups of the tasks on each instance (those not desired STOPPED),
            // for spread, distinctInstance and task:group expressions.
            let groups = instance_task_groups(ctx, snapshot, cluster, launch, rules, candidates)?;
            let views: Vec<ForPlacement<'_>> = candidates
                .iter()
                .zip(groups)
                .map(|(candidate, (groups, running))| ForPlacement {
                    view: candidate.view(),
                    groups,
                    running,
                })
                .collect();
            berth_sched::place(&views, &request, seed)?
        }
    };
    for index in result.placements {
        let Some(candidate) = candidates.get_mut(index) else {
            continue;
        };
        if take(candidate, &launch.need).is_ok() {
            tasks.push(launch.task(ctx, cluster, candidate.arn()));
        }
    }
    let failures = result
        .failures
        .iter()
        .filter_map(|failure| {
            let candidate = candidates.get(failure.instance)?;
            Some(Failure {
                arn: Some(candidate.arn().to_string()),
                reason: Some(failure.reason.to_string()),
                detail: None,
            })
        })
        .collect();
    Ok((tasks, failures))
}

pub async fn run_task(ctx: &Ctx<'_>, req: RunTaskRequest) -> ApiResult<RunTaskResponse> {
    berth_sched::validate_constraints(req.placement_constraints.as_deref().unwrap_or_default())?;
    berth_sched::validate_strategies(req.placement_strategy.as_deref().unwrap_or_default())?;
    let cluster = cluster_name(req.cluster.as_deref())?;
    let count = req.count.unwrap_or(1);
    if !(1..=10).contains(&count) {
        return Err(ApiError::invalid_parameter(
            "count must be between 1 and 10.",
        ));
    }
    // Placement reads the tasks on each instance only for constraints and spread
    // strategies; for those, let the task view reach the store's revision first, so
    // that the placement below can use it instead of scanning the cluster's tasks.
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    let reads_tasks = req
        .placement_constraints
        .as_ref()
        .is_some_and(|c| !c.is_empty())
        || req
            .placement_strategy
            .iter()
            .flatten()
            .any(|s| s.strategy_type == Some(PlacementStrategyType::Spread))
        || runnable_definition(ctx, &snapshot, &req.task_definition).map_or(true, |(_, d)| {
            d.value
                .task_definition
                .placement_constraints
                .as_ref()
                .is_some_and(|c| !c.is_empty())
        });
    if reads_tasks {
        let _ = ctx
            .shared
            .views
            .caught_up(ctx.store, snapshot.revision(), |_| ())
            .await;
    }
    drop(snapshot);
    let rules = PlacementRules {
        constraints: req.placement_constraints.as_deref().unwrap_or_default(),
        strategies: req.placement_strategy.as_deref().unwrap_or_default(),
    };
    let mut attempts = 0;
    state::write(ctx.store, |snapshot| {
        attempts += 1;
        let cluster_record = read_active(snapshot, ctx.region(), &cluster)?;
        let (definition_key, definition) =
            runnable_definition(ctx, snapshot, &req.task_definition)?;
        let tags = with_propagated_tags(
            req.tags.clone().unwrap_or_default(),
            req.propagate_tags,
            &definition.value,
        );
        let launch = launch(
            &definition.value.task_definition,
            req.overrides.as_ref(),
            req.launch_type,
            req.capacity_provider_strategy.as_deref(),
            req.group.as_deref(),
            req.started_by.as_deref(),
            tags,
            req.enable_execute_command.unwrap_or(false),
        )?;
        let read = Read {
            cluster_revision: cluster_record.mod_revision,
            definition_key: &definition_key,
            definition_revision: definition.mod_revision,
        };
        // A first attempt at a random placement samples the instances as recently
        // read; anything short of placing every task goes on to the full read.
        if attempts == 1
            && only_random(&launch, rules)
            && let Some(recent) =
                ctx.shared
                    .instances
                    .recent(ctx.region(), &cluster, RECENT_INSTANCES)
        {
            let mut touched = Vec::new();
            let mut tasks = Vec::new();
            if sample_placeable(
                ctx,
                &cluster,
                &launch,
                count,
                &recent,
                &mut touched,
                &mut tasks,
            ) == count
            {
                return placement_decision(ctx, &cluster, &read, &touched, tasks, Vec::new());
            }
        }
        let instances = ctx
            .shared
            .instances
            .instances(snapshot, ctx.region(), &cluster)?;
        let mut candidates = candidates_of(instances.list());
        if candidates.is_empty() {
            return Err(ApiError::invalid_parameter(
                "No Container Instances were found in your cluster.",
            ));
        }
        let (tasks, failures) = place_tasks(
            ctx,
            snapshot,
            &cluster,
            &launch,
            count,
            &mut candidates,
            rules,
        )?;
        placement_decision(ctx, &cluster, &read, &candidates, tasks, failures)
    })
    .await
}

pub async fn start_task(ctx: &Ctx<'_>, req: StartTaskRequest) -> ApiResult<RunTaskResponse> {
    let cluster = cluster_name(req.cluster.as_deref())?;
    if req.container_instances.is_empty() || req.container_instances.len() > 10 {
        return Err(ApiError::invalid_parameter(
            "containerInstances must name between 1 and 10 container instances.",
        ));
    }
    let ids: Vec<String> = req
        .container_instances
        .iter()
        .map(|identifier| instance_id(&cluster, identifier).map(str::to_string))
        .collect::<ApiResult<_>>()?;
    state::write(ctx.store, |snapshot| {
        let cluster_record = read_active(snapshot, ctx.region(), &cluster)?;
        let (definition_key, definition) =
            runnable_definition(ctx, snapshot, &req.task_definition)?;
        let tags = with_propagated_tags(
            req.tags.clone().unwrap_or_default(),
            req.propagate_tags,
            &definition.value,
        );
        let launch = launch(
            &definition.value.task_definition,
            req.overrides.as_ref(),
            Some(LaunchType::Ec2),
            None,
            req.group.as_deref(),
            req.started_by.as_deref(),
            tags,
            req.enable_execute_command.unwrap_or(false),
        )?;
        // The instances named (each once), read first: the candidates borrow them.
        let mut named: Vec<CachedInstance> = Vec::new();
        for id in &ids {
            let key = keys::container_instance(ctx.region(), &cluster, id);
            if named.iter().any(|c| c.key == key) {
                continue;
            }
            if let Some(found) = read_instance(snapshot, ctx.region(), &cluster, id)? {
                named.push(CachedInstance::load(
                    snapshot,
                    key,
                    found.mod_revision,
                    found.value,
                )?);
            }
        }
        let mut candidates: Vec<Candidate<'_>> = named.iter().map(Candidate::new).collect();
        let mut tasks = Vec::new();
        let mut failures = Vec::new();
        for id in &ids {
            let arn = ctx.scope.container_instance_arn(&cluster, id);
            let key = keys::container_instance(ctx.region(), &cluster, id);
            if !candidates.iter().any(|c| c.key() == key) {
                failures.push(Failure {
                    arn: Some(arn),
                    reason: Some("MISSING".to_string()),
                    detail: None,
                });
                continue;
            }
            let Some(candidate) = candidates.iter_mut().find(|c| c.key() == key) else {
                continue;
            };
            if !placeable(candidate.record()) {
                let reason = if candidate.record().instance.agent_connected == Some(true) {
                    "INACTIVE"
                } else {
                    "AGENT"
                };
                failures.push(Failure {
                    arn: Some(arn),
                    reason: Some(reason.to_string()),
                    detail: None,
                });
                continue;
            }
            match take(candidate, &launch.need) {
                Ok(()) => tasks.push(launch.task(ctx, &cluster, &arn)),
                Err(why) => failures.extend(why.into_iter().map(|reason| Failure {
                    arn: Some(arn.clone()),
                    reason: Some(reason.to_string()),
                    detail: None,
                })),
            }
        }
        let read = Read {
            cluster_revision: cluster_record.mod_revision,
            definition_key: &definition_key,
            definition_revision: definition.mod_revision,
        };
        placement_decision(ctx, &cluster, &read, &candidates, tasks, failures)
    })
    .await
}

pub async fn stop_task(ctx: &Ctx<'_>, req: StopTaskRequest) -> ApiResult<StopTaskResponse> {
    let cluster = cluster_name(req.cluster.as_deref())?;
    let id = task_id(&cluster, &req.task)?.to_string();
    if req.reason.as_deref().is_some_and(|r| r.len() > 255) {
        return Err(ApiError::invalid_parameter(
            "reason can be at most 255 characters.",
        ));
    }
    let key = keys::task(ctx.region(), &cluster, &id);
    state::write(ctx.store, |snapshot| {
        read_active(snapshot, ctx.region(), &cluster)?;
        let found = state::read::<TaskRecord>(snapshot, &key)?.ok_or_else(|| {
            ApiError::invalid_parameter(format!("The referenced task was not found: {}", req.task))
        })?;
        let mut record = found.value;
        if record.desired_status() == Some(TaskStatus::Stopped) {
            return Ok((
                None,
                StopTaskResponse {
                    task: Some(record.task),
                },
            ));
        }
        record.task.desired_status = Some(TaskStatus::Stopped.as_str().to_string());
        record.task.stopping_at = Some(ctx.now);
        record.task.stopped_reason = Some(
            req.reason
                .clone()
                .unwrap_or_else(|| "Task stopped by user".to_string()),
        );
        record.task.stop_code = Some(TaskStopCode::UserInitiated);
        record.task.version = Some(record.task.version.unwrap_or(0) + 1);
        let task = record.task.clone();
        let txn = state::put_task(
            Txn::new().when(Compare::unchanged(&key, found.mod_revision)),
            &key,
            record,
        )?;
        Ok((Some(txn), StopTaskResponse { task: Some(task) }))
    })
    .await
}

pub async fn describe_tasks(
    ctx: &Ctx<'_>,
    req: DescribeTasksRequest,
) -> ApiResult<DescribeTasksResponse> {
    if req.tasks.is_empty() || req.tasks.len() > 100 {
        return Err(ApiError::invalid_parameter(
            "tasks must name between 1 and 100 tasks.",
        ));
    }
    let cluster = cluster_name(req.cluster.as_deref())?;
    let with_tags = req.include.unwrap_or_default().contains(&TaskField::Tags);
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    read_active(&snapshot, ctx.region(), &cluster)?;
    let mut response = DescribeTasksResponse::default();
    for identifier in req.tasks {
        let found = match task_id(&cluster, &identifier) {
            Ok(id) => {
                state::read::<TaskRecord>(&snapshot, &keys::task(ctx.region(), &cluster, id))?
            }
            Err(_) => None,
        };
        match found {
            Some(found) => {
                let mut task = found.value.task;
                if !with_tags {
                    task.tags = None;
                }
                response.tasks.push(task);
            }
            None => response.failures.push(Failure {
                arn: Some(if identifier.starts_with("arn:") {
                    identifier
                } else {
                    ctx.scope.task_arn(&cluster, &identifier)
                }),
                reason: Some("MISSING".to_string()),
                detail: None,
            }),
        }
    }
    Ok(response)
}

pub async fn list_tasks(ctx: &Ctx<'_>, req: ListTasksRequest) -> ApiResult<ListTasksResponse> {
    let page_request = PageRequest::new(req.max_results, req.next_token.as_deref(), 100, 100)?;
    let cluster = cluster_name(req.cluster.as_deref())?;
    let instance_arn = match req.container_instance.as_deref() {
        Some(identifier) => Some(
            ctx.scope
                .container_instance_arn(&cluster, instance_id(&cluster, identifier)?),
        ),
        None => None,
    };
    if req.service_name.is_some() && req.started_by.is_some() {
        return Err(ApiError::invalid_parameter(
            "serviceName and startedBy cannot both be given.",
        ));
    }
    let group = req
        .service_name
        .as_ref()
        .map(|name| format!("service:{name}"));
    let desired = match req.desired_status {
        Some(DesiredStatus::Stopped) => TaskStatus::Stopped,
        Some(DesiredStatus::Pending) => TaskStatus::Pending,
        Some(DesiredStatus::Running) | None => TaskStatus::Running,
    };
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    read_active(&snapshot, ctx.region(), &cluster)?;
    let prefix = keys::tasks(ctx.region(), &cluster);
    let mut found = Vec::new();
    for kv in snapshot.iter_prefix(&prefix) {
        let id = &kv.key[prefix.len()..];
        if page_request
            .after
            .as_deref()
            .is_some_and(|after| id <= after)
        {
            continue;
        }
        // Only the members the filters look at are decoded.
        let Some(task) = TaskSummary::of(kv) else {
            state::decode_record::<TaskRecord>(kv)?;
            continue;
        };
        let status_matches = match desired {
            // PENDING: desired RUNNING, not yet running.
            TaskStatus::Pending => {
                task.desired() == Some(TaskStatus::Running)
                    && task.last() < Some(TaskStatus::Running)
            }
            other => task.desired() == Some(other),
        };
        let family_matches = req.family.as_deref().is_none_or(|family| {
            let arn = task.task_definition_arn.as_deref().unwrap_or_default();
            arn.rsplit_once('/')
                .and_then(|(_, rest)| rest.rsplit_once(':'))
                .is_some_and(|(f, _)| f == family)
        });
        let mut matches = status_matches
            && family_matches
            && instance_arn
                .as_deref()
                .is_none_or(|arn| task.container_instance_arn.as_deref() == Some(arn))
            && req
                .started_by
                .as_deref()
                .is_none_or(|s| task.started_by.as_deref() == Some(s))
            && group
                .as_deref()
                .is_none_or(|g| task.group.as_deref() == Some(g));
        if matches && let Some(launch_type) = req.launch_type {
            let record: TaskRecord = state::decode_record(kv)?;
            matches = record.task.launch_type == Some(launch_type);
        }
        if matches {
            found.push((
                id.to_string(),
                task.task_arn.clone().unwrap_or_default().into_owned(),
            ));
            if found.len() > page_request.limit {
                break;
            }
        }
    }
    let (items, next_token) = page(found, page_request.limit, |(id, _)| id.clone());
    Ok(ListTasksResponse {
        task_arns: items.into_iter().map(|(_, arn)| arn).collect(),
        next_token,
    })
}

fn acknowledged() -> SubmitTaskStateChangeResponse {
    SubmitTaskStateChangeResponse {
        acknowledgment: Some("ACK".to_string()),
    }
}

fn parse_container_status(text: Option<&str>) -> ApiResult<Option<berth_proto::ContainerStatus>> {
    use berth_proto::ContainerStatus::*;
    Ok(match text {
        None => None,
        Some("PENDING") => Some(Pending),
        Some("RUNNING") => Some(Running),
        Some("STOPPED") => Some(Stopped),
        Some(other) => {
            return Err(ApiError::invalid_parameter(format!(
                "Invalid container status '{other}'."
            )));
        }
    })
}

fn parse_task_status(text: Option<&str>) -> ApiResult<Option<TaskStatus>> {
    match text {
        None => Ok(None),
        Some(text) => TaskStatus::parse(text)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_parameter(format!("Invalid task status '{text}'."))),
    }
}

fn known_container(change: &berth_model::task::ContainerStateChange) -> ApiResult<KnownContainer> {
    Ok(KnownContainer {
        name: change.container_name.clone().ok_or_else(|| {
            ApiError::invalid_parameter("A container state change needs containerName.")
        })?,
        runtime_id: change.runtime_id.clone(),
        image_digest: change.image_digest.clone(),
        status: parse_container_status(change.status.as_deref())?,
        exit_code: change.exit_code,
        reason: change.reason.clone(),
        network_bindings: change.network_bindings.clone(),
        health_status: None,
    })
}

pub async fn submit_task_state_change(
    ctx: &Ctx<'_>,
    req: SubmitTaskStateChangeRequest,
) -> ApiResult<SubmitTaskStateChangeResponse> {
    let (cluster, id) = reported_task(req.cluster.as_deref(), req.task.as_deref())?;
    let known = KnownState {
        status: parse_task_status(req.status.as_deref())?,
        reason: req.reason.clone(),
        containers: req
            .containers
            .iter()
            .flatten()
            .map(known_container)
            .collect::<ApiResult<_>>()?,
        pull_started_at: req.pull_started_at,
        pull_stopped_at: req.pull_stopped_at,
        execution_stopped_at: req.execution_stopped_at,
        ..KnownState::default()
    };
    record_report(ctx, &cluster, &id, &known).await
}

pub async fn submit_container_state_change(
    ctx: &Ctx<'_>,
    req: SubmitContainerStateChangeRequest,
) -> ApiResult<SubmitTaskStateChangeResponse> {
    let (cluster, id) = reported_task(req.cluster.as_deref(), req.task.as_deref())?;
    let container = berth_model::task::ContainerStateChange {
        container_name: req.container_name.clone(),
        runtime_id: req.runtime_id.clone(),
        status: req.status.clone(),
        exit_code: req.exit_code,
        reason: req.reason.clone(),
        network_bindings: req.network_bindings.clone(),
        ..Default::default()
    };
    let known = KnownState {
        containers: vec![known_container(&container)?],
        ..KnownState::default()
    };
    record_report(ctx, &cluster, &id, &known).await
}

/// The cluster and task id a state change submitted through the API names.
fn reported_task(cluster: Option<&str>, task: Option<&str>) -> ApiResult<(String, String)> {
    let cluster = cluster_name(cluster)?;
    let task = task.ok_or_else(|| ApiError::invalid_parameter("task is required."))?;
    let id = task_id(&cluster, task)?.to_string();
    Ok((cluster, id))
}

/// Records a state change submitted through the API, signed by the instance's key.
async fn record_report(
    ctx: &Ctx<'_>,
    cluster: &str,
    id: &str,
    known: &KnownState,
) -> ApiResult<SubmitTaskStateChangeResponse> {
    let caller = ctx.access_key_id.as_deref();
    task_state::apply(
        ctx.store, &ctx.scope, cluster, id, caller, None, known, ctx.now,
    )
    .await?;
    Ok(acknowledged())
}

#[cfg(test)]
mod tests {
    use super::new_task_id;

    #[test]
    fn task_ids_are_32_hex_digits_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..10_000).map(|_| new_task_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
        }
        // Many ids of one millisecond included: still strictly in order.
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }
}

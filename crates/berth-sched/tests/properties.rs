//! Properties of placement over random clusters and requests, checked against
//! a naive reference that applies the definitions directly: scan every
//! instance, keep those that fit and satisfy the constraints, compute each
//! one's strategy keys from scratch, and require the engine's choice to be one
//! with the lowest keys.

use std::collections::{BTreeMap, BTreeSet};

use berth_model::container_instance::{
    RESOURCE_CPU, RESOURCE_MEMORY, RESOURCE_PORTS, Resource, fits, remaining,
};
use berth_model::task::{
    PlacementConstraint, PlacementConstraintType, PlacementStrategy, PlacementStrategyType,
    TaskResources,
};
use berth_sched::{
    AGENT, DISTINCT_INSTANCE, Expression, INACTIVE, InstanceView, MEMBER_OF, PlacementFailure,
    PlacementRequest, Remaining, place,
};
use proptest::prelude::*;

const GROUP: &str = "service:web";
const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const TYPES: [&str; 3] = ["t3.small", "t3.large", "m5.large"];
const PORTS: [u16; 3] = [80, 443, 8080];
const STATUSES: [&str; 4] = ["ACTIVE", "ACTIVE", "DRAINING", "INACTIVE"];
const EXPRESSIONS: [&str; 7] = [
    "attribute:ecs.availability-zone != us-east-1c",
    "attribute:ecs.instance-type =~ t3.*",
    "runningTasksCount < 4",
    "not(task:group == service:web)",
    "task:group == service:web or attribute:ecs.instance-type == m5.large",
    "agentConnected == true and attribute:ecs.availability-zone exists",
    "attribute:ecs.availability-zone in [us-east-1a, us-east-1b] || runningTasksCount == 0",
];

fn ports(mask: u8) -> BTreeSet<u16> {
    PORTS
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, port)| *port)
        .collect()
}

prop_compose! {
    fn arb_instance()(
        cpu in 0i64..3000,
        memory in 0i64..3000,
        tcp in 0u8..8,
        udp in 0u8..8,
        zone in 0usize..4,
        kind in 0usize..3,
        connected in prop::bool::weighted(0.9),
        status in prop::sample::select(&STATUSES[..]),
        in_group in 0u32..3,
        others in 0u32..3,
    ) -> InstanceView {
        let mut attributes = BTreeMap::new();
        if let Some(zone) = ZONES.get(zone) {
            attributes.insert("ecs.availability-zone".to_string(), Some(zone.to_string()));
        }
        attributes.insert("ecs.instance-type".to_string(), Some(TYPES[kind].to_string()));
        let mut task_groups = BTreeMap::new();
        task_groups.insert(GROUP.to_string(), in_group);
        task_groups.insert("family:other".to_string(), others);
        InstanceView {
            status: status.to_string(),
            agent_connected: connected,
            attributes: attributes.into(),
            remaining: Remaining { cpu, memory, tcp_ports: ports(tcp), udp_ports: ports(udp) },
            running_tasks_count: i64::from(in_group + others),
            task_groups,
            ..InstanceView::default()
        }
    }
}

fn arb_strategy() -> impl Strategy<Value = PlacementStrategy> {
    let pick = |kind, field: Option<&str>| PlacementStrategy {
        strategy_type: Some(kind),
        field: field.map(str::to_string),
    };
    prop::sample::select(vec![
        pick(PlacementStrategyType::Binpack, Some("cpu")),
        pick(PlacementStrategyType::Binpack, Some("memory")),
        pick(PlacementStrategyType::Spread, Some("instanceId")),
        pick(
            PlacementStrategyType::Spread,
            Some("attribute:ecs.availability-zone"),
        ),
        pick(
            PlacementStrategyType::Spread,
            Some("attribute:ecs.instance-type"),
        ),
        pick(PlacementStrategyType::Random, None),
    ])
}

prop_compose! {
    fn arb_request()(
        cpu in 0i64..700,
        memory in 0i64..700,
        tcp in prop::sample::select(vec![0u8, 0, 0, 1, 2]),
        udp in prop::sample::select(vec![0u8, 0, 0, 0, 4]),
        count in 0u32..40,
        distinct in prop::bool::weighted(0.25),
        member_of in prop::option::weighted(0.5, prop::sample::select(&EXPRESSIONS[..])),
        strategies in prop::collection::vec(arb_strategy(), 0..4),
    ) -> PlacementRequest {
        let mut constraints = Vec::new();
        if distinct {
            constraints.push(PlacementConstraint {
                constraint_type: Some(PlacementConstraintType::DistinctInstance),
                expression: None,
            });
        }
        if let Some(expression) = member_of {
            constraints.push(PlacementConstraint {
                constraint_type: Some(PlacementConstraintType::MemberOf),
                expression: Some(expression.to_string()),
            });
        }
        PlacementRequest {
            resources: TaskResources {
                cpu,
                memory,
                tcp_ports: ports(tcp).into_iter().collect(),
                udp_ports: ports(udp).into_iter().collect(),
            },
            group: GROUP.to_string(),
            count,
            task_definition_constraints: Vec::new(),
            constraints,
            strategies,
        }
    }
}

/// The naive reference: the state of each instance while tasks are placed.
struct Reference<'a> {
    instances: &'a [InstanceView],
    request: &'a PlacementRequest,
    member_of: Vec<Expression>,
    distinct: bool,
    placed: Vec<u32>,
}

impl<'a> Reference<'a> {
    fn new(instances: &'a [InstanceView], request: &'a PlacementRequest) -> Self {
        let member_of = request
            .constraints
            .iter()
            .filter_map(|c| c.expression.as_deref())
            .filter_map(|e| Expression::parse(e).ok())
            .collect();
        let distinct = request
            .constraints
            .iter()
            .any(|c| c.constraint_type == Some(PlacementConstraintType::DistinctInstance));
        Reference {
            instances,
            request,
            member_of,
            distinct,
            placed: vec![0; instances.len()],
        }
    }

    /// The instance as it is after this request's tasks so far.
    fn now(&self, i: usize) -> InstanceView {
        let mut view = self.instances[i].clone();
        let placed = self.placed[i];
        let need = &self.request.resources;
        view.remaining.cpu -= i64::from(placed) * need.cpu;
        view.remaining.memory -= i64::from(placed) * need.memory;
        if placed > 0 {
            view.remaining.tcp_ports.extend(&need.tcp_ports);
            view.remaining.udp_ports.extend(&need.udp_ports);
        }
        view.running_tasks_count += i64::from(placed);
        *view.task_groups.entry(GROUP.to_string()).or_default() += placed;
        view
    }

    fn group_tasks(&self, i: usize) -> i64 {
        i64::from(self.now(i).task_groups.get(GROUP).copied().unwrap_or(0))
    }

    /// Every reason instance `i` cannot take the next task, by the rules.
    fn reasons(&self, i: usize) -> Vec<&'static str> {
        let view = self.now(i);
        if view.status != "ACTIVE" {
            return if view.status == "INACTIVE" {
                vec![INACTIVE]
            } else {
                vec!["not a candidate"]
            };
        }
        if !view.agent_connected {
            return vec![AGENT];
        }
        let need = &self.request.resources;
        let mut reasons = Vec::new();
        if need.cpu > view.remaining.cpu {
            reasons.push(RESOURCE_CPU);
        }
        if need.memory > view.remaining.memory {
            reasons.push(RESOURCE_MEMORY);
        }
        if need
            .tcp_ports
            .iter()
            .any(|p| view.remaining.tcp_ports.contains(p))
            || need
                .udp_ports
                .iter()
                .any(|p| view.remaining.udp_ports.contains(p))
        {
            reasons.push(RESOURCE_PORTS);
        }
        if !reasons.is_empty() {
            return reasons;
        }
        if !self.member_of.iter().all(|e| e.matches(&view)) {
            reasons.push(MEMBER_OF);
        }
        if self.distinct && self.group_tasks(i) > 0 {
            reasons.push(DISTINCT_INSTANCE);
        }
        reasons
    }

    fn candidates(&self) -> Vec<usize> {
        (0..self.instances.len())
            .filter(|&i| self.reasons(i).is_empty())
            .collect()
    }

    /// The strategy keys of instance `i`, straight from the definitions.
    fn key(&self, i: usize) -> Vec<i64> {
        let view = self.now(i);
        let mut key = Vec::new();
        for strategy in &self.request.strategies {
            let field = strategy.field.as_deref().unwrap_or("");
            match strategy.strategy_type {
                Some(PlacementStrategyType::Random) | None => break,
                Some(PlacementStrategyType::Binpack) if field == "cpu" => {
                    key.push(view.remaining.cpu)
                }
                Some(PlacementStrategyType::Binpack) => key.push(view.remaining.memory),
                Some(PlacementStrategyType::Spread) => match field.strip_prefix("attribute:") {
                    None => key.push(self.group_tasks(i)),
                    Some(name) => {
                        let value = |j: usize| self.instances[j].attributes.get(name).cloned();
                        let mine = value(i);
                        key.push(
                            (0..self.instances.len())
                                .filter(|&j| value(j) == mine)
                                .map(|j| self.group_tasks(j))
                                .sum(),
                        );
                    }
                },
            }
        }
        key
    }
}

fn uniform_cluster(n: usize, zones: usize) -> impl Strategy<Value = Vec<InstanceView>> {
    prop::collection::vec(0u32..5, n).prop_map(move |groups| {
        groups
            .into_iter()
            .enumerate()
            .map(|(i, in_group)| {
                let mut view = InstanceView {
                    status: "ACTIVE".into(),
                    agent_connected: true,
                    remaining: Remaining {
                        cpu: 1 << 20,
                        memory: 1 << 20,
                        ..Remaining::default()
                    },
                    ..InstanceView::default()
                };
                std::sync::Arc::make_mut(&mut view.attributes).insert(
                    "ecs.availability-zone".into(),
                    Some(ZONES[i % zones].to_string()),
                );
                view.task_groups.insert(GROUP.into(), in_group);
                view
            })
            .collect()
    })
}

fn spread_request(field: &str, count: u32) -> PlacementRequest {
    PlacementRequest {
        resources: TaskResources {
            cpu: 1,
            memory: 1,
            ..TaskResources::default()
        },
        group: GROUP.into(),
        count,
        strategies: vec![PlacementStrategy {
            strategy_type: Some(PlacementStrategyType::Spread),
            field: Some(field.into()),
        }],
        ..PlacementRequest::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Each choice is a candidate with the lowest keys; placing stops exactly
    /// when no candidate is left, with the reference's reasons.
    #[test]
    fn placement_follows_the_definitions(
        instances in prop::collection::vec(arb_instance(), 0..25),
        request in arb_request(),
        seed in any::<u64>(),
    ) {
        let result = place(&instances, &request, seed);
        prop_assert!(result.is_ok(), "{result:?}");
        let Ok(result) = result else { return Ok(()) };
        let mut reference = Reference::new(&instances, &request);
        for &chosen in &result.placements {
            let candidates = reference.candidates();
            prop_assert!(
                candidates.contains(&chosen),
                "{chosen} is no candidate: {:?}", reference.reasons(chosen)
            );
            let best = candidates.iter().map(|&i| reference.key(i)).min();
            prop_assert_eq!(Some(reference.key(chosen)), best);
            reference.placed[chosen] += 1;
        }
        if result.placements.len() < request.count as usize {
            prop_assert!(reference.candidates().is_empty());
            let expected: Vec<PlacementFailure> = (0..instances.len())
                .flat_map(|i| {
                    reference
                        .reasons(i)
                        .into_iter()
                        .filter(|r| *r != "not a candidate")
                        .map(move |reason| PlacementFailure { instance: i, reason })
                })
                .collect();
            prop_assert_eq!(&result.failures, &expected);
        } else {
            prop_assert!(result.failures.is_empty());
        }
    }

    /// No instance gives more CPU, memory or ports than it has, and no
    /// constraint is broken, across the whole request.
    #[test]
    fn never_over_commits_or_breaks_a_constraint(
        instances in prop::collection::vec(arb_instance(), 1..25),
        request in arb_request(),
        seed in any::<u64>(),
    ) {
        let Ok(result) = place(&instances, &request, seed) else {
            return Err(TestCaseError::fail("refused"));
        };
        let need = &request.resources;
        let mut per_instance = vec![0i64; instances.len()];
        for &i in &result.placements {
            per_instance[i] += 1;
        }
        let distinct = request
            .constraints
            .iter()
            .any(|c| c.constraint_type == Some(PlacementConstraintType::DistinctInstance));
        for (i, &tasks) in per_instance.iter().enumerate() {
            if tasks == 0 {
                continue;
            }
            let view = &instances[i];
            prop_assert_eq!(&view.status, "ACTIVE");
            prop_assert!(view.agent_connected);
            prop_assert!(tasks * need.cpu <= view.remaining.cpu);
            prop_assert!(tasks * need.memory <= view.remaining.memory);
            if !need.tcp_ports.is_empty() || !need.udp_ports.is_empty() {
                prop_assert_eq!(tasks, 1);
                prop_assert!(view.remaining.ports_free(need));
            }
            if distinct {
                prop_assert_eq!(tasks, 1);
                prop_assert_eq!(view.task_groups.get(GROUP).copied().unwrap_or(0), 0);
            }
            for constraint in &request.constraints {
                if let Some(source) = &constraint.expression {
                    let Ok(expression) = Expression::parse(source) else {
                        return Err(TestCaseError::fail("bad expression"));
                    };
                    // Steady expressions hold as the instance was.
                    if !expression.depends_on_tasks() {
                        prop_assert!(expression.matches(view), "{source}");
                    }
                }
            }
        }
    }

    /// The same inputs and seed give the same placements.
    #[test]
    fn same_seed_same_result(
        instances in prop::collection::vec(arb_instance(), 0..25),
        request in arb_request(),
        seed in any::<u64>(),
    ) {
        prop_assert_eq!(place(&instances, &request, seed), place(&instances, &request, seed));
    }

    /// spread on instanceId fills the emptiest instances first: an instance
    /// that gets a task ends at most one above the least loaded, and instances
    /// that start level stay within one of each other.
    #[test]
    fn spread_on_instances_levels_the_counts(
        instances in uniform_cluster(12, 3),
        count in 0u32..80,
        seed in any::<u64>(),
    ) {
        let request = spread_request("instanceId", count);
        let Ok(result) = place(&instances, &request, seed) else {
            return Err(TestCaseError::fail("refused"));
        };
        prop_assert_eq!(result.placements.len(), count as usize);
        let start: Vec<i64> = instances
            .iter()
            .map(|v| i64::from(v.task_groups[GROUP]))
            .collect();
        let mut end = start.clone();
        for &i in &result.placements {
            end[i] += 1;
        }
        let low = end.iter().copied().min().unwrap_or(0);
        for (s, e) in start.iter().zip(&end) {
            if e > s {
                prop_assert!(*e <= low + 1, "{start:?} -> {end:?}");
            }
        }
        let level = vec![0; 12];
        if start == level {
            let high = end.iter().copied().max().unwrap_or(0);
            prop_assert!(high - low <= 1);
        }
    }

    /// spread on an attribute levels the values the same way.
    #[test]
    fn spread_on_zones_levels_the_zones(
        instances in uniform_cluster(10, 3),
        count in 0u32..60,
        seed in any::<u64>(),
    ) {
        let request = spread_request("attribute:ecs.availability-zone", count);
        let Ok(result) = place(&instances, &request, seed) else {
            return Err(TestCaseError::fail("refused"));
        };
        let zone = |i: usize| instances[i].attributes["ecs.availability-zone"].clone();
        let mut start: BTreeMap<Option<String>, i64> = BTreeMap::new();
        for (i, view) in instances.iter().enumerate() {
            *start.entry(zone(i)).or_default() += i64::from(view.task_groups[GROUP]);
        }
        let mut end = start.clone();
        for &i in &result.placements {
            *end.entry(zone(i)).or_default() += 1;
        }
        let low = end.values().copied().min().unwrap_or(0);
        for (z, e) in &end {
            if start[z] < *e {
                prop_assert!(*e <= low + 1, "{start:?} -> {end:?}");
            }
        }
    }

    /// binpack puts each task on an instance with the least remaining amount
    /// of the resource among those it fits.
    #[test]
    fn binpack_takes_the_least_remaining_that_fits(
        memories in prop::collection::vec(0i64..5000, 1..30),
        need in 1i64..1200,
        count in 1u32..20,
        seed in any::<u64>(),
    ) {
        let instances: Vec<InstanceView> = memories
            .iter()
            .map(|&memory| InstanceView {
                status: "ACTIVE".into(),
                agent_connected: true,
                remaining: Remaining { cpu: 10_000, memory, ..Remaining::default() },
                ..InstanceView::default()
            })
            .collect();
        let request = PlacementRequest {
            resources: TaskResources { cpu: 1, memory: need, ..TaskResources::default() },
            count,
            strategies: vec![PlacementStrategy {
                strategy_type: Some(PlacementStrategyType::Binpack),
                field: Some("memory".into()),
            }],
            ..PlacementRequest::default()
        };
        let Ok(result) = place(&instances, &request, seed) else {
            return Err(TestCaseError::fail("refused"));
        };
        let mut left = memories.clone();
        for &i in &result.placements {
            let fitting_least = left.iter().copied().filter(|m| *m >= need).min();
            prop_assert_eq!(Some(left[i]), fitting_least);
            left[i] -= need;
        }
        if result.placements.len() < count as usize {
            prop_assert!(left.iter().all(|m| *m < need));
        }
    }

    /// The scheduler's view of remaining resources fits exactly as
    /// berth-model's `fits` does.
    #[test]
    fn remaining_fits_as_the_model_does(
        cpu in -100i32..5000,
        memory in -100i32..5000,
        kept in 0u8..8,
        used in prop::collection::vec((0i64..1500, 0i64..1500, 0u8..8, 0u8..8), 0..4),
        need in (0i64..3000, 0i64..3000, 0u8..8, 0u8..8),
    ) {
        let registered = vec![
            Resource::integer(Resource::CPU, cpu),
            Resource::integer(Resource::MEMORY, memory),
            Resource::string_set(Resource::PORTS, ports(kept).iter().map(u16::to_string)),
        ];
        let task = |(cpu, memory, tcp, udp): (i64, i64, u8, u8)| TaskResources {
            cpu,
            memory,
            tcp_ports: ports(tcp).into_iter().collect(),
            udp_ports: ports(udp).into_iter().collect(),
        };
        let used: Vec<TaskResources> = used.into_iter().map(task).collect();
        let need = task(need);
        let left = remaining(&registered, &used);
        prop_assert_eq!(Remaining::from_resources(&left).fits(&need), fits(&left, &need));
    }
}

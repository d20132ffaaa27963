//! Placement, case by case: each strategy, constraint and failure reason.

use std::collections::{BTreeMap, BTreeSet};

use berth_model::ErrorCode;
use berth_model::container_instance::{RESOURCE_CPU, RESOURCE_MEMORY, RESOURCE_PORTS};
use berth_model::task::{
    PlacementConstraint, PlacementConstraintType, PlacementStrategy, PlacementStrategyType,
    TaskResources,
};
use berth_model::task_definition::{
    TaskDefinitionPlacementConstraint, TaskDefinitionPlacementConstraintType,
};
use berth_sched::{
    AGENT, DISTINCT_INSTANCE, INACTIVE, InstanceView, MEMBER_OF, PlacementFailure,
    PlacementRequest, PlacementResult, Remaining, place,
};

const GROUP: &str = "service:web";

fn instance(i: usize, zone: &str, cpu: i64, memory: i64) -> InstanceView {
    InstanceView {
        id: format!("ci-{i}"),
        arn: format!("arn:aws:ecs:us-east-1:000000000000:container-instance/default/ci-{i}"),
        ec2_instance_id: Some(format!("i-{i}")),
        status: "ACTIVE".into(),
        agent_connected: true,
        agent_version: Some("1.80.0".into()),
        registered_at: Some(1_700_000_000.0),
        attributes: [
            ("ecs.availability-zone".to_string(), Some(zone.to_string())),
            (
                "ecs.instance-type".to_string(),
                Some("t3.large".to_string()),
            ),
        ]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>()
        .into(),
        remaining: Remaining {
            cpu,
            memory,
            tcp_ports: BTreeSet::from([22]),
            udp_ports: BTreeSet::new(),
        },
        running_tasks_count: 0,
        task_groups: BTreeMap::new(),
    }
}

fn with_group_tasks(mut view: InstanceView, tasks: u32) -> InstanceView {
    view.task_groups.insert(GROUP.into(), tasks);
    view.running_tasks_count += i64::from(tasks);
    view
}

fn task(cpu: i64, memory: i64) -> TaskResources {
    TaskResources {
        cpu,
        memory,
        tcp_ports: Vec::new(),
        udp_ports: Vec::new(),
    }
}

fn strategy(kind: PlacementStrategyType, field: Option<&str>) -> PlacementStrategy {
    PlacementStrategy {
        strategy_type: Some(kind),
        field: field.map(str::to_string),
    }
}

fn binpack(field: &str) -> PlacementStrategy {
    strategy(PlacementStrategyType::Binpack, Some(field))
}

fn spread(field: &str) -> PlacementStrategy {
    strategy(PlacementStrategyType::Spread, Some(field))
}

fn random() -> PlacementStrategy {
    strategy(PlacementStrategyType::Random, None)
}

fn member_of(expression: &str) -> PlacementConstraint {
    PlacementConstraint {
        constraint_type: Some(PlacementConstraintType::MemberOf),
        expression: Some(expression.into()),
    }
}

fn distinct() -> PlacementConstraint {
    PlacementConstraint {
        constraint_type: Some(PlacementConstraintType::DistinctInstance),
        expression: None,
    }
}

fn request(resources: TaskResources, count: u32) -> PlacementRequest {
    PlacementRequest {
        resources,
        group: GROUP.into(),
        count,
        ..PlacementRequest::default()
    }
}

fn run(instances: &[InstanceView], request: &PlacementRequest) -> PlacementResult {
    match place(instances, request, 42) {
        Ok(result) => result,
        Err(err) => panic!("{err}"),
    }
}

fn failures(pairs: &[(usize, &'static str)]) -> Vec<PlacementFailure> {
    pairs
        .iter()
        .map(|&(instance, reason)| PlacementFailure { instance, reason })
        .collect()
}

#[test]
fn binpack_on_memory_takes_the_least_remaining_memory_that_fits() {
    let instances = [
        instance(0, "a", 4096, 4096),
        instance(1, "a", 4096, 1024),
        instance(2, "a", 4096, 511),
        instance(3, "a", 4096, 2048),
    ];
    let mut req = request(task(10, 512), 6);
    req.strategies = vec![binpack("memory")];
    // 1024 -> 512 -> 0 on ci-1, then ci-3 (2048) four times, then ci-0.
    assert_eq!(run(&instances, &req).placements, [1, 1, 3, 3, 3, 3]);
    req.count = 7;
    assert_eq!(run(&instances, &req).placements, [1, 1, 3, 3, 3, 3, 0]);
    // Field names are case-insensitive.
    req.strategies = vec![binpack("MEMORY")];
    assert_eq!(run(&instances, &req).placements, [1, 1, 3, 3, 3, 3, 0]);
}

#[test]
fn binpack_on_cpu_takes_the_least_remaining_cpu_that_fits() {
    let instances = [
        instance(0, "a", 1024, 4096),
        instance(1, "a", 255, 4096),
        instance(2, "a", 512, 4096),
    ];
    let mut req = request(task(256, 10), 6);
    req.strategies = vec![binpack("CPU")];
    assert_eq!(run(&instances, &req).placements, [2, 2, 0, 0, 0, 0]);
}

#[test]
fn spread_on_instances_balances_the_group_counting_its_running_tasks() {
    let instances = [
        with_group_tasks(instance(0, "a", 4096, 4096), 2),
        instance(1, "a", 4096, 4096),
        with_group_tasks(instance(2, "a", 4096, 4096), 1),
    ];
    let mut req = request(task(10, 10), 6);
    req.strategies = vec![spread("instanceId")];
    let placed = run(&instances, &req).placements;
    let mut counts = [2, 0, 1];
    for &i in &placed {
        let min = counts.iter().copied().min().unwrap_or(0);
        assert_eq!(counts[i], min, "{placed:?}");
        counts[i] += 1;
    }
    assert_eq!(counts, [3, 3, 3]);
    // `host` is the same as `instanceId`.
    req.strategies = vec![spread("host")];
    assert_eq!(run(&instances, &req).placements, placed);
}

#[test]
fn tasks_of_other_groups_do_not_count_for_spread() {
    let mut busy = instance(0, "a", 4096, 4096);
    busy.task_groups.insert("family:other".into(), 5);
    let instances = [busy, with_group_tasks(instance(1, "a", 4096, 4096), 1)];
    let mut req = request(task(10, 10), 1);
    req.strategies = vec![spread("instanceId")];
    assert_eq!(run(&instances, &req).placements, [0]);
}

#[test]
fn spread_on_an_attribute_balances_its_values() {
    let instances = [
        with_group_tasks(instance(0, "us-east-1a", 4096, 4096), 2),
        instance(1, "us-east-1a", 4096, 4096),
        instance(2, "us-east-1b", 4096, 4096),
        instance(3, "us-east-1c", 4096, 4096),
        instance(4, "us-east-1c", 4096, 4096),
    ];
    let mut req = request(task(10, 10), 7);
    req.strategies = vec![spread("attribute:ecs.availability-zone")];
    let placed = run(&instances, &req).placements;
    let zone = |i: usize| instances[i].attributes["ecs.availability-zone"].clone();
    let mut per_zone: BTreeMap<Option<String>, i32> = BTreeMap::new();
    per_zone.insert(Some("us-east-1a".into()), 2);
    per_zone.insert(Some("us-east-1b".into()), 0);
    per_zone.insert(Some("us-east-1c".into()), 0);
    for &i in &placed {
        let min = per_zone.values().copied().min().unwrap_or(0);
        assert_eq!(per_zone[&zone(i)], min, "{placed:?}");
        *per_zone.entry(zone(i)).or_default() += 1;
    }
    assert_eq!(per_zone.values().copied().collect::<Vec<_>>(), [3, 3, 3]);
}

#[test]
fn instances_without_the_attribute_share_one_value() {
    let mut bare = instance(0, "x", 4096, 4096);
    std::sync::Arc::make_mut(&mut bare.attributes).remove("ecs.availability-zone");
    let mut bare_too = instance(1, "x", 4096, 4096);
    std::sync::Arc::make_mut(&mut bare_too.attributes).remove("ecs.availability-zone");
    let instances = [bare, bare_too, instance(2, "us-east-1a", 4096, 4096)];
    let mut req = request(task(10, 10), 2);
    req.strategies = vec![spread("attribute:ecs.availability-zone")];
    let mut placed = run(&instances, &req).placements;
    placed.sort_unstable();
    assert!(placed == [0, 2] || placed == [1, 2], "{placed:?}");
}

#[test]
fn spread_by_zone_then_binpack_within_the_zone() {
    // The guide's example: "distributes tasks evenly across Availability Zones
    // and then bin packs tasks based on memory within each Availability Zone".
    let instances = [
        instance(0, "us-east-1a", 4096, 2048),
        instance(1, "us-east-1a", 4096, 1024),
        instance(2, "us-east-1b", 4096, 4096),
        instance(3, "us-east-1b", 4096, 3072),
    ];
    let mut req = request(task(10, 512), 4);
    req.strategies = vec![spread("attribute:ecs.availability-zone"), binpack("memory")];
    let placed = run(&instances, &req).placements;
    // Each zone gets two tasks, each on the zone's fullest instance.
    let mut sorted = placed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [1, 1, 3, 3], "{placed:?}");
}

#[test]
fn later_strategies_only_break_ties() {
    // binpack first: the fullest instance wins whatever the spread says.
    let instances = [
        with_group_tasks(instance(0, "a", 4096, 1024), 3),
        instance(1, "a", 4096, 4096),
        instance(2, "a", 4096, 1024),
    ];
    let mut req = request(task(10, 512), 1);
    req.strategies = vec![binpack("memory"), spread("instanceId")];
    // ci-0 and ci-2 tie on memory; ci-2 has fewer tasks of the group.
    assert_eq!(run(&instances, &req).placements, [2]);
    req.strategies = vec![spread("instanceId"), binpack("memory")];
    // ci-1 and ci-2 tie with no task; ci-2 has less memory.
    assert_eq!(run(&instances, &req).placements, [2]);
}

#[test]
fn random_ends_the_chain_and_spreads_choices() {
    let instances: Vec<_> = (0..4).map(|i| instance(i, "a", 100_000, 100_000)).collect();
    let mut req = request(task(1, 1), 4000);
    req.strategies = vec![random(), binpack("memory")];
    let placed = run(&instances, &req).placements;
    let mut counts = [0; 4];
    for i in placed {
        counts[i] += 1;
    }
    // Uniform: 1000 each; binpack after random does not gather them.
    for count in counts {
        assert!((850..1150).contains(&count), "{counts:?}");
    }
    // Another seed, other choices; the same seed, the same.
    let again = place(&instances, &req, 42).map(|r| r.placements);
    let other = place(&instances, &req, 43).map(|r| r.placements);
    assert_eq!(again, Ok(run(&instances, &req).placements));
    assert_ne!(again, other);
}

#[test]
fn distinct_instance_puts_each_task_of_the_group_on_its_own_instance() {
    let instances = [
        instance(0, "a", 4096, 4096),
        with_group_tasks(instance(1, "a", 4096, 4096), 1),
        instance(2, "a", 4096, 4096),
    ];
    let mut req = request(task(10, 10), 3);
    req.constraints = vec![distinct()];
    let result = run(&instances, &req);
    let mut placed = result.placements.clone();
    placed.sort_unstable();
    assert_eq!(placed, [0, 2]);
    assert_eq!(
        result.failures,
        failures(&[
            (0, DISTINCT_INSTANCE),
            (1, DISTINCT_INSTANCE),
            (2, DISTINCT_INSTANCE)
        ])
    );
}

#[test]
fn member_of_restricts_the_candidates() {
    let mut instances: Vec<_> = (0..4).map(|i| instance(i, "a", 4096, 4096)).collect();
    std::sync::Arc::make_mut(&mut instances[2].attributes)
        .insert("ecs.instance-type".into(), Some("g2.2xlarge".into()));
    let mut req = request(task(10, 10), 3);
    req.constraints = vec![member_of("attribute:ecs.instance-type =~ g2.*")];
    assert_eq!(run(&instances, &req).placements, [2, 2, 2]);
    // A task definition's constraints apply as well as the request's.
    req.task_definition_constraints = vec![TaskDefinitionPlacementConstraint {
        constraint_type: Some(TaskDefinitionPlacementConstraintType::MemberOf),
        expression: Some("ec2InstanceId != i-2".into()),
    }];
    let result = run(&instances, &req);
    assert!(result.placements.is_empty());
    assert_eq!(
        result.failures,
        failures(&[
            (0, MEMBER_OF),
            (1, MEMBER_OF),
            (2, MEMBER_OF),
            (3, MEMBER_OF)
        ])
    );
}

#[test]
fn member_of_sees_the_tasks_placed_so_far() {
    // Only empty instances: each task makes its instance non-empty.
    let mut instances: Vec<_> = (0..4).map(|i| instance(i, "a", 4096, 4096)).collect();
    instances[3].running_tasks_count = 1;
    let mut req = request(task(10, 10), 4);
    req.constraints = vec![member_of("runningTasksCount == 0")];
    let result = run(&instances, &req);
    let mut placed = result.placements.clone();
    placed.sort_unstable();
    assert_eq!(placed, [0, 1, 2]);
    assert_eq!(result.failures.len(), 4);
    assert!(result.failures.iter().all(|f| f.reason == MEMBER_OF));

    // Anti-affinity with the request's own group, as distinctInstance.
    req.constraints = vec![member_of(&format!("not(task:group == {GROUP})"))];
    assert_eq!(run(&instances, &req).placements.len(), 4);
    req.count = 5;
    assert_eq!(run(&instances, &req).placements.len(), 4);

    // Affinity: only where the group already runs.
    instances[1] = with_group_tasks(instances[1].clone(), 1);
    req.constraints = vec![member_of(&format!("task:group == {GROUP}"))];
    assert_eq!(run(&instances, &req).placements, [1, 1, 1, 1, 1]);
}

#[test]
fn static_ports_allow_one_task_per_instance() {
    let instances = [
        instance(0, "a", 4096, 4096),
        instance(1, "a", 4096, 4096),
        instance(2, "a", 4096, 4096),
    ];
    let mut instances = instances.to_vec();
    instances[2].remaining.udp_ports.insert(53);
    let need = TaskResources {
        tcp_ports: vec![80],
        udp_ports: vec![53],
        ..task(10, 10)
    };
    let result = run(&instances, &request(need, 3));
    let mut placed = result.placements.clone();
    placed.sort_unstable();
    assert_eq!(placed, [0, 1]);
    assert_eq!(
        result.failures,
        failures(&[
            (0, RESOURCE_PORTS),
            (1, RESOURCE_PORTS),
            (2, RESOURCE_PORTS)
        ])
    );
    // A port the instance keeps for itself is taken.
    let need = TaskResources {
        tcp_ports: vec![22],
        ..task(10, 10)
    };
    assert!(run(&instances, &request(need, 1)).placements.is_empty());
}

#[test]
fn failures_give_each_instance_the_reasons_of_its_first_failed_check() {
    let mut instances = vec![
        instance(0, "a", 100, 100),
        instance(1, "a", 4096, 100),
        instance(2, "a", 4096, 4096),
        instance(3, "a", 4096, 4096),
        instance(4, "a", 4096, 4096),
        instance(5, "a", 10, 10),
    ];
    instances[2].agent_connected = false;
    instances[3].status = "INACTIVE".into();
    instances[4].status = "DRAINING".into();
    instances[5].agent_connected = false;
    let mut req = request(task(1024, 1024), 1);
    req.constraints = vec![member_of("attribute:ecs.instance-type == nothing")];
    let result = run(&instances, &req);
    assert!(result.placements.is_empty());
    assert_eq!(
        result.failures,
        failures(&[
            (0, RESOURCE_CPU),
            (0, RESOURCE_MEMORY),
            (1, RESOURCE_MEMORY),
            (2, AGENT),
            (3, INACTIVE),
            (5, AGENT),
        ])
    );
}

#[test]
fn placed_tasks_use_up_the_instance() {
    let instances = [instance(0, "a", 1024, 1000)];
    let result = run(&instances, &request(task(256, 300), 5));
    assert_eq!(result.placements, [0, 0, 0]);
    assert_eq!(result.failures, failures(&[(0, RESOURCE_MEMORY)]));
    let result = run(&instances, &request(task(256, 0), 5));
    assert_eq!(result.placements, [0, 0, 0, 0]);
    assert_eq!(result.failures, failures(&[(0, RESOURCE_CPU)]));
    // A task that needs nothing fits any number of times.
    assert_eq!(
        run(&instances, &request(task(0, 0), 50)).placements.len(),
        50
    );
}

#[test]
fn nothing_to_place_or_nowhere_to_place() {
    let instances = [instance(0, "a", 1024, 1024)];
    assert_eq!(
        run(&instances, &request(task(1, 1), 0)),
        PlacementResult::default()
    );
    let result = run(&[], &request(task(1, 1), 3));
    assert_eq!(result, PlacementResult::default());
}

#[test]
fn invalid_constraints_and_strategies_are_refused() {
    let instances = [instance(0, "a", 1024, 1024)];
    let mut req = request(task(1, 1), 1);
    req.constraints = vec![member_of("attribute:x ==")];
    let Err(err) = place(&instances, &req, 1) else {
        panic!("an invalid expression is accepted")
    };
    assert_eq!(err.code, ErrorCode::InvalidParameterException);

    req.constraints = vec![member_of("attribute:x exists"); 6];
    req.task_definition_constraints = vec![
        TaskDefinitionPlacementConstraint {
            constraint_type: Some(TaskDefinitionPlacementConstraintType::MemberOf),
            expression: Some("attribute:x exists".into()),
        };
        5
    ];
    let Err(err) = place(&instances, &req, 1) else {
        panic!("11 constraints are accepted")
    };
    assert!(
        err.message.contains("Too many placement constraints: 11"),
        "{err}"
    );

    let mut req = request(task(1, 1), 1);
    req.strategies = vec![binpack("disk")];
    assert!(place(&instances, &req, 1).is_err());
}

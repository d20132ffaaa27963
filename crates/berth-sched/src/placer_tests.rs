//! The kept engines against fresh ones: every task a placer places goes to an
//! instance that an engine built from scratch on the same instances ranks first.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_model::task::{
    PlacementConstraint, PlacementConstraintType, PlacementStrategy, PlacementStrategyType,
    TaskResources,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use berth_model::ApiError;

use super::*;
use crate::model::Remaining;

const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
const TYPES: [&str; 3] = ["t3.small", "t3.large", "m5.large"];
const GROUPS: [&str; 2] = ["service:web", "family:batch"];

fn instance(i: usize, rng: &mut StdRng) -> InstanceView {
    let mut attributes = BTreeMap::new();
    attributes.insert(
        "ecs.availability-zone".to_string(),
        Some(ZONES[rng.random_range(0..ZONES.len())].to_string()),
    );
    attributes.insert(
        "ecs.instance-type".to_string(),
        Some(TYPES[rng.random_range(0..TYPES.len())].to_string()),
    );
    let mut task_groups = BTreeMap::new();
    let mut running = 0;
    for group in GROUPS {
        let count = rng.random_range(0..3);
        if count > 0 {
            task_groups.insert(group.to_string(), count);
            running += i64::from(count);
        }
    }
    let mut tcp_ports = std::collections::BTreeSet::from([22]);
    if rng.random_bool(0.2) {
        tcp_ports.insert(80);
    }
    InstanceView {
        id: format!("i{i}"),
        arn: format!("arn:aws:ecs:r:1:container-instance/c/i{i}"),
        status: if rng.random_bool(0.9) {
            "ACTIVE"
        } else {
            "DRAINING"
        }
        .to_string(),
        agent_connected: rng.random_bool(0.9),
        registered_at: Some(i as f64),
        attributes: Arc::new(attributes),
        remaining: Remaining {
            cpu: rng.random_range(0..8) * 128,
            memory: rng.random_range(0..8) * 256,
            tcp_ports,
            udp_ports: Default::default(),
        },
        running_tasks_count: running,
        task_groups,
        ..InstanceView::default()
    }
}

fn strategy(kind: PlacementStrategyType, field: Option<&str>) -> PlacementStrategy {
    PlacementStrategy {
        strategy_type: Some(kind),
        field: field.map(str::to_string),
    }
}

fn constraint(kind: PlacementConstraintType, expression: Option<&str>) -> PlacementConstraint {
    PlacementConstraint {
        constraint_type: Some(kind),
        expression: expression.map(str::to_string),
    }
}

/// Request shapes, each with its count to be set.
fn shapes() -> Vec<PlacementRequest> {
    use PlacementConstraintType::{DistinctInstance, MemberOf};
    use PlacementStrategyType::{Binpack, Random, Spread};
    let small = TaskResources {
        cpu: 128,
        memory: 256,
        ..TaskResources::default()
    };
    let web = TaskResources {
        tcp_ports: vec![80],
        ..small.clone()
    };
    let shape = |resources: &TaskResources,
                 group: &str,
                 constraints: Vec<PlacementConstraint>,
                 strategies: Vec<PlacementStrategy>| PlacementRequest {
        resources: resources.clone(),
        group: group.to_string(),
        count: 0,
        task_definition_constraints: Vec::new(),
        constraints,
        strategies,
    };
    vec![
        shape(
            &small,
            GROUPS[0],
            vec![],
            vec![strategy(Binpack, Some("memory"))],
        ),
        shape(
            &small,
            GROUPS[0],
            vec![],
            vec![strategy(Spread, Some("attribute:ecs.availability-zone"))],
        ),
        shape(
            &small,
            GROUPS[1],
            vec![],
            vec![
                strategy(Spread, Some("attribute:ecs.availability-zone")),
                strategy(Spread, Some("instanceId")),
                strategy(Binpack, Some("cpu")),
            ],
        ),
        shape(
            &small,
            GROUPS[0],
            vec![constraint(
                MemberOf,
                Some("attribute:ecs.instance-type =~ t3.*"),
            )],
            vec![strategy(Binpack, Some("cpu"))],
        ),
        shape(
            &small,
            GROUPS[1],
            vec![constraint(DistinctInstance, None)],
            vec![],
        ),
        shape(
            &small,
            GROUPS[0],
            vec![constraint(
                MemberOf,
                Some("runningTasksCount < 4 and task:group != family:batch"),
            )],
            vec![strategy(Spread, Some("instanceId"))],
        ),
        shape(&web, GROUPS[0], vec![], vec![strategy(Random, None)]),
        shape(
            &web,
            GROUPS[1],
            vec![],
            vec![
                strategy(Spread, Some("attribute:ecs.instance-type")),
                strategy(Binpack, Some("memory")),
            ],
        ),
    ]
}

/// Places `request` with `placer` and checks each task against an engine built from
/// scratch on the instances as they were: the placer's instance is among those the
/// fresh engine ranks first, and a short result fails where the fresh engine fails.
fn place_and_check(
    placer: &mut Placer,
    request: &PlacementRequest,
    seed: u64,
) -> Result<PlacementResult, ApiError> {
    let before = placer.instances().to_vec();
    let result = placer.place(request, seed)?;
    let mut fresh = Engine::new(&before, request, seed)?;
    for &i in &result.placements {
        let best = fresh.tied_best();
        assert!(
            best.contains(&i),
            "placed on {i}, fresh engine ranks first {best:?}; request {request:?}; instances {:#?}",
            (&before[i], best.first().map(|&b| &before[b]))
        );
        fresh.commit(&before, i);
    }
    if result.placements.len() < request.count as usize {
        assert!(
            fresh.tied_best().is_empty(),
            "the placer stopped short, the fresh engine did not"
        );
        assert_eq!(result.failures, fresh.failures(&before));
    } else {
        assert!(result.failures.is_empty());
    }
    // The instances took the tasks.
    for (i, (then, now)) in before.iter().zip(placer.instances()).enumerate() {
        let tasks = result.placements.iter().filter(|&&p| p == i).count() as i64;
        assert_eq!(
            now.remaining.cpu,
            then.remaining.cpu - tasks * request.resources.cpu
        );
        assert_eq!(
            now.remaining.memory,
            then.remaining.memory - tasks * request.resources.memory
        );
        assert_eq!(now.running_tasks_count, then.running_tasks_count + tasks);
    }
    Ok(result)
}

/// A task of some group stops on instance `i`: its resources and ports come back.
fn stop_one(placer: &mut Placer, i: usize, rng: &mut StdRng) {
    let mut view = placer.instances()[i].clone();
    let Some(group) = view
        .task_groups
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(group, _)| group.clone())
        .nth(rng.random_range(0..2))
    else {
        return;
    };
    if let Some(count) = view.task_groups.get_mut(&group) {
        *count -= 1;
    }
    view.running_tasks_count -= 1;
    view.remaining.cpu += 128;
    view.remaining.memory += 256;
    view.remaining.tcp_ports.remove(&80);
    assert!(placer.update(i, view));
}

/// Something a kept engine cannot follow: the agent, the status or an attribute.
fn change_instance(placer: &mut Placer, i: usize, rng: &mut StdRng) {
    let mut view = placer.instances()[i].clone();
    match rng.random_range(0..3) {
        0 => view.agent_connected = !view.agent_connected,
        1 => {
            view.status = if view.status == "ACTIVE" {
                "DRAINING"
            } else {
                "ACTIVE"
            }
            .to_string();
        }
        _ => {
            let mut attributes = (*view.attributes).clone();
            attributes.insert(
                "ecs.availability-zone".to_string(),
                Some(ZONES[rng.random_range(0..ZONES.len())].to_string()),
            );
            view.attributes = Arc::new(attributes);
        }
    }
    assert!(placer.update(i, view));
}

#[test]
fn every_task_goes_where_a_fresh_engine_ranks_first() -> Result<(), ApiError> {
    let shapes = shapes();
    for case in 0..25 {
        let mut rng = StdRng::seed_from_u64(case);
        let count = rng.random_range(1..40);
        let mut placer = Placer::new((0..count).map(|i| instance(i, &mut rng)).collect());
        for _ in 0..300 {
            let n = placer.instances().len();
            match rng.random_range(0..20) {
                0..=11 => {
                    let mut request = shapes[rng.random_range(0..shapes.len())].clone();
                    request.count = rng.random_range(1..8);
                    place_and_check(&mut placer, &request, rng.random())?;
                }
                12..=17 => stop_one(&mut placer, rng.random_range(0..n), &mut rng),
                18 => change_instance(&mut placer, rng.random_range(0..n), &mut rng),
                _ => {
                    placer.push(instance(n, &mut rng));
                }
            }
            // Every kept engine, brought up to date, counts and ranks as a new one.
            placer.catch_up();
            for (shape, engine) in placer.kept_engines() {
                let fresh = Engine::new(placer.instances(), shape, 0)?;
                assert_eq!(engine.counts(), fresh.counts(), "{shape:?}");
                let mut kept_best = engine.tied_best();
                let mut fresh_best = fresh.tied_best();
                kept_best.sort_unstable();
                fresh_best.sort_unstable();
                assert_eq!(kept_best, fresh_best, "{shape:?}");
            }
        }
    }
    Ok(())
}

#[test]
fn a_kept_engine_follows_resources_freed_elsewhere() -> Result<(), ApiError> {
    use PlacementStrategyType::Binpack;
    let view = |id: usize, memory: i64| InstanceView {
        id: format!("i{id}"),
        status: "ACTIVE".to_string(),
        agent_connected: true,
        remaining: Remaining {
            cpu: 4096,
            memory,
            ..Remaining::default()
        },
        ..InstanceView::default()
    };
    let mut placer = Placer::new(vec![view(0, 1000), view(1, 2000), view(2, 3000)]);
    let request = PlacementRequest {
        resources: TaskResources {
            cpu: 10,
            memory: 500,
            ..TaskResources::default()
        },
        group: "family:app".to_string(),
        count: 1,
        strategies: vec![strategy(Binpack, Some("memory"))],
        ..PlacementRequest::default()
    };
    // Binpack: the least memory left first.
    assert_eq!(place_and_check(&mut placer, &request, 1)?.placements, [0]);
    assert_eq!(place_and_check(&mut placer, &request, 2)?.placements, [0]);
    // Instance 0 is full now; its tasks stop and it has the most memory left.
    assert!(placer.update(0, view(0, 5000)));
    assert_eq!(place_and_check(&mut placer, &request, 3)?.placements, [1]);
    // A task that needs more than any instance has fails on each, with reasons.
    let big = PlacementRequest {
        resources: TaskResources {
            cpu: 10,
            memory: 6000,
            ..TaskResources::default()
        },
        ..request.clone()
    };
    let result = place_and_check(&mut placer, &big, 4)?;
    assert!(result.placements.is_empty());
    assert_eq!(result.failures.len(), 3);
    Ok(())
}

#[test]
fn the_same_calls_give_the_same_placements() -> Result<(), ApiError> {
    let shapes = shapes();
    let run = || {
        let mut rng = StdRng::seed_from_u64(99);
        let mut placer = Placer::new((0..30).map(|i| instance(i, &mut rng)).collect());
        let mut all = Vec::new();
        for step in 0..200_u64 {
            let mut request = shapes[(step as usize) % shapes.len()].clone();
            request.count = 3;
            all.push(placer.place(&request, step)?.placements);
            stop_one(&mut placer, (step as usize * 7) % 30, &mut rng);
        }
        Ok::<_, ApiError>(all)
    };
    assert_eq!(run()?, run()?);
    Ok(())
}

#[test]
fn an_invalid_request_is_refused_and_changes_nothing() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut placer = Placer::new((0..5).map(|i| instance(i, &mut rng)).collect());
    let before = placer.instances().to_vec();
    let request = PlacementRequest {
        count: 1,
        constraints: vec![constraint(
            PlacementConstraintType::MemberOf,
            Some("(attribute:x == a"),
        )],
        ..PlacementRequest::default()
    };
    assert!(placer.place(&request, 1).is_err());
    assert_eq!(placer.instances(), before.as_slice());
}

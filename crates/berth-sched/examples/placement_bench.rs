//! Placement throughput on a large cluster: 10,000 instances across six
//! Availability Zones and five instance types, some already running tasks of
//! the group.
//!
//! Run with `cargo run --release -p berth-sched --example placement_bench`.
//! Prints a Markdown table: for each strategy/constraint mix, one large request
//! (setup amortised over many tasks), many RunTask-sized requests of 10 tasks
//! (setup paid each time), and the same small requests on a [`Placer`] that keeps
//! the cluster between them, with a task stopping somewhere after each request
//! (the kept engine brought forward by what changed).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth_model::task::{
    PlacementConstraint, PlacementConstraintType, PlacementStrategy, PlacementStrategyType,
    TaskResources,
};
use berth_sched::{InstanceView, PlacementRequest, Placer, Remaining, place};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const INSTANCES: usize = 10_000;
const ZONES: [&str; 6] = [
    "us-east-1a",
    "us-east-1b",
    "us-east-1c",
    "us-east-1d",
    "us-east-1e",
    "us-east-1f",
];
/// Type, CPU units, MiB.
const TYPES: [(&str, i64, i64); 5] = [
    ("t3.medium", 2048, 4096),
    ("t3.large", 2048, 8192),
    ("m5.large", 2048, 8192),
    ("c5.xlarge", 4096, 8192),
    ("r5.large", 2048, 16384),
];
const GROUP: &str = "service:web";

fn cluster() -> Vec<InstanceView> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..INSTANCES)
        .map(|i| {
            let (kind, cpu, memory) = TYPES[rng.random_range(0..TYPES.len())];
            let zone = ZONES[rng.random_range(0..ZONES.len())];
            let existing: u32 = rng.random_range(0..3);
            let others: u32 = rng.random_range(0..4);
            let mut attributes = BTreeMap::new();
            attributes.insert("ecs.availability-zone".to_string(), Some(zone.to_string()));
            attributes.insert("ecs.instance-type".to_string(), Some(kind.to_string()));
            attributes.insert("ecs.os-type".to_string(), Some("linux".to_string()));
            attributes.insert(
                "ecs.cpu-architecture".to_string(),
                Some("x86_64".to_string()),
            );
            let mut task_groups = BTreeMap::new();
            if existing > 0 {
                task_groups.insert(GROUP.to_string(), existing);
            }
            if others > 0 {
                task_groups.insert("family:batch".to_string(), others);
            }
            let used = i64::from(existing + others);
            InstanceView {
                id: format!("{i:032x}"),
                arn: format!(
                    "arn:aws:ecs:us-east-1:000000000000:container-instance/bench/{i:032x}"
                ),
                ec2_instance_id: Some(format!("i-{i:017x}")),
                status: "ACTIVE".to_string(),
                agent_connected: true,
                agent_version: Some("1.80.0".to_string()),
                registered_at: Some(1_700_000_000.0 + i as f64),
                attributes: attributes.into(),
                remaining: Remaining {
                    cpu: cpu - used * 128,
                    memory: memory - used * 256,
                    tcp_ports: [22, 2375, 2376, 51678, 51679].into_iter().collect(),
                    udp_ports: Default::default(),
                },
                running_tasks_count: i64::from(existing + others),
                task_groups,
            }
        })
        .collect()
}

fn strategy(kind: PlacementStrategyType, field: &str) -> PlacementStrategy {
    PlacementStrategy {
        strategy_type: Some(kind),
        field: Some(field.to_string()),
    }
}

fn request(
    count: u32,
    strategies: Vec<PlacementStrategy>,
    member_of: Option<&str>,
) -> PlacementRequest {
    PlacementRequest {
        resources: TaskResources {
            cpu: 32,
            memory: 64,
            tcp_ports: Vec::new(),
            udp_ports: Vec::new(),
        },
        group: GROUP.to_string(),
        count,
        task_definition_constraints: Vec::new(),
        constraints: member_of
            .map(|expression| PlacementConstraint {
                constraint_type: Some(PlacementConstraintType::MemberOf),
                expression: Some(expression.to_string()),
            })
            .into_iter()
            .collect(),
        strategies,
    }
}

struct Row {
    scenario: &'static str,
    shape: String,
    placed: usize,
    took: Duration,
    requests: u64,
}

fn run(
    instances: &[InstanceView],
    scenario: &'static str,
    strategies: &[PlacementStrategy],
    member_of: Option<&str>,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    // One large request: setup once, then one task after another.
    let big = request(100_000, strategies.to_vec(), member_of);
    let started = Instant::now();
    let result = place(instances, &big, 1).map_err(|e| e.to_string())?;
    rows.push(Row {
        scenario,
        shape: "1 request x 100,000 tasks".to_string(),
        placed: result.placements.len(),
        took: started.elapsed(),
        requests: 1,
    });
    // RunTask-sized requests: the whole setup every 10 tasks.
    let small = request(10, strategies.to_vec(), member_of);
    let requests = 200;
    let started = Instant::now();
    let mut placed = 0;
    for seed in 0..requests {
        placed += place(instances, &small, seed)
            .map_err(|e| e.to_string())?
            .placements
            .len();
    }
    rows.push(Row {
        scenario,
        shape: format!("{requests} requests x 10 tasks"),
        placed,
        took: started.elapsed(),
        requests,
    });
    // The same requests on a kept cluster. After each request a task stops on some
    // instance (its resources come back), so the next request has a change to read.
    let kept_requests = 5_000;
    let mut placer = Placer::new(instances.to_vec());
    let mut rng = StdRng::seed_from_u64(11);
    let started = Instant::now();
    let mut placed = 0;
    for seed in 0..kept_requests {
        placed += placer
            .place(&small, seed)
            .map_err(|e| e.to_string())?
            .placements
            .len();
        let at = rng.random_range(0..placer.instances().len());
        let mut view = placer.instances()[at].clone();
        if let Some(count) = view.task_groups.get_mut(GROUP).filter(|c| **c > 0) {
            *count -= 1;
            view.running_tasks_count -= 1;
            view.remaining.cpu += small.resources.cpu;
            view.remaining.memory += small.resources.memory;
            placer.update(at, view);
        }
    }
    rows.push(Row {
        scenario,
        shape: format!("{kept_requests} requests x 10 tasks, kept (Placer)"),
        placed,
        took: started.elapsed(),
        requests: kept_requests,
    });
    Ok(())
}

fn main() -> Result<(), String> {
    let instances = cluster();
    let binpack = strategy(PlacementStrategyType::Binpack, "memory");
    let spread = strategy(
        PlacementStrategyType::Spread,
        "attribute:ecs.availability-zone",
    );
    let member_of = "attribute:ecs.instance-type =~ t3.*";
    let mut rows = Vec::new();
    run(
        &instances,
        "binpack(memory)",
        std::slice::from_ref(&binpack),
        None,
        &mut rows,
    )?;
    run(
        &instances,
        "spread(attribute:ecs.availability-zone)",
        std::slice::from_ref(&spread),
        None,
        &mut rows,
    )?;
    run(
        &instances,
        "memberOf(instance-type =~ t3.*)",
        &[],
        Some(member_of),
        &mut rows,
    )?;
    run(
        &instances,
        "spread(az) + binpack(memory) + memberOf",
        &[spread, binpack],
        Some(member_of),
        &mut rows,
    )?;

    println!(
        "{INSTANCES} instances, {} zones, {} instance types",
        ZONES.len(),
        TYPES.len()
    );
    println!();
    println!("| scenario | shape | tasks placed | time | placements/s | per request |");
    println!("|---|---|---:|---:|---:|---:|");
    for row in rows {
        let requests = row.requests as f64;
        println!(
            "| {} | {} | {} | {:.1} ms | {:.0} | {:.0} µs |",
            row.scenario,
            row.shape,
            row.placed,
            row.took.as_secs_f64() * 1e3,
            row.placed as f64 / row.took.as_secs_f64(),
            row.took.as_secs_f64() * 1e6 / requests,
        );
    }
    Ok(())
}

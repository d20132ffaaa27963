//! Durability: whatever berth acknowledged survives `kill -9`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_sdk_ecs::types::{ContainerDefinition, TaskDefinitionStatus};
use common::{BerthServer, REGION, TestResult, cluster_arn};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const OPERATIONS: usize = 200;
const CONCURRENCY: usize = 16;
const FAMILIES: usize = 4;

/// What one acknowledged call created.
enum Acked {
    Cluster {
        name: String,
        arn: String,
    },
    Revision {
        family: String,
        revision: i32,
        arn: String,
    },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() -> TestResult {
    let mut server = BerthServer::start()?;
    let client = server.client();
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut calls = JoinSet::new();
    for i in 0..OPERATIONS {
        let client = client.clone();
        let permits = Arc::clone(&permits);
        calls.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            if i % 2 == 0 {
                let name = format!("burst-{i:03}");
                let out = client.create_cluster().cluster_name(&name).send().await?;
                let arn = out
                    .cluster()
                    .and_then(|c| c.cluster_arn())
                    .unwrap_or_default()
                    .to_string();
                TestResult::Ok(Acked::Cluster { name, arn })
            } else {
                let family = format!("burst-family-{}", i % FAMILIES);
                let container = ContainerDefinition::builder()
                    .name("app")
                    .image("busybox")
                    .memory(64)
                    .command(format!("call-{i}"))
                    .build();
                let out = client
                    .register_task_definition()
                    .family(&family)
                    .container_definitions(container)
                    .send()
                    .await?;
                let td = out.task_definition();
                let revision = td.map(|td| td.revision()).unwrap_or_default();
                let arn = td
                    .and_then(|td| td.task_definition_arn())
                    .unwrap_or_default()
                    .to_string();
                TestResult::Ok(Acked::Revision {
                    family,
                    revision,
                    arn,
                })
            }
        });
    }
    let mut acked = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = calls.join_next().await {
        match joined? {
            Ok(ack) => acked.push(ack),
            Err(err) => failures.push(err.to_string()),
        }
    }
    // The moment the last answer is in: no chance to flush anything more.
    server.kill9()?;
    assert!(
        failures.is_empty(),
        "{} calls failed under load: {failures:?}",
        failures.len()
    );
    assert_eq!(acked.len(), OPERATIONS);

    let mut clusters = BTreeMap::new();
    let mut revisions: BTreeMap<String, BTreeMap<i32, String>> = BTreeMap::new();
    for ack in acked {
        match ack {
            Acked::Cluster { name, arn } => {
                assert_eq!(arn, cluster_arn(REGION, &name));
                clusters.insert(name, arn);
            }
            Acked::Revision {
                family,
                revision,
                arn,
            } => {
                let previous = revisions
                    .entry(family.clone())
                    .or_default()
                    .insert(revision, arn);
                assert!(previous.is_none(), "{family}:{revision} acknowledged twice");
            }
        }
    }
    // Concurrent registrations of a family got the revisions 1..=n, each once.
    for (family, by_revision) in &revisions {
        let numbers: Vec<i32> = by_revision.keys().copied().collect();
        let expected: Vec<i32> = (1..=numbers.len() as i32).collect();
        assert_eq!(numbers, expected, "revisions of {family}");
    }

    server.restart()?;
    let client = server.client();
    let names: Vec<String> = clusters.keys().cloned().collect();
    for chunk in names.chunks(100) {
        let out = client
            .describe_clusters()
            .set_clusters(Some(chunk.to_vec()))
            .send()
            .await?;
        assert!(
            out.failures().is_empty(),
            "acknowledged clusters lost after kill -9: {:?}",
            out.failures()
        );
        for cluster in out.clusters() {
            let name = cluster.cluster_name().unwrap_or_default();
            assert_eq!(
                cluster.cluster_arn(),
                clusters.get(name).map(String::as_str)
            );
            assert_eq!(cluster.status(), Some("ACTIVE"));
        }
        assert_eq!(out.clusters().len(), chunk.len());
    }
    let mut listed = BTreeSet::new();
    let mut token = None;
    loop {
        let page = client.list_clusters().set_next_token(token).send().await?;
        listed.extend(page.cluster_arns().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(listed, clusters.values().cloned().collect::<BTreeSet<_>>());

    for (family, by_revision) in &revisions {
        for (revision, arn) in by_revision {
            let out = client
                .describe_task_definition()
                .task_definition(arn)
                .send()
                .await?;
            let td = out.task_definition();
            assert_eq!(
                td.and_then(|td| td.task_definition_arn()),
                Some(arn.as_str())
            );
            assert_eq!(td.map(|td| td.revision()), Some(*revision));
            assert_eq!(
                td.and_then(|td| td.status()),
                Some(&TaskDefinitionStatus::Active)
            );
        }
        // The next registration continues the family: no revision is handed out twice.
        let container = ContainerDefinition::builder()
            .name("app")
            .image("busybox")
            .memory(64)
            .build();
        let out = client
            .register_task_definition()
            .family(family)
            .container_definitions(container)
            .send()
            .await?;
        let next = out
            .task_definition()
            .map(|td| td.revision())
            .unwrap_or_default();
        assert_eq!(
            next,
            by_revision.len() as i32 + 1,
            "the revision after a restart in {family}"
        );
    }
    Ok(())
}

//! Clusters: CreateCluster, DescribeClusters, ListClusters, UpdateCluster,
//! UpdateClusterSettings, PutClusterCapacityProviders, DeleteCluster, as ECS answers them.

mod common;

use std::collections::BTreeSet;

use aws_sdk_ecs::types::{
    CapacityProviderStrategyItem, Cluster, ClusterConfiguration, ClusterField, ClusterSetting,
    ClusterSettingName, ExecuteCommandConfiguration, ExecuteCommandLogConfiguration,
    ExecuteCommandLogging, Tag,
};
use common::{BerthServer, REGION, Require, TestResult, cluster_arn, service_error};
use serde_json::json;

fn tag(key: &str, value: &str) -> TestResult<Tag> {
    Ok(Tag::builder().key(key).value(value).build())
}

fn container_insights(value: &str) -> ClusterSetting {
    ClusterSetting::builder()
        .name(ClusterSettingName::ContainerInsights)
        .value(value)
        .build()
}

fn setting_value(cluster: &Cluster) -> Option<&str> {
    cluster
        .settings()
        .iter()
        .find(|s| s.name() == Some(&ClusterSettingName::ContainerInsights))
        .and_then(|s| s.value())
}

fn tags_of(cluster: &Cluster) -> BTreeSet<(String, String)> {
    cluster
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn describe_one(
    server: &BerthServer,
    name: &str,
    include: &[ClusterField],
) -> TestResult<Cluster> {
    let out = server
        .client()
        .describe_clusters()
        .clusters(name)
        .set_include(Some(include.to_vec()))
        .send()
        .await?;
    assert!(out.failures().is_empty(), "{:?}", out.failures());
    assert_eq!(out.clusters().len(), 1, "{out:?}");
    Ok(out.clusters()[0].clone())
}

async fn list_all(client: &aws_sdk_ecs::Client) -> TestResult<Vec<String>> {
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let page = client.list_clusters().set_next_token(token).send().await?;
        arns.extend(page.cluster_arns().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(arns);
        }
    }
}

#[tokio::test]
async fn create_cluster_without_a_name_creates_default() -> TestResult {
    let server = BerthServer::start()?;
    let out = server.client().create_cluster().send().await?;
    let cluster = out.cluster().req("cluster")?;
    assert_eq!(cluster.cluster_name(), Some("default"));
    assert_eq!(
        cluster.cluster_arn(),
        Some(cluster_arn(REGION, "default").as_str())
    );
    assert_eq!(cluster.status(), Some("ACTIVE"));
    assert_eq!(cluster.registered_container_instances_count(), 0);
    assert_eq!(cluster.running_tasks_count(), 0);
    assert_eq!(cluster.pending_tasks_count(), 0);
    assert_eq!(cluster.active_services_count(), 0);

    // DescribeClusters with no cluster named describes "default".
    let described = server.client().describe_clusters().send().await?;
    assert_eq!(described.clusters().len(), 1, "{described:?}");
    assert_eq!(described.clusters()[0].cluster_name(), Some("default"));
    Ok(())
}

#[tokio::test]
async fn create_cluster_keeps_tags_and_settings() -> TestResult {
    let server = BerthServer::start()?;
    let out = server
        .client()
        .create_cluster()
        .cluster_name("tagged")
        .tags(tag("env", "test")?)
        .tags(tag("team", "e2e")?)
        .settings(container_insights("enabled"))
        .send()
        .await?;
    let cluster = out.cluster().req("cluster")?;
    assert_eq!(tags_of(cluster), pairs(&[("env", "test"), ("team", "e2e")]));
    assert_eq!(setting_value(cluster), Some("enabled"));

    let described = describe_one(
        &server,
        "tagged",
        &[ClusterField::Tags, ClusterField::Settings],
    )
    .await?;
    assert_eq!(
        tags_of(&described),
        pairs(&[("env", "test"), ("team", "e2e")])
    );
    assert_eq!(setting_value(&described), Some("enabled"));
    Ok(())
}

#[tokio::test]
async fn create_cluster_is_idempotent() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    let first = client.create_cluster().cluster_name("twice").send().await?;
    let second = client.create_cluster().cluster_name("twice").send().await?;
    let arn = cluster_arn(REGION, "twice");
    assert_eq!(
        first.cluster().and_then(Cluster::cluster_arn),
        Some(arn.as_str())
    );
    assert_eq!(
        second.cluster().and_then(Cluster::cluster_arn),
        Some(arn.as_str())
    );
    assert_eq!(second.cluster().and_then(Cluster::status), Some("ACTIVE"));
    assert_eq!(list_all(&client).await?, vec![arn]);
    Ok(())
}

#[tokio::test]
async fn describe_clusters_include_selects_what_is_returned() -> TestResult {
    let server = BerthServer::start()?;
    let exec = ExecuteCommandConfiguration::builder()
        .logging(ExecuteCommandLogging::Default)
        .build();
    server
        .client()
        .create_cluster()
        .cluster_name("incl")
        .tags(tag("k", "v")?)
        .settings(container_insights("enabled"))
        .configuration(
            ClusterConfiguration::builder()
                .execute_command_configuration(exec)
                .build(),
        )
        .send()
        .await?;

    let bare = describe_one(&server, "incl", &[]).await?;
    assert_eq!(bare.status(), Some("ACTIVE"));
    assert_eq!(bare.registered_container_instances_count(), 0);
    assert_eq!(bare.running_tasks_count(), 0);
    assert_eq!(bare.pending_tasks_count(), 0);
    assert_eq!(bare.active_services_count(), 0);
    assert!(
        bare.tags().is_empty(),
        "tags without TAGS: {:?}",
        bare.tags()
    );
    assert!(
        bare.statistics().is_empty(),
        "statistics without STATISTICS: {:?}",
        bare.statistics()
    );
    assert!(
        bare.settings().is_empty(),
        "settings without SETTINGS: {:?}",
        bare.settings()
    );
    assert!(
        bare.configuration().is_none(),
        "configuration without CONFIGURATIONS: {:?}",
        bare.configuration()
    );

    let statistics = describe_one(&server, "incl", &[ClusterField::Statistics]).await?;
    assert!(
        !statistics.statistics().is_empty(),
        "STATISTICS returned none"
    );
    for pair in statistics.statistics() {
        assert!(pair.name().is_some_and(|n| !n.is_empty()), "{pair:?}");
        assert_eq!(
            pair.value(),
            Some("0"),
            "an empty cluster counts nothing: {pair:?}"
        );
    }
    assert!(statistics.tags().is_empty());

    let tags = describe_one(&server, "incl", &[ClusterField::Tags]).await?;
    assert_eq!(tags_of(&tags), pairs(&[("k", "v")]));
    assert!(tags.statistics().is_empty());

    let settings = describe_one(&server, "incl", &[ClusterField::Settings]).await?;
    assert_eq!(setting_value(&settings), Some("enabled"));

    let configurations = describe_one(&server, "incl", &[ClusterField::Configurations]).await?;
    let logging = configurations
        .configuration()
        .and_then(ClusterConfiguration::execute_command_configuration)
        .and_then(ExecuteCommandConfiguration::logging);
    assert_eq!(logging, Some(&ExecuteCommandLogging::Default));
    Ok(())
}

#[tokio::test]
async fn describe_clusters_reports_missing_ones_as_failures() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    client.create_cluster().cluster_name("here").send().await?;
    let missing_arn = cluster_arn(REGION, "gone-by-arn");
    let out = client
        .describe_clusters()
        .clusters("here")
        .clusters("gone")
        .clusters(&missing_arn)
        .send()
        .await?;
    assert_eq!(out.clusters().len(), 1, "{out:?}");
    assert_eq!(out.clusters()[0].cluster_name(), Some("here"));
    let failures: BTreeSet<(String, String)> = out
        .failures()
        .iter()
        .map(|f| {
            (
                f.arn().unwrap_or_default().to_string(),
                f.reason().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        (cluster_arn(REGION, "gone"), "MISSING".to_string()),
        (missing_arn.clone(), "MISSING".to_string()),
    ]
    .into();
    assert_eq!(failures, expected);

    // Missing clusters are not an error: HTTP 200.
    let raw = server
        .call("DescribeClusters", &json!({"clusters": ["gone"]}))
        .await?;
    assert_eq!(raw.status, 200, "{}", raw.text());
    let body = raw.json()?;
    assert_eq!(body["clusters"], json!([]));
    assert_eq!(body["failures"][0]["reason"], "MISSING");
    Ok(())
}

#[tokio::test]
async fn describe_clusters_by_name_and_by_arn() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    client.create_cluster().cluster_name("named").send().await?;
    let by_name = describe_one(&server, "named", &[]).await?;
    let by_arn = describe_one(&server, &cluster_arn(REGION, "named"), &[]).await?;
    assert_eq!(
        by_name.cluster_arn(),
        Some(cluster_arn(REGION, "named").as_str())
    );
    assert_eq!(by_name, by_arn);
    Ok(())
}

#[tokio::test]
async fn list_clusters_pages_through_every_cluster_once() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    let names = ["c-a", "c-b", "c-c", "c-d", "c-e", "c-f", "c-g"];
    for name in names {
        client.create_cluster().cluster_name(name).send().await?;
    }
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_clusters()
            .max_results(3)
            .set_next_token(token)
            .send()
            .await?;
        assert!(
            page.cluster_arns().len() <= 3,
            "a page over maxResults: {page:?}"
        );
        pages.push(page.cluster_arns().to_vec());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
        assert!(pages.len() < 10, "ListClusters does not stop paging");
    }
    assert_eq!(pages.len(), 3, "7 clusters, 3 a page: {pages:?}");
    let all: Vec<String> = pages.concat();
    let unique: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(all.len(), unique.len(), "an ARN listed twice: {all:?}");
    let expected: BTreeSet<String> = names.iter().map(|n| cluster_arn(REGION, n)).collect();
    assert_eq!(unique, expected);
    for arn in &all {
        assert!(
            arn.starts_with("arn:aws:ecs:us-east-1:123456789012:cluster/"),
            "{arn}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn update_cluster_changes_settings_and_configuration() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    client.create_cluster().cluster_name("upd").send().await?;
    let log = ExecuteCommandLogConfiguration::builder()
        .cloud_watch_log_group_name("/berth/exec")
        .cloud_watch_encryption_enabled(true)
        .build();
    let exec = ExecuteCommandConfiguration::builder()
        .logging(ExecuteCommandLogging::Override)
        .log_configuration(log)
        .build();
    let out = client
        .update_cluster()
        .cluster("upd")
        .settings(container_insights("enabled"))
        .configuration(
            ClusterConfiguration::builder()
                .execute_command_configuration(exec.clone())
                .build(),
        )
        .send()
        .await?;
    let cluster = out.cluster().req("cluster")?;
    assert_eq!(
        cluster.cluster_arn(),
        Some(cluster_arn(REGION, "upd").as_str())
    );
    assert_eq!(setting_value(cluster), Some("enabled"));

    let described = describe_one(
        &server,
        "upd",
        &[ClusterField::Settings, ClusterField::Configurations],
    )
    .await?;
    assert_eq!(setting_value(&described), Some("enabled"));
    assert_eq!(
        described
            .configuration()
            .and_then(ClusterConfiguration::execute_command_configuration),
        Some(&exec)
    );

    let missing = service_error(
        client
            .update_cluster()
            .cluster("nope")
            .settings(container_insights("enabled"))
            .send()
            .await,
    )?;
    missing.assert_code(&["ClusterNotFoundException"]);
    Ok(())
}

#[tokio::test]
async fn update_cluster_settings_sets_container_insights() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    client
        .create_cluster()
        .cluster_name("ins")
        .settings(container_insights("disabled"))
        .send()
        .await?;
    let out = client
        .update_cluster_settings()
        .cluster("ins")
        .settings(container_insights("enabled"))
        .send()
        .await?;
    assert_eq!(out.cluster().and_then(setting_value), Some("enabled"));
    let described = describe_one(&server, "ins", &[ClusterField::Settings]).await?;
    assert_eq!(setting_value(&described), Some("enabled"));

    let invalid = service_error(
        client
            .update_cluster_settings()
            .cluster("ins")
            .settings(container_insights("sometimes"))
            .send()
            .await,
    )?;
    invalid.assert_code(&["InvalidParameterException", "ClientException"]);
    let described = describe_one(&server, "ins", &[ClusterField::Settings]).await?;
    assert_eq!(
        setting_value(&described),
        Some("enabled"),
        "a refused update changed the cluster"
    );

    let missing = service_error(
        client
            .update_cluster_settings()
            .cluster("nope")
            .settings(container_insights("enabled"))
            .send()
            .await,
    )?;
    missing.assert_code(&["ClusterNotFoundException"]);
    Ok(())
}

#[tokio::test]
async fn put_cluster_capacity_providers_accepts_fargate_only_known_ones() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    client.create_cluster().cluster_name("cap").send().await?;
    let fargate = CapacityProviderStrategyItem::builder()
        .capacity_provider("FARGATE")
        .weight(1)
        .base(1)
        .build()?;
    let spot = CapacityProviderStrategyItem::builder()
        .capacity_provider("FARGATE_SPOT")
        .weight(4)
        .build()?;
    let out = client
        .put_cluster_capacity_providers()
        .cluster("cap")
        .capacity_providers("FARGATE")
        .capacity_providers("FARGATE_SPOT")
        .default_capacity_provider_strategy(fargate.clone())
        .default_capacity_provider_strategy(spot.clone())
        .send()
        .await?;
    let cluster = out.cluster().req("cluster")?;
    assert_eq!(cluster.capacity_providers(), ["FARGATE", "FARGATE_SPOT"]);
    assert_eq!(
        cluster.default_capacity_provider_strategy(),
        [fargate.clone(), spot.clone()]
    );

    let described = describe_one(&server, "cap", &[]).await?;
    assert_eq!(described.capacity_providers(), ["FARGATE", "FARGATE_SPOT"]);
    assert_eq!(
        described.default_capacity_provider_strategy(),
        [fargate.clone(), spot.clone()]
    );

    let unknown = service_error(
        client
            .put_cluster_capacity_providers()
            .cluster("cap")
            .capacity_providers("NO_SUCH_PROVIDER")
            .set_default_capacity_provider_strategy(Some(Vec::new()))
            .send()
            .await,
    )?;
    unknown.assert_code(&["InvalidParameterException"]);
    let described = describe_one(&server, "cap", &[]).await?;
    assert_eq!(
        described.capacity_providers(),
        ["FARGATE", "FARGATE_SPOT"],
        "a refused call changed the cluster"
    );

    let missing = service_error(
        client
            .put_cluster_capacity_providers()
            .cluster("nope")
            .capacity_providers("FARGATE")
            .set_default_capacity_provider_strategy(Some(Vec::new()))
            .send()
            .await,
    )?;
    missing.assert_code(&["ClusterNotFoundException"]);
    Ok(())
}

#[tokio::test]
async fn delete_cluster_makes_it_inactive() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    client
        .create_cluster()
        .cluster_name("doomed")
        .send()
        .await?;
    client.create_cluster().cluster_name("kept").send().await?;

    let out = client.delete_cluster().cluster("doomed").send().await?;
    let cluster = out.cluster().req("cluster")?;
    assert_eq!(cluster.status(), Some("INACTIVE"));
    assert_eq!(
        cluster.cluster_arn(),
        Some(cluster_arn(REGION, "doomed").as_str())
    );

    assert_eq!(list_all(&client).await?, vec![cluster_arn(REGION, "kept")]);

    let described = client.describe_clusters().clusters("doomed").send().await?;
    assert_eq!(
        described.clusters().len(),
        1,
        "an INACTIVE cluster stays describable: {described:?}"
    );
    assert_eq!(described.clusters()[0].status(), Some("INACTIVE"));

    let again = service_error(client.delete_cluster().cluster("doomed").send().await)?;
    again.assert_code(&["ClusterNotFoundException"]);
    assert_eq!(again.status, Some(400));

    let never = service_error(
        client
            .delete_cluster()
            .cluster(cluster_arn(REGION, "never"))
            .send()
            .await,
    )?;
    never.assert_code(&["ClusterNotFoundException"]);

    // The name of an INACTIVE cluster can be used again.
    let recreated = client
        .create_cluster()
        .cluster_name("doomed")
        .send()
        .await?;
    assert_eq!(
        recreated.cluster().and_then(Cluster::status),
        Some("ACTIVE")
    );
    let listed: BTreeSet<String> = list_all(&client).await?.into_iter().collect();
    assert_eq!(
        listed,
        [cluster_arn(REGION, "doomed"), cluster_arn(REGION, "kept")].into()
    );
    Ok(())
}

#[tokio::test]
async fn invalid_cluster_names_are_refused() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    let too_long = "x".repeat(256);
    for name in [
        "bad name",
        "slash/name",
        "dot.name",
        "ünïcode",
        too_long.as_str(),
    ] {
        let err = service_error(client.create_cluster().cluster_name(name).send().await)?;
        err.assert_code(&["InvalidParameterException"]);
        assert_eq!(err.status, Some(400), "{err:?}");
    }
    // 255 characters is the longest valid name.
    let longest = "y".repeat(255);
    client
        .create_cluster()
        .cluster_name(&longest)
        .send()
        .await?;
    assert_eq!(
        list_all(&client).await?,
        vec![cluster_arn(REGION, &longest)]
    );
    Ok(())
}

#[tokio::test]
async fn regions_are_separate() -> TestResult {
    let server = BerthServer::start()?;
    let east = server.client();
    let west = server.client_in("eu-west-1");
    let created = east
        .create_cluster()
        .cluster_name("regional")
        .send()
        .await?;
    assert_eq!(
        created.cluster().and_then(Cluster::cluster_arn),
        Some(cluster_arn("us-east-1", "regional").as_str())
    );

    assert!(
        list_all(&west).await?.is_empty(),
        "eu-west-1 sees a us-east-1 cluster"
    );
    let described = west.describe_clusters().clusters("regional").send().await?;
    assert!(described.clusters().is_empty(), "{described:?}");
    assert_eq!(described.failures().len(), 1);
    assert_eq!(
        described.failures()[0].arn(),
        Some(cluster_arn("eu-west-1", "regional").as_str())
    );
    assert_eq!(described.failures()[0].reason(), Some("MISSING"));

    let west_cluster = west
        .create_cluster()
        .cluster_name("regional")
        .send()
        .await?;
    assert_eq!(
        west_cluster.cluster().and_then(Cluster::cluster_arn),
        Some(cluster_arn("eu-west-1", "regional").as_str())
    );
    west.delete_cluster().cluster("regional").send().await?;
    assert_eq!(
        list_all(&east).await?,
        vec![cluster_arn("us-east-1", "regional")]
    );
    assert!(list_all(&west).await?.is_empty());
    Ok(())
}

//! CreateCluster, DeleteCluster, DescribeClusters, ListClusters, UpdateCluster,
//! UpdateClusterSettings, PutClusterCapacityProviders.

use berth_model::arn::{cluster_name, is_valid_name};
use berth_model::cluster::*;
use berth_model::common::{Failure, KeyValuePair};
use berth_model::pagination::{PageRequest, page};
use berth_model::tagging::validate_new_tags;
use berth_model::{ApiError, ApiResult, ErrorCode};
use berth_store::{Compare, Snapshot, Txn};

use super::Ctx;
use crate::state::{self, Versioned, keys};

pub const ACTIVE: &str = "ACTIVE";
pub const INACTIVE: &str = "INACTIVE";

/// The capacity providers every cluster may use without creating them.
const BUILT_IN_CAPACITY_PROVIDERS: [&str; 2] = ["FARGATE", "FARGATE_SPOT"];

/// Reads an ACTIVE cluster, or fails with ClusterNotFoundException.
pub fn read_active(snapshot: &Snapshot, region: &str, name: &str) -> ApiResult<Versioned<Cluster>> {
    match state::read::<Cluster>(snapshot, &keys::cluster(region, name))? {
        Some(found) if found.value.status.as_deref() == Some(ACTIVE) => Ok(found),
        _ => Err(ApiError::cluster_not_found()),
    }
}

/// What a cluster holds, counted from the store.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    instances: i32,
    running_tasks: i32,
    pending_tasks: i32,
    services: i32,
}

/// The fields of a task record that the cluster counts need.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskStatus {
    last_status: Option<String>,
    desired_status: Option<String>,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn counts(snapshot: &Snapshot, region: &str, cluster: &str) -> ApiResult<Counts> {
    let mut counts = Counts {
        instances: count(snapshot.count_prefix(&keys::container_instances(region, cluster))),
        services: count(snapshot.count_prefix(&keys::services(region, cluster))),
        ..Counts::default()
    };
    for kv in snapshot.iter_prefix(&keys::tasks(region, cluster)) {
        let task: TaskStatus = state::decode_record(kv)?;
        match (task.last_status.as_deref(), task.desired_status.as_deref()) {
            (Some("STOPPED"), _) => {}
            (Some("RUNNING"), _) => counts.running_tasks += 1,
            (_, Some("STOPPED")) => {}
            _ => counts.pending_tasks += 1,
        }
    }
    Ok(counts)
}

/// The cluster as DescribeClusters shows it: counts filled in, optional parts per `include`.
fn present(
    snapshot: &Snapshot,
    region: &str,
    mut cluster: Cluster,
    include: &[ClusterField],
) -> ApiResult<Cluster> {
    let name = cluster.cluster_name.clone().unwrap_or_default();
    let counts = counts(snapshot, region, &name)?;
    cluster.registered_container_instances_count = Some(counts.instances);
    cluster.running_tasks_count = Some(counts.running_tasks);
    cluster.pending_tasks_count = Some(counts.pending_tasks);
    cluster.active_services_count = Some(counts.services);
    cluster.statistics = Some(if include.contains(&ClusterField::Statistics) {
        statistics(counts)
    } else {
        Vec::new()
    });
    if !include.contains(&ClusterField::Tags) {
        cluster.tags = Some(Vec::new());
    }
    if !include.contains(&ClusterField::Settings) {
        cluster.settings = None;
    }
    if !include.contains(&ClusterField::Configurations) {
        cluster.configuration = None;
    }
    if !include.contains(&ClusterField::Attachments) {
        cluster.attachments = None;
    }
    cluster.capacity_providers.get_or_insert_with(Vec::new);
    cluster
        .default_capacity_provider_strategy
        .get_or_insert_with(Vec::new);
    Ok(cluster)
}

/// The whole cluster, as the operations that return one cluster answer.
fn present_all(snapshot: &Snapshot, region: &str, cluster: Cluster) -> ApiResult<Cluster> {
    let all = [
        ClusterField::Settings,
        ClusterField::Configurations,
        ClusterField::Tags,
    ];
    present(snapshot, region, cluster, &all)
}

fn statistics(counts: Counts) -> Vec<KeyValuePair> {
    // berth runs every task on its instances, so the EC2 figures carry everything.
    let pairs = [
        ("runningEC2TasksCount", counts.running_tasks),
        ("runningFargateTasksCount", 0),
        ("pendingEC2TasksCount", counts.pending_tasks),
        ("pendingFargateTasksCount", 0),
        ("runningExternalTasksCount", 0),
        ("pendingExternalTasksCount", 0),
        ("activeEC2ServiceCount", counts.services),
        ("activeFargateServiceCount", 0),
        ("drainingEC2ServiceCount", 0),
        ("drainingFargateServiceCount", 0),
        ("activeExternalServiceCount", 0),
        ("drainingExternalServiceCount", 0),
    ];
    pairs
        .into_iter()
        .map(|(name, value)| KeyValuePair {
            name: Some(name.to_string()),
            value: Some(value.to_string()),
        })
        .collect()
}

fn validate_settings(settings: &[ClusterSetting]) -> ApiResult<()> {
    for setting in settings {
        let value = setting.value.as_deref().unwrap_or("");
        match setting.name {
            Some(ClusterSettingName::ContainerInsights) => {
                if !["enabled", "disabled", "enhanced"].contains(&value) {
                    return Err(ApiError::invalid_parameter(format!(
                        "Invalid value '{value}' for cluster setting containerInsights: expected enabled, disabled or enhanced."
                    )));
                }
            }
            None => {
                return Err(ApiError::invalid_parameter(
                    "A cluster setting needs a name.",
                ));
            }
        }
    }
    Ok(())
}

/// Overlays `updates` on `current`, one setting per name.
fn merge_settings(current: &mut Vec<ClusterSetting>, updates: &[ClusterSetting]) {
    for update in updates {
        match current.iter_mut().find(|s| s.name == update.name) {
            Some(existing) => existing.value = update.value.clone(),
            None => current.push(update.clone()),
        }
    }
}

fn validate_capacity_providers(
    providers: &[String],
    strategy: &[CapacityProviderStrategyItem],
) -> ApiResult<()> {
    for (i, provider) in providers.iter().enumerate() {
        if !BUILT_IN_CAPACITY_PROVIDERS.contains(&provider.as_str()) {
            return Err(ApiError::invalid_parameter(format!(
                "The specified capacity provider '{provider}' does not exist. Specify a valid capacity provider and try again."
            )));
        }
        if providers[..i].contains(provider) {
            return Err(ApiError::invalid_parameter(format!(
                "The capacity provider '{provider}' is listed more than once."
            )));
        }
    }
    let mut with_base = 0;
    for (i, item) in strategy.iter().enumerate() {
        let name = &item.capacity_provider;
        if !providers.contains(name) {
            return Err(ApiError::invalid_parameter(format!(
                "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider '{name}' with the cluster or specify a valid capacity provider and try again."
            )));
        }
        if strategy[..i]
            .iter()
            .any(|other| &other.capacity_provider == name)
        {
            return Err(ApiError::invalid_parameter(format!(
                "The capacity provider strategy names '{name}' more than once."
            )));
        }
        if !(0..=1000).contains(&item.weight.unwrap_or(0)) {
            return Err(ApiError::invalid_parameter(format!(
                "The weight of capacity provider '{name}' must be between 0 and 1000."
            )));
        }
        let base = item.base.unwrap_or(0);
        if !(0..=100_000).contains(&base) {
            return Err(ApiError::invalid_parameter(format!(
                "The base of capacity provider '{name}' must be between 0 and 100000."
            )));
        }
        if base > 0 {
            with_base += 1;
        }
    }
    if with_base > 1 {
        return Err(ApiError::invalid_parameter(
            "Only one capacity provider in a strategy can have a base greater than 0.",
        ));
    }
    Ok(())
}

pub async fn create_cluster(
    ctx: &Ctx<'_>,
    req: CreateClusterRequest,
) -> ApiResult<ClusterResponse> {
    let name = req
        .cluster_name
        .clone()
        .unwrap_or_else(|| "default".to_string());
    if !is_valid_name(&name) {
        return Err(ApiError::invalid_parameter(
            "Cluster name can have up to 255 characters: letters (uppercase and lowercase), numbers, underscores and hyphens.",
        ));
    }
    let tags = req.tags.clone().unwrap_or_default();
    validate_new_tags(&tags)?;
    let settings = req.settings.clone().unwrap_or_default();
    validate_settings(&settings)?;
    let providers = req.capacity_providers.clone().unwrap_or_default();
    let strategy = req
        .default_capacity_provider_strategy
        .clone()
        .unwrap_or_default();
    validate_capacity_providers(&providers, &strategy)?;

    let key = keys::cluster(ctx.region(), &name);
    let fresh = Cluster {
        cluster_arn: Some(ctx.scope.cluster_arn(&name)),
        cluster_name: Some(name.clone()),
        configuration: req.configuration.clone(),
        status: Some(ACTIVE.to_string()),
        tags: Some(tags),
        settings: Some(if settings.is_empty() {
            vec![ClusterSetting {
                name: Some(ClusterSettingName::ContainerInsights),
                value: Some("disabled".to_string()),
            }]
        } else {
            settings
        }),
        capacity_providers: Some(providers),
        default_capacity_provider_strategy: Some(strategy),
        service_connect_defaults: req.service_connect_defaults.as_ref().map(|d| {
            ClusterServiceConnectDefaults {
                namespace: Some(d.namespace.clone()),
            }
        }),
        ..Cluster::default()
    };
    let record = state::encode_record(&fresh)?;
    state::write(ctx.store, |snapshot| {
        match state::read::<Cluster>(snapshot, &key)? {
            // CreateCluster is idempotent: an active cluster of that name is the answer.
            Some(existing) if existing.value.status.as_deref() == Some(ACTIVE) => {
                Ok((None, present_all(snapshot, ctx.region(), existing.value)?))
            }
            previous => {
                let revision = previous.map_or(0, |p| p.mod_revision);
                let txn = Txn::new()
                    .when(Compare::unchanged(&key, revision))
                    .put(&key, record.clone());
                Ok((
                    Some(txn),
                    present_all(snapshot, ctx.region(), fresh.clone())?,
                ))
            }
        }
    })
    .await
    .map(|cluster| ClusterResponse { cluster })
}

pub async fn delete_cluster(
    ctx: &Ctx<'_>,
    req: DeleteClusterRequest,
) -> ApiResult<ClusterResponse> {
    let name = cluster_name(Some(&req.cluster))?;
    let key = keys::cluster(ctx.region(), &name);
    state::write(ctx.store, |snapshot| {
        let found = read_active(snapshot, ctx.region(), &name)?;
        let counts = counts(snapshot, ctx.region(), &name)?;
        if counts.instances > 0 {
            return Err(ApiError::new(
                ErrorCode::ClusterContainsContainerInstancesException,
                "The Cluster cannot be deleted while Container Instances are active or draining.",
            ));
        }
        if counts.services > 0 {
            return Err(ApiError::new(
                ErrorCode::ClusterContainsServicesException,
                "The Cluster cannot be deleted while Services are active.",
            ));
        }
        if counts.running_tasks + counts.pending_tasks > 0 {
            return Err(ApiError::new(
                ErrorCode::ClusterContainsTasksException,
                "The Cluster cannot be deleted while Tasks are active.",
            ));
        }
        let mut cluster = found.value;
        cluster.status = Some(INACTIVE.to_string());
        // An INACTIVE cluster stays describable, as in ECS; its name may be reused.
        let txn = Txn::new()
            .when(Compare::unchanged(&key, found.mod_revision))
            .put(&key, state::encode_record(&cluster)?);
        Ok((Some(txn), present_all(snapshot, ctx.region(), cluster)?))
    })
    .await
    .map(|cluster| ClusterResponse { cluster })
}

pub async fn describe_clusters(
    ctx: &Ctx<'_>,
    req: DescribeClustersRequest,
) -> ApiResult<DescribeClustersResponse> {
    let identifiers = req.clusters.unwrap_or_else(|| vec!["default".to_string()]);
    if identifiers.len() > 100 {
        return Err(ApiError::invalid_parameter(
            "At most 100 clusters can be described at once.",
        ));
    }
    let include = req.include.unwrap_or_default();
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    let mut response = DescribeClustersResponse::default();
    for identifier in identifiers {
        let found = match cluster_name(Some(&identifier)) {
            Ok(name) => state::read::<Cluster>(&snapshot, &keys::cluster(ctx.region(), &name))?,
            Err(_) => None,
        };
        match found {
            Some(found) => {
                response
                    .clusters
                    .push(present(&snapshot, ctx.region(), found.value, &include)?)
            }
            None => response.failures.push(Failure {
                arn: Some(if identifier.starts_with("arn:") {
                    identifier
                } else {
                    ctx.scope.cluster_arn(&identifier)
                }),
                reason: Some("MISSING".to_string()),
                detail: None,
            }),
        }
    }
    Ok(response)
}

pub async fn list_clusters(
    ctx: &Ctx<'_>,
    req: ListClustersRequest,
) -> ApiResult<ListClustersResponse> {
    let page_request = PageRequest::new(req.max_results, req.next_token.as_deref(), 100, 100)?;
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    let prefix = keys::clusters(ctx.region());
    let mut arns = Vec::new();
    let start = page_request
        .after
        .as_deref()
        .map(|name| format!("{prefix}{name}"));
    for kv in snapshot.iter_prefix(&prefix) {
        if start.as_deref().is_some_and(|start| &*kv.key <= start) {
            continue;
        }
        let cluster: Cluster = state::decode_record(kv)?;
        if cluster.status.as_deref() == Some(ACTIVE) {
            arns.push((
                kv.key[prefix.len()..].to_string(),
                cluster.cluster_arn.unwrap_or_default(),
            ));
        }
        if arns.len() > page_request.limit {
            break;
        }
    }
    let (arns, next_token) = page(arns, page_request.limit, |(name, _)| name.clone());
    Ok(ListClustersResponse {
        cluster_arns: arns.into_iter().map(|(_, arn)| arn).collect(),
        next_token,
    })
}

/// Reads the named active cluster, applies `change`, and writes it back.
async fn update_with(
    ctx: &Ctx<'_>,
    identifier: &str,
    change: impl Fn(&mut Cluster),
) -> ApiResult<ClusterResponse> {
    let name = cluster_name(Some(identifier))?;
    let key = keys::cluster(ctx.region(), &name);
    state::write(ctx.store, |snapshot| {
        let found = read_active(snapshot, ctx.region(), &name)?;
        let mut cluster = found.value;
        change(&mut cluster);
        let txn = Txn::new()
            .when(Compare::unchanged(&key, found.mod_revision))
            .put(&key, state::encode_record(&cluster)?);
        Ok((Some(txn), present_all(snapshot, ctx.region(), cluster)?))
    })
    .await
    .map(|cluster| ClusterResponse { cluster })
}

pub async fn update_cluster(
    ctx: &Ctx<'_>,
    req: UpdateClusterRequest,
) -> ApiResult<ClusterResponse> {
    let settings = req.settings.clone().unwrap_or_default();
    validate_settings(&settings)?;
    update_with(ctx, &req.cluster, |cluster| {
        merge_settings(cluster.settings.get_or_insert_with(Vec::new), &settings);
        if let Some(configuration) = &req.configuration {
            cluster.configuration = Some(configuration.clone());
        }
        if let Some(defaults) = &req.service_connect_defaults {
            cluster.service_connect_defaults = Some(ClusterServiceConnectDefaults {
                namespace: Some(defaults.namespace.clone()),
            });
        }
    })
    .await
}

pub async fn update_cluster_settings(
    ctx: &Ctx<'_>,
    req: UpdateClusterSettingsRequest,
) -> ApiResult<ClusterResponse> {
    validate_settings(&req.settings)?;
    update_with(ctx, &req.cluster, |cluster| {
        merge_settings(cluster.settings.get_or_insert_with(Vec::new), &req.settings);
    })
    .await
}

pub async fn put_cluster_capacity_providers(
    ctx: &Ctx<'_>,
    req: PutClusterCapacityProvidersRequest,
) -> ApiResult<ClusterResponse> {
    validate_capacity_providers(
        &req.capacity_providers,
        &req.default_capacity_provider_strategy,
    )?;
    update_with(ctx, &req.cluster, |cluster| {
        cluster.capacity_providers = Some(req.capacity_providers.clone());
        cluster.default_capacity_provider_strategy =
            Some(req.default_capacity_provider_strategy.clone());
    })
    .await
}

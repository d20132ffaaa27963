//! The ECS operations: decode the request, decide on a snapshot of the store, write
//! with compare-and-swap, answer. One file per group of operations.

mod account_settings;
mod attributes;
pub mod clusters;
pub mod container_instances;
pub mod services;
mod tagging;
pub mod task_definitions;
pub mod task_state;
pub mod tasks;

use std::time::{SystemTime, UNIX_EPOCH};

use berth_model::arn::Scope;
use berth_model::{ApiError, ApiResult, ErrorCode, decode};
use berth_store::Store;
use bytes::Bytes;
use serde::Serialize;

/// Who is asking, where, and when: everything a handler needs besides the request.
pub struct Ctx<'a> {
    pub store: &'a dyn Store,
    /// State shared by every request of this process.
    pub shared: &'a Shared,
    /// The region (from the request's credential scope) and account.
    pub scope: Scope,
    /// The IAM ARN of the caller, as ECS reports it in `registeredBy`.
    pub principal_arn: String,
    /// Epoch seconds at the start of the request.
    pub now: f64,
    /// The access key that signed the request (`None` without authentication).
    pub access_key_id: Option<String>,
    /// The `Host` the caller reached berth at, for answers that point back at berth.
    pub host: Option<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        store: &'a dyn Store,
        shared: &'a Shared,
        scope: Scope,
        principal_arn: String,
    ) -> Self {
        let now = epoch_now();
        Self {
            store,
            shared,
            scope,
            principal_arn,
            now,
            access_key_id: None,
            host: None,
        }
    }
    pub fn region(&self) -> &str {
        &self.scope.region
    }
}

/// In-process state shared by the handlers (never the source of truth: the store is).
#[derive(Default)]
pub struct Shared {
    pub revisions: task_definitions::FamilyRevisions,
    /// The tasks by instance, kept up to date from the change feed.
    pub views: crate::state::views::Views,
    /// The instance records, decoded once per version, for placement.
    pub instances: crate::state::instance_cache::InstanceCache,
    /// The task definitions, decoded once per version.
    pub definitions: crate::state::definition_cache::DefinitionCache,
    /// Placement engines kept per cluster between decisions.
    pub placers: crate::state::placers::Placers,
}

fn encode<T: Serialize>(response: &T) -> ApiResult<Bytes> {
    serde_json::to_vec(response)
        .map(Bytes::from)
        .map_err(|err| ApiError::server(format!("Cannot encode the response: {err}")))
}

/// Runs operation `op` on the request `body`, returning the response body.
pub async fn dispatch(ctx: &Ctx<'_>, op: &str, body: &[u8]) -> ApiResult<Bytes> {
    macro_rules! operations {
        ($($name:literal => $handler:path),* $(,)?) => {
            match op {
                // Answers with the bytes it stored (see the handler).
                "RegisterTaskDefinition" => {
                    task_definitions::register_task_definition(ctx, decode(body)?, body.len())
                        .await
                }
                $($name => encode(&$handler(ctx, decode(body)?).await?),)*
                _ => Err(ApiError::new(
                    ErrorCode::UnknownOperationException,
                    format!("Unknown operation {op}"),
                )),
            }
        };
    }
    operations! {
        "CreateCluster" => clusters::create_cluster,
        "DeleteCluster" => clusters::delete_cluster,
        "DescribeClusters" => clusters::describe_clusters,
        "ListClusters" => clusters::list_clusters,
        "UpdateCluster" => clusters::update_cluster,
        "UpdateClusterSettings" => clusters::update_cluster_settings,
        "PutClusterCapacityProviders" => clusters::put_cluster_capacity_providers,
        "DescribeTaskDefinition" => task_definitions::describe_task_definition,
        "ListTaskDefinitions" => task_definitions::list_task_definitions,
        "ListTaskDefinitionFamilies" => task_definitions::list_task_definition_families,
        "DeregisterTaskDefinition" => task_definitions::deregister_task_definition,
        "DeleteTaskDefinitions" => task_definitions::delete_task_definitions,
        "TagResource" => tagging::tag_resource,
        "UntagResource" => tagging::untag_resource,
        "ListTagsForResource" => tagging::list_tags_for_resource,
        "PutAttributes" => attributes::put_attributes,
        "DeleteAttributes" => attributes::delete_attributes,
        "ListAttributes" => attributes::list_attributes,
        "RegisterContainerInstance" => container_instances::register_container_instance,
        "DeregisterContainerInstance" => container_instances::deregister_container_instance,
        "DescribeContainerInstances" => container_instances::describe_container_instances,
        "ListContainerInstances" => container_instances::list_container_instances,
        "UpdateContainerInstancesState" => container_instances::update_container_instances_state,
        "DiscoverPollEndpoint" => container_instances::discover_poll_endpoint,
        "RunTask" => tasks::run_task,
        "StartTask" => tasks::start_task,
        "StopTask" => tasks::stop_task,
        "DescribeTasks" => tasks::describe_tasks,
        "ListTasks" => tasks::list_tasks,
        "SubmitTaskStateChange" => tasks::submit_task_state_change,
        "SubmitContainerStateChange" => tasks::submit_container_state_change,
        "CreateService" => services::create_service,
        "UpdateService" => services::update_service,
        "DeleteService" => services::delete_service,
        "DescribeServices" => services::describe_services,
        "ListServices" => services::list_services,
        "PutAccountSetting" => account_settings::put_account_setting,
        "PutAccountSettingDefault" => account_settings::put_account_setting_default,
        "DeleteAccountSetting" => account_settings::delete_account_setting,
        "ListAccountSettings" => account_settings::list_account_settings,
    }
}

/// Now, in seconds since the Unix epoch, as ECS timestamps are on the wire.
pub fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

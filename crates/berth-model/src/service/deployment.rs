//! How a service rolls out a new revision: the deployment configuration (batch
//! sizes, circuit breaker, alarms, strategy, lifecycle hooks), the deployment
//! controller, and the defaults ECS applies to them.

use serde::{Deserialize, Serialize};

use super::shapes::SchedulingStrategy;
use crate::common::wire_enum;

wire_enum! {
    /// Who runs a service's deployments. `ECS` when absent.
    #[derive(Default)]
    pub enum DeploymentControllerType {
        /// Rolling updates by the ECS service scheduler.
        #[default]
        Ecs = "ECS",
        /// Blue/green by CodeDeploy.
        CodeDeploy = "CODE_DEPLOY",
        /// Task sets managed by a third party.
        External = "EXTERNAL",
    }
}

wire_enum! {
    /// How the ECS controller replaces a service's tasks.
    pub enum DeploymentStrategy {
        Rolling = "ROLLING",
        BlueGreen = "BLUE_GREEN",
        Linear = "LINEAR",
        Canary = "CANARY",
    }
}

wire_enum! {
    /// How the circuit breaker turns its `value` into a number of failed tasks.
    pub enum ThresholdType {
        /// `value` is the number of failed tasks.
        Count = "COUNT",
        /// `value` percent of the desired count, held within 3..=200.
        BoundedPercent = "BOUNDED_PERCENT",
        /// `value` percent of the desired count, without bounds.
        UnboundedPercent = "UNBOUNDED_PERCENT",
    }
}

wire_enum! {
    /// What a deployment lifecycle hook invokes.
    pub enum DeploymentLifecycleHookTargetType {
        AwsLambda = "AWS_LAMBDA",
        Pause = "PAUSE",
    }
}

wire_enum! {
    /// A stage of a deployment at which lifecycle hooks run.
    pub enum DeploymentLifecycleHookStage {
        ReconcileService = "RECONCILE_SERVICE",
        PreScaleUp = "PRE_SCALE_UP",
        PostScaleUp = "POST_SCALE_UP",
        TestTrafficShift = "TEST_TRAFFIC_SHIFT",
        PostTestTrafficShift = "POST_TEST_TRAFFIC_SHIFT",
        PreProductionTrafficShift = "PRE_PRODUCTION_TRAFFIC_SHIFT",
        ProductionTrafficShift = "PRODUCTION_TRAFFIC_SHIFT",
        PostProductionTrafficShift = "POST_PRODUCTION_TRAFFIC_SHIFT",
    }
}

wire_enum! {
    /// What a deployment does when a lifecycle hook times out.
    pub enum DeploymentLifecycleHookAction {
        Rollback = "ROLLBACK",
        Continue = "CONTINUE",
    }
}

wire_enum! {
    /// When the tasks of the revision a deployment replaces are removed.
    pub enum ServiceRevisionCleanup {
        /// Before the deployment completes.
        Blocking = "BLOCKING",
        /// In the background, after the deployment completes.
        Deferred = "DEFERRED",
    }
}

/// The least and most tasks of a service that run during a deployment (percent of
/// the desired count), and what stops or rolls back a deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_circuit_breaker: Option<DeploymentCircuitBreaker>,
    /// The most tasks RUNNING or PENDING during a deployment, percent of the
    /// desired count (rounded down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_percent: Option<i32>,
    /// The least tasks RUNNING and healthy during a deployment, percent of the
    /// desired count (rounded up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_healthy_percent: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarms: Option<DeploymentAlarms>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bake_time_in_minutes: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_hooks: Option<Vec<DeploymentLifecycleHook>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_configuration: Option<LinearConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_configuration: Option<CanaryConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_success_criteria: Option<DeploymentEarlySuccessCriteria>,
}

impl DeploymentConfiguration {
    /// ECS's `(minimumHealthyPercent, maximumPercent)` when a service leaves them
    /// out: 100/200 for REPLICA; 0/100 for DAEMON, which starts a new task on an
    /// instance only after it stopped the old one there.
    pub fn defaults(scheduling: SchedulingStrategy) -> (i32, i32) {
        match scheduling {
            SchedulingStrategy::Replica => (100, 200),
            SchedulingStrategy::Daemon => (0, 100),
        }
    }

    /// The `(minimumHealthyPercent, maximumPercent)` a deployment runs with: the
    /// configured values, and [`DeploymentConfiguration::defaults`] for those left
    /// out.
    pub fn effective(&self, scheduling: SchedulingStrategy) -> (i32, i32) {
        let (min_healthy, max) = Self::defaults(scheduling);
        (
            self.minimum_healthy_percent.unwrap_or(min_healthy),
            self.maximum_percent.unwrap_or(max),
        )
    }

    /// The configuration as DescribeServices shows it: the given members, with
    /// ECS's defaults for the percentages, a disabled circuit breaker and the
    /// ROLLING strategy where the request left them out.
    pub fn completed(&self, scheduling: SchedulingStrategy) -> Self {
        let (min_healthy, max) = self.effective(scheduling);
        Self {
            deployment_circuit_breaker: Some(self.deployment_circuit_breaker.clone().unwrap_or(
                DeploymentCircuitBreaker {
                    enable: false,
                    rollback: false,
                    reset_on_healthy_task: None,
                    threshold_configuration: None,
                },
            )),
            maximum_percent: Some(max),
            minimum_healthy_percent: Some(min_healthy),
            strategy: Some(self.strategy.unwrap_or(DeploymentStrategy::Rolling)),
            ..self.clone()
        }
    }

    /// Whether the circuit breaker watches this service's deployments.
    pub fn circuit_breaker_enabled(&self) -> bool {
        self.deployment_circuit_breaker
            .as_ref()
            .is_some_and(|breaker| breaker.enable)
    }
}

/// Fails a deployment whose tasks keep failing to start or to become healthy, and
/// optionally rolls the service back to the last deployment that completed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
    /// Whether a healthy task resets the count of failed tasks (true when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_on_healthy_task: Option<bool>,
    /// BOUNDED_PERCENT of 50 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_configuration: Option<ThresholdConfiguration>,
}

impl DeploymentCircuitBreaker {
    /// The number of failed tasks at which a deployment of `desired_count` tasks
    /// fails: the configured threshold, or ECS's default.
    pub fn threshold(&self, desired_count: i32) -> i32 {
        match &self.threshold_configuration {
            Some(configuration) => configuration.threshold(desired_count),
            None => circuit_breaker_threshold(desired_count),
        }
    }

    /// Whether a healthy task resets the count of failed tasks.
    pub fn resets_on_healthy_task(&self) -> bool {
        self.reset_on_healthy_task.unwrap_or(true)
    }
}

/// The lower bound of the default (BOUNDED_PERCENT) circuit breaker threshold.
pub const CIRCUIT_BREAKER_MIN_THRESHOLD: i32 = 3;
/// The upper bound of the default (BOUNDED_PERCENT) circuit breaker threshold.
pub const CIRCUIT_BREAKER_MAX_THRESHOLD: i32 = 200;
/// The percent of the desired count in the default circuit breaker threshold.
pub const CIRCUIT_BREAKER_DEFAULT_PERCENT: i32 = 50;

/// The number of failed tasks at which ECS's default circuit breaker fails a
/// deployment of `desired_count` tasks: half the desired count, rounded up, held
/// within 3..=200 (the ECS developer guide, "How the Amazon ECS deployment
/// circuit breaker detects failures"; older versions of it gave 10 as the lower
/// bound).
pub fn circuit_breaker_threshold(desired_count: i32) -> i32 {
    percent_of(desired_count, CIRCUIT_BREAKER_DEFAULT_PERCENT)
        .clamp(CIRCUIT_BREAKER_MIN_THRESHOLD, CIRCUIT_BREAKER_MAX_THRESHOLD)
}

/// `percent` percent of `count`, rounded up; negative inputs count as zero.
fn percent_of(count: i32, percent: i32) -> i32 {
    let product = i64::from(count.max(0)) * i64::from(percent.max(0));
    let rounded_up = (product + 99) / 100;
    i32::try_from(rounded_up).unwrap_or(i32::MAX)
}

/// How many failed tasks trip the circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdConfiguration {
    #[serde(rename = "type")]
    pub threshold_type: ThresholdType,
    /// A count (COUNT) or a percent of the desired count.
    pub value: i32,
}

impl ThresholdConfiguration {
    /// The number of failed tasks at which a deployment of `desired_count` tasks
    /// fails. Percentages are rounded up, as for the default threshold.
    pub fn threshold(&self, desired_count: i32) -> i32 {
        match self.threshold_type {
            ThresholdType::Count => self.value,
            ThresholdType::BoundedPercent => percent_of(desired_count, self.value)
                .clamp(CIRCUIT_BREAKER_MIN_THRESHOLD, CIRCUIT_BREAKER_MAX_THRESHOLD),
            ThresholdType::UnboundedPercent => percent_of(desired_count, self.value),
        }
    }
}

/// CloudWatch alarms that fail (and optionally roll back) a deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentAlarms {
    pub alarm_names: Vec<String>,
    pub rollback: bool,
    pub enable: bool,
}

/// The deployment controller of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentController {
    #[serde(rename = "type")]
    pub controller_type: DeploymentControllerType,
}

/// Something a deployment invokes at some of its stages, and waits for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentLifecycleHook {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_type: Option<DeploymentLifecycleHookTargetType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_target_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_stages: Option<Vec<DeploymentLifecycleHookStage>>,
    /// Free-form JSON handed to the hook (a document in the ECS model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_details: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_configuration: Option<DeploymentLifecycleHookTimeoutConfiguration>,
}

/// How long a deployment waits for a lifecycle hook, and what it does then.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentLifecycleHookTimeoutConfiguration {
    /// 1-20160.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_in_minutes: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<DeploymentLifecycleHookAction>,
}

/// The steps of a LINEAR deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinearConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_bake_time_in_minutes: Option<i32>,
}

/// The first step of a CANARY deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_bake_time_in_minutes: Option<i32>,
}

/// When a deployment may complete before all its tasks are healthy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentEarlySuccessCriteria {
    pub enable: bool,
    /// 0-100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_percent: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_service_revision_cleanup: Option<ServiceRevisionCleanup>,
}

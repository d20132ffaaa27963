//! The resolution of a service's CloudWatch metrics.

use serde::{Deserialize, Serialize};

/// The service-level metrics and the resolution they are collected at (60 seconds
/// when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_configurations: Option<Vec<MetricConfiguration>>,
}

/// Metrics collected at one resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricConfiguration {
    /// `CPUUtilization`, `MemoryUtilization`; 1-5 names.
    pub metric_names: Vec<String>,
    /// 20 or 60.
    pub resolution_seconds: i32,
}

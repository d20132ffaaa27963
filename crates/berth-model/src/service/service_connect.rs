//! Service Connect: the proxy ECS puts next to a service's tasks so that services
//! of a namespace reach each other by name.

use serde::{Deserialize, Serialize};

use crate::common::wire_enum;
use crate::task_definition::LogConfiguration;

wire_enum! {
    /// The format of Service Connect access logs.
    pub enum ServiceConnectAccessLoggingFormat {
        Text = "TEXT",
        Json = "JSON",
    }
}

wire_enum! {
    /// Whether Service Connect access logs include query parameters.
    pub enum ServiceConnectIncludeQueryParameters {
        Disabled = "DISABLED",
        Enabled = "ENABLED",
    }
}

wire_enum! {
    /// The log level of the Service Connect proxy container.
    pub enum ServiceConnectContainerLogLevel {
        Debug = "debug",
        Info = "info",
    }
}

/// The Service Connect settings of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectConfiguration {
    pub enabled: bool,
    /// A Cloud Map namespace name or ARN; the cluster's default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The endpoints this service offers; none for a client-only service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<ServiceConnectService>>,
    /// The proxy container's logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_configuration: Option<ServiceConnectAccessLogConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_configurations: Option<Vec<ServiceConnectContainerConfiguration>>,
}

/// One endpoint a service offers to the namespace: a named port of its task
/// definition and the names clients reach it by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectService {
    pub port_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_aliases: Option<Vec<ServiceConnectClientAlias>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_port_override: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServiceConnectTlsConfiguration>,
}

/// A name and port clients use for an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectClientAlias {
    pub port: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_traffic_rules: Option<ServiceConnectTestTrafficRules>,
}

/// Which requests are test traffic during a blue/green deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectTestTrafficRules {
    pub header: ServiceConnectTestTrafficHeaderRules,
}

/// A request header that marks test traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectTestTrafficHeaderRules {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<ServiceConnectTestTrafficHeaderMatchRules>,
}

/// The header value that marks test traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectTestTrafficHeaderMatchRules {
    pub exact: String,
}

/// The timeouts of an endpoint's proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_request_timeout_seconds: Option<i32>,
}

/// TLS between Service Connect proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectTlsConfiguration {
    pub issuer_certificate_authority: ServiceConnectTlsCertificateAuthority,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// The private certificate authority that issues the proxies' certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectTlsCertificateAuthority {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_pca_authority_arn: Option<String>,
}

/// The access logs of the Service Connect proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectAccessLogConfiguration {
    pub format: ServiceConnectAccessLoggingFormat,
    /// DISABLED when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_query_parameters: Option<ServiceConnectIncludeQueryParameters>,
}

/// Settings of the Service Connect proxy container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectContainerConfiguration {
    /// `info` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<ServiceConnectContainerLogLevel>,
}

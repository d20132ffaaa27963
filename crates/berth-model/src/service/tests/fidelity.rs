//! Every member of the ECS model survives decoding and encoding unchanged; required
//! members, enums and timestamps behave as the wire protocol wants.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ErrorCode;
use crate::service::{
    CreateServiceRequest, DeleteServiceRequest, DeploymentControllerType, DeploymentRolloutState,
    DeploymentStatus, DescribeServicesRequest, DescribeServicesResponse,
    ListServicesByNamespaceRequest, ListServicesRequest, ListServicesResponse, SchedulingStrategy,
    Service, ServiceConnectContainerLogLevel, ServiceField, ServiceResponse, ServiceStatus,
    ServiceVolumeConfiguration, ThresholdType, UpdateServiceRequest,
};
use crate::task::TaskVolumeConfiguration;

/// A Service that sets every member of Service and of every shape nested in it.
const EVERY_MEMBER_SERVICE: &str = include_str!("every_member_service.json");
/// The same for CreateServiceRequest.
const EVERY_MEMBER_CREATE: &str = include_str!("every_member_create_service.json");
/// Every top-level member of the other requests and responses, by shape name.
const EVERY_MEMBER_OTHER: &str = include_str!("every_member_other_requests.json");

/// Decodes `value` as a request body and encodes it again.
fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Value {
    let body = serde_json::to_vec(value).unwrap();
    let decoded: T = crate::decode::decode(&body).unwrap();
    serde_json::to_value(&decoded).unwrap()
}

/// Decodes a body that must be refused: the error's code and message.
type Refusal = fn(Value) -> (ErrorCode, String);

fn decode_err<T: DeserializeOwned + std::fmt::Debug>(value: Value) -> (ErrorCode, String) {
    let err = crate::decode::decode::<T>(&serde_json::to_vec(&value).unwrap()).unwrap_err();
    (err.code, err.message)
}

#[test]
fn every_service_member_round_trips() {
    let input: Value = serde_json::from_str(EVERY_MEMBER_SERVICE).unwrap();
    assert_eq!(round_trip::<Service>(&input), input);
}

#[test]
fn every_create_service_member_round_trips() {
    let input: Value = serde_json::from_str(EVERY_MEMBER_CREATE).unwrap();
    assert_eq!(round_trip::<CreateServiceRequest>(&input), input);
}

#[test]
fn every_member_of_the_other_shapes_round_trips() {
    let all: Value = serde_json::from_str(EVERY_MEMBER_OTHER).unwrap();
    let check = |name: &str, encoded: Value| assert_eq!(encoded, all[name], "{name}");
    check(
        "UpdateServiceRequest",
        round_trip::<UpdateServiceRequest>(&all["UpdateServiceRequest"]),
    );
    check(
        "DeleteServiceRequest",
        round_trip::<DeleteServiceRequest>(&all["DeleteServiceRequest"]),
    );
    check(
        "DescribeServicesRequest",
        round_trip::<DescribeServicesRequest>(&all["DescribeServicesRequest"]),
    );
    check(
        "DescribeServicesResponse",
        round_trip::<DescribeServicesResponse>(&all["DescribeServicesResponse"]),
    );
    check(
        "ListServicesRequest",
        round_trip::<ListServicesRequest>(&all["ListServicesRequest"]),
    );
    check(
        "ListServicesResponse",
        round_trip::<ListServicesResponse>(&all["ListServicesResponse"]),
    );
    check(
        "ListServicesByNamespaceRequest",
        round_trip::<ListServicesByNamespaceRequest>(&all["ListServicesByNamespaceRequest"]),
    );
    check(
        "ServiceResponse",
        round_trip::<ServiceResponse>(&all["ServiceResponse"]),
    );
}

#[test]
fn absent_members_are_omitted_and_response_lists_always_written() {
    assert_eq!(serde_json::to_value(Service::default()).unwrap(), json!({}));
    assert_eq!(
        serde_json::to_value(DescribeServicesResponse::default()).unwrap(),
        json!({"services": [], "failures": []})
    );
    assert_eq!(
        serde_json::to_value(ListServicesResponse::default()).unwrap(),
        json!({"serviceArns": []})
    );
    assert_eq!(
        serde_json::to_value(ServiceResponse::default()).unwrap(),
        json!({})
    );
    // A client reads responses that leave the lists out.
    let response: DescribeServicesResponse = serde_json::from_value(json!({})).unwrap();
    assert!(response.services.is_empty() && response.failures.is_empty());
}

#[test]
fn the_smallest_requests_decode() {
    let create: CreateServiceRequest = crate::decode::decode(br#"{"serviceName":"web"}"#).unwrap();
    assert_eq!(create.service_name, "web");
    assert_eq!(create.scheduling(), SchedulingStrategy::Replica);
    let list: ListServicesRequest = crate::decode::decode(b"").unwrap();
    assert_eq!(list, ListServicesRequest::default());
    let describe: DescribeServicesRequest =
        crate::decode::decode(br#"{"services":["web"]}"#).unwrap();
    assert!(!describe.includes_tags());
    let describe: DescribeServicesRequest =
        crate::decode::decode(br#"{"services":["web"],"include":["TAGS"]}"#).unwrap();
    assert!(describe.includes_tags());
}

#[test]
fn required_members_are_named_when_missing() {
    let cases: Vec<(Value, &str, Refusal)> = vec![
        (json!({}), "serviceName", decode_err::<CreateServiceRequest>),
        (json!({}), "service", decode_err::<UpdateServiceRequest>),
        (json!({}), "service", decode_err::<DeleteServiceRequest>),
        (json!({}), "services", decode_err::<DescribeServicesRequest>),
        (
            json!({}),
            "namespace",
            decode_err::<ListServicesByNamespaceRequest>,
        ),
        (
            json!({"serviceName": "web", "deploymentController": {}}),
            "deploymentController.type",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": true}}}),
            "deploymentConfiguration.deploymentCircuitBreaker.rollback",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": true, "rollback": true, "thresholdConfiguration": {"type": "COUNT"}}}}),
            "deploymentConfiguration.deploymentCircuitBreaker.thresholdConfiguration.value",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "deploymentConfiguration": {"alarms": {"enable": true, "rollback": true}}}),
            "deploymentConfiguration.alarms.alarmNames",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "deploymentConfiguration": {"earlySuccessCriteria": {}}}),
            "deploymentConfiguration.earlySuccessCriteria.enable",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "serviceConnectConfiguration": {"namespace": "n"}}),
            "serviceConnectConfiguration.enabled",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "serviceConnectConfiguration": {"enabled": true, "services": [{"clientAliases": [{"port": 80}]}]}}),
            "serviceConnectConfiguration.services[0].portName",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "serviceConnectConfiguration": {"enabled": true, "services": [{"portName": "p", "clientAliases": [{"dnsName": "d"}]}]}}),
            "serviceConnectConfiguration.services[0].clientAliases[0].port",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "serviceConnectConfiguration": {"enabled": true, "services": [{"portName": "p", "tls": {}}]}}),
            "serviceConnectConfiguration.services[0].tls.issuerCertificateAuthority",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "serviceConnectConfiguration": {"enabled": true, "accessLogConfiguration": {}}}),
            "serviceConnectConfiguration.accessLogConfiguration.format",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "serviceConnectConfiguration": {"enabled": true, "logConfiguration": {}}}),
            "serviceConnectConfiguration.logConfiguration.logDriver",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "volumeConfigurations": [{"managedEBSVolume": {"roleArn": "r"}}]}),
            "volumeConfigurations[0].name",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "volumeConfigurations": [{"name": "v", "managedEBSVolume": {}}]}),
            "volumeConfigurations[0].managedEBSVolume.roleArn",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "vpcLatticeConfigurations": [{"roleArn": "r", "portName": "p"}]}),
            "vpcLatticeConfigurations[0].targetGroupArn",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "gatewayConnectors": [{}]}),
            "gatewayConnectors[0].portName",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"serviceName": "web", "monitoring": {"metricConfigurations": [{"metricNames": ["CPUUtilization"]}]}}),
            "monitoring.metricConfigurations[0].resolutionSeconds",
            decode_err::<CreateServiceRequest>,
        ),
        (
            json!({"service": "web", "networkConfiguration": {"awsvpcConfiguration": {}}}),
            "networkConfiguration.awsvpcConfiguration.subnets",
            decode_err::<UpdateServiceRequest>,
        ),
        (
            json!({"service": "web", "capacityProviderStrategy": [{"weight": 1}]}),
            "capacityProviderStrategy[0].capacityProvider",
            decode_err::<UpdateServiceRequest>,
        ),
    ];
    for (body, member, decode) in cases {
        let (code, message) = decode(body);
        assert_eq!(code, ErrorCode::InvalidParameterException, "{message}");
        assert_eq!(message, format!("Missing required parameter: {member}"));
    }
}

#[test]
fn enums_use_the_exact_wire_values() {
    let service: Service = serde_json::from_value(json!({
        "schedulingStrategy": "DAEMON",
        "deploymentController": {"type": "CODE_DEPLOY"},
        "deployments": [{"rolloutState": "COMPLETED"}],
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {
                "enable": true, "rollback": true,
                "thresholdConfiguration": {"type": "UNBOUNDED_PERCENT", "value": 10}
            }
        }
    }))
    .unwrap();
    assert_eq!(service.scheduling(), SchedulingStrategy::Daemon);
    assert_eq!(
        service.deployment_controller.map(|c| c.controller_type),
        Some(DeploymentControllerType::CodeDeploy)
    );
    let deployment = &service.deployments.unwrap()[0];
    assert_eq!(
        deployment.rollout_state,
        Some(DeploymentRolloutState::Completed)
    );
    let threshold = service
        .deployment_configuration
        .and_then(|c| c.deployment_circuit_breaker)
        .and_then(|b| b.threshold_configuration)
        .unwrap();
    assert_eq!(threshold.threshold_type, ThresholdType::UnboundedPercent);

    assert_eq!(DeploymentRolloutState::InProgress.as_str(), "IN_PROGRESS");
    assert_eq!(DeploymentRolloutState::Failed.as_str(), "FAILED");
    assert_eq!(SchedulingStrategy::Replica.as_str(), "REPLICA");
    assert_eq!(ServiceField::Tags.as_str(), "TAGS");
    assert_eq!(ServiceField::ALL, &[ServiceField::Tags]);
    assert_eq!(ServiceStatus::Draining.to_string(), "DRAINING");
    assert_eq!(DeploymentStatus::Primary.to_string(), "PRIMARY");
    assert_eq!(ServiceConnectContainerLogLevel::Debug.as_str(), "debug");
    assert_eq!(SchedulingStrategy::default(), SchedulingStrategy::Replica);
    assert_eq!(
        DeploymentControllerType::default(),
        DeploymentControllerType::Ecs
    );

    let (code, message) = decode_err::<CreateServiceRequest>(
        json!({"serviceName": "web", "schedulingStrategy": "daemon"}),
    );
    assert_eq!(code, ErrorCode::InvalidParameterException);
    assert!(message.contains("schedulingStrategy"), "{message}");
    let (_, message) =
        decode_err::<DescribeServicesRequest>(json!({"services": [], "include": ["tags"]}));
    assert!(message.contains("include[0]"), "{message}");
    let (_, message) = decode_err::<CreateServiceRequest>(
        json!({"serviceName": "web", "deploymentController": {"type": "BLUE_GREEN"}}),
    );
    assert!(message.contains("deploymentController.type"), "{message}");
}

#[test]
fn timestamps_are_epoch_seconds_integral_or_not() {
    let service: Service = serde_json::from_value(json!({
        "createdAt": 1_700_000_000,
        "events": [{"createdAt": 1.5}],
        "deployments": [{"createdAt": 2, "updatedAt": 2.25}]
    }))
    .unwrap();
    assert_eq!(service.created_at, Some(1_700_000_000.0));
    assert_eq!(service.events.unwrap()[0].created_at, Some(1.5));
    let deployment = &service.deployments.unwrap()[0];
    assert_eq!(deployment.created_at, Some(2.0));
    assert_eq!(deployment.updated_at, Some(2.25));
}

#[test]
fn a_service_volume_becomes_the_task_volume_it_launches_with() {
    let volume: ServiceVolumeConfiguration = serde_json::from_value(json!({
        "name": "data",
        "managedEBSVolume": {
            "encrypted": true, "sizeInGiB": 20, "volumeType": "gp3", "iops": 3000,
            "throughput": 125, "volumeInitializationRate": 100, "kmsKeyId": "k",
            "snapshotId": "snap-1", "roleArn": "arn:aws:iam::000000000000:role/ebs",
            "filesystemType": "xfs",
            "tagSpecifications": [{"resourceType": "volume", "propagateTags": "SERVICE"}]
        }
    }))
    .unwrap();
    let task = TaskVolumeConfiguration::from(&volume);
    // The same members, under the task's shape; no termination policy.
    assert_eq!(
        serde_json::to_value(&task).unwrap(),
        serde_json::to_value(&volume).unwrap()
    );
    assert!(
        task.managed_ebs_volume
            .unwrap()
            .termination_policy
            .is_none()
    );
    let bare = ServiceVolumeConfiguration {
        name: "scratch".into(),
        managed_ebs_volume: None,
    };
    assert_eq!(
        serde_json::to_value(TaskVolumeConfiguration::from(&bare)).unwrap(),
        json!({"name": "scratch"})
    );
}

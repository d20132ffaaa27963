//! The checks CreateService and UpdateService make on the request alone.

use serde_json::{Value, json};

use crate::error::{ApiResult, ErrorCode};
use crate::service::{
    CreateServiceRequest, DeploymentConfiguration, SchedulingStrategy, UpdateServiceRequest,
    validate_create_service, validate_deployment_configuration, validate_update_service,
};

use SchedulingStrategy::{Daemon, Replica};

/// A valid REPLICA CreateService request with `extra` members added (or replaced).
fn create(extra: Value) -> CreateServiceRequest {
    let mut body = json!({"serviceName": "web", "taskDefinition": "web:1", "desiredCount": 2});
    merge(&mut body, extra);
    serde_json::from_value(body).unwrap()
}

/// A valid DAEMON CreateService request with `extra` members added.
fn daemon(extra: Value) -> CreateServiceRequest {
    let mut body =
        json!({"serviceName": "agent", "taskDefinition": "agent", "schedulingStrategy": "DAEMON"});
    merge(&mut body, extra);
    serde_json::from_value(body).unwrap()
}

fn update(extra: Value) -> UpdateServiceRequest {
    let mut body = json!({"service": "web"});
    merge(&mut body, extra);
    serde_json::from_value(body).unwrap()
}

fn merge(body: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(members)) = (body.as_object_mut(), extra) {
        for (key, value) in members {
            if value.is_null() {
                target.remove(&key);
            } else {
                target.insert(key, value);
            }
        }
    }
}

/// The message of an InvalidParameterException; fails on success or another code.
fn refused(result: ApiResult<()>) -> String {
    let err = result.unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::InvalidParameterException,
        "{}",
        err.message
    );
    err.message
}

#[test]
fn valid_requests_pass() {
    validate_create_service(&create(json!({}))).unwrap();
    validate_create_service(&create(json!({
        "desiredCount": 0,
        "clientToken": "0123456789abcdef0123456789abcdef0123",
        "launchType": "FARGATE",
        "deploymentConfiguration": {
            "minimumHealthyPercent": 0, "maximumPercent": 100,
            "deploymentCircuitBreaker": {"enable": true, "rollback": true,
                "thresholdConfiguration": {"type": "COUNT", "value": 1}},
            "strategy": "ROLLING"
        },
        "deploymentController": {"type": "ECS"},
        "placementStrategy": [{"type": "spread", "field": "attribute:ecs.availability-zone"}],
        "placementConstraints": [{"type": "distinctInstance"}],
        "healthCheckGracePeriodSeconds": 0,
        "tags": [{"key": "team", "value": "web"}],
        "gatewayConnectors": [{"portName": "http"}],
        "monitoring": {"metricConfigurations": [{"metricNames": ["CPUUtilization"], "resolutionSeconds": 60}]}
    })))
    .unwrap();
    validate_create_service(&create(json!({
        "capacityProviderStrategy": [{"capacityProvider": "default", "weight": 1}]
    })))
    .unwrap();
    // An empty strategy is no strategy.
    validate_create_service(&create(
        json!({"launchType": "EC2", "capacityProviderStrategy": []}),
    ))
    .unwrap();
    validate_create_service(&daemon(json!({
        "launchType": "EC2",
        "placementConstraints": [{"type": "memberOf", "expression": "attribute:role == edge"}],
        "placementStrategy": [],
        "deploymentConfiguration": {"minimumHealthyPercent": 50, "maximumPercent": 100}
    })))
    .unwrap();
    validate_update_service(&update(json!({})), Replica).unwrap();
    validate_update_service(
        &update(json!({"desiredCount": 0, "taskDefinition": "web:2"})),
        Replica,
    )
    .unwrap();
    validate_update_service(&update(json!({"forceNewDeployment": true})), Daemon).unwrap();
}

#[test]
fn service_names_are_1_to_255_letters_digits_hyphens_underscores() {
    let name = "a".repeat(255);
    validate_create_service(&create(json!({"serviceName": name}))).unwrap();
    validate_create_service(&create(json!({"serviceName": "A-b_9"}))).unwrap();
    for bad in [
        String::new(),
        "a".repeat(256),
        "web.api".into(),
        "web api".into(),
        "wéb".into(),
    ] {
        let message = refused(validate_create_service(&create(
            json!({"serviceName": bad}),
        )));
        assert!(
            message.starts_with("Service name can have up to 255"),
            "{message}"
        );
    }
}

#[test]
fn client_tokens_are_up_to_36_printable_ascii_characters() {
    for bad in ["", "has space", "tab\t", "é", &"x".repeat(37)] {
        let message = refused(validate_create_service(&create(
            json!({"clientToken": bad}),
        )));
        assert!(message.contains("clientToken"), "{message}");
    }
    validate_create_service(&create(json!({"clientToken": "!~"}))).unwrap();
}

#[test]
fn only_the_ecs_deployment_controller_is_supported() {
    for other in ["CODE_DEPLOY", "EXTERNAL"] {
        let message = refused(validate_create_service(&create(
            json!({"deploymentController": {"type": other}}),
        )));
        assert_eq!(
            message,
            format!("berth supports the ECS deployment controller only; {other} is not supported.")
        );
        refused(validate_update_service(
            &update(json!({"deploymentController": {"type": other}})),
            Replica,
        ));
    }
}

#[test]
fn the_ecs_controller_needs_a_task_definition() {
    for missing in [Value::Null, json!("")] {
        let mut request = create(json!({}));
        request.task_definition = missing.as_str().map(str::to_string);
        let message = refused(validate_create_service(&request));
        assert!(
            message.contains("task definition must be specified"),
            "{message}"
        );
    }
    let message = refused(validate_update_service(
        &update(json!({"taskDefinition": ""})),
        Replica,
    ));
    assert!(message.contains("taskDefinition"), "{message}");
}

#[test]
fn launch_type_and_capacity_provider_strategy_exclude_each_other() {
    let message = refused(validate_create_service(&create(json!({
        "launchType": "EC2",
        "capacityProviderStrategy": [{"capacityProvider": "default"}]
    }))));
    assert!(message.contains("not both"), "{message}");
}

#[test]
fn replica_services_need_a_desired_count_of_zero_or_more() {
    let message = refused(validate_create_service(&create(
        json!({"desiredCount": null}),
    )));
    assert!(message.contains("desiredCount is required"), "{message}");
    let message = refused(validate_create_service(&create(
        json!({"desiredCount": -1}),
    )));
    assert!(
        message.contains("desiredCount must not be negative"),
        "{message}"
    );
    let message = refused(validate_update_service(
        &update(json!({"desiredCount": -1})),
        Replica,
    ));
    assert!(
        message.contains("desiredCount must not be negative"),
        "{message}"
    );
}

#[test]
fn daemon_services_refuse_what_ecs_refuses() {
    let desired_count = "The daemon scheduling strategy does not support a desired count for services. Remove the desired count value and try again";
    for count in [0, 1] {
        assert_eq!(
            refused(validate_create_service(&daemon(
                json!({"desiredCount": count})
            ))),
            desired_count
        );
        assert_eq!(
            refused(validate_update_service(
                &update(json!({"desiredCount": count})),
                Daemon
            )),
            desired_count
        );
    }
    let placement = "The daemon scheduling strategy does not support placement strategies. Remove the placement strategy and try again";
    let strategy = json!({"placementStrategy": [{"type": "binpack", "field": "cpu"}]});
    assert_eq!(
        refused(validate_create_service(&daemon(strategy.clone()))),
        placement
    );
    assert_eq!(
        refused(validate_update_service(&update(strategy), Daemon)),
        placement
    );

    let message = refused(validate_create_service(&daemon(
        json!({"launchType": "FARGATE"}),
    )));
    assert!(message.contains("FARGATE"), "{message}");
    let providers = json!({"capacityProviderStrategy": [{"capacityProvider": "default"}]});
    let message = refused(validate_create_service(&daemon(providers.clone())));
    assert!(message.contains("DAEMON scheduling strategy"), "{message}");
    let message = refused(validate_update_service(&update(providers), Daemon));
    assert!(message.contains("capacity provider strategy"), "{message}");

    let message = refused(validate_create_service(&daemon(
        json!({"deploymentConfiguration": {"maximumPercent": 200}}),
    )));
    assert_eq!(
        message,
        "The daemon scheduling strategy does not support values above 100 for maximumPercent on a deployment configuration. Change the maximumPercent value to 100, and try again"
    );
}

#[test]
fn deployment_percentages_are_checked() {
    let check = |config: Value, scheduling| {
        let config: DeploymentConfiguration = serde_json::from_value(config).unwrap();
        validate_deployment_configuration(&config, scheduling)
    };
    check(
        json!({"minimumHealthyPercent": 100, "maximumPercent": 100}),
        Replica,
    )
    .unwrap();
    check(
        json!({"minimumHealthyPercent": 0, "maximumPercent": 400}),
        Replica,
    )
    .unwrap();
    check(json!({"maximumPercent": 100}), Daemon).unwrap();
    check(json!({"maximumPercent": 50}), Daemon).unwrap();
    for min in [-1, 101] {
        let message = refused(check(json!({"minimumHealthyPercent": min}), Replica));
        assert!(
            message.contains("minimumHealthyPercent must be between 0 and 100"),
            "{message}"
        );
        refused(check(json!({"minimumHealthyPercent": min}), Daemon));
    }
    let message = refused(check(json!({"maximumPercent": 99}), Replica));
    assert!(
        message.contains("maximumPercent must be at least 100"),
        "{message}"
    );
    let message = refused(check(json!({"maximumPercent": -1}), Daemon));
    assert!(
        message.contains("maximumPercent must not be negative"),
        "{message}"
    );
    // The same checks through the requests.
    refused(validate_create_service(&create(
        json!({"deploymentConfiguration": {"maximumPercent": 50}}),
    )));
    refused(validate_update_service(
        &update(json!({"deploymentConfiguration": {"minimumHealthyPercent": 101}})),
        Replica,
    ));
}

#[test]
fn circuit_breaker_thresholds_and_strategies_are_checked() {
    let check = |config: Value| {
        let config: DeploymentConfiguration = serde_json::from_value(config).unwrap();
        validate_deployment_configuration(&config, Replica)
    };
    let breaker = |kind: &str, value: i32| {
        json!({"deploymentCircuitBreaker": {"enable": true, "rollback": false,
            "thresholdConfiguration": {"type": kind, "value": value}}})
    };
    for kind in ["COUNT", "BOUNDED_PERCENT", "UNBOUNDED_PERCENT"] {
        check(breaker(kind, 1)).unwrap();
        check(breaker(kind, 150)).unwrap();
        let message = refused(check(breaker(kind, 0)));
        assert!(message.contains("thresholdConfiguration"), "{message}");
    }
    check(json!({"deploymentCircuitBreaker": {"enable": false, "rollback": true}})).unwrap();
    check(json!({"earlySuccessCriteria": {"enable": true, "healthyPercent": 100}})).unwrap();
    let message = refused(check(
        json!({"earlySuccessCriteria": {"enable": true, "healthyPercent": 101}}),
    ));
    assert!(message.contains("healthyPercent"), "{message}");
    for strategy in ["BLUE_GREEN", "LINEAR", "CANARY"] {
        let message = refused(check(json!({"strategy": strategy})));
        assert_eq!(
            message,
            format!(
                "berth supports the ROLLING deployment strategy only; {strategy} is not supported."
            )
        );
    }
}

#[test]
fn list_limits_are_checked() {
    let strategies: Vec<Value> = (0..6).map(|_| json!({"type": "random"})).collect();
    let message = refused(validate_create_service(&create(
        json!({"placementStrategy": strategies}),
    )));
    assert!(
        message.contains("at most 5 placement strategy rules"),
        "{message}"
    );
    let constraints: Vec<Value> = (0..11)
        .map(|_| json!({"type": "distinctInstance"}))
        .collect();
    let message = refused(validate_update_service(
        &update(json!({"placementConstraints": constraints})),
        Replica,
    ));
    assert!(
        message.contains("at most 10 placement constraints"),
        "{message}"
    );
    let providers: Vec<Value> = (0..21)
        .map(|i| json!({"capacityProvider": format!("cp-{i}")}))
        .collect();
    let message = refused(validate_create_service(&create(
        json!({"capacityProviderStrategy": providers}),
    )));
    assert!(
        message.contains("at most 20 capacity providers"),
        "{message}"
    );
    let message = refused(validate_create_service(&create(
        json!({"gatewayConnectors": [{"portName": "a"}, {"portName": "b"}]}),
    )));
    assert!(message.contains("gateway connector"), "{message}");
}

#[test]
fn other_members_are_checked() {
    let message = refused(validate_create_service(&create(
        json!({"healthCheckGracePeriodSeconds": -1}),
    )));
    assert!(
        message.contains("healthCheckGracePeriodSeconds"),
        "{message}"
    );
    refused(validate_update_service(
        &update(json!({"healthCheckGracePeriodSeconds": -1})),
        Replica,
    ));
    let message = refused(validate_create_service(&create(json!({
        "monitoring": {"metricConfigurations": [{"metricNames": ["CPUUtilization"], "resolutionSeconds": 30}]}
    }))));
    assert!(message.contains("resolutionSeconds"), "{message}");
    let message = refused(validate_update_service(
        &update(json!({
            "monitoring": {"metricConfigurations": [{"metricNames": [], "resolutionSeconds": 20}]}
        })),
        Replica,
    ));
    assert!(message.contains("metricNames"), "{message}");
    let message = refused(validate_create_service(&create(
        json!({"tags": [{"key": "aws:reserved", "value": "v"}]}),
    )));
    assert!(message.contains("aws:"), "{message}");
    let message = refused(validate_create_service(&create(
        json!({"tags": [{"key": "k", "value": "1"}, {"key": "k", "value": "2"}]}),
    )));
    assert!(message.contains("Duplicate"), "{message}");
}

//! ECS's deployment defaults and the circuit breaker's failure thresholds.

use serde_json::json;

use crate::service::{
    CIRCUIT_BREAKER_MAX_THRESHOLD, CIRCUIT_BREAKER_MIN_THRESHOLD, DeploymentCircuitBreaker,
    DeploymentConfiguration, DeploymentStrategy, SchedulingStrategy, ThresholdConfiguration,
    ThresholdType, circuit_breaker_threshold,
};

use SchedulingStrategy::{Daemon, Replica};

fn config(min_healthy: Option<i32>, max: Option<i32>) -> DeploymentConfiguration {
    DeploymentConfiguration {
        minimum_healthy_percent: min_healthy,
        maximum_percent: max,
        ..DeploymentConfiguration::default()
    }
}

fn threshold(threshold_type: ThresholdType, value: i32) -> ThresholdConfiguration {
    ThresholdConfiguration {
        threshold_type,
        value,
    }
}

#[test]
fn defaults_depend_on_the_scheduling_strategy() {
    assert_eq!(DeploymentConfiguration::defaults(Replica), (100, 200));
    assert_eq!(DeploymentConfiguration::defaults(Daemon), (0, 100));
    let empty = DeploymentConfiguration::default();
    assert_eq!(empty.effective(Replica), (100, 200));
    assert_eq!(empty.effective(Daemon), (0, 100));
}

#[test]
fn configured_percentages_win_over_the_defaults() {
    assert_eq!(config(Some(50), Some(150)).effective(Replica), (50, 150));
    assert_eq!(config(Some(0), None).effective(Replica), (0, 200));
    assert_eq!(config(None, Some(100)).effective(Replica), (100, 100));
    assert_eq!(config(Some(50), None).effective(Daemon), (50, 100));
    assert_eq!(config(None, Some(100)).effective(Daemon), (0, 100));
}

#[test]
fn the_completed_configuration_is_what_describe_shows() {
    let completed = DeploymentConfiguration::default().completed(Replica);
    assert_eq!(
        serde_json::to_value(&completed).unwrap(),
        json!({
            "deploymentCircuitBreaker": {"enable": false, "rollback": false},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "strategy": "ROLLING"
        })
    );
    let daemon = DeploymentConfiguration::default().completed(Daemon);
    assert_eq!(daemon.effective(Daemon), (0, 100));
    assert_eq!(daemon.maximum_percent, Some(100));
    assert_eq!(daemon.minimum_healthy_percent, Some(0));

    // What the request gave is kept.
    let given: DeploymentConfiguration = serde_json::from_value(json!({
        "deploymentCircuitBreaker": {"enable": true, "rollback": true},
        "minimumHealthyPercent": 50,
        "alarms": {"alarmNames": ["a"], "enable": true, "rollback": false},
        "bakeTimeInMinutes": 3
    }))
    .unwrap();
    let completed = given.completed(Replica);
    assert!(completed.circuit_breaker_enabled());
    assert_eq!(completed.effective(Replica), (50, 200));
    assert_eq!(completed.alarms, given.alarms);
    assert_eq!(completed.bake_time_in_minutes, Some(3));
    assert_eq!(completed.strategy, Some(DeploymentStrategy::Rolling));
    // Completing twice changes nothing.
    assert_eq!(completed.completed(Replica), completed);
}

#[test]
fn the_circuit_breaker_is_off_unless_enabled() {
    assert!(!DeploymentConfiguration::default().circuit_breaker_enabled());
    let off = DeploymentConfiguration {
        deployment_circuit_breaker: Some(DeploymentCircuitBreaker {
            enable: false,
            rollback: true,
            ..DeploymentCircuitBreaker::default()
        }),
        ..DeploymentConfiguration::default()
    };
    assert!(!off.circuit_breaker_enabled());
}

#[test]
fn the_default_threshold_is_half_the_desired_count_rounded_up_within_3_and_200() {
    let cases = [
        (-5, 3),
        (0, 3),
        (1, 3),
        (5, 3),
        (6, 3),
        (7, 4),
        (8, 4),
        (9, 5),
        (19, 10),
        (20, 10),
        (21, 11),
        (100, 50),
        (399, 200),
        (400, 200),
        (401, 200),
        (i32::MAX, 200),
    ];
    for (desired, expected) in cases {
        assert_eq!(circuit_breaker_threshold(desired), expected, "{desired}");
    }
    for desired in 0..1000 {
        let t = circuit_breaker_threshold(desired);
        assert!((CIRCUIT_BREAKER_MIN_THRESHOLD..=CIRCUIT_BREAKER_MAX_THRESHOLD).contains(&t));
        assert!(t >= circuit_breaker_threshold(desired - 1), "monotonic");
    }
}

#[test]
fn a_configured_threshold_replaces_the_default() {
    // BOUNDED_PERCENT of 50 is the default.
    for desired in [0, 1, 7, 100, 1000] {
        assert_eq!(
            threshold(ThresholdType::BoundedPercent, 50).threshold(desired),
            circuit_breaker_threshold(desired)
        );
    }
    assert_eq!(
        threshold(ThresholdType::BoundedPercent, 10).threshold(25),
        3
    );
    assert_eq!(
        threshold(ThresholdType::BoundedPercent, 10).threshold(41),
        5
    );
    assert_eq!(
        threshold(ThresholdType::BoundedPercent, 100).threshold(1000),
        200
    );
    assert_eq!(
        threshold(ThresholdType::UnboundedPercent, 10).threshold(25),
        3
    );
    assert_eq!(
        threshold(ThresholdType::UnboundedPercent, 10).threshold(5),
        1
    );
    assert_eq!(
        threshold(ThresholdType::UnboundedPercent, 100).threshold(1000),
        1000
    );
    assert_eq!(
        threshold(ThresholdType::UnboundedPercent, 50).threshold(0),
        0
    );
    assert_eq!(
        threshold(ThresholdType::UnboundedPercent, i32::MAX).threshold(i32::MAX),
        i32::MAX
    );
    assert_eq!(threshold(ThresholdType::Count, 1).threshold(1000), 1);
    assert_eq!(threshold(ThresholdType::Count, 500).threshold(2), 500);

    let breaker = DeploymentCircuitBreaker {
        enable: true,
        rollback: true,
        reset_on_healthy_task: None,
        threshold_configuration: None,
    };
    assert_eq!(breaker.threshold(100), 50);
    assert!(breaker.resets_on_healthy_task());
    let counted = DeploymentCircuitBreaker {
        reset_on_healthy_task: Some(false),
        threshold_configuration: Some(threshold(ThresholdType::Count, 2)),
        ..breaker
    };
    assert_eq!(counted.threshold(100), 2);
    assert!(!counted.resets_on_healthy_task());
}

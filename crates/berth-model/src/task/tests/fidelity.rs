//! Every member of the ECS model survives decoding and encoding unchanged; required
//! members, enums and timestamps behave as the wire protocol wants.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ErrorCode;
use crate::task::{
    DescribeTasksRequest, LaunchType, ListTasksRequest, ListTasksResponse, ManagedAgentName,
    PlacementStrategyType, RunTaskRequest, RunTaskResponse, StartTaskRequest, StopTaskRequest,
    StopTaskResponse, SubmitContainerStateChangeRequest, SubmitTaskStateChangeRequest,
    SubmitTaskStateChangeResponse, Task, TaskField, TaskStatus, TaskStopCode,
};

/// A Task that sets every member of Task and of every shape nested in it.
const EVERY_MEMBER_TASK: &str = include_str!("every_member_task.json");
/// The same for RunTaskRequest.
const EVERY_MEMBER_RUN_TASK: &str = include_str!("every_member_run_task.json");
/// The same for SubmitTaskStateChangeRequest.
const EVERY_MEMBER_STATE_CHANGE: &str = include_str!("every_member_state_change.json");
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
fn every_task_member_round_trips() {
    let input: Value = serde_json::from_str(EVERY_MEMBER_TASK).unwrap();
    assert_eq!(round_trip::<Task>(&input), input);
}

#[test]
fn every_run_task_member_round_trips() {
    let input: Value = serde_json::from_str(EVERY_MEMBER_RUN_TASK).unwrap();
    assert_eq!(round_trip::<RunTaskRequest>(&input), input);
}

#[test]
fn every_state_change_member_round_trips() {
    let input: Value = serde_json::from_str(EVERY_MEMBER_STATE_CHANGE).unwrap();
    assert_eq!(round_trip::<SubmitTaskStateChangeRequest>(&input), input);
}

#[test]
fn every_member_of_the_other_shapes_round_trips() {
    let all: Value = serde_json::from_str(EVERY_MEMBER_OTHER).unwrap();
    let check = |name: &str, encoded: Value| assert_eq!(encoded, all[name], "{name}");
    check(
        "StartTaskRequest",
        round_trip::<StartTaskRequest>(&all["StartTaskRequest"]),
    );
    check(
        "StopTaskRequest",
        round_trip::<StopTaskRequest>(&all["StopTaskRequest"]),
    );
    check(
        "DescribeTasksRequest",
        round_trip::<DescribeTasksRequest>(&all["DescribeTasksRequest"]),
    );
    check(
        "ListTasksRequest",
        round_trip::<ListTasksRequest>(&all["ListTasksRequest"]),
    );
    check(
        "ListTasksResponse",
        round_trip::<ListTasksResponse>(&all["ListTasksResponse"]),
    );
    check(
        "SubmitContainerStateChangeRequest",
        round_trip::<SubmitContainerStateChangeRequest>(&all["SubmitContainerStateChangeRequest"]),
    );
    check(
        "SubmitTaskStateChangeResponse",
        round_trip::<SubmitTaskStateChangeResponse>(&all["SubmitTaskStateChangeResponse"]),
    );
}

#[test]
fn absent_members_are_omitted_and_response_lists_always_written() {
    assert_eq!(serde_json::to_value(Task::default()).unwrap(), json!({}));
    assert_eq!(
        serde_json::to_value(RunTaskResponse::default()).unwrap(),
        json!({"tasks": [], "failures": []})
    );
    assert_eq!(
        serde_json::to_value(ListTasksResponse::default()).unwrap(),
        json!({"taskArns": []})
    );
    assert_eq!(
        serde_json::to_value(StopTaskResponse::default()).unwrap(),
        json!({})
    );
    // A client reads responses that leave the lists out.
    let response: RunTaskResponse = serde_json::from_value(json!({})).unwrap();
    assert!(response.tasks.is_empty() && response.failures.is_empty());
}

#[test]
fn the_smallest_requests_decode() {
    let run: RunTaskRequest = crate::decode::decode(br#"{"taskDefinition":"web"}"#).unwrap();
    assert_eq!(run.task_definition, "web");
    assert_eq!(run.count, None);
    let list: ListTasksRequest = crate::decode::decode(b"").unwrap();
    assert_eq!(list, ListTasksRequest::default());
    let change: SubmitTaskStateChangeRequest = crate::decode::decode(b"{}").unwrap();
    assert_eq!(change, SubmitTaskStateChangeRequest::default());
}

#[test]
fn required_members_are_named_when_missing() {
    let cases: Vec<(Value, &str, Refusal)> = vec![
        (json!({}), "taskDefinition", decode_err::<RunTaskRequest>),
        (
            json!({"taskDefinition": "web", "networkConfiguration": {"awsvpcConfiguration": {}}}),
            "networkConfiguration.awsvpcConfiguration.subnets",
            decode_err::<RunTaskRequest>,
        ),
        (
            json!({"taskDefinition": "web", "volumeConfigurations": [{"managedEBSVolume": {"roleArn": "r"}}]}),
            "volumeConfigurations[0].name",
            decode_err::<RunTaskRequest>,
        ),
        (
            json!({"taskDefinition": "web", "volumeConfigurations": [{"name": "v", "managedEBSVolume": {}}]}),
            "volumeConfigurations[0].managedEBSVolume.roleArn",
            decode_err::<RunTaskRequest>,
        ),
        (
            json!({"taskDefinition": "web"}),
            "containerInstances",
            decode_err::<StartTaskRequest>,
        ),
        (json!({}), "task", decode_err::<StopTaskRequest>),
        (json!({}), "tasks", decode_err::<DescribeTasksRequest>),
        (
            json!({"attachments": [{"attachmentArn": "a"}]}),
            "attachments[0].status",
            decode_err::<SubmitTaskStateChangeRequest>,
        ),
        (
            json!({"managedAgents": [{"containerName": "c", "status": "RUNNING"}]}),
            "managedAgents[0].managedAgentName",
            decode_err::<SubmitTaskStateChangeRequest>,
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
    let run: RunTaskRequest = serde_json::from_value(json!({
        "taskDefinition": "web",
        "launchType": "MANAGED_INSTANCES",
        "placementStrategy": [{"type": "binpack", "field": "memory"}]
    }))
    .unwrap();
    assert_eq!(run.launch_type, Some(LaunchType::ManagedInstances));
    let strategy = &run.placement_strategy.unwrap()[0];
    assert_eq!(strategy.strategy_type, Some(PlacementStrategyType::Binpack));
    assert_eq!(
        TaskStopCode::EssentialContainerExited.as_str(),
        "EssentialContainerExited"
    );
    assert_eq!(
        ManagedAgentName::ExecuteCommandAgent.as_str(),
        "ExecuteCommandAgent"
    );
    assert_eq!(TaskField::Tags.as_str(), "TAGS");

    let (code, message) =
        decode_err::<RunTaskRequest>(json!({"taskDefinition": "web", "launchType": "ec2"}));
    assert_eq!(code, ErrorCode::InvalidParameterException);
    assert!(message.contains("launchType"), "{message}");
    let (_, message) =
        decode_err::<DescribeTasksRequest>(json!({"tasks": [], "include": ["tags"]}));
    assert!(message.contains("include[0]"), "{message}");
}

#[test]
fn timestamps_are_epoch_seconds_integral_or_not() {
    let task: Task =
        serde_json::from_value(json!({"createdAt": 1_700_000_000, "startedAt": 1.5})).unwrap();
    assert_eq!(task.created_at, Some(1_700_000_000.0));
    assert_eq!(task.started_at, Some(1.5));
}

#[test]
fn task_statuses_are_ordered_by_the_lifecycle() {
    assert!(TaskStatus::Provisioning < TaskStatus::Pending);
    assert!(TaskStatus::Pending < TaskStatus::Running);
    assert!(TaskStatus::Running < TaskStatus::Stopping);
    assert!(TaskStatus::Stopping < TaskStatus::Stopped);
    assert_eq!(TaskStatus::Deprovisioning.to_string(), "DEPROVISIONING");
}

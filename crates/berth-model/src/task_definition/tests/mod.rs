//! Unit tests of the task definition model: serde fidelity, each validation rule
//! (accepted and refused), and what registration adds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fidelity;
mod register;
mod validate;

use serde_json::{Value, json};

use super::shapes::RegisterTaskDefinitionRequest;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The smallest valid definition: one bridge-mode container with a memory limit.
fn base() -> Value {
    json!({
        "family": "web",
        "containerDefinitions": [{"name": "app", "image": "nginx:latest", "memory": 128}]
    })
}

/// `base()` with `task` merged into the task and `container` into its container.
fn with(task: Value, container: Value) -> Value {
    let mut value = base();
    merge(&mut value, task);
    merge(&mut value["containerDefinitions"][0], container);
    value
}

/// Shallow merge of the members of `patch` into `target`; a null member removes one.
fn merge(target: &mut Value, patch: Value) {
    let (Some(target), Value::Object(patch)) = (target.as_object_mut(), patch) else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(&key);
        } else {
            target.insert(key, value);
        }
    }
}

/// A container named `name` with an image and a memory limit, plus `extra`.
fn container(name: &str, extra: Value) -> Value {
    let mut value = json!({"name": name, "image": "busybox", "memory": 64});
    merge(&mut value, extra);
    value
}

/// A definition with these containers and task members.
fn task(task: Value, containers: Vec<Value>) -> Value {
    let mut value = json!({"family": "web", "containerDefinitions": containers});
    merge(&mut value, task);
    value
}

fn decode(value: &Value) -> ApiResult<RegisterTaskDefinitionRequest> {
    crate::decode::decode(&serde_json::to_vec(value).expect("serializable"))
}

fn validate(value: &Value) -> ApiResult<()> {
    super::validate_registration(&decode(value)?)
}

#[track_caller]
fn accepted(value: Value) {
    if let Err(err) = validate(&value) {
        panic!("refused: {err}\n{value:#}");
    }
}

/// Asserts the definition is refused with `code` and a message containing every
/// one of `words`; returns the error.
#[track_caller]
fn refused(value: Value, code: ErrorCode, words: &[&str]) -> ApiError {
    let Err(err) = validate(&value) else {
        panic!("accepted, expected {code} mentioning {words:?}:\n{value:#}");
    };
    assert_eq!(err.code, code, "{err}");
    for word in words {
        assert!(
            err.message.contains(word),
            "message lacks {word:?}: {}",
            err.message
        );
    }
    err
}

#[track_caller]
fn client_error(value: Value, words: &[&str]) -> ApiError {
    refused(value, ErrorCode::ClientException, words)
}

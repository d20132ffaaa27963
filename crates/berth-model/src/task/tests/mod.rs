//! Unit tests of the task model: serde fidelity of every shape, the overrides a task
//! applies to its definition, and what a task reserves on its instance.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fidelity;
mod overrides;
mod resources;

use serde_json::{Value, json};

use crate::task_definition::TaskDefinition;

/// A registered definition from its JSON (as DescribeTaskDefinition answers it).
fn definition(value: Value) -> TaskDefinition {
    serde_json::from_value(value).expect("a task definition")
}

/// A definition with these containers and task-level members.
fn with_containers(task: Value, containers: Vec<Value>) -> TaskDefinition {
    let mut value = json!({"family": "web", "containerDefinitions": containers});
    if let (Some(target), Value::Object(members)) = (value.as_object_mut(), task) {
        target.extend(members);
    }
    definition(value)
}

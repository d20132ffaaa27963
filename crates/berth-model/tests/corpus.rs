//! The real-world task definitions of the shared corpus (`shared/corpus/taskdefs`,
//! see its SOURCES.md): every one decodes, passes registration's validation, and
//! comes back from registration with every ECS member unchanged.
//!
//! The corpus is found at `../../../shared/corpus/taskdefs` from this crate, or at
//! `$BERTH_CORPUS_DIR`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use berth_model::decode;
use berth_model::task_definition::{
    RegisterTaskDefinitionRequest, TaskDefinition, validate_registration,
};
use serde_json::{Map, Value};

/// Keys in corpus files that are not members of the ECS model, with why. They are
/// ignored on input, so they are not expected back.
const NOT_ECS_MEMBERS: &[(&str, &str)] = &[
    ("Tags", "file 24: capitalised, not the ECS `tags` member"),
    (
        "portBindings",
        "file 31: not an ECS member (portMappings was meant)",
    ),
];

/// Members of a describe output (file 24) that registration sets itself; compared
/// against what registration produced with the same revision.
const SET_BY_REGISTRATION: &[&str] = &["status", "revision"];

fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("BERTH_CORPUS_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/taskdefs")
}

/// Every `*.json` of the corpus, sorted, with its content.
fn corpus() -> Vec<(String, Value)> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("corpus at {}: {err} (set BERTH_CORPUS_DIR)", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 44, "the corpus has 44 task definitions");
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read(&path).unwrap();
            let value: Value =
                serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, unwrap_describe(value))
        })
        .collect()
}

/// Files 15 and 23 are DescribeTaskDefinition outputs, `{"taskDefinition": {...}}`.
fn unwrap_describe(value: Value) -> Value {
    match value {
        Value::Object(mut map) if map.len() == 1 && map.contains_key("taskDefinition") => {
            map.remove("taskDefinition").unwrap()
        }
        other => other,
    }
}

fn decode_request(name: &str, value: &Value) -> RegisterTaskDefinitionRequest {
    let bytes = serde_json::to_vec(value).unwrap();
    decode::<RegisterTaskDefinitionRequest>(&bytes).unwrap_or_else(|err| panic!("{name}: {err}"))
}

#[test]
fn every_corpus_definition_decodes_and_is_accepted() {
    // All 44 are accepted. File 08 has a volumesFrom naming a container that is not
    // in the definition (`simple-demo`); ECS registers such definitions (the agent
    // fails the task when it starts), so berth accepts it too. Files 23 and 24 name
    // an App Mesh proxy container (`envoy`) that is not in the definition; ECS does
    // not check that at registration either.
    let mut refused = Vec::new();
    for (name, value) in corpus() {
        let request = decode_request(&name, &value);
        if let Err(err) = validate_registration(&request) {
            refused.push(format!("{name}: {err}"));
        }
    }
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
}

#[test]
fn every_corpus_definition_comes_back_unchanged() {
    for (name, input) in corpus() {
        let request = decode_request(&name, &input);
        let tags = request.tags.clone();
        let revision = input.get("revision").and_then(Value::as_i64).unwrap_or(1) as i32;
        let arn = format!(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/{}:{revision}",
            request.family
        );
        let definition = TaskDefinition::from_registration(request, arn, revision, 1.7e9, None);
        // The response shape: the definition, and the tags next to it.
        let mut output = serde_json::to_value(&definition).unwrap();
        if let Some(tags) = tags {
            output["tags"] = serde_json::to_value(tags).unwrap();
        }
        let expected = strip_not_ecs(input);
        let Value::Object(expected) = expected else {
            panic!("{name}: not an object");
        };
        for (member, value) in &expected {
            // status and revision of file 24 come out of registration itself; they
            // are compared too (ACTIVE, and the revision given).
            let kind = if SET_BY_REGISTRATION.contains(&member.as_str()) {
                "set"
            } else {
                "given"
            };
            let got = output.get(member);
            assert!(
                got.is_some_and(|got| keeps(got, value)),
                "{name}: {kind} member {member} changed:\n given {value}\n   got {got:?}"
            );
        }
    }
}

/// Whether `got` keeps everything `given` said: the same scalars, arrays of the same
/// length whose items keep the given items, and objects holding every given member.
/// `got` may have more members: the defaults ECS fills in (`essential`, `cpu`, empty
/// lists, a port mapping's protocol).
fn keeps(got: &Value, given: &Value) -> bool {
    match (got, given) {
        (Value::Object(got), Value::Object(given)) => given
            .iter()
            .all(|(key, value)| got.get(key).is_some_and(|g| keeps(g, value))),
        (Value::Array(got), Value::Array(given)) => {
            got.len() == given.len() && got.iter().zip(given).all(|(g, v)| keeps(g, v))
        }
        _ => got == given,
    }
}

/// Removes the keys of [`NOT_ECS_MEMBERS`] at any depth.
fn strip_not_ecs(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(key, _)| !NOT_ECS_MEMBERS.iter().any(|(k, _)| k == key))
                .map(|(key, value)| (key, strip_not_ecs(value)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_not_ecs).collect()),
        other => other,
    }
}

//! berth as its users drive it: boto3 and the AWS CLI, with only the endpoint changed.
//!
//! Python with boto3 is required (CI installs it); without it these tests fail with
//! a clear message. Set BERTH_SKIP_PYTHON=1 to skip them on a machine without Python.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{
    ACCESS_KEY_ID, BerthServer, REGION, Require, SECRET_ACCESS_KEY, TestResult, cluster_arn,
    differences,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(120);

/// A corpus file boto3 accepts as is (no members outside the ECS model): App Mesh
/// proxy, FireLens router, health checks, ulimits and dependsOn.
const CORPUS_FILE: &str = "16-aws-samples__amazon-ecs-firelens-examples__parse-envoy-app-mesh.json";

const SCRIPT: &str = r#"
import json, sys
import boto3
from botocore.exceptions import ClientError

endpoint, key_id, secret, corpus_file = sys.argv[1:5]
ecs = boto3.client(
    "ecs", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id=key_id, aws_secret_access_key=secret,
)
cluster = ecs.create_cluster(clusterName="boto3-cluster", tags=[{"key": "made-by", "value": "boto3"}])["cluster"]
with open(corpus_file) as f:
    request = json.load(f)
registered = ecs.register_task_definition(**request)["taskDefinition"]
again = ecs.register_task_definition(**request)["taskDefinition"]
arns = []
for page in ecs.get_paginator("list_task_definitions").paginate(PaginationConfig={"PageSize": 1}):
    arns.extend(page["taskDefinitionArns"])
described = ecs.describe_task_definition(taskDefinition=request["family"])["taskDefinition"]
clusters = ecs.describe_clusters(clusters=["boto3-cluster", "absent"], include=["TAGS"])
try:
    ecs.describe_task_definition(taskDefinition="absent:1")
    error = None
except ClientError as e:
    error = {"code": e.response["Error"]["Code"], "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}
print(json.dumps({
    "cluster": cluster,
    "registered": registered,
    "again": again,
    "listed": arns,
    "described": described,
    "clusters": clusters["clusters"],
    "failures": clusters["failures"],
    "error": error,
    "clusterArns": ecs.list_clusters()["clusterArns"],
}, default=str))
"#;

fn skip_python() -> bool {
    std::env::var("BERTH_SKIP_PYTHON").is_ok_and(|v| v == "1")
}

/// Runs a command with the test key in its environment and none of the machine's
/// AWS configuration, killing it at the deadline.
async fn run(program: &str, args: &[&str], home: &Path) -> TestResult<Output> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_PAGER", "");
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .map_err(|_| format!("{program} did not finish within {DEADLINE:?}"))?
        .map_err(|err| format!("cannot run {program}: {err}"))?;
    Ok(output)
}

fn stdout_json(what: &str, output: &Output) -> TestResult<Value> {
    if !output.status.success() {
        return Err(format!(
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    serde_json::from_slice(&output.stdout).map_err(|err| {
        format!(
            "{what} printed no JSON ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
        .into()
    })
}

#[tokio::test]
async fn boto3_drives_berth() -> TestResult {
    if skip_python() {
        eprintln!("BERTH_SKIP_PYTHON=1: boto3 test skipped");
        return Ok(());
    }
    let home = tempfile::tempdir()?;
    let check = run("python3", &["-c", "import boto3"], home.path()).await?;
    if !check.status.success() {
        return Err(format!(
            "python3 with boto3 is required (pip install boto3), or set BERTH_SKIP_PYTHON=1: {}",
            String::from_utf8_lossy(&check.stderr)
        )
        .into());
    }

    let server = BerthServer::start()?;
    let script = home.path().join("drive_berth.py");
    std::fs::write(&script, SCRIPT)?;
    let corpus_file = common::corpus_dir().join(CORPUS_FILE);
    let request = common::corpus_request(&corpus_file)?;
    let family = request["family"].as_str().req("family")?.to_string();
    let args = [
        script.to_str().req("script path")?,
        &server.endpoint(),
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        corpus_file.to_str().req("corpus path")?,
    ];
    let output = run("python3", &args, home.path()).await?;
    let result = stdout_json("the boto3 script", &output)?;

    let arn = cluster_arn(REGION, "boto3-cluster");
    assert_eq!(result["cluster"]["clusterArn"], arn.as_str());
    assert_eq!(result["cluster"]["status"], "ACTIVE");
    assert_eq!(result["clusterArns"], json!([arn]));
    assert_eq!(
        result["clusters"][0]["tags"],
        json!([{"key": "made-by", "value": "boto3"}])
    );
    assert_eq!(result["failures"][0]["reason"], "MISSING");
    assert_eq!(
        result["failures"][0]["arn"],
        cluster_arn(REGION, "absent").as_str()
    );

    let first = common::task_definition_arn(REGION, &family, 1);
    let second = common::task_definition_arn(REGION, &family, 2);
    assert_eq!(result["registered"]["taskDefinitionArn"], first.as_str());
    assert_eq!(result["again"]["taskDefinitionArn"], second.as_str());
    assert_eq!(
        result["listed"],
        json!([first, second]),
        "boto3's paginator walks pages of 1"
    );
    assert_eq!(result["described"]["revision"], 2);
    let mut problems = Vec::new();
    let mut sent = request.clone();
    if let Some(members) = sent.as_object_mut() {
        members.remove("tags");
    }
    differences(
        &sent,
        Some(&result["described"]),
        "taskDefinition",
        &mut problems,
    );
    assert!(
        problems.is_empty(),
        "boto3 reads back something else:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        result["error"],
        json!({"code": "ClientException", "status": 400})
    );
    Ok(())
}

#[tokio::test]
async fn aws_cli_lists_clusters() -> TestResult {
    if skip_python() {
        eprintln!("BERTH_SKIP_PYTHON=1: AWS CLI test skipped");
        return Ok(());
    }
    let home = tempfile::tempdir()?;
    let found = run("aws", &["--version"], home.path()).await;
    if !found.as_ref().is_ok_and(|o| o.status.success()) {
        // The CLI is optional (boto3 is not): say so, and pass.
        eprintln!("the AWS CLI is not installed: test skipped ({found:?})");
        return Ok(());
    }
    let server = BerthServer::start()?;
    server
        .client()
        .create_cluster()
        .cluster_name("cli-cluster")
        .send()
        .await?;
    let endpoint = server.endpoint();
    let listed = run(
        "aws",
        &[
            "ecs",
            "list-clusters",
            "--endpoint-url",
            &endpoint,
            "--output",
            "json",
        ],
        home.path(),
    )
    .await?;
    let listed = stdout_json("aws ecs list-clusters", &listed)?;
    assert_eq!(
        listed["clusterArns"],
        json!([cluster_arn(REGION, "cli-cluster")])
    );

    let described = run(
        "aws",
        &[
            "ecs",
            "describe-clusters",
            "--clusters",
            "cli-cluster",
            "--endpoint-url",
            &endpoint,
            "--output",
            "json",
        ],
        home.path(),
    )
    .await?;
    let described = stdout_json("aws ecs describe-clusters", &described)?;
    assert_eq!(described["clusters"][0]["clusterName"], "cli-cluster");
    assert_eq!(described["clusters"][0]["status"], "ACTIVE");

    // Errors reach the CLI user as ECS errors.
    let refused = run(
        "aws",
        &[
            "ecs",
            "delete-cluster",
            "--cluster",
            "absent",
            "--endpoint-url",
            &endpoint,
        ],
        home.path(),
    )
    .await?;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("ClusterNotFoundException"), "{stderr}");
    Ok(())
}

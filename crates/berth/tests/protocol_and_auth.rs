//! The wire: awsJson1_1 requests and errors as raw HTTP, and SigV4 authentication.
//! Every refused request must also leave nothing behind.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use common::{
    ACCESS_KEY_ID, BerthServer, REGION, RawRequest, RawResponse, Require, SECRET_ACCESS_KEY,
    Signer, TestResult, cluster_arn, service_error,
};
use serde_json::json;

/// Asserts no cluster of that name exists (in us-east-1).
async fn assert_no_cluster(server: &BerthServer, name: &str) -> TestResult {
    let out = server
        .client()
        .describe_clusters()
        .clusters(name)
        .send()
        .await?;
    assert!(
        out.clusters().is_empty(),
        "a refused request created {name}: {out:?}"
    );
    Ok(())
}

/// Asserts the server still answers a signed request.
async fn assert_alive(server: &BerthServer) -> TestResult {
    let response = server.call("ListClusters", &json!({})).await?;
    assert_eq!(
        response.status,
        200,
        "the server no longer answers: {}",
        response.text()
    );
    Ok(())
}

async fn send_signed(server: &BerthServer, op: &str, body: &[u8]) -> TestResult<RawResponse> {
    let request = RawRequest::ecs(op, body.to_vec()).signed(server, &Signer::test_key())?;
    server.send(&request).await
}

#[tokio::test]
async fn malformed_json_is_a_serialization_error() -> TestResult {
    let server = BerthServer::start()?;
    for body in [
        &b"{\"clusterName\": "[..],
        b"{\"clusterName\": \"x\",}",
        b"not json at all",
        b"\xff\xfe{}",
    ] {
        let response = send_signed(&server, "CreateCluster", body).await?;
        response.assert_error(400, "SerializationException");
    }
    assert!(
        server
            .client()
            .list_clusters()
            .send()
            .await?
            .cluster_arns()
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn unknown_operations_are_refused() -> TestResult {
    let server = BerthServer::start()?;
    let response = send_signed(&server, "Frobnicate", b"{}").await?;
    response.assert_error(400, "UnknownOperationException");
    let other_service = RawRequest::ecs("ListClusters", b"{}".to_vec())
        .header("X-Amz-Target", "DynamoDB_20120810.ListTables")
        .signed(&server, &Signer::test_key())?;
    server
        .send(&other_service)
        .await?
        .assert_error(400, "UnknownOperationException");
    Ok(())
}

#[tokio::test]
async fn a_member_of_the_wrong_type_is_named() -> TestResult {
    let server = BerthServer::start()?;
    let response = send_signed(&server, "ListClusters", br#"{"maxResults": "x"}"#).await?;
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.error_code().is_some(), "{}", response.text());
    assert!(
        response.error_message().contains("maxResults"),
        "the message names maxResults: {}",
        response.text()
    );

    let nested = br#"{"family": "f", "containerDefinitions": [{"name": "a", "image": "i", "memory": "lots"}]}"#;
    let response = send_signed(&server, "RegisterTaskDefinition", nested).await?;
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(
        response.error_message().contains("memory"),
        "the message names memory: {}",
        response.text()
    );
    Ok(())
}

#[tokio::test]
async fn deeply_nested_json_is_refused_and_the_server_lives() -> TestResult {
    let server = BerthServer::start()?;
    let body = "[".repeat(100_000);
    let response = send_signed(&server, "ListClusters", body.as_bytes()).await?;
    assert_eq!(response.status, 400, "{}", response.text());
    let objects = "{\"a\":".repeat(50_000);
    let response = send_signed(&server, "CreateCluster", objects.as_bytes()).await?;
    assert_eq!(response.status, 400, "{}", response.text());
    assert_alive(&server).await
}

#[tokio::test]
async fn a_10_mb_body_is_refused_and_the_server_lives() -> TestResult {
    let server = BerthServer::start()?;
    let mut body = br#"{"clusterName": "huge", "tags": [{"key": "k", "value": ""#.to_vec();
    body.extend(std::iter::repeat_n(b'v', 10 * 1024 * 1024));
    body.extend_from_slice(br#""}]}"#);
    let response = send_signed(&server, "CreateCluster", &body).await?;
    response.assert_error(413, "RequestEntityTooLargeException");

    // Just over 1 MiB is refused too; a request under it is read.
    let mut over = br#"{"clusterName": "over", "tags": [{"key": "k", "value": ""#.to_vec();
    over.extend(std::iter::repeat_n(b'v', 1024 * 1024));
    over.extend_from_slice(br#""}]}"#);
    send_signed(&server, "CreateCluster", &over)
        .await?
        .assert_error(413, "RequestEntityTooLargeException");

    assert_alive(&server).await?;
    assert_no_cluster(&server, "huge").await?;
    assert_no_cluster(&server, "over").await
}

#[tokio::test]
async fn responses_carry_the_awsjson_headers() -> TestResult {
    let server = BerthServer::start()?;
    let mut request_ids = BTreeSet::new();
    for _ in 0..3 {
        let ok = server.call("ListClusters", &json!({})).await?;
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.header("content-type"),
            Some("application/x-amz-json-1.1"),
            "{:?}",
            ok.headers
        );
        let id = ok.header("x-amzn-requestid").req("x-amzn-RequestId")?;
        assert!(!id.is_empty());
        request_ids.insert(id.to_string());
        assert_eq!(ok.json()?, json!({"clusterArns": []}));
    }
    assert_eq!(request_ids.len(), 3, "every request has its own id");

    let error = server
        .call(
            "DescribeTaskDefinition",
            &json!({"taskDefinition": "nope:1"}),
        )
        .await?;
    error.assert_error(400, "ClientException");
    assert_eq!(
        error.header("content-type"),
        Some("application/x-amz-json-1.1")
    );
    assert!(
        error
            .header("x-amzn-requestid")
            .is_some_and(|id| !id.is_empty())
    );
    assert!(
        !error.error_message().is_empty(),
        "an error has a message: {}",
        error.text()
    );

    let missing_cluster = server
        .call("DeleteCluster", &json!({"cluster": "nope"}))
        .await?;
    missing_cluster.assert_error(400, "ClusterNotFoundException");
    Ok(())
}

#[tokio::test]
async fn a_wrong_secret_is_refused() -> TestResult {
    let server = BerthServer::start()?;
    let signer = Signer::new(ACCESS_KEY_ID, "not-the-secret");
    let request = RawRequest::ecs(
        "CreateCluster",
        json!({"clusterName": "wrong-secret"}).to_string(),
    )
    .signed(&server, &signer)?;
    server
        .send(&request)
        .await?
        .assert_error(403, "InvalidSignatureException");

    let client = server.client_with_key(REGION, ACCESS_KEY_ID, "not-the-secret");
    let err = service_error(
        client
            .create_cluster()
            .cluster_name("wrong-secret")
            .send()
            .await,
    )?;
    err.assert_code(&["InvalidSignatureException"]);
    assert_eq!(err.status, Some(403));
    assert_no_cluster(&server, "wrong-secret").await
}

#[tokio::test]
async fn an_unknown_access_key_is_refused() -> TestResult {
    let server = BerthServer::start()?;
    let signer = Signer::new("AKIAUNKNOWNKEY000000", SECRET_ACCESS_KEY);
    let request = RawRequest::ecs(
        "CreateCluster",
        json!({"clusterName": "unknown-key"}).to_string(),
    )
    .signed(&server, &signer)?;
    server
        .send(&request)
        .await?
        .assert_error(403, "UnrecognizedClientException");

    let client = server.client_with_key(REGION, "AKIAUNKNOWNKEY000000", SECRET_ACCESS_KEY);
    let err = service_error(client.list_clusters().send().await)?;
    err.assert_code(&["UnrecognizedClientException"]);
    assert_eq!(err.status, Some(403));
    assert_no_cluster(&server, "unknown-key").await
}

#[tokio::test]
async fn a_body_changed_after_signing_is_refused() -> TestResult {
    let server = BerthServer::start()?;
    let mut request = RawRequest::ecs(
        "CreateCluster",
        json!({"clusterName": "signed"}).to_string(),
    )
    .signed(&server, &Signer::test_key())?;
    request.body = json!({"clusterName": "forged"}).to_string().into_bytes();
    server
        .send(&request)
        .await?
        .assert_error(403, "InvalidSignatureException");

    // A signed header changed after signing.
    let request = RawRequest::ecs(
        "CreateCluster",
        json!({"clusterName": "signed"}).to_string(),
    )
    .signed(&server, &Signer::test_key())?
    .header(
        "X-Amz-Target",
        "AmazonEC2ContainerServiceV20141113.DeleteCluster",
    );
    server
        .send(&request)
        .await?
        .assert_error(403, "InvalidSignatureException");

    assert_no_cluster(&server, "signed").await?;
    assert_no_cluster(&server, "forged").await
}

#[tokio::test]
async fn an_old_signature_has_expired() -> TestResult {
    let server = BerthServer::start()?;
    let twenty_minutes_ago = SystemTime::now() - Duration::from_secs(20 * 60);
    let request = RawRequest::ecs("CreateCluster", json!({"clusterName": "stale"}).to_string())
        .signed(&server, &Signer::test_key().at(twenty_minutes_ago))?;
    let response = server.send(&request).await?;
    response.assert_error(403, "InvalidSignatureException");
    assert!(
        response.error_message().contains("Signature expired"),
        "{}",
        response.text()
    );

    // From the future, too.
    let later = SystemTime::now() + Duration::from_secs(20 * 60);
    let request = RawRequest::ecs("CreateCluster", json!({"clusterName": "stale"}).to_string())
        .signed(&server, &Signer::test_key().at(later))?;
    let response = server.send(&request).await?;
    response.assert_error(403, "InvalidSignatureException");
    assert!(
        response.error_message().contains("Signature"),
        "{}",
        response.text()
    );

    assert_no_cluster(&server, "stale").await
}

#[tokio::test]
async fn an_unsigned_request_is_refused() -> TestResult {
    let server = BerthServer::start()?;
    let request = RawRequest::ecs(
        "CreateCluster",
        json!({"clusterName": "unsigned"}).to_string(),
    );
    server
        .send(&request)
        .await?
        .assert_error(403, "MissingAuthenticationTokenException");
    assert_no_cluster(&server, "unsigned").await
}

#[tokio::test]
async fn no_auth_accepts_unsigned_requests() -> TestResult {
    let server = BerthServer::start_with(&["--no-auth"])?;
    let request = RawRequest::ecs("CreateCluster", json!({"clusterName": "open"}).to_string());
    let response = server.send(&request).await?;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()?["cluster"]["clusterArn"],
        cluster_arn(REGION, "open")
    );

    // Signed requests still work, whatever the key, in their own region.
    let client = server.client_with_key("eu-west-1", "AKIAANYKEYATALL00000", "any-secret");
    let out = client.create_cluster().cluster_name("open").send().await?;
    assert_eq!(
        out.cluster().and_then(|c| c.cluster_arn()),
        Some(cluster_arn("eu-west-1", "open").as_str())
    );
    let listed = server.client().list_clusters().send().await?;
    assert_eq!(listed.cluster_arns(), [cluster_arn(REGION, "open")]);
    Ok(())
}

/// The `key = value` pairs of an INI file's `[default]` section.
fn default_section(text: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut pairs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
        } else if section == "default"
            && let Some((key, value)) = line.split_once('=')
        {
            pairs.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    pairs
}

#[tokio::test]
async fn a_server_without_keys_creates_its_credentials_file() -> TestResult {
    let mut server = BerthServer::start_without_test_key(&[])?;
    let path = server.data_dir().join("credentials");
    let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());

    let text = std::fs::read_to_string(&path)?;
    let pairs = default_section(&text);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let key_id = get("aws_access_key_id").req("aws_access_key_id in [default]")?;
    let secret = get("aws_secret_access_key").req("aws_secret_access_key in [default]")?;
    assert!(key_id.starts_with("AKIA"), "{key_id}");
    assert!(secret.len() >= 20, "a short secret");

    let announced = format!(
        "berth: created access key {key_id} (secret in {})",
        path.display()
    );
    assert!(
        server.startup_lines().contains(&announced),
        "expected {announced:?} in {:?}",
        server.startup_lines()
    );

    let client = server.client_with_key(REGION, &key_id, &secret);
    client
        .create_cluster()
        .cluster_name("with-created-key")
        .send()
        .await?;
    // The test key is not accepted by this server.
    let err = service_error(server.client().list_clusters().send().await)?;
    err.assert_code(&["UnrecognizedClientException"]);

    // After a restart the same key works, and no new one is made.
    server.restart()?;
    assert!(
        !server
            .startup_lines()
            .iter()
            .any(|l| l.contains("created access key")),
        "{:?}",
        server.startup_lines()
    );
    assert_eq!(std::fs::read_to_string(&path)?, text);
    let client = server.client_with_key(REGION, &key_id, &secret);
    let listed = client.list_clusters().send().await?;
    assert_eq!(
        listed.cluster_arns(),
        [cluster_arn(REGION, "with-created-key")]
    );
    Ok(())
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() -> TestResult {
    let mut server = BerthServer::start()?;
    server
        .client()
        .create_cluster()
        .cluster_name("before-stop")
        .send()
        .await?;
    let status = server.stop()?;
    assert!(
        status.success(),
        "berth exited with {status} on SIGTERM; log:\n{}",
        server.log()
    );
    server.restart()?;
    let out = server
        .client()
        .describe_clusters()
        .clusters("before-stop")
        .send()
        .await?;
    assert_eq!(out.clusters().len(), 1, "{out:?}");
    Ok(())
}

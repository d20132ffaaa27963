//! Container instances registered through the API (as an agent registers): custom
//! attributes with PutAttributes and ListAttributes, and ListContainerInstances'
//! `filter` in the cluster query language.

mod common;

use common::{BerthServer, TestResult};
use serde_json::{Value, json};

async fn register(server: &BerthServer, rack: &str, cpu: i64) -> TestResult<String> {
    let body = json!({
        "cluster": "default",
        "totalResources": [
            {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096},
            {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22"]},
            {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []}
        ],
        "attributes": [
            {"name": "ecs.os-type", "value": "linux"},
            {"name": "rack", "value": rack}
        ]
    });
    let answer = server.call_ok("RegisterContainerInstance", &body).await?;
    let arn = answer["containerInstance"]["containerInstanceArn"]
        .as_str()
        .ok_or("no ARN")?;
    Ok(arn.to_string())
}

async fn listed(server: &BerthServer, filter: &str) -> TestResult<Vec<String>> {
    let answer = server
        .call_ok("ListContainerInstances", &json!({"filter": filter}))
        .await?;
    let arns = answer["containerInstanceArns"]
        .as_array()
        .ok_or("no list")?;
    let mut arns: Vec<String> = arns
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    arns.sort();
    Ok(arns)
}

#[tokio::test]
async fn list_container_instances_filters_with_the_cluster_query_language() -> TestResult {
    let server = BerthServer::start()?;
    let a = register(&server, "r1", 2048).await?;
    let b = register(&server, "r2", 4096).await?;
    let mut both = vec![a.clone(), b.clone()];
    both.sort();

    assert_eq!(
        listed(&server, "attribute:rack == r1").await?,
        vec![a.clone()]
    );
    assert_eq!(listed(&server, "attribute:rack in [r1, r2]").await?, both);
    assert_eq!(
        listed(&server, "attribute:rack =~ r.* && !(attribute:rack == r2)").await?,
        vec![a.clone()]
    );
    assert_eq!(listed(&server, "attribute:ecs.os-type exists").await?, both);
    assert_eq!(
        listed(&server, "attribute:missing exists").await?,
        Vec::<String>::new()
    );
    assert_eq!(listed(&server, "agentConnected == false").await?, both);

    // A custom attribute set with PutAttributes is a subject too.
    let put = json!({"attributes": [{"name": "stack", "value": "prod", "targetId": b}]});
    server.call_ok("PutAttributes", &put).await?;
    assert_eq!(
        listed(&server, "attribute:stack == prod").await?,
        vec![b.clone()]
    );
    let attributes = server
        .call_ok(
            "ListAttributes",
            &json!({"targetType": "container-instance", "attributeName": "stack"}),
        )
        .await?;
    assert_eq!(attributes["attributes"][0]["targetId"], json!(b));

    // A syntax error names where it is.
    let refused = server
        .call(
            "ListContainerInstances",
            &json!({"filter": "attribute:rack == "}),
        )
        .await?;
    refused.assert_error(400, "InvalidParameterException");
    assert!(refused.text().contains("position"), "{}", refused.text());
    Ok(())
}

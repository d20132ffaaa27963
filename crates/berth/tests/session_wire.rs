//! The agent session on the wire, spoken by the test itself as an agent would: a
//! task report is recorded and acknowledged, the acknowledgement held only until
//! the next message or its deadline (here there is no next message), not until a
//! heartbeat.

mod common;

use std::time::Duration;

use berth_agent::client::Signer;
use berth_agent::client::session::{self, SessionStream};
use berth_proto::{AckRequest, AgentMessage, ServerMessage, TaskStateChange, TaskStatus};
use common::{ACCESS_KEY_ID, BerthServer, REGION, SECRET_ACCESS_KEY, TestResult};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Longer than any wait the protocol allows (an acknowledgement is held for
/// `berth_proto::ACK_DELAY`, heartbeats come after half an interval of quiet).
const LIMIT: Duration = Duration::from_secs(30);

async fn register_instance(server: &BerthServer) -> TestResult<(String, String)> {
    server
        .call_ok("CreateCluster", &json!({"clusterName": "wire"}))
        .await?;
    let body = json!({
        "cluster": "wire",
        "totalResources": [
            {"name": "CPU", "type": "INTEGER", "integerValue": 1024},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 1024},
            {"name": "PORTS", "type": "STRINGSET", "stringSetValue": []},
            {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []}
        ]
    });
    let answer = server.call_ok("RegisterContainerInstance", &body).await?;
    let instance = answer["containerInstance"]["containerInstanceArn"]
        .as_str()
        .ok_or("no instance ARN")?
        .to_string();
    let cluster = common::cluster_arn(REGION, "wire");
    Ok((cluster, instance))
}

/// The next message from the control plane.
async fn next(stream: &mut SessionStream) -> TestResult<ServerMessage> {
    loop {
        let frame = tokio::time::timeout(LIMIT, stream.next())
            .await
            .map_err(|_| "no message from the control plane")?
            .ok_or("the session ended")??;
        if let Message::Text(text) = frame {
            return Ok(serde_json::from_str(text.as_str())?);
        }
    }
}

async fn send(stream: &mut SessionStream, message: &AgentMessage) -> TestResult {
    stream
        .send(Message::text(serde_json::to_string(message)?))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_recorded_report_is_acknowledged_by_its_deadline_not_at_a_heartbeat() -> TestResult {
    let server = BerthServer::start()?;
    let (cluster, instance) = register_instance(&server).await?;
    let signer = Signer::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION);
    let mut stream = session::connect(&server.endpoint(), &signer, &cluster, &instance).await?;
    let ServerMessage::PayloadMessage(full) = next(&mut stream).await? else {
        return Err("the first message is not the full payload".into());
    };
    assert!(full.full_state && full.tasks.is_empty(), "{full:?}");

    server
        .call_ok(
            "RegisterTaskDefinition",
            &json!({"family": "wire", "containerDefinitions": [
                {"name": "app", "image": "busybox", "memory": 64, "essential": true}
            ]}),
        )
        .await?;
    let run = server
        .call_ok(
            "RunTask",
            &json!({"cluster": "wire", "taskDefinition": "wire"}),
        )
        .await?;
    let task_arn = run["tasks"][0]["taskArn"]
        .as_str()
        .ok_or("RunTask placed nothing")?
        .to_string();
    let payload = loop {
        match next(&mut stream).await? {
            ServerMessage::PayloadMessage(payload) => break payload,
            ServerMessage::HeartbeatMessage(_) => {}
            other => return Err(format!("expected the task's payload, got {other:?}").into()),
        }
    };
    assert_eq!(
        payload
            .tasks
            .iter()
            .map(|t| t.task_arn.as_str())
            .collect::<Vec<_>>(),
        [task_arn.as_str()]
    );
    send(
        &mut stream,
        &AgentMessage::AckRequest(AckRequest {
            cluster: cluster.clone(),
            container_instance: instance.clone(),
            message_id: payload.message_id.clone(),
            seq_num: payload.seq_num,
        }),
    )
    .await?;
    send(
        &mut stream,
        &AgentMessage::TaskStateChange(TaskStateChange::of_status(
            "report-1",
            &cluster,
            &task_arn,
            TaskStatus::Running,
        )),
    )
    .await?;

    // Nothing else is sent to this instance: the acknowledgement goes out alone once
    // its deadline (ACK_DELAY, 2 s) passes. Were it held for a message to ride with,
    // the first would be the heartbeat of the control plane's tick 10 s after the
    // session opened; a deadline between the two tells them apart.
    let within = berth_proto::ACK_DELAY + Duration::from_secs(5);
    let acknowledgement = tokio::time::timeout(within, next(&mut stream))
        .await
        .map_err(|_| "the acknowledgement waited for a heartbeat, not its deadline")?;
    match acknowledgement? {
        ServerMessage::StateChangeAck(ack) => assert_eq!(ack.message_id, "report-1"),
        other => {
            return Err(format!("expected the report's acknowledgement, got {other:?}").into());
        }
    }
    // And what it acknowledges is recorded.
    let described = server
        .call_ok(
            "DescribeTasks",
            &json!({"cluster": "wire", "tasks": [task_arn]}),
        )
        .await?;
    assert_eq!(
        described["tasks"][0]["lastStatus"], "RUNNING",
        "{described}"
    );
    stream.close(None).await?;
    Ok(())
}

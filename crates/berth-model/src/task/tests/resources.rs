//! `TaskResources::of`: CPU, memory and host ports a task reserves.

use serde_json::json;

use super::with_containers;
use crate::task::TaskResources;

fn resources(task: serde_json::Value, containers: Vec<serde_json::Value>) -> TaskResources {
    TaskResources::of(&with_containers(task, containers))
}

#[test]
fn task_size_wins_over_the_containers() {
    let r = resources(
        json!({"cpu": "1024", "memory": "2048"}),
        vec![json!({"name": "a", "cpu": 10, "memory": 64})],
    );
    assert_eq!((r.cpu, r.memory), (1024, 2048));
    // Stored unconverted (as a decoded request would have it), units still count.
    let r = resources(json!({"cpu": "1 vCPU", "memory": "1 GB"}), vec![]);
    assert_eq!((r.cpu, r.memory), (1024, 1024));
}

#[test]
fn without_a_task_size_the_containers_add_up() {
    let r = resources(
        json!({}),
        vec![
            json!({"name": "a", "cpu": 100, "memory": 300, "memoryReservation": 200}),
            json!({"name": "b", "cpu": 28, "memory": 64}),
            json!({"name": "c", "memoryReservation": 32}),
            json!({"name": "d"}),
        ],
    );
    // Soft limit where given, else hard limit; absent CPU counts 0.
    assert_eq!((r.cpu, r.memory), (128, 200 + 64 + 32));
    let r = resources(json!({"memory": "512"}), vec![json!({"name": "a"})]);
    assert_eq!((r.cpu, r.memory), (0, 512));
}

#[test]
fn bridge_reserves_static_host_ports_only() {
    let r = resources(
        json!({"networkMode": "bridge"}),
        vec![
            json!({"name": "a", "portMappings": [
                {"containerPort": 80, "hostPort": 8080},
                {"containerPort": 443, "hostPort": 0},
                {"containerPort": 9000},
                {"containerPort": 53, "hostPort": 5353, "protocol": "udp"},
                {"containerPortRange": "7000-7002"}
            ]}),
            json!({"name": "b", "portMappings": [
                {"containerPort": 81, "hostPort": 8081, "protocol": "tcp"},
                {"containerPort": 82, "hostPort": 8080, "protocol": "udp"}
            ]}),
        ],
    );
    assert_eq!(r.tcp_ports, vec![8080, 8081]);
    assert_eq!(r.udp_ports, vec![5353, 8080]);
    // Bridge is the default.
    let default = resources(
        json!({}),
        vec![
            json!({"name": "a", "portMappings": [{"containerPort": 80}, {"containerPort": 1, "hostPort": 2}]}),
        ],
    );
    assert_eq!(default.tcp_ports, vec![2]);
}

#[test]
fn host_and_awsvpc_reserve_the_container_ports() {
    for mode in ["host", "awsvpc"] {
        let r = resources(
            json!({"networkMode": mode}),
            vec![json!({"name": "a", "portMappings": [
                {"containerPort": 80},
                {"containerPort": 443, "hostPort": 443},
                {"containerPort": 53, "protocol": "udp"},
                {"containerPortRange": "7000-7002"},
                {"containerPort": 80}
            ]})],
        );
        assert_eq!(r.tcp_ports, vec![80, 443, 7000, 7001, 7002], "{mode}");
        assert_eq!(r.udp_ports, vec![53], "{mode}");
    }
}

#[test]
fn mode_none_and_bad_ports_reserve_nothing() {
    let r = resources(
        json!({"networkMode": "none"}),
        vec![json!({"name": "a", "portMappings": [{"containerPort": 80, "hostPort": 80}]})],
    );
    assert!(r.tcp_ports.is_empty() && r.udp_ports.is_empty());
    let r = resources(
        json!({"networkMode": "host"}),
        vec![json!({"name": "a", "portMappings": [
            {"containerPort": 70000},
            {"containerPort": -1},
            {"containerPortRange": "9-3"},
            {"containerPortRange": "x-y"}
        ]})],
    );
    assert!(r.tcp_ports.is_empty());
}

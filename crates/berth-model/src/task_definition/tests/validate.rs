//! One group of tests per registration rule: what is accepted, what is refused, with
//! which code, and that the message names the member or container at fault.

use serde_json::{Value, json};

use super::{accepted, base, client_error, container, refused, task, with};
use crate::error::ErrorCode;
use crate::task_definition::size::fargate_memory_range;
use crate::task_definition::validate::MAX_TASK_DEFINITION_BYTES;

// ---- family ----

#[test]
fn family_rules() {
    accepted(with(json!({"family": "a-Z_09"}), json!({})));
    accepted(with(json!({"family": "f".repeat(255)}), json!({})));
    client_error(with(json!({"family": ""}), json!({})), &["Family"]);
    client_error(
        with(json!({"family": "my family"}), json!({})),
        &["Family contains invalid characters"],
    );
    client_error(with(json!({"family": "web:1"}), json!({})), &["Family"]);
    client_error(
        with(json!({"family": "f".repeat(256)}), json!({})),
        &["Family"],
    );
}

// ---- container list and names ----

#[test]
fn container_list_must_not_be_empty() {
    client_error(task(json!({}), vec![]), &["Container list cannot be empty"]);
}

#[test]
fn at_most_ten_containers() {
    let containers = |n: usize| {
        (0..n)
            .map(|i| container(&format!("c{i}"), json!({})))
            .collect()
    };
    accepted(task(json!({}), containers(10)));
    client_error(
        task(json!({}), containers(11)),
        &["Too many containers", "10"],
    );
}

#[test]
fn container_names() {
    accepted(with(json!({}), json!({"name": "A-b_9"})));
    accepted(with(json!({}), json!({"name": "n".repeat(255)})));
    client_error(with(json!({}), json!({"name": null})), &["Container.name"]);
    client_error(with(json!({}), json!({"name": ""})), &["Container.name"]);
    client_error(
        with(json!({}), json!({"name": "my app"})),
        &["Container.name contains invalid characters", "my app"],
    );
    client_error(
        with(json!({}), json!({"name": "n".repeat(256)})),
        &["Container.name"],
    );
    let twice = task(
        json!({}),
        vec![container("app", json!({})), container("app", json!({}))],
    );
    client_error(twice, &["Container names must be unique", "'app'"]);
}

#[test]
fn image_is_required() {
    client_error(
        with(json!({}), json!({"image": null})),
        &["Container.image", "'app'"],
    );
    client_error(
        with(json!({}), json!({"image": " "})),
        &["Container.image", "'app'"],
    );
    // Template placeholders are not ECS's business.
    accepted(with(json!({}), json!({"image": "{{ env `IMAGE` }}:<tag>"})));
}

// ---- essential containers and dependencies ----

#[test]
fn at_least_one_essential_container() {
    accepted(with(json!({}), json!({"essential": null})));
    let none = task(
        json!({}),
        vec![
            container("a", json!({"essential": false})),
            container("b", json!({"essential": false})),
        ],
    );
    client_error(none, &["doesn't have any essential container"]);
    let one = task(
        json!({}),
        vec![
            container("a", json!({"essential": false})),
            container("b", json!({})),
        ],
    );
    accepted(one);
}

#[test]
fn depends_on_names_another_container() {
    let depends = |target: &str, condition: &str| json!({"dependsOn": [{"containerName": target, "condition": condition}]});
    let sidecar = container("sidecar", json!({"essential": false}));
    accepted(task(
        json!({}),
        vec![
            container("app", depends("sidecar", "START")),
            sidecar.clone(),
        ],
    ));
    client_error(
        task(
            json!({}),
            vec![container("app", depends("nope", "START")), sidecar.clone()],
        ),
        &[
            "Cannot depend on container 'nope' because it does not exist",
            "'app'",
        ],
    );
    client_error(
        task(json!({}), vec![container("app", depends("app", "START"))]),
        &["'app'", "itself"],
    );
    let err = refused(
        task(
            json!({}),
            vec![container("app", depends("sidecar", "DONE")), sidecar],
        ),
        ErrorCode::InvalidParameterException,
        &["condition"],
    );
    assert!(err.message.contains("dependsOn"), "{}", err.message);
}

#[test]
fn success_and_complete_dependencies_are_not_essential() {
    let depends =
        |condition: &str| json!({"dependsOn": [{"containerName": "init", "condition": condition}]});
    for condition in ["SUCCESS", "COMPLETE"] {
        accepted(task(
            json!({}),
            vec![
                container("app", depends(condition)),
                container("init", json!({"essential": false})),
            ],
        ));
        client_error(
            task(
                json!({}),
                vec![
                    container("app", depends(condition)),
                    container("init", json!({})),
                ],
            ),
            &[
                "SUCCESS or COMPLETE condition cannot be an essential container",
                "'init'",
            ],
        );
    }
    // START and HEALTHY may wait for an essential container; ECS does not check at
    // registration that a HEALTHY target has a health check.
    for condition in ["START", "HEALTHY"] {
        accepted(task(
            json!({}),
            vec![
                container("app", depends(condition)),
                container("init", json!({})),
            ],
        ));
    }
}

#[test]
fn dependency_cycles_are_refused() {
    let depends = |target: &str| json!({"essential": false, "dependsOn": [{"containerName": target, "condition": "START"}]});
    let cycle = task(
        json!({}),
        vec![
            container("a", depends("b")),
            container("b", depends("a")),
            container("c", json!({})),
        ],
    );
    client_error(cycle, &["cycle", "a -> b -> a"]);
    let mixed = task(
        json!({}),
        vec![
            container("a", json!({"volumesFrom": [{"sourceContainer": "b"}]})),
            container("b", depends("a")),
        ],
    );
    client_error(mixed, &["cycle", "a", "b"]);
}

// ---- links ----

#[test]
fn links_only_in_bridge_mode() {
    let linked = |mode: Value| {
        task(
            json!({"networkMode": mode}),
            vec![
                container("app", json!({"links": ["db"]})),
                container("db", json!({})),
            ],
        )
    };
    accepted(linked(Value::Null));
    accepted(linked(json!("bridge")));
    client_error(
        linked(json!("host")),
        &["Links are not supported when networkMode=host"],
    );
    client_error(
        linked(json!("none")),
        &["Links are not supported when networkMode=none"],
    );
    let awsvpc = task(
        json!({"networkMode": "awsvpc", "cpu": "256", "memory": "512"}),
        vec![
            container("app", json!({"links": ["db"]})),
            container("db", json!({})),
        ],
    );
    client_error(
        awsvpc,
        &["Links are not supported when networkMode=awsvpc."],
    );
}

#[test]
fn links_name_existing_containers() {
    let links = |links: Value| {
        task(
            json!({}),
            vec![
                container("app", json!({"links": links})),
                container("db", json!({})),
            ],
        )
    };
    accepted(links(json!(["db:database"])));
    accepted(links(json!([])));
    client_error(links(json!(["cache"])), &["'app'", "'cache'"]);
    client_error(links(json!(["app"])), &["'app'", "itself"]);
    client_error(links(json!(["db:bad alias"])), &["'app'", "db:bad alias"]);
    let both = task(
        json!({}),
        vec![
            container("a", json!({"links": ["b"]})),
            container("b", json!({"links": ["a"]})),
        ],
    );
    client_error(both, &["Container links should not have a cycle"]);
}

// ---- volumes, mount points, volumesFrom ----

#[test]
fn mount_points_name_declared_volumes() {
    let mounted = |volumes: Value| {
        with(
            json!({"volumes": volumes}),
            json!({"mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}]}),
        )
    };
    accepted(mounted(json!([{"name": "data", "host": {}}])));
    accepted(mounted(json!([{"name": "data"}])));
    client_error(mounted(json!([])), &["Unknown volume 'data'", "'app'"]);
    client_error(
        mounted(json!([{"name": "other"}])),
        &["Unknown volume 'data'"],
    );
    client_error(
        with(
            json!({"volumes": [{"name": "data"}]}),
            json!({"mountPoints": [{"sourceVolume": "data"}]}),
        ),
        &["containerPath", "'app'"],
    );
    client_error(
        with(
            json!({"volumes": [{"name": "data"}]}),
            json!({"mountPoints": [{"containerPath": "/data"}]}),
        ),
        &["sourceVolume", "'app'"],
    );
}

#[test]
fn volume_names_are_unique_and_valid() {
    let volumes = |volumes: Value| with(json!({"volumes": volumes}), json!({}));
    accepted(volumes(json!([{"name": "a"}, {"name": "b"}])));
    client_error(
        volumes(json!([{"name": "a"}, {"name": "a"}])),
        &["Volume names must be unique", "'a'"],
    );
    client_error(
        volumes(json!([{"name": "my volume"}])),
        &["Volume.name", "my volume"],
    );
    client_error(
        volumes(json!([{"efsVolumeConfiguration": {"fileSystemId": "fs-1"}}])),
        &["Volume.name"],
    );
}

#[test]
fn a_volume_has_one_source() {
    let volumes = |volume: Value| with(json!({"volumes": [volume]}), json!({}));
    accepted(volumes(
        json!({"name": "v", "host": {"sourcePath": "/srv"}}),
    ));
    accepted(volumes(
        json!({"name": "v", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": true, "driver": "local"}}),
    ));
    accepted(volumes(json!({"name": "v", "configuredAtLaunch": true})));
    accepted(volumes(
        json!({"name": "v", "host": {}, "configuredAtLaunch": false}),
    ));
    client_error(
        volumes(json!({"name": "v", "host": {}, "dockerVolumeConfiguration": {}})),
        &["volume 'v'", "only one"],
    );
    client_error(
        volumes(json!({"name": "v", "host": {"sourcePath": ""}})),
        &["host.sourcePath should not be blank", "'v'"],
    );
    let two = with(
        json!({"volumes": [{"name": "a", "configuredAtLaunch": true}, {"name": "b", "configuredAtLaunch": true}]}),
        json!({}),
    );
    client_error(two, &["configuredAtLaunch"]);
}

#[test]
fn efs_authorization_needs_transit_encryption() {
    let efs = |config: Value| {
        let mut config_with_id = json!({"fileSystemId": "fs-1"});
        super::merge(&mut config_with_id, config);
        with(
            json!({"volumes": [{"name": "v", "efsVolumeConfiguration": config_with_id}]}),
            json!({}),
        )
    };
    accepted(efs(json!({})));
    accepted(efs(
        json!({"transitEncryption": "DISABLED", "authorizationConfig": {"iam": "DISABLED"}}),
    ));
    accepted(efs(
        json!({"transitEncryption": "ENABLED", "authorizationConfig": {"iam": "ENABLED", "accessPointId": "fsap-1"}, "rootDirectory": "/"}),
    ));
    client_error(
        efs(json!({"authorizationConfig": {"iam": "ENABLED"}})),
        &["volume 'v'", "Transit encryption"],
    );
    client_error(
        efs(json!({"authorizationConfig": {"accessPointId": "fsap-1"}})),
        &["volume 'v'", "Transit encryption"],
    );
    client_error(
        efs(
            json!({"transitEncryption": "ENABLED", "authorizationConfig": {"accessPointId": "fsap-1"}, "rootDirectory": "/data"}),
        ),
        &["volume 'v'", "root directory"],
    );
}

#[test]
fn volumes_from_another_container() {
    let from = |source: &str| {
        task(
            json!({}),
            vec![
                container("app", json!({"volumesFrom": [{"sourceContainer": source}]})),
                container("data", json!({})),
            ],
        )
    };
    accepted(from("data"));
    client_error(from("app"), &["'app'", "itself"]);
    client_error(from(""), &["'app'", "sourceContainer"]);
    // A source that is not in the task is accepted, as ECS does (corpus file 08).
    accepted(from("elsewhere"));
}

// ---- task size ----

#[test]
fn task_cpu_and_memory_strings() {
    accepted(with(json!({"cpu": "1 vCPU", "memory": "2 GB"}), json!({})));
    accepted(with(
        json!({"cpu": "0.25 vcpu", "memory": "0.5GB"}),
        json!({}),
    ));
    accepted(with(json!({"cpu": "256", "memory": "512"}), json!({})));
    client_error(
        with(json!({"cpu": "lots"}), json!({})),
        &["Invalid 'cpu' setting for task", "lots"],
    );
    client_error(
        with(json!({"cpu": "64"}), json!({})),
        &["Invalid 'cpu' setting for task", "128"],
    );
    client_error(
        with(json!({"cpu": "200000"}), json!({})),
        &["Invalid 'cpu' setting for task"],
    );
    client_error(
        with(json!({"memory": "0"}), json!({})),
        &["Invalid 'memory' setting for task"],
    );
    client_error(
        with(json!({"memory": "1 TB"}), json!({})),
        &["Invalid 'memory' setting for task", "1 TB"],
    );
    let err = refused(
        with(json!({"cpu": 256}), json!({})),
        ErrorCode::InvalidParameterException,
        &["cpu"],
    );
    assert!(
        err.message.contains("Invalid value for parameter cpu"),
        "{}",
        err.message
    );
}

// ---- container memory and CPU ----

#[test]
fn memory_or_reservation_without_task_memory() {
    client_error(
        with(json!({}), json!({"memory": null})),
        &[
            "Invalid setting for container 'app'. At least one of 'memory' or 'memoryReservation' must be specified.",
        ],
    );
    accepted(with(
        json!({}),
        json!({"memory": null, "memoryReservation": 64}),
    ));
    accepted(with(json!({"memory": "512"}), json!({"memory": null})));
}

#[test]
fn memory_limits_of_a_container() {
    accepted(with(json!({}), json!({"memory": 4})));
    accepted(with(
        json!({}),
        json!({"memory": 256, "memoryReservation": 256}),
    ));
    client_error(
        with(json!({}), json!({"memory": 3})),
        &["Invalid 'memory' setting for container 'app'"],
    );
    client_error(
        with(json!({}), json!({"memory": 0})),
        &["'memory'", "'app'"],
    );
    client_error(
        with(json!({}), json!({"memory": null, "memoryReservation": 2})),
        &["Invalid 'memoryReservation' setting for container 'app'"],
    );
    client_error(
        with(json!({}), json!({"memory": 128, "memoryReservation": 256})),
        &[
            "Invalid 'memory' setting for container 'app'",
            "memoryReservation",
        ],
    );
    client_error(
        with(json!({}), json!({"cpu": -1})),
        &["Invalid 'cpu' setting for container 'app'"],
    );
    // Any non-negative container CPU is accepted; Docker clamps it.
    accepted(with(json!({}), json!({"cpu": 0})));
    accepted(with(json!({}), json!({"cpu": 300000})));
}

#[test]
fn containers_fit_in_the_task() {
    let two = |task_members: Value, a: Value, b: Value| {
        task(task_members, vec![container("a", a), container("b", b)])
    };
    let sized = json!({"cpu": "512", "memory": "1024"});
    accepted(two(
        sized.clone(),
        json!({"memory": 512, "cpu": 256}),
        json!({"memory": 512, "cpu": 256}),
    ));
    client_error(
        two(
            sized.clone(),
            json!({"memory": 768}),
            json!({"memory": 512}),
        ),
        &[
            "The sum of all container 'memoryReservation' values cannot be greater than the value of the task 'memory'",
        ],
    );
    // Reservations are what is summed; a hard limit only has to fit on its own.
    accepted(two(
        sized.clone(),
        json!({"memory": 1024, "memoryReservation": 512}),
        json!({"memory": 512}),
    ));
    client_error(
        two(
            sized.clone(),
            json!({"memory": 2048, "memoryReservation": 256}),
            json!({"memory": 256}),
        ),
        &[
            "Invalid 'memory' setting for container 'a'",
            "task 'memory'",
        ],
    );
    client_error(
        two(sized.clone(), json!({"cpu": 400}), json!({"cpu": 200})),
        &[
            "The sum of all container 'cpu' values cannot be greater than the value of the task 'cpu'",
        ],
    );
    // Windows containers ignore task-level CPU and memory.
    let mut windows = sized;
    super::merge(
        &mut windows,
        json!({"runtimePlatform": {"operatingSystemFamily": "WINDOWS_SERVER_2019_CORE"}}),
    );
    accepted(two(
        windows,
        json!({"cpu": 1024, "memory": 2048}),
        json!({"cpu": 1024, "memory": 2048}),
    ));
}

// ---- Fargate ----

fn fargate(task_members: Value, container_members: Value) -> Value {
    let mut members = json!({"requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512"});
    super::merge(&mut members, task_members);
    with(members, container_members)
}

#[test]
fn fargate_needs_awsvpc_and_a_task_size() {
    accepted(fargate(json!({}), json!({"memory": null})));
    client_error(
        fargate(json!({"networkMode": null}), json!({})),
        &["Fargate only supports network mode \u{2018}awsvpc\u{2019}."],
    );
    client_error(
        fargate(json!({"networkMode": "bridge"}), json!({})),
        &["awsvpc"],
    );
    client_error(
        fargate(json!({"cpu": null}), json!({})),
        &["Fargate requires that 'cpu' be defined at the task level."],
    );
    client_error(
        fargate(json!({"memory": null}), json!({})),
        &["Fargate requires that 'memory' be defined at the task level."],
    );
    accepted(fargate(
        json!({"requiresCompatibilities": ["EC2", "FARGATE"], "cpu": "1 vCPU", "memory": "2 GB"}),
        json!({}),
    ));
}

#[test]
fn fargate_sizes_are_the_offered_combinations() {
    for cpu in [256_u32, 512, 1024, 2048, 4096, 8192, 16384] {
        let (first, last, step) = fargate_memory_range(cpu).unwrap();
        let mut memory = first;
        while memory <= last {
            if cpu != 256 || memory != 1536 {
                accepted(fargate(
                    json!({"cpu": cpu.to_string(), "memory": memory.to_string()}),
                    json!({"memory": null}),
                ));
            }
            memory += step;
        }
        client_error(
            fargate(
                json!({"cpu": cpu.to_string(), "memory": (last + step).to_string()}),
                json!({"memory": null}),
            ),
            &[
                "No Fargate configuration exists for given values",
                &cpu.to_string(),
            ],
        );
    }
    client_error(
        fargate(
            json!({"cpu": "256", "memory": "1536"}),
            json!({"memory": null}),
        ),
        &["Fargate"],
    );
    client_error(
        fargate(
            json!({"cpu": "128", "memory": "512"}),
            json!({"memory": null}),
        ),
        &["Fargate"],
    );
}

#[test]
fn fargate_awslogs_and_ecr_need_an_execution_role() {
    let awslogs =
        json!({"logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"}}});
    client_error(
        fargate(json!({}), awslogs.clone()),
        &[
            "Fargate requires task definition to have execution role ARN to support log driver awslogs.",
        ],
    );
    accepted(fargate(
        json!({"executionRoleArn": "arn:aws:iam::123456789012:role/exec"}),
        awslogs.clone(),
    ));
    // EC2 does not need one: the instance role can write the logs.
    accepted(with(json!({}), awslogs));
    let ecr = json!({"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1"});
    client_error(
        fargate(json!({}), ecr.clone()),
        &["execution role ARN to support ECR images"],
    );
    accepted(fargate(json!({"executionRoleArn": "exec"}), ecr));
}

// ---- network mode and port mappings ----

#[test]
fn network_mode_values() {
    for mode in ["bridge", "host", "none"] {
        accepted(with(json!({"networkMode": mode}), json!({})));
    }
    accepted(with(json!({"networkMode": "awsvpc"}), json!({})));
    let err = refused(
        with(json!({"networkMode": "nat"}), json!({})),
        ErrorCode::InvalidParameterException,
        &["networkMode"],
    );
    assert!(err.message.contains("nat"), "{}", err.message);
}

fn ports(mode: Value, mappings: Value) -> Value {
    with(
        json!({"networkMode": mode}),
        json!({"portMappings": mappings}),
    )
}

#[test]
fn container_and_host_port_ranges() {
    accepted(ports(
        Value::Null,
        json!([{"containerPort": 1}, {"containerPort": 65535, "hostPort": 0}]),
    ));
    accepted(ports(
        Value::Null,
        json!([{"containerPort": 80, "hostPort": 65535}]),
    ));
    client_error(
        ports(Value::Null, json!([{"containerPort": 0}])),
        &["Invalid 'containerPort' setting for container 'app'"],
    );
    client_error(
        ports(Value::Null, json!([{"containerPort": 65536}])),
        &["Invalid 'containerPort' setting for container 'app'"],
    );
    client_error(
        ports(Value::Null, json!([{"hostPort": 80}])),
        &["'containerPort'", "'app'"],
    );
    client_error(
        ports(Value::Null, json!([{"containerPort": 80, "hostPort": -1}])),
        &["Invalid 'hostPort' setting for container 'app'"],
    );
    client_error(
        ports(
            Value::Null,
            json!([{"containerPort": 80, "hostPort": 70000}]),
        ),
        &["'hostPort'", "'app'"],
    );
    refused(
        ports(
            Value::Null,
            json!([{"containerPort": 80, "protocol": "sctp"}]),
        ),
        ErrorCode::InvalidParameterException,
        &["protocol"],
    );
}

#[test]
fn awsvpc_and_host_modes_map_ports_to_themselves() {
    for mode in ["awsvpc", "host"] {
        accepted(ports(json!(mode), json!([{"containerPort": 8080}])));
        accepted(ports(
            json!(mode),
            json!([{"containerPort": 8080, "hostPort": 8080}]),
        ));
        accepted(ports(
            json!(mode),
            json!([{"containerPort": 8080, "hostPort": 0}]),
        ));
        client_error(
            ports(
                json!(mode),
                json!([{"containerPort": 8080, "hostPort": 80}]),
            ),
            &[
                &format!(
                    "When networkMode={mode}, the host ports and container ports in port mappings must match"
                ),
                "'app'",
            ],
        );
    }
    accepted(ports(
        json!("bridge"),
        json!([{"containerPort": 8080, "hostPort": 80}]),
    ));
    client_error(
        ports(json!("none"), json!([{"containerPort": 80}])),
        &["networkMode=none", "'app'"],
    );
    accepted(ports(json!("none"), json!([])));
}

#[test]
fn a_container_port_is_mapped_once_per_protocol() {
    accepted(ports(
        Value::Null,
        json!([{"containerPort": 2000, "protocol": "udp"}, {"containerPort": 2000, "protocol": "tcp"}]),
    ));
    refused(
        ports(
            Value::Null,
            json!([{"containerPort": 80}, {"containerPort": 80, "hostPort": 8080, "protocol": "tcp"}]),
        ),
        ErrorCode::InvalidParameterException,
        &["Container port 80 is used in more than one port mapping for container app"],
    );
}

#[test]
fn a_host_port_is_used_once_in_the_task() {
    let two = |a: Value, b: Value| {
        task(
            json!({}),
            vec![
                container("a", json!({"portMappings": a})),
                container("b", json!({"portMappings": b})),
            ],
        )
    };
    accepted(two(
        json!([{"containerPort": 80, "hostPort": 80}]),
        json!([{"containerPort": 80, "hostPort": 81}]),
    ));
    accepted(two(
        json!([{"containerPort": 80}]),
        json!([{"containerPort": 80}]),
    ));
    accepted(two(
        json!([{"containerPort": 80, "hostPort": 0}]),
        json!([{"containerPort": 80, "hostPort": 0}]),
    ));
    accepted(two(
        json!([{"containerPort": 53, "hostPort": 53, "protocol": "udp"}]),
        json!([{"containerPort": 53, "hostPort": 53}]),
    ));
    client_error(
        two(
            json!([{"containerPort": 80, "hostPort": 80}]),
            json!([{"containerPort": 8080, "hostPort": 80}]),
        ),
        &[
            "Invalid 'hostPort' setting for container 'b'",
            "80/tcp",
            "'a'",
        ],
    );
}

#[test]
fn container_port_ranges() {
    accepted(ports(
        Value::Null,
        json!([{"containerPortRange": "8000-8010"}, {"containerPort": 9000}]),
    ));
    accepted(ports(
        json!("awsvpc"),
        json!([{"containerPortRange": "8000-8010", "protocol": "udp"}]),
    ));
    let range_error = &["Invalid 'containerPortRange' setting for container 'app'"];
    client_error(
        ports(json!("host"), json!([{"containerPortRange": "8000-8010"}])),
        range_error,
    );
    client_error(
        ports(
            Value::Null,
            json!([{"containerPortRange": "8000-8010", "hostPort": 8000}]),
        ),
        range_error,
    );
    client_error(
        ports(Value::Null, json!([{"containerPortRange": "8010-8000"}])),
        range_error,
    );
    client_error(
        ports(Value::Null, json!([{"containerPortRange": "0-10"}])),
        range_error,
    );
    client_error(
        ports(Value::Null, json!([{"containerPortRange": "8000"}])),
        range_error,
    );
    client_error(
        ports(
            Value::Null,
            json!([{"containerPortRange": "8000-8010", "containerPort": 8000}]),
        ),
        range_error,
    );
    client_error(
        ports(
            Value::Null,
            json!([{"containerPortRange": "8000-8010"}, {"containerPort": 8005}]),
        ),
        &["overlap", "'app'"],
    );
    accepted(ports(
        Value::Null,
        json!([{"containerPortRange": "8000-8010"}, {"containerPort": 8005, "protocol": "udp"}]),
    ));
}

// ---- health checks ----

#[test]
fn health_check_ranges() {
    let health = |check: Value| {
        let mut full = json!({"command": ["CMD-SHELL", "true"]});
        super::merge(&mut full, check);
        with(json!({}), json!({"healthCheck": full}))
    };
    accepted(health(json!({})));
    accepted(health(
        json!({"interval": 5, "timeout": 2, "retries": 1, "startPeriod": 0}),
    ));
    accepted(health(
        json!({"interval": 300, "timeout": 120, "retries": 10, "startPeriod": 300}),
    ));
    // A timeout longer than the interval is accepted (ECS agent's own tests use it).
    accepted(health(json!({"interval": 5, "timeout": 50})));
    for (member, value) in [
        ("interval", 4),
        ("interval", 301),
        ("timeout", 1),
        ("timeout", 121),
        ("retries", 0),
        ("retries", 11),
        ("startPeriod", -1),
        ("startPeriod", 301),
    ] {
        client_error(
            health(json!({member: value})),
            &[
                "Invalid 'healthCheck' setting for container 'app'",
                &format!("'{member}'"),
            ],
        );
    }
    client_error(
        health(json!({"command": []})),
        &["'healthCheck'", "'app'", "command"],
    );
    refused(
        with(json!({}), json!({"healthCheck": {"interval": 30}})),
        ErrorCode::InvalidParameterException,
        &["command"],
    );
}

// ---- size, tags, environment, other members ----

#[test]
fn a_definition_is_at_most_64_kib() {
    let variables = |count: usize| -> Value {
        (0..count)
            .map(|i| json!({"name": format!("VAR_{i}"), "value": "x".repeat(100)}))
            .collect()
    };
    accepted(with(json!({}), json!({"environment": variables(400)})));
    client_error(
        with(json!({}), json!({"environment": variables(700)})),
        &["Actual length", "65536"],
    );
}

/// Read from a body, a request is measured as sent, and a body over the limit again as
/// compact JSON: refused only when both are over it.
#[test]
fn a_sent_definition_is_measured_by_its_body_first() {
    use crate::task_definition::validate_registration_sent;
    let variables = |count: usize| -> Value {
        (0..count)
            .map(|i| json!({"name": format!("VAR_{i}"), "value": "x".repeat(100)}))
            .collect()
    };
    let sent = |value: &Value, pretty: bool| {
        let body = if pretty {
            serde_json::to_vec_pretty(value).unwrap()
        } else {
            serde_json::to_vec(value).unwrap()
        };
        let req = crate::decode::decode(&body).unwrap();
        (validate_registration_sent(&req, body.len()), body.len())
    };
    // Small, compact or pretty: accepted.
    let small = with(json!({}), json!({"environment": variables(400)}));
    assert!(sent(&small, false).0.is_ok());
    // Over the limit only through whitespace: accepted (compact, it is within).
    let spaced = with(json!({}), json!({"environment": variables(480)}));
    let (result, length) = sent(&spaced, true);
    assert!(length > MAX_TASK_DEFINITION_BYTES, "{length}");
    assert!(serde_json::to_vec(&spaced).unwrap().len() <= MAX_TASK_DEFINITION_BYTES);
    assert!(result.is_ok(), "{result:?}");
    // Over the limit either way: refused, with the compact length.
    let large = with(json!({}), json!({"environment": variables(700)}));
    for pretty in [false, true] {
        let (result, length) = sent(&large, pretty);
        assert!(length > MAX_TASK_DEFINITION_BYTES);
        let err = result.unwrap_err();
        assert_eq!(err.code, ErrorCode::ClientException);
        let compact = serde_json::to_vec(&large).unwrap().len();
        assert!(
            err.message.contains(&format!("'{compact}'")) && err.message.contains("65536"),
            "{}",
            err.message
        );
    }
    // A body within the limit is not measured again: other rules still apply.
    let (result, _) = sent(&with(json!({}), json!({"image": null})), false);
    assert!(result.is_err());
}

#[test]
fn tags() {
    let tags = |tags: Value| with(json!({"tags": tags}), json!({}));
    let many = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"key": format!("k{i}"), "value": "v"}))
            .collect()
    };
    accepted(tags(many(50)));
    accepted(tags(
        json!([{"key": "k".repeat(128), "value": "v".repeat(256)}, {"key": "empty", "value": ""}]),
    ));
    refused(
        tags(many(51)),
        ErrorCode::InvalidParameterException,
        &["50"],
    );
    refused(
        tags(json!([{"key": "k".repeat(129)}])),
        ErrorCode::InvalidParameterException,
        &["Tag key"],
    );
    refused(
        tags(json!([{"key": "k", "value": "v".repeat(257)}])),
        ErrorCode::InvalidParameterException,
        &["'k'"],
    );
    refused(
        tags(json!([{"value": "v"}])),
        ErrorCode::InvalidParameterException,
        &["Tag key"],
    );
}

#[test]
fn environment_names() {
    accepted(with(
        json!({}),
        json!({"environment": [{"name": "A", "value": ""}, {"name": "B"}]}),
    ));
    client_error(
        with(json!({}), json!({"environment": [{"value": "x"}]})),
        &["Environment variable name", "'app'"],
    );
    client_error(
        with(
            json!({}),
            json!({"environment": [{"name": "", "value": "x"}]}),
        ),
        &["Environment variable name", "'app'"],
    );
}

#[test]
fn ulimit_names_are_the_ecs_ones() {
    accepted(with(
        json!({}),
        json!({"ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}]}),
    ));
    refused(
        with(
            json!({}),
            json!({"ulimits": [{"name": "files", "softLimit": 1, "hardLimit": 1}]}),
        ),
        ErrorCode::InvalidParameterException,
        &["containerDefinitions[0].ulimits[0].name"],
    );
}

#[test]
fn placement_constraints() {
    let constraints = |c: Value| with(json!({"placementConstraints": c}), json!({}));
    let member_of = |n: usize| -> Value {
        (0..n)
            .map(|_| json!({"type": "memberOf", "expression": "attribute:ecs.os-type == linux"}))
            .collect()
    };
    accepted(constraints(json!([])));
    accepted(constraints(member_of(10)));
    client_error(constraints(member_of(11)), &["placement constraints", "10"]);
    client_error(
        constraints(json!([{"type": "memberOf"}])),
        &["placement constraint", "expression"],
    );
    client_error(
        constraints(json!([{"expression": "attribute:x == y"}])),
        &["placement constraint", "type"],
    );
    refused(
        constraints(json!([{"type": "distinctInstance"}])),
        ErrorCode::InvalidParameterException,
        &["placementConstraints[0].type"],
    );
}

#[test]
fn ipc_and_pid_modes() {
    for mode in ["host", "task", "none"] {
        accepted(with(json!({"ipcMode": mode}), json!({})));
    }
    for mode in ["host", "task"] {
        accepted(with(json!({"pidMode": mode}), json!({})));
    }
    refused(
        with(json!({"pidMode": "none"}), json!({})),
        ErrorCode::InvalidParameterException,
        &["pidMode"],
    );
    refused(
        with(json!({"ipcMode": "shareable"}), json!({})),
        ErrorCode::InvalidParameterException,
        &["ipcMode"],
    );
}

#[test]
fn ephemeral_storage() {
    let storage = |size: i32| with(json!({"ephemeralStorage": {"sizeInGiB": size}}), json!({}));
    accepted(storage(21));
    accepted(storage(200));
    client_error(storage(20), &["ephemeralStorage", "21", "200"]);
    client_error(storage(201), &["ephemeralStorage"]);
}

#[test]
fn restart_policy() {
    let policy = |p: Value| with(json!({}), json!({"restartPolicy": p}));
    accepted(policy(json!({"enabled": true})));
    accepted(policy(
        json!({"enabled": true, "restartAttemptPeriod": 60, "ignoredExitCodes": [0, 137]}),
    ));
    client_error(
        policy(json!({"enabled": true, "restartAttemptPeriod": 59})),
        &["restartAttemptPeriod", "'app'"],
    );
    client_error(
        policy(json!({"enabled": true, "restartAttemptPeriod": 1801})),
        &["restartAttemptPeriod"],
    );
    let codes: Vec<i32> = (0..51).collect();
    client_error(
        policy(json!({"enabled": true, "ignoredExitCodes": codes})),
        &["ignoredExitCodes", "'app'"],
    );
}

#[test]
fn linux_parameters() {
    let linux = |p: Value| with(json!({}), json!({"linuxParameters": p}));
    accepted(linux(
        json!({"swappiness": 0, "maxSwap": 0, "sharedMemorySize": 64, "initProcessEnabled": true}),
    ));
    accepted(linux(
        json!({"swappiness": 100, "tmpfs": [{"containerPath": "/tmp", "size": 64}]}),
    ));
    client_error(
        linux(json!({"swappiness": 101})),
        &["'linuxParameters'", "'app'", "swappiness"],
    );
    client_error(linux(json!({"maxSwap": -1})), &["maxSwap"]);
    client_error(
        linux(json!({"tmpfs": [{"containerPath": "/tmp", "size": 0}]})),
        &["tmpfs.size"],
    );
    refused(
        linux(json!({"devices": [{"hostPath": "/dev/fuse", "permissions": ["readwrite"]}]})),
        ErrorCode::InvalidParameterException,
        &["permissions"],
    );
}

#[test]
fn resource_requirements() {
    let needs = |r: Value| with(json!({}), json!({"resourceRequirements": r}));
    accepted(needs(json!([{"type": "GPU", "value": "2"}])));
    accepted(needs(
        json!([{"type": "GPU", "sharingStrategy": {"nvidiaMps": {"memory": 1024}}}]),
    ));
    accepted(needs(
        json!([{"type": "InferenceAccelerator", "value": "device_1"}]),
    ));
    client_error(
        needs(json!([{"type": "GPU"}])),
        &["resourceRequirements", "'app'"],
    );
    client_error(
        needs(
            json!([{"type": "GPU", "value": "1", "sharingStrategy": {"nvidiaMps": {"memory": 1024}}}]),
        ),
        &["resourceRequirements", "not both"],
    );
    client_error(
        needs(json!([{"type": "NeuronDevice", "value": "ALL", "sharingStrategy": {}}])),
        &["sharingStrategy", "GPU"],
    );
}

#[test]
fn credential_specs_and_environment_files() {
    accepted(with(
        json!({}),
        json!({"credentialSpecs": ["credentialspec:arn:aws:ssm:::parameter/a"]}),
    ));
    client_error(
        with(json!({}), json!({"credentialSpecs": ["a", "b"]})),
        &["credentialSpecs", "'app'"],
    );
    let files = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"type": "s3", "value": format!("arn:aws:s3:::b/{i}.env")}))
            .collect()
    };
    accepted(with(json!({}), json!({"environmentFiles": files(10)})));
    client_error(
        with(json!({}), json!({"environmentFiles": files(11)})),
        &["environmentFiles", "'app'"],
    );
}

#[test]
fn trusted_execution() {
    let trusted = |t: Value| with(json!({"trustedExecutionConfiguration": t}), json!({}));
    accepted(trusted(json!({"isolationMode": "SHARED"})));
    accepted(trusted(
        json!({"isolationMode": "CONFIDENTIAL_SANDBOX", "attestationPolicy": "cG9saWN5"}),
    ));
    client_error(
        trusted(json!({"isolationMode": "CONFIDENTIAL_SANDBOX"})),
        &["attestationPolicy"],
    );
}

#[test]
fn the_base_definition_is_valid() {
    accepted(base());
}

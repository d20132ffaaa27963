//! What the benchmark asks the server: the operations and their request bodies.

use clap::ValueEnum;
use serde_json::{Value, json};

/// Each worker registers into one of this many families (by worker index) for half its
/// requests, and into one family shared by all workers for the other half.
pub const OWN_FAMILIES: usize = 4;
/// The index of the shared family, after the `OWN_FAMILIES` others.
pub const SHARED_FAMILY: usize = OWN_FAMILIES;

/// An operation under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Operation {
    /// DescribeClusters of one cluster created beforehand: a read.
    #[value(name = "DescribeClusters", alias = "describe-clusters")]
    DescribeClusters,
    /// RegisterTaskDefinition of a two-container definition: a durable write that
    /// allocates a revision.
    #[value(name = "RegisterTaskDefinition", alias = "register-task-definition")]
    RegisterTaskDefinition,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Self::DescribeClusters => "DescribeClusters",
            Self::RegisterTaskDefinition => "RegisterTaskDefinition",
        }
    }
}

/// One request body of a worker's pool.
#[derive(Debug, Clone)]
pub struct Body {
    pub json: Vec<u8>,
    /// For a registration: the family index (`SHARED_FAMILY` for the shared one).
    pub family: Option<usize>,
}

/// The names one benchmark run uses, unique per run so that runs against a
/// long-lived server do not meet each other's families.
#[derive(Debug, Clone)]
pub struct Names {
    pub run_id: String,
}

impl Names {
    pub fn new(run_id: String) -> Self {
        Self { run_id }
    }

    /// The cluster DescribeClusters describes.
    pub fn cluster(&self) -> String {
        format!("bench-{}", self.run_id)
    }

    /// The family with index `family` in the phase `phase` (e.g. "c16").
    pub fn family(&self, phase: &str, family: usize) -> String {
        if family == SHARED_FAMILY {
            format!("bench-{}-{phase}-shared", self.run_id)
        } else {
            format!("bench-{}-{phase}-f{family}", self.run_id)
        }
    }

    /// The family of the one registration made before any load, as a check.
    pub fn probe_family(&self) -> String {
        format!("bench-{}-probe", self.run_id)
    }

    /// The request bodies of worker `worker` for `op` in `phase`: `pool` of them, half
    /// into the worker's own family and half into the shared one, alternating.
    pub fn bodies(&self, op: Operation, phase: &str, worker: usize, pool: usize) -> Vec<Body> {
        (0..pool)
            .map(|i| match op {
                Operation::DescribeClusters => Body {
                    json: describe_clusters(&self.cluster()),
                    family: None,
                },
                Operation::RegisterTaskDefinition => {
                    let family = if i.is_multiple_of(2) {
                        worker % OWN_FAMILIES
                    } else {
                        SHARED_FAMILY
                    };
                    let name = self.family(phase, family);
                    Body {
                        json: task_definition(&name, &format!("w{worker}-{i}"))
                            .to_string()
                            .into_bytes(),
                        family: Some(family),
                    }
                }
            })
            .collect()
    }
}

pub fn create_cluster(name: &str) -> Vec<u8> {
    json!({ "clusterName": name }).to_string().into_bytes()
}

pub fn describe_clusters(name: &str) -> Vec<u8> {
    json!({ "clusters": [name] }).to_string().into_bytes()
}

pub fn describe_task_definition(family: &str) -> Vec<u8> {
    json!({ "taskDefinition": family }).to_string().into_bytes()
}

/// A realistic two-container task definition (a web server and a sidecar), about
/// 1.5 KB of JSON; `build` varies a value so that the registrations differ.
pub fn task_definition(family: &str, build: &str) -> Value {
    let log = |prefix: &str| {
        json!({
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": "/berth/bench",
                "awslogs-region": "us-east-1",
                "awslogs-stream-prefix": prefix
            }
        })
    };
    json!({
        "family": family,
        "taskRoleArn": "arn:aws:iam::123456789012:role/bench-task",
        "executionRoleArn": "arn:aws:iam::123456789012:role/bench-execution",
        "networkMode": "bridge",
        "requiresCompatibilities": ["EC2"],
        "cpu": "512",
        "memory": "1024",
        "containerDefinitions": [
            {
                "name": "web",
                "image": "public.ecr.aws/nginx/nginx:1.27",
                "essential": true,
                "cpu": 384,
                "memory": 768,
                "memoryReservation": 512,
                "portMappings": [
                    { "containerPort": 80, "hostPort": 0, "protocol": "tcp", "name": "http" },
                    { "containerPort": 443, "hostPort": 0, "protocol": "tcp", "name": "https" }
                ],
                "environment": [
                    { "name": "APP_ENV", "value": "bench" },
                    { "name": "BUILD", "value": build },
                    { "name": "LOG_LEVEL", "value": "info" },
                    { "name": "UPSTREAM_URL", "value": "http://localhost:9000" }
                ],
                "healthCheck": {
                    "command": ["CMD-SHELL", "curl -fsS http://localhost/healthz || exit 1"],
                    "interval": 30,
                    "timeout": 5,
                    "retries": 3,
                    "startPeriod": 10
                },
                "logConfiguration": log("web"),
                "ulimits": [{ "name": "nofile", "softLimit": 65536, "hardLimit": 65536 }],
                "dockerLabels": { "team": "platform", "service": "bench-web" }
            },
            {
                "name": "sidecar",
                "image": "public.ecr.aws/docker/library/busybox:1.36",
                "essential": false,
                "cpu": 128,
                "memory": 256,
                "command": ["sh", "-c", "while true; do nc -lk -p 9000 -e echo ok; done"],
                "portMappings": [
                    { "containerPort": 9000, "hostPort": 0, "protocol": "tcp" }
                ],
                "environment": [
                    { "name": "BUILD", "value": build },
                    { "name": "LISTEN_PORT", "value": "9000" }
                ],
                "healthCheck": {
                    "command": ["CMD-SHELL", "nc -z localhost 9000 || exit 1"],
                    "interval": 15,
                    "timeout": 3,
                    "retries": 2
                },
                "logConfiguration": log("sidecar")
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_definition_is_about_one_and_a_half_kilobytes() {
        let len = task_definition("bench-abcdef-c16-shared", "w15-7")
            .to_string()
            .len();
        assert!((1300..=1800).contains(&len), "{len} bytes");
    }

    #[test]
    fn registrations_alternate_own_and_shared_families() {
        let names = Names::new("r1".into());
        let bodies = names.bodies(Operation::RegisterTaskDefinition, "c16", 5, 8);
        let families: Vec<_> = bodies.iter().map(|b| b.family).collect();
        assert_eq!(
            families
                .iter()
                .filter(|f| **f == Some(SHARED_FAMILY))
                .count(),
            4
        );
        assert_eq!(
            families
                .iter()
                .filter(|f| **f == Some(5 % OWN_FAMILIES))
                .count(),
            4
        );
        assert!(String::from_utf8_lossy(&bodies[1].json).contains("bench-r1-c16-shared"));
        assert!(String::from_utf8_lossy(&bodies[0].json).contains("bench-r1-c16-f1"));
    }

    #[test]
    fn describe_bodies_name_the_cluster() {
        let names = Names::new("r1".into());
        let bodies = names.bodies(Operation::DescribeClusters, "c1", 0, 2);
        assert_eq!(bodies[0].json, br#"{"clusters":["bench-r1"]}"#);
        assert_eq!(bodies[0].family, None);
    }
}

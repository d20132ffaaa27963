//! What the agent tells the control plane about its host when it registers:
//! resources (as ECS's agent computes them) and attributes (host facts and the
//! capabilities this agent has).

use berth_model::common::Attribute;
use berth_model::container_instance::{Resource, VersionInfo};

use crate::runtime::HostInfo;

/// Host ports ECS's agent keeps for the host itself: SSH, the Docker daemon, and the
/// agent's introspection ports.
pub const RESERVED_PORTS: [u16; 5] = [22, 2375, 2376, 51678, 51679];

/// CPU = cores x 1024; MEMORY = total MiB less `reserved_memory_mib`; the reserved
/// TCP ports (plus `extra_ports`, e.g. berth's own API port on this host).
pub fn resources(host: &HostInfo, reserved_memory_mib: u64, extra_ports: &[u16]) -> Vec<Resource> {
    let cpu = i32::try_from(u64::from(host.cpus) * 1024).unwrap_or(i32::MAX);
    let memory_mib = (host.memory_bytes / (1024 * 1024)).saturating_sub(reserved_memory_mib);
    let memory = i32::try_from(memory_mib).unwrap_or(i32::MAX);
    let mut ports: Vec<u16> = RESERVED_PORTS.iter().chain(extra_ports).copied().collect();
    ports.sort_unstable();
    ports.dedup();
    vec![
        Resource::integer(Resource::CPU, cpu),
        Resource::integer(Resource::MEMORY, memory),
        Resource::string_set(Resource::PORTS, ports.iter().map(u16::to_string)),
        Resource::string_set(Resource::PORTS_UDP, Vec::<String>::new()),
    ]
}

/// The capabilities this agent implements, as ECS names them, so that task
/// definitions requiring them (requiresAttributes) can be placed here.
const CAPABILITIES: &[&str] = &[
    "com.amazonaws.ecs.capability.privileged-container",
    "com.amazonaws.ecs.capability.logging-driver.json-file",
    "com.amazonaws.ecs.capability.logging-driver.none",
    "ecs.capability.container-health-check",
    "ecs.capability.container-ordering",
    "ecs.capability.container-port-range",
    "ecs.capability.task-eni",
    "ecs.capability.docker-plugin.local",
];

/// Docker remote API versions the agent can use (ECS lists them as capabilities).
const DOCKER_API_VERSIONS: &[&str] = &[
    "1.17", "1.18", "1.19", "1.20", "1.21", "1.22", "1.23", "1.24", "1.25", "1.26", "1.27", "1.28",
    "1.29", "1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36", "1.37", "1.38", "1.39", "1.40",
    "1.41",
];

fn architecture(engine: &str) -> &str {
    match engine {
        "x86_64" | "amd64" => "x86_64",
        "aarch64" | "arm64" => "arm64",
        other => other,
    }
}

/// Host facts, capabilities, and the operator's `custom` attributes.
pub fn attributes(host: &HostInfo, custom: &[(String, String)]) -> Vec<Attribute> {
    let named = |name: &str, value: Option<String>| Attribute {
        name: name.to_string(),
        value,
        target_type: None,
        target_id: None,
    };
    let mut attributes = vec![
        named("ecs.os-type", Some(host.os_type.clone())),
        named("ecs.os-family", Some(host.os_type.to_ascii_uppercase())),
        named(
            "ecs.cpu-architecture",
            Some(architecture(&host.architecture).to_string()),
        ),
        named(
            "ecs.instance-type",
            Some(format!(
                "berth.{}cpu.{}gib",
                host.cpus,
                host.memory_bytes.div_ceil(1 << 30)
            )),
        ),
        named("ecs.hostname", Some(host.hostname.clone())),
    ];
    attributes.extend(CAPABILITIES.iter().map(|name| named(name, None)));
    attributes.extend(DOCKER_API_VERSIONS.iter().map(|version| {
        named(
            &format!("com.amazonaws.ecs.capability.docker-remote-api.{version}"),
            None,
        )
    }));
    attributes.extend(
        custom
            .iter()
            .map(|(name, value)| named(name, Some(value.clone()))),
    );
    attributes
}

pub fn version_info(host: &HostInfo) -> VersionInfo {
    VersionInfo {
        agent_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        agent_hash: None,
        docker_version: Some(format!("DockerVersion: {}", host.engine_version)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostInfo {
        HostInfo {
            cpus: 2,
            memory_bytes: 4096 * 1024 * 1024,
            os_type: "linux".into(),
            architecture: "x86_64".into(),
            hostname: "h".into(),
            engine_version: "20.10.24".into(),
            kernel_version: "6".into(),
        }
    }

    #[test]
    fn resources_are_as_ecs_computes_them() {
        let resources = resources(&host(), 256, &[7474]);
        assert_eq!(resources[0].amount(), 2048);
        assert_eq!(resources[1].amount(), 3840);
        let ports: Vec<u16> = resources[2].ports().into_iter().collect();
        assert_eq!(ports, vec![22, 2375, 2376, 7474, 51678, 51679]);
    }

    #[test]
    fn attributes_name_the_host_and_custom_ones() {
        let attributes = attributes(&host(), &[("rack".into(), "r1".into())]);
        let value = |name: &str| {
            attributes
                .iter()
                .find(|a| a.name == name)
                .and_then(|a| a.value.clone())
        };
        assert_eq!(value("ecs.os-type").as_deref(), Some("linux"));
        assert_eq!(value("ecs.cpu-architecture").as_deref(), Some("x86_64"));
        assert_eq!(value("rack").as_deref(), Some("r1"));
        assert!(
            attributes
                .iter()
                .any(|a| a.name == "ecs.capability.container-health-check")
        );
    }
}

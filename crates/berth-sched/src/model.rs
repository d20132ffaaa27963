//! The scheduler's view of a container instance: plain data the caller builds
//! from the store before placing tasks or filtering instances.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use berth_model::container_instance::{RESOURCE_CPU, RESOURCE_MEMORY, RESOURCE_PORTS, Resource};
use berth_model::task::TaskResources;
use serde::{Deserialize, Serialize};

use crate::query::QueryTarget;

/// The status an instance must have to receive tasks.
pub const ACTIVE: &str = "ACTIVE";

/// One container instance, as placement and the query language see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// The container instance id (the last part of its ARN).
    pub id: String,
    pub arn: String,
    pub ec2_instance_id: Option<String>,
    /// The instance's `status` (`ACTIVE`, `DRAINING`, `INACTIVE`, ...).
    pub status: String,
    pub agent_connected: bool,
    pub agent_version: Option<String>,
    /// Epoch seconds.
    pub registered_at: Option<f64>,
    /// Attribute name to value; an attribute may have no value. Shared: the same
    /// instance's attributes serve many placement requests.
    pub attributes: Arc<BTreeMap<String, Option<String>>>,
    /// What is left for new tasks.
    pub remaining: Remaining,
    /// The instance's `runningTasksCount`.
    pub running_tasks_count: i64,
    /// How many of the instance's tasks (those not stopped, i.e. desired status
    /// not STOPPED) are in each task group.
    pub task_groups: BTreeMap<String, u32>,
}

/// An instance's remaining resources, as placement reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remaining {
    /// CPU units.
    pub cpu: i64,
    /// MiB.
    pub memory: i64,
    /// TCP host ports that are taken.
    pub tcp_ports: BTreeSet<u16>,
    /// UDP host ports that are taken.
    pub udp_ports: BTreeSet<u16>,
}

impl Remaining {
    /// Reads `remainingResources` (as
    /// [`remaining`](berth_model::container_instance::remaining) computes them):
    /// CPU and MEMORY amounts, PORTS and PORTS_UDP sets. A missing amount counts
    /// as none left, a missing port set as no port taken, as in
    /// [`fits`](berth_model::container_instance::fits).
    pub fn from_resources(resources: &[Resource]) -> Remaining {
        let find = |name: &str| resources.iter().find(|r| r.name.as_deref() == Some(name));
        Remaining {
            cpu: find(Resource::CPU).map_or(0, Resource::amount),
            memory: find(Resource::MEMORY).map_or(0, Resource::amount),
            tcp_ports: find(Resource::PORTS)
                .map(Resource::ports)
                .unwrap_or_default(),
            udp_ports: find(Resource::PORTS_UDP)
                .map(Resource::ports)
                .unwrap_or_default(),
        }
    }

    /// Whether a task needing `need` fits, with every reason it does not in
    /// [`fits`](berth_model::container_instance::fits)'s order and words.
    pub fn fits(&self, need: &TaskResources) -> Result<(), Vec<&'static str>> {
        let mut reasons = Vec::new();
        if need.cpu > self.cpu {
            reasons.push(RESOURCE_CPU);
        }
        if need.memory > self.memory {
            reasons.push(RESOURCE_MEMORY);
        }
        if !self.ports_free(need) {
            reasons.push(RESOURCE_PORTS);
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    /// Whether none of the task's host ports is taken.
    pub fn ports_free(&self, need: &TaskResources) -> bool {
        !need.tcp_ports.iter().any(|p| self.tcp_ports.contains(p))
            && !need.udp_ports.iter().any(|p| self.udp_ports.contains(p))
    }
}

impl QueryTarget for InstanceView {
    fn agent_connected(&self) -> bool {
        self.agent_connected
    }

    fn agent_version(&self) -> Option<&str> {
        self.agent_version.as_deref()
    }

    fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.attributes.get(name).map(Option::as_deref)
    }

    fn ec2_instance_id(&self) -> Option<&str> {
        self.ec2_instance_id.as_deref()
    }

    fn registered_at(&self) -> Option<f64> {
        self.registered_at
    }

    fn running_tasks_count(&self) -> i64 {
        self.running_tasks_count
    }

    fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        self.task_groups
            .iter()
            .any(|(group, count)| *count > 0 && test(group))
    }
}

//! Amazon Resource Names as ECS writes them, and the identifiers ECS accepts in
//! their place (a short name, an id, or the full ARN).

use std::fmt;

use crate::error::{ApiError, ApiResult};

/// The partition, region and account that own a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub region: String,
    pub account: String,
}

impl Scope {
    pub fn new(region: impl Into<String>, account: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            account: account.into(),
        }
    }

    fn arn(&self, resource: fmt::Arguments<'_>) -> String {
        format!("arn:aws:ecs:{}:{}:{resource}", self.region, self.account)
    }
    pub fn cluster_arn(&self, name: &str) -> String {
        self.arn(format_args!("cluster/{name}"))
    }
    pub fn task_definition_arn(&self, family: &str, revision: i32) -> String {
        self.arn(format_args!("task-definition/{family}:{revision}"))
    }
    pub fn task_arn(&self, cluster: &str, id: &str) -> String {
        self.arn(format_args!("task/{cluster}/{id}"))
    }
    pub fn container_instance_arn(&self, cluster: &str, id: &str) -> String {
        self.arn(format_args!("container-instance/{cluster}/{id}"))
    }
    pub fn service_arn(&self, cluster: &str, name: &str) -> String {
        self.arn(format_args!("service/{cluster}/{name}"))
    }
    /// The IAM ARN of the account itself (the principal of account defaults).
    pub fn account_root_arn(&self) -> String {
        format!("arn:aws:iam::{}:root", self.account)
    }
}

/// A parsed ARN: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return None;
        }
        Some(Self {
            partition,
            service,
            region,
            account,
            resource,
        })
    }

    /// The resource type (`cluster`, `task-definition`, ...) and the rest.
    pub fn resource_type(&self) -> (&'a str, &'a str) {
        match self.resource.split_once('/') {
            Some((kind, rest)) => (kind, rest),
            None => (self.resource, ""),
        }
    }

    /// Whether this ARN names something of `scope` (same region and account).
    pub fn in_scope(&self, scope: &Scope) -> bool {
        self.region == scope.region && self.account == scope.account
    }
}

/// An ECS resource that can carry tags, identified by its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceRef {
    Cluster { name: String },
    TaskDefinition { family: String, revision: i32 },
    Task { cluster: String, id: String },
    ContainerInstance { cluster: String, id: String },
    Service { cluster: String, name: String },
    CapacityProvider { name: String },
}

impl ResourceRef {
    /// Parses the ARN of a taggable ECS resource. Errors name the ARN.
    pub fn from_arn(text: &str) -> ApiResult<(Arn<'_>, ResourceRef)> {
        let invalid = || ApiError::invalid_parameter(format!("Invalid resource ARN: {text}"));
        let arn = Arn::parse(text).ok_or_else(invalid)?;
        if arn.service != "ecs" {
            return Err(invalid());
        }
        let (kind, rest) = arn.resource_type();
        let two = |rest: &str| -> Option<(String, String)> {
            let (a, b) = rest.split_once('/')?;
            (!a.is_empty() && !b.is_empty() && !b.contains('/'))
                .then(|| (a.to_string(), b.to_string()))
        };
        let resource = match kind {
            "cluster" if is_valid_name(rest) => ResourceRef::Cluster {
                name: rest.to_string(),
            },
            "capacity-provider" if is_valid_name(rest) => ResourceRef::CapacityProvider {
                name: rest.to_string(),
            },
            "task-definition" => {
                let (family, revision) = rest.rsplit_once(':').ok_or_else(invalid)?;
                let revision = revision
                    .parse::<i32>()
                    .ok()
                    .filter(|r| *r > 0)
                    .ok_or_else(invalid)?;
                if !is_valid_name(family) {
                    return Err(invalid());
                }
                ResourceRef::TaskDefinition {
                    family: family.to_string(),
                    revision,
                }
            }
            "task" => {
                let (cluster, id) = two(rest).ok_or_else(invalid)?;
                ResourceRef::Task { cluster, id }
            }
            "container-instance" => {
                let (cluster, id) = two(rest).ok_or_else(invalid)?;
                ResourceRef::ContainerInstance { cluster, id }
            }
            "service" => {
                let (cluster, name) = two(rest).ok_or_else(invalid)?;
                ResourceRef::Service { cluster, name }
            }
            _ => return Err(invalid()),
        };
        Ok((arn, resource))
    }
}

/// ECS names (clusters, families, containers, services): 1-255 letters, digits,
/// hyphens and underscores.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The cluster a request names: a short name or a cluster ARN; `default` when absent.
pub fn cluster_name(identifier: Option<&str>) -> ApiResult<String> {
    let Some(identifier) = identifier else {
        return Ok("default".to_string());
    };
    let name = match Arn::parse(identifier) {
        Some(arn) => match arn.resource_type() {
            ("cluster", name) => name,
            _ => {
                return Err(ApiError::invalid_parameter(format!(
                    "Invalid cluster ARN: {identifier}"
                )));
            }
        },
        None => identifier,
    };
    if !is_valid_name(name) {
        return Err(ApiError::invalid_parameter(
            "Cluster name can have up to 255 characters: letters (uppercase and lowercase), numbers, underscores and hyphens.",
        ));
    }
    Ok(name.to_string())
}

/// The id of a resource of a cluster (a task, a container instance) that a request
/// names: its ARN (`KIND/CLUSTER/ID`, or the old `KIND/ID` form) or the bare id. An
/// ARN of another cluster or of another kind is refused, naming the identifier.
pub fn cluster_resource_id<'a>(
    kind: &str,
    cluster: &str,
    identifier: &'a str,
) -> ApiResult<&'a str> {
    let invalid = || ApiError::invalid_parameter(format!("Invalid {kind}: '{identifier}'."));
    let Some(arn) = Arn::parse(identifier) else {
        let bare = !identifier.is_empty() && !identifier.contains('/') && identifier.len() <= 64;
        return if bare { Ok(identifier) } else { Err(invalid()) };
    };
    let (found_kind, rest) = arn.resource_type();
    if found_kind != kind {
        return Err(invalid());
    }
    match rest.rsplit_once('/') {
        Some((in_cluster, id)) if in_cluster == cluster && !id.is_empty() => Ok(id),
        Some(_) => Err(ApiError::invalid_parameter(format!(
            "The {kind} '{identifier}' is not in cluster '{cluster}'."
        ))),
        None if !rest.is_empty() => Ok(rest),
        None => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_round_trip() {
        let scope = Scope::new("eu-west-1", "123456789012");
        let arn = scope.cluster_arn("prod");
        assert_eq!(arn, "arn:aws:ecs:eu-west-1:123456789012:cluster/prod");
        assert_eq!(cluster_name(Some(&arn)).ok().as_deref(), Some("prod"));
        assert_eq!(cluster_name(Some("prod")).ok().as_deref(), Some("prod"));
        assert_eq!(cluster_name(None).ok().as_deref(), Some("default"));
        assert!(cluster_name(Some("bad name")).is_err());
        assert!(cluster_name(Some("arn:aws:ecs:r:a:service/c/s")).is_err());
    }

    #[test]
    fn cluster_resources_are_named_by_arn_or_id() {
        let scope = Scope::new("us-east-1", "123456789012");
        let arn = scope.task_arn("c", "abc");
        assert_eq!(cluster_resource_id("task", "c", &arn).ok(), Some("abc"));
        assert_eq!(cluster_resource_id("task", "c", "abc").ok(), Some("abc"));
        assert!(cluster_resource_id("task", "other", &arn).is_err());
        assert!(cluster_resource_id("container-instance", "c", &arn).is_err());
        assert!(cluster_resource_id("task", "c", "a/b").is_err());
    }

    #[test]
    fn resource_refs_parse() {
        let scope = Scope::new("us-east-1", "123456789012");
        let td = scope.task_definition_arn("web", 3);
        let parsed = ResourceRef::from_arn(&td).map(|(_, r)| r).ok();
        assert_eq!(
            parsed,
            Some(ResourceRef::TaskDefinition {
                family: "web".into(),
                revision: 3
            })
        );
        let task = scope.task_arn("c", "abc");
        let parsed = ResourceRef::from_arn(&task).map(|(_, r)| r).ok();
        assert_eq!(
            parsed,
            Some(ResourceRef::Task {
                cluster: "c".into(),
                id: "abc".into()
            })
        );
        assert!(ResourceRef::from_arn("arn:aws:ecs:r:a:task-definition/web").is_err());
        assert!(ResourceRef::from_arn("arn:aws:s3:::bucket").is_err());
        assert!(ResourceRef::from_arn("nonsense").is_err());
    }
}

//! The layout of berth's key space. Every resource lives under its region, so one
//! store serves every region and a prefix scan never crosses regions.
//!
//! ```text
//! /{region}/cluster/{name}                                   Cluster
//! /{region}/taskdef/{family}/{revision:010}                  TaskDefinition (+ tags)
//! /{region}/setting/{principal-arn}/{name}                   Setting
//! /{region}/instance/{cluster}/{id}                          container instances, with their attributes
//! /{region}/usage/{cluster}/{id}                             an instance's remaining resources
//! /{region}/task/{cluster}/{id}                              Task (+ its reservation)
//! /{region}/service/{cluster}/{name}                         services (scheduler issue)
//! ```
//! Revisions are zero-padded so that keys sort in revision order.

pub fn cluster(region: &str, name: &str) -> String {
    format!("/{region}/cluster/{name}")
}
pub fn clusters(region: &str) -> String {
    format!("/{region}/cluster/")
}

pub fn task_definition(region: &str, family: &str, revision: i32) -> String {
    format!("/{region}/taskdef/{family}/{revision:010}")
}
pub fn task_definitions(region: &str) -> String {
    format!("/{region}/taskdef/")
}
pub fn task_definition_family(region: &str, family: &str) -> String {
    format!("/{region}/taskdef/{family}/")
}

/// Principal ARNs may hold slashes (IAM paths); they are escaped so that one
/// principal's prefix never covers another's.
fn principal_segment(principal_arn: &str) -> String {
    principal_arn.replace('%', "%25").replace('/', "%2F")
}
pub fn settings_of(region: &str, principal_arn: &str) -> String {
    format!("/{region}/setting/{}/", principal_segment(principal_arn))
}
pub fn setting(region: &str, principal_arn: &str, name: &str) -> String {
    format!(
        "/{region}/setting/{}/{name}",
        principal_segment(principal_arn)
    )
}

pub fn container_instance(region: &str, cluster: &str, id: &str) -> String {
    format!("/{region}/instance/{cluster}/{id}")
}
pub fn container_instances(region: &str, cluster: &str) -> String {
    format!("/{region}/instance/{cluster}/")
}
pub fn instance_usages(region: &str, cluster: &str) -> String {
    format!("/{region}/usage/{cluster}/")
}
/// The key of the usage record of the instance stored at `instance_key`.
pub fn usage_of_instance(instance_key: &str) -> String {
    instance_key.replacen("/instance/", "/usage/", 1)
}
pub fn task(region: &str, cluster: &str, id: &str) -> String {
    format!("/{region}/task/{cluster}/{id}")
}
pub fn tasks(region: &str, cluster: &str) -> String {
    format!("/{region}/task/{cluster}/")
}
pub fn services(region: &str, cluster: &str) -> String {
    format!("/{region}/service/{cluster}/")
}

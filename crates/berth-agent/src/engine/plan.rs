//! The decisions: given what is known of a task, what to ask the runtime next, when
//! the task must stop and why, and what its status and health are. Pure.
//!
//! The rules are ECS's:
//! - containers are pulled in parallel; one is created and started once its
//!   dependencies are met (START: the dependency started; COMPLETE: it exited;
//!   SUCCESS: it exited 0; HEALTHY: its health check passed);
//! - a dependency that can no longer be met (a SUCCESS dependency exited non-zero, a
//!   HEALTHY one became unhealthy or exited, a COMPLETE/SUCCESS/HEALTHY one did not
//!   get there within its startTimeout of starting) fails the task;
//! - the exit of an essential container stops the task, the exit of another does not;
//!   an essential container that cannot be pulled, created or started fails the task;
//! - on stop, a container is stopped only after the containers that depend on it;
//! - the task is RUNNING once every container that will run has started, STOPPED
//!   once every container has stopped;
//! - a task with task-level cpu or memory gets a cgroup of its own before its first
//!   container is created, and every container is created in it; the cgroup is
//!   removed after the containers.

use std::collections::BTreeSet;
use std::time::Duration;

use berth_proto::{HealthStatus, StopCode, TaskStatus};
use tokio::time::Instant;

use super::model::{
    CgroupPhase, Condition, ContainerModel, ESSENTIAL_EXITED, Now, Phase, StopCause, TaskModel,
    VolumesPhase,
};
use super::spec::{self, VolumeToCreate};
use crate::runtime::{ContainerSpec, Health, TaskLimits};

/// A request to the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateVolumes(Vec<VolumeToCreate>),
    /// Make the task's cgroup with its task-level limits.
    CreateTaskCgroup {
        task_id: String,
        limits: TaskLimits,
    },
    Pull {
        container: String,
        image: String,
    },
    Create {
        container: String,
        spec: Box<ContainerSpec>,
    },
    Start {
        container: String,
        id: String,
    },
    Stop {
        container: String,
        id: String,
        timeout: Duration,
    },
    /// Remove the task's containers, then its task-scoped volumes, then its cgroup
    /// (whether it made one or not: an adopted task may have one).
    Cleanup {
        containers: Vec<String>,
        volumes: Vec<String>,
        task_id: String,
    },
}

/// Where a dependency stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyState {
    Satisfied,
    Waiting,
    /// It can never be met, and why.
    Impossible(String),
}

/// Whether `dependency` meets `condition` at `now`.
pub fn dependency_state(
    dependency: &ContainerModel,
    condition: Condition,
    now: Instant,
) -> DependencyState {
    use DependencyState::{Impossible, Satisfied, Waiting};
    let stopped = dependency.phase == Phase::Stopped;
    let never_ran = stopped && !dependency.ever_started();
    let timed_out = || {
        dependency
            .started_at
            .is_some_and(|started| now >= started + dependency.start_timeout)
    };
    let timeout = || {
        Impossible(format!(
            "did not reach {} within {}s of starting",
            condition.as_str(),
            dependency.start_timeout.as_secs()
        ))
    };
    match condition {
        Condition::Created => {
            if dependency.runtime_id.is_some() {
                Satisfied
            } else if stopped {
                Impossible("was never created".to_owned())
            } else {
                Waiting
            }
        }
        Condition::Start => {
            if dependency.ever_started() {
                Satisfied
            } else if stopped {
                Impossible("never started".to_owned())
            } else {
                Waiting
            }
        }
        Condition::Complete => {
            if dependency.exited() {
                Satisfied
            } else if never_ran {
                Impossible("never started".to_owned())
            } else if timed_out() {
                timeout()
            } else {
                Waiting
            }
        }
        Condition::Success => {
            if dependency.exited() {
                match dependency.exit_code {
                    Some(0) => Satisfied,
                    Some(code) => Impossible(format!("exited with code {code}")),
                    None => Impossible("exited with an unknown code".to_owned()),
                }
            } else if never_ran {
                Impossible("never started".to_owned())
            } else if timed_out() {
                timeout()
            } else {
                Waiting
            }
        }
        Condition::Healthy => {
            if stopped {
                Impossible("stopped".to_owned())
            } else if !dependency.has_health_check {
                Impossible("has no health check".to_owned())
            } else {
                match dependency.health {
                    Some(Health::Healthy) => Satisfied,
                    Some(Health::Unhealthy) => Impossible("is unhealthy".to_owned()),
                    Some(Health::Starting) | None if timed_out() => timeout(),
                    Some(Health::Starting) | None => Waiting,
                }
            }
        }
    }
}

/// Where all of `container`'s dependencies stand together: impossible if one is,
/// waiting if one is, satisfied otherwise.
pub fn dependencies_state(
    task: &TaskModel,
    container: &ContainerModel,
    now: Instant,
) -> DependencyState {
    let mut waiting = false;
    for dependency in &container.dependencies {
        let state = match task.container(&dependency.container) {
            Some(target) => dependency_state(target, dependency.condition, now),
            None => DependencyState::Impossible("does not exist".to_owned()),
        };
        match state {
            DependencyState::Satisfied => {}
            DependencyState::Waiting => waiting = true,
            DependencyState::Impossible(why) => {
                return DependencyState::Impossible(format!(
                    "DependencyError: container {} depends on container {} ({}), which {why}",
                    container.name,
                    dependency.container,
                    dependency.condition.as_str()
                ));
            }
        }
    }
    if waiting {
        DependencyState::Waiting
    } else {
        DependencyState::Satisfied
    }
}

/// Whether the container has yet to be let through its dependencies.
fn awaits_dependencies(container: &ContainerModel) -> bool {
    !container.dependencies_cleared
        && matches!(
            container.phase,
            Phase::None | Phase::Pulling | Phase::Pulled | Phase::Created
        )
}

/// Decides what happens next: updates the task's stop cause, phases and status, and
/// returns the requests to make (marked in flight in the task).
pub fn next_actions(task: &mut TaskModel, now: Now) -> Vec<Action> {
    let mut actions = Vec::new();
    settle(task, now);
    launch(task, now, &mut actions);
    // Launching may have failed a container (no image, a bad spec).
    settle(task, now);
    stop(task, now, &mut actions);
    update_status(task, now);
    if task.status == TaskStatus::Stopped && task.cleanup_allowed && !task.cleanup_started {
        task.cleanup_started = true;
        actions.push(Action::Cleanup {
            containers: task.runtime_ids(),
            volumes: task.volumes_to_remove.clone(),
            task_id: spec::task_id(&task.task_arn).to_owned(),
        });
    }
    actions
}

/// Decides whether the task must stop, and why.
fn settle(task: &mut TaskModel, now: Now) {
    if task.stop.is_some() {
        return;
    }
    if !task.definition_known {
        // Without the definition only the end is certain: nothing runs any more.
        if !task.containers.is_empty() && task.containers.iter().all(|c| c.phase == Phase::Stopped)
        {
            task.stop = Some(StopCause::new(
                ESSENTIAL_EXITED,
                Some(StopCode::EssentialContainerExited),
            ));
        }
        return;
    }
    let unstartable = match &task.volumes {
        VolumesPhase::Failed(reason) => Some(reason.clone()),
        _ => task.invalid.clone(),
    };
    if let Some(reason) = unstartable {
        for container in &mut task.containers {
            if container.phase != Phase::Stopped {
                container.reason.get_or_insert_with(|| reason.clone());
            }
        }
        task.stop = Some(StopCause::new(reason, Some(StopCode::TaskFailedToStart)));
        return;
    }
    for container in &task.containers {
        if container.essential && container.phase == Phase::Stopped {
            task.stop = Some(if container.ever_started() {
                StopCause::new(ESSENTIAL_EXITED, Some(StopCode::EssentialContainerExited))
            } else {
                StopCause::new(
                    container
                        .reason
                        .clone()
                        .unwrap_or_else(|| ESSENTIAL_EXITED.to_owned()),
                    Some(StopCode::TaskFailedToStart),
                )
            });
            return;
        }
    }
    for index in 0..task.containers.len() {
        let container = &task.containers[index];
        if !awaits_dependencies(container) {
            continue;
        }
        if let DependencyState::Impossible(reason) = dependencies_state(task, container, now.at) {
            task.containers[index].reason = Some(reason.clone());
            task.stop = Some(StopCause::new(reason, Some(StopCode::TaskFailedToStart)));
            return;
        }
    }
}

/// Pulls, creates and starts what may be.
fn launch(task: &mut TaskModel, now: Now, actions: &mut Vec<Action>) {
    if task.stop.is_some() || !task.definition_known {
        return;
    }
    if task.volumes == VolumesPhase::Pending {
        task.volumes = VolumesPhase::Creating;
        actions.push(Action::CreateVolumes(task.volumes_to_create.clone()));
    }
    if task.cgroup == CgroupPhase::Pending {
        task.cgroup = CgroupPhase::Creating;
        actions.push(Action::CreateTaskCgroup {
            task_id: spec::task_id(&task.task_arn).to_owned(),
            limits: task.limits,
        });
    }
    for container in &mut task.containers {
        if container.phase != Phase::None {
            continue;
        }
        match container.image.clone() {
            Some(image) => {
                container.phase = Phase::Pulling;
                task.pull_started_at.get_or_insert(now.epoch);
                actions.push(Action::Pull {
                    container: container.name.clone(),
                    image,
                });
            }
            None => container.fail("CannotPullContainerError: the container has no image"),
        }
    }
    // The task's volumes and cgroup come before its containers.
    let prepared =
        task.volumes == VolumesPhase::Ready && matches!(task.cgroup, CgroupPhase::Ready(_));
    let cgroup_parent = task.cgroup.parent();
    for index in 0..task.containers.len() {
        let container = &task.containers[index];
        let may_go = match container.phase {
            Phase::Pulled if prepared => {
                dependencies_state(task, container, now.at) == DependencyState::Satisfied
            }
            Phase::Created => {
                container.dependencies_cleared
                    || dependencies_state(task, container, now.at) == DependencyState::Satisfied
            }
            _ => false,
        };
        if !may_go {
            continue;
        }
        let container = &mut task.containers[index];
        container.dependencies_cleared = true;
        if container.phase == Phase::Pulled {
            match &container.spec {
                Ok(spec) => {
                    container.phase = Phase::Creating;
                    actions.push(Action::Create {
                        container: container.name.clone(),
                        spec: Box::new(ContainerSpec {
                            cgroup_parent: cgroup_parent.clone(),
                            ..spec.clone()
                        }),
                    });
                }
                Err(error) => {
                    let reason = format!("CannotCreateContainerError: {error}");
                    container.fail(reason);
                }
            }
        } else if let Some(id) = container.runtime_id.clone() {
            container.phase = Phase::Starting;
            actions.push(Action::Start {
                container: container.name.clone(),
                id,
            });
        }
    }
}

/// Stops what runs, dependents first; what never ran is simply stopped.
fn stop(task: &mut TaskModel, now: Now, actions: &mut Vec<Action>) {
    if task.stop.is_none() {
        return;
    }
    for container in &mut task.containers {
        if matches!(
            container.phase,
            Phase::None | Phase::Pulling | Phase::Pulled | Phase::Created
        ) {
            // A pull in flight is abandoned; its result is ignored.
            container.phase = Phase::Stopped;
        }
    }
    let blocked: BTreeSet<String> = task
        .containers
        .iter()
        .filter(|c| c.phase != Phase::Stopped)
        .flat_map(|c| c.dependencies.iter().map(|d| d.container.clone()))
        .collect();
    for container in &mut task.containers {
        if container.phase != Phase::Running
            || blocked.contains(&container.name)
            || container.retry_stop_at.is_some_and(|at| at > now.at)
        {
            continue;
        }
        let Some(id) = container.runtime_id.clone() else {
            container.phase = Phase::Stopped;
            continue;
        };
        container.phase = Phase::Stopping;
        container.retry_stop_at = None;
        actions.push(Action::Stop {
            container: container.name.clone(),
            id,
            timeout: container.stop_timeout,
        });
    }
}

/// The status the containers make the task, before it is folded into the known one.
pub fn derived_status(task: &TaskModel) -> TaskStatus {
    let all_stopped = task.containers.iter().all(|c| c.phase == Phase::Stopped);
    if task.stop.is_some() {
        // What is being made is waited for, so that cleanup comes after it.
        if all_stopped
            && task.volumes != VolumesPhase::Creating
            && task.cgroup != CgroupPhase::Creating
        {
            TaskStatus::Stopped
        } else {
            TaskStatus::Stopping
        }
    } else if !task.definition_known {
        // An adopted task whose definition has not arrived yet: which of its
        // containers are still to be created is unknown, so it is not RUNNING yet
        // (the control plane keeps a RUNNING it already knows).
        TaskStatus::Pending
    } else if !task.containers.is_empty()
        && task
            .containers
            .iter()
            .all(|c| c.ever_started() || c.phase == Phase::Stopped)
    {
        TaskStatus::Running
    } else {
        TaskStatus::Pending
    }
}

fn update_status(task: &mut TaskModel, now: Now) {
    let derived = derived_status(task);
    if derived == TaskStatus::Running && task.started_at.is_none() {
        let latest = task
            .containers
            .iter()
            .filter_map(|c| c.started_epoch)
            .fold(None, |acc: Option<f64>, t| {
                Some(acc.map_or(t, |a| a.max(t)))
            });
        task.started_at = Some(latest.unwrap_or(now.epoch));
    }
    task.status = task.status.max(derived);
    if task.status == TaskStatus::Stopped && task.execution_stopped_at.is_none() {
        task.execution_stopped_at = Some(now.epoch);
    }
}

/// When the decisions may change with time alone (a dependency's start timeout, a
/// stop to try again).
pub fn next_deadline(task: &TaskModel) -> Option<Instant> {
    let mut deadlines = Vec::new();
    if task.stop.is_none() && task.definition_known {
        for container in task.containers.iter().filter(|c| awaits_dependencies(c)) {
            for dependency in &container.dependencies {
                if !matches!(
                    dependency.condition,
                    Condition::Complete | Condition::Success | Condition::Healthy
                ) {
                    continue;
                }
                if let Some(target) = task.container(&dependency.container)
                    && target.phase != Phase::Stopped
                    && let Some(started) = target.started_at
                {
                    deadlines.push(started + target.start_timeout);
                }
            }
        }
    }
    if task.stop.is_some() {
        deadlines.extend(
            task.containers
                .iter()
                .filter(|c| c.phase == Phase::Running)
                .filter_map(|c| c.retry_stop_at),
        );
    }
    deadlines.into_iter().min()
}

/// The task's health: UNHEALTHY if an essential container with a health check is
/// unhealthy, HEALTHY if all of them are healthy, UNKNOWN otherwise (and when none
/// has a health check).
pub fn task_health(task: &TaskModel) -> HealthStatus {
    let checked: Vec<&ContainerModel> = task
        .containers
        .iter()
        .filter(|c| c.essential && c.has_health_check)
        .collect();
    if checked.is_empty() {
        HealthStatus::Unknown
    } else if checked.iter().any(|c| c.health == Some(Health::Unhealthy)) {
        HealthStatus::Unhealthy
    } else if checked.iter().all(|c| c.health == Some(Health::Healthy)) {
        HealthStatus::Healthy
    } else {
        HealthStatus::Unknown
    }
}

/// A container's health as reported: only for containers with a health check.
pub fn container_health(container: &ContainerModel) -> Option<HealthStatus> {
    container
        .has_health_check
        .then_some(match container.health {
            Some(Health::Healthy) => HealthStatus::Healthy,
            Some(Health::Unhealthy) => HealthStatus::Unhealthy,
            Some(Health::Starting) | None => HealthStatus::Unknown,
        })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

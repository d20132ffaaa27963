//! The scheduler's rules one by one, whole rollouts driven step by step through a
//! small simulated world, and a property test of the bounds.

use std::time::Duration;

use berth_model::task::{HealthStatus, TaskStatus, TaskStopCode};
use proptest::prelude::*;

use super::*;

/// 2027-01-15T08:00:00Z.
const T0: Timestamp = 1_800_000_000.0;
const SERVICE: &str = "web";

fn spec(desired: u32, min: u32, max: u32) -> ServiceSpec {
    ServiceSpec {
        name: SERVICE.to_string(),
        desired_count: desired,
        minimum_healthy_percent: min,
        maximum_percent: max,
        circuit_breaker: None,
        running_grace: Duration::ZERO,
        daemon: None,
    }
}

fn deployment(
    id: &str,
    revision: u32,
    status: DeploymentStatus,
    rollout: RolloutState,
) -> Deployment {
    Deployment {
        id: id.to_string(),
        task_definition_arn: format!(
            "arn:aws:ecs:us-east-1:000000000000:task-definition/web:{revision}"
        ),
        status,
        rollout_state: rollout,
        rollout_state_reason: reason::in_progress(id),
        desired_count: 0,
        running_count: 0,
        pending_count: 0,
        failed_tasks: 0,
        created_at: T0 + f64::from(revision),
        has_health_check: false,
    }
}

fn arn(id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:000000000000:task/default/{id}")
}

fn task(id: &str, deployment: &str, last: TaskStatus) -> ServiceTask {
    ServiceTask {
        task_arn: arn(id).into(),
        deployment_id: deployment.into(),
        last_status: last,
        desired_status: TaskStatus::Running,
        health: HealthStatus::Unknown,
        instance_id: Some("i-1".into()),
        zone: Some("a".into()),
        instance_available: None,
        started_at: (last >= TaskStatus::Running).then_some(T0),
        stop_code: None,
        accounted: false,
        instance_draining: false,
    }
}

fn running(id: &str, deployment: &str) -> ServiceTask {
    task(id, deployment, TaskStatus::Running)
}

fn in_zone(mut task: ServiceTask, zone: &str, instance: &str) -> ServiceTask {
    task.zone = Some(zone.into());
    task.instance_id = Some(instance.into());
    task
}

fn messages(plan: &Plan) -> Vec<&str> {
    plan.events.iter().map(|e| e.message.as_str()).collect()
}

fn stopped_ids(plan: &Plan) -> Vec<&str> {
    plan.stop.iter().map(|s| task_id(&s.task_arn)).collect()
}

fn started(plan: &Plan) -> u32 {
    plan.start.iter().map(|s| s.count).sum()
}

fn find<'a>(plan: &'a Plan, id: &str) -> &'a Deployment {
    plan.deployments
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("no deployment {id} in the plan"))
}

// ---------------------------------------------------------------------------------
// A small world: the controller's side of the loop, and tasks that move when told.
// ---------------------------------------------------------------------------------

struct Sim {
    spec: ServiceSpec,
    deployments: Vec<Deployment>,
    tasks: Vec<ServiceTask>,
    state: SchedulerState,
    now: Timestamp,
    next_task: u32,
    next_deployment: u32,
    events: Vec<String>,
    last: Option<Plan>,
}

impl Sim {
    /// A service whose deployment `ecs-svc/1` (revision 1) is complete with
    /// `desired` healthy tasks.
    fn steady(spec: ServiceSpec, has_health_check: bool) -> Self {
        let mut first = deployment(
            "ecs-svc/1",
            1,
            DeploymentStatus::Primary,
            RolloutState::Completed,
        );
        first.has_health_check = has_health_check;
        first.desired_count = spec.desired_count;
        let mut sim = Sim {
            spec,
            deployments: vec![first],
            tasks: Vec::new(),
            state: SchedulerState::default(),
            now: T0,
            next_task: 0,
            next_deployment: 2,
            events: Vec::new(),
            last: None,
        };
        for _ in 0..sim.spec.desired_count {
            sim.add_task("ecs-svc/1", TaskStatus::Running);
        }
        for task in &mut sim.tasks {
            task.started_at = Some(T0 - 3600.0);
        }
        sim.become_healthy();
        sim.step();
        assert!(sim.state.steady, "the initial service is steady");
        sim.events.clear();
        sim
    }

    fn add_task(&mut self, deployment: &str, last: TaskStatus) {
        self.next_task += 1;
        let zone = ["a", "b", "c"][(self.next_task % 3) as usize];
        let mut task = task(&format!("t{:03}", self.next_task), deployment, last);
        task.zone = Some(zone.into());
        task.instance_id = Some(format!("i-{zone}").into());
        task.started_at = (last == TaskStatus::Running).then_some(self.now);
        self.tasks.push(task);
    }

    fn has_health_check(&self, deployment: &str) -> bool {
        self.deployments
            .iter()
            .any(|d| d.id == deployment && d.has_health_check)
    }

    /// Plans and does what the plan says, as the controller would.
    fn step(&mut self) -> Plan {
        let plan = plan(
            &self.spec,
            &self.deployments,
            &self.tasks,
            &self.state,
            self.now,
        );
        for arn in &plan.accounted {
            if let Some(task) = self.tasks.iter_mut().find(|t| *t.task_arn == **arn) {
                task.accounted = true;
            }
        }
        for stop in &plan.stop {
            let task = self
                .tasks
                .iter_mut()
                .find(|t| *t.task_arn == *stop.task_arn)
                .unwrap_or_else(|| panic!("stop of an unknown task {}", stop.task_arn));
            assert_eq!(
                task.desired_status,
                TaskStatus::Running,
                "a task is stopped twice"
            );
            task.desired_status = TaskStatus::Stopped;
            task.stop_code = Some(TaskStopCode::ServiceSchedulerInitiated);
        }
        for start in &plan.start {
            for _ in 0..start.count {
                self.add_task(&start.deployment_id.clone(), TaskStatus::Pending);
            }
        }
        self.deployments = plan.deployments.clone();
        self.state = plan.state.clone();
        self.events
            .extend(plan.events.iter().map(|e| e.message.clone()));
        self.last = Some(plan.clone());
        plan
    }

    /// A new deployment of `revision`, as UpdateService makes one.
    fn update_service(&mut self, revision: u32, has_health_check: bool) -> String {
        let id = format!("ecs-svc/{}", self.next_deployment);
        self.next_deployment += 1;
        for deployment in &mut self.deployments {
            if deployment.status == DeploymentStatus::Primary {
                deployment.status = DeploymentStatus::Active;
            }
        }
        let mut new = deployment(
            &id,
            revision,
            DeploymentStatus::Primary,
            RolloutState::InProgress,
        );
        new.created_at = self.now;
        new.has_health_check = has_health_check;
        new.desired_count = self.spec.desired_count;
        self.deployments.push(new);
        id
    }

    fn advance(&mut self, seconds: f64) {
        self.now += seconds;
    }

    /// The tasks being stopped reach STOPPED.
    fn finish_stops(&mut self) {
        for task in &mut self.tasks {
            if task.desired_status == TaskStatus::Stopped && task.last_status < TaskStatus::Stopped
            {
                task.last_status = TaskStatus::Stopped;
            }
        }
    }

    /// PENDING tasks reach RUNNING.
    fn run_pending(&mut self) {
        let now = self.now;
        for task in &mut self.tasks {
            if task.last_status == TaskStatus::Pending && task.desired_status == TaskStatus::Running
            {
                task.last_status = TaskStatus::Running;
                task.started_at = Some(now);
            }
        }
    }

    /// RUNNING tasks pass their health checks.
    fn become_healthy(&mut self) {
        for task in &mut self.tasks {
            if task.last_status == TaskStatus::Running && task.health == HealthStatus::Unknown {
                task.health = HealthStatus::Healthy;
            }
        }
    }

    /// The PENDING tasks of `deployment` stop before reaching RUNNING (their essential
    /// container exits at once).
    fn crash_pending(&mut self, deployment: &str) -> usize {
        let mut crashed = 0;
        for task in &mut self.tasks {
            if *task.deployment_id == *deployment && task.last_status == TaskStatus::Pending {
                task.last_status = TaskStatus::Stopped;
                task.desired_status = TaskStatus::Stopped;
                task.stop_code = Some(TaskStopCode::EssentialContainerExited);
                crashed += 1;
            }
        }
        crashed
    }

    /// Forgets the stopped tasks the scheduler has taken into account (ECS keeps
    /// stopped tasks for a while only).
    fn forget_stopped(&mut self) {
        self.tasks
            .retain(|t| !(t.last_status == TaskStatus::Stopped && t.accounted));
    }

    /// Tasks counting toward the minimum: RUNNING, wanted, and HEALTHY when their
    /// task definition has health checks.
    fn healthy(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| {
                t.last_status == TaskStatus::Running
                    && t.desired_status == TaskStatus::Running
                    && (!self.has_health_check(&t.deployment_id)
                        || t.health == HealthStatus::Healthy)
            })
            .count()
    }

    /// Tasks counting toward the maximum: every task not STOPPED yet.
    fn total(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.last_status < TaskStatus::Stopped)
            .count()
    }

    fn live_of(&self, deployment: &str) -> usize {
        self.tasks
            .iter()
            .filter(|t| *t.deployment_id == *deployment && t.last_status < TaskStatus::Stopped)
            .count()
    }

    fn deployment(&self, id: &str) -> &Deployment {
        self.deployments
            .iter()
            .find(|d| d.id == id)
            .unwrap_or_else(|| panic!("no deployment {id}"))
    }

    fn completed(&self, id: &str) -> bool {
        self.state.steady && self.deployment(id).rollout_state == RolloutState::Completed
    }
}

/// Drives a rollout to `id` to completion, the world moving one kind of change per
/// round, and checks the bounds after every plan and every change. Returns the
/// number of plans it took.
fn drive(sim: &mut Sim, id: &str, min_healthy: usize, max_total: usize) -> usize {
    let check = |sim: &Sim, when: &str| {
        assert!(
            sim.healthy() >= min_healthy,
            "{when}: {} healthy tasks, fewer than {min_healthy}",
            sim.healthy()
        );
        assert!(
            sim.total() <= max_total,
            "{when}: {} tasks, more than {max_total}",
            sim.total()
        );
    };
    for round in 1..=60 {
        sim.step();
        check(sim, &format!("plan {round}"));
        if sim.completed(id) {
            return round;
        }
        sim.finish_stops();
        check(sim, &format!("stops of round {round}"));
        sim.step();
        check(sim, &format!("plan {round}b"));
        sim.run_pending();
        check(sim, &format!("starts of round {round}"));
        sim.step();
        check(sim, &format!("plan {round}c"));
        sim.become_healthy();
        check(sim, &format!("health of round {round}"));
        sim.forget_stopped();
    }
    panic!(
        "the rollout to {id} did not complete; events: {:#?}",
        sim.events
    );
}

// ---------------------------------------------------------------------------------
// Bounds and thresholds
// ---------------------------------------------------------------------------------

#[test]
fn minimum_rounds_up_and_maximum_rounds_down() {
    // The guide's examples: 50% of 4 is 2; 75% of 2 is 2 (rounded up); 200% of 4
    // is 8; 125% of 3 is 3 (rounded down).
    assert_eq!(Bounds::of(&spec(4, 50, 200)).min_healthy, 2);
    assert_eq!(Bounds::of(&spec(2, 75, 200)).min_healthy, 2);
    assert_eq!(Bounds::of(&spec(4, 100, 200)).max_tasks, 8);
    assert_eq!(Bounds::of(&spec(3, 100, 125)).max_tasks, 3);
    assert_eq!(
        Bounds::of(&spec(3, 50, 150)),
        Bounds {
            min_healthy: 2,
            max_tasks: 4
        }
    );
    assert_eq!(
        Bounds::of(&spec(0, 100, 200)),
        Bounds {
            min_healthy: 0,
            max_tasks: 0
        }
    );
    assert_eq!(
        Bounds::of(&spec(1, 0, 100)),
        Bounds {
            min_healthy: 0,
            max_tasks: 1
        }
    );
}

#[test]
fn failure_threshold_is_half_the_desired_count_rounded_up_within_3_and_200() {
    assert_eq!(failure_threshold(0), 3);
    assert_eq!(failure_threshold(1), 3);
    assert_eq!(failure_threshold(6), 3);
    assert_eq!(failure_threshold(7), 4);
    assert_eq!(failure_threshold(25), 13);
    assert_eq!(failure_threshold(400), 200);
    assert_eq!(failure_threshold(800), 200);
}

// ---------------------------------------------------------------------------------
// Keeping N copies
// ---------------------------------------------------------------------------------

#[test]
fn a_new_service_starts_its_desired_count() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    )];
    let plan = plan(
        &spec(3, 100, 200),
        &deployments,
        &[],
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(
        plan.start,
        vec![Start {
            deployment_id: "ecs-svc/1".to_string(),
            count: 3,
            instances: Vec::new(),
        }]
    );
    assert!(plan.stop.is_empty());
    assert!(!plan.steady());
    assert!(plan.events.is_empty(), "{:?}", plan.events);
    assert_eq!(find(&plan, "ecs-svc/1").desired_count, 3);
}

#[test]
fn pending_tasks_are_not_started_twice() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    )];
    let tasks = [
        task("a", "ecs-svc/1", TaskStatus::Pending),
        task("b", "ecs-svc/1", TaskStatus::Provisioning),
        running("c", "ecs-svc/1"),
    ];
    let plan = plan(
        &spec(3, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert!(plan.start.is_empty());
    assert!(plan.stop.is_empty());
    assert_eq!((plan.running_count, plan.pending_count), (1, 2));
    let d = find(&plan, "ecs-svc/1");
    assert_eq!((d.running_count, d.pending_count), (1, 2));
    assert!(!plan.steady());
}

#[test]
fn reaching_the_desired_count_completes_the_rollout_and_reports_a_steady_state() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    )];
    let tasks = [running("a", "ecs-svc/1"), running("b", "ecs-svc/1")];
    let first = plan(
        &spec(2, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert!(first.steady());
    let d = find(&first, "ecs-svc/1");
    assert_eq!(d.rollout_state, RolloutState::Completed);
    assert_eq!(
        d.rollout_state_reason,
        "ECS deployment ecs-svc/1 completed."
    );
    assert_eq!(
        messages(&first),
        [
            "(service web) (deployment ecs-svc/1) deployment completed.",
            "(service web) has reached a steady state.",
        ]
    );
    assert_eq!(first.state.steady_event_at, Some(T0));

    // Still steady an hour later: nothing to say.
    let again = plan(
        &spec(2, 100, 200),
        &first.deployments,
        &tasks,
        &first.state,
        T0 + 3600.0,
    );
    assert!(again.steady());
    assert!(again.events.is_empty(), "{:?}", again.events);
    assert!(again.start.is_empty() && again.stop.is_empty());

    // Six hours after the last report, ECS says it again.
    let later = plan(
        &spec(2, 100, 200),
        &first.deployments,
        &tasks,
        &first.state,
        T0 + 6.0 * 3600.0,
    );
    assert_eq!(
        messages(&later),
        ["(service web) has reached a steady state."]
    );
    assert_eq!(later.state.steady_event_at, Some(T0 + 6.0 * 3600.0));
}

#[test]
fn a_service_that_leaves_and_regains_its_steady_state_reports_it_again() {
    let mut sim = Sim::steady(spec(2, 100, 200), false);
    sim.tasks[0].last_status = TaskStatus::Stopped;
    sim.tasks[0].stop_code = Some(TaskStopCode::EssentialContainerExited);
    let plan = sim.step();
    assert!(!plan.steady());
    assert_eq!(started(&plan), 1);
    sim.run_pending();
    let plan = sim.step();
    assert!(plan.steady());
    assert_eq!(
        messages(&plan),
        ["(service web) has reached a steady state."]
    );
    // The deployment stays COMPLETED: replacing a task is no new rollout.
    assert_eq!(
        sim.deployment("ecs-svc/1").rollout_state,
        RolloutState::Completed
    );
}

#[test]
fn a_stopped_task_is_replaced_and_taken_into_account_once() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::Completed,
    )];
    let mut dead = running("dead", "ecs-svc/1");
    dead.last_status = TaskStatus::Stopped;
    dead.desired_status = TaskStatus::Stopped;
    dead.stop_code = Some(TaskStopCode::EssentialContainerExited);
    let mut tasks = vec![running("a", "ecs-svc/1"), running("b", "ecs-svc/1"), dead];
    let first = plan(
        &spec(3, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(started(&first), 1);
    assert_eq!(first.accounted, [arn("dead")]);
    assert_eq!(find(&first, "ecs-svc/1").failed_tasks, 1);
    // The task exited after RUNNING: no start throttle.
    assert_eq!(first.state.backoff.consecutive_failures, 0);

    tasks[2].accounted = true;
    let second = plan(
        &spec(3, 100, 200),
        &first.deployments,
        &tasks,
        &first.state,
        T0,
    );
    assert!(second.accounted.is_empty());
    assert_eq!(find(&second, "ecs-svc/1").failed_tasks, 1, "counted once");
}

#[test]
fn a_task_stopped_by_a_user_or_the_infrastructure_is_replaced_but_not_a_failure() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    )];
    let mut tasks = vec![running("a", "ecs-svc/1")];
    for (id, code) in [
        ("user", TaskStopCode::UserInitiated),
        ("spot", TaskStopCode::SpotInterruption),
        ("host", TaskStopCode::InfrastructureHealth),
        ("scaled", TaskStopCode::ServiceSchedulerInitiated),
    ] {
        let mut t = task(id, "ecs-svc/1", TaskStatus::Stopped);
        t.desired_status = TaskStatus::Stopped;
        t.stop_code = Some(code);
        tasks.push(t);
    }
    let plan = plan(
        &spec(3, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(started(&plan), 2);
    assert_eq!(plan.accounted.len(), 4);
    assert_eq!(find(&plan, "ecs-svc/1").failed_tasks, 0);
}

#[test]
fn failures_are_classified_as_ecs_counts_them() {
    let base = task("x", "ecs-svc/1", TaskStatus::Stopped);
    let with = |code: Option<TaskStopCode>, started: bool, health: HealthStatus| ServiceTask {
        stop_code: code,
        started_at: started.then_some(T0),
        health,
        ..base.clone()
    };
    use HealthStatus::{Healthy, Unhealthy, Unknown};
    use TaskStopCode::*;
    assert_eq!(
        with(Some(TaskFailedToStart), false, Unknown).failure(),
        Some(Failure::FailedToStart)
    );
    assert_eq!(
        with(Some(EssentialContainerExited), false, Unknown).failure(),
        Some(Failure::FailedToStart)
    );
    assert_eq!(
        with(None, false, Unknown).failure(),
        Some(Failure::FailedToStart)
    );
    assert_eq!(
        with(Some(EssentialContainerExited), true, Healthy).failure(),
        Some(Failure::Exited)
    );
    assert_eq!(
        with(Some(EssentialContainerExited), true, Unhealthy).failure(),
        Some(Failure::FailedHealthChecks)
    );
    assert_eq!(
        with(Some(ServiceSchedulerInitiated), true, Unhealthy).failure(),
        Some(Failure::FailedHealthChecks)
    );
    assert_eq!(
        with(Some(ServiceSchedulerInitiated), false, Unknown).failure(),
        None
    );
    assert_eq!(
        with(Some(ServiceSchedulerInitiated), true, Healthy).failure(),
        None
    );
    assert_eq!(with(Some(UserInitiated), false, Unhealthy).failure(), None);
    assert_eq!(with(Some(TerminationNotice), true, Unknown).failure(), None);
}

// ---------------------------------------------------------------------------------
// Rolling updates
// ---------------------------------------------------------------------------------

#[test]
fn rolling_update_100_200_keeps_every_task_healthy_and_at_most_twice_the_count() {
    let mut sim = Sim::steady(spec(3, 100, 200), true);
    let id = sim.update_service(2, true);

    // The first plan starts three new tasks and stops none.
    let plan = sim.step();
    assert_eq!(
        plan.start,
        vec![Start {
            deployment_id: id.clone(),
            count: 3,
            instances: Vec::new(),
        }]
    );
    assert!(plan.stop.is_empty());
    assert_eq!(find(&plan, "ecs-svc/1").status, DeploymentStatus::Active);

    drive(&mut sim, &id, 3, 6);
    assert_eq!(sim.live_of("ecs-svc/1"), 0);
    assert_eq!(sim.live_of(&id), 3);
    assert_eq!(
        sim.deployment("ecs-svc/1").status,
        DeploymentStatus::Inactive
    );
    assert_eq!(sim.deployment(&id).status, DeploymentStatus::Primary);
    assert_eq!(
        sim.deployment(&id).rollout_state_reason,
        format!("ECS deployment {id} completed.")
    );
    let tail: Vec<&str> = sim
        .events
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            format!("(service web) (deployment {id}) deployment completed.").as_str(),
            "(service web) has reached a steady state.",
        ]
    );
    assert!(
        sim.events
            .iter()
            .any(|e| e.starts_with("(service web) has stopped 3 running tasks: (task t00"))
    );
}

#[test]
fn rolling_update_100_200_waits_for_health_before_stopping_old_tasks() {
    let mut sim = Sim::steady(spec(3, 100, 200), true);
    let id = sim.update_service(2, true);
    sim.step();
    sim.run_pending();
    // RUNNING but not yet HEALTHY: old tasks stay.
    let plan = sim.step();
    assert!(plan.stop.is_empty() && plan.start.is_empty());
    assert!(!plan.steady());
    // No configuration complaint while tasks are on their way.
    assert!(plan.events.is_empty(), "{:?}", plan.events);
    sim.become_healthy();
    let plan = sim.step();
    assert_eq!(plan.stop.len(), 3);
    assert!(
        plan.stop
            .iter()
            .all(|s| s.cause == StopCause::ScalingActivity
                && s.reason == format!("Scaling activity initiated by (deployment {id})"))
    );
    assert!(plan.stop.iter().all(|s| {
        sim.tasks
            .iter()
            .any(|t| *t.task_arn == *s.task_arn && &*t.deployment_id == "ecs-svc/1")
    }));
    // The old deployment is drained but stays ACTIVE until its tasks are STOPPED.
    assert_eq!(find(&plan, "ecs-svc/1").status, DeploymentStatus::Active);
    assert_eq!(find(&plan, "ecs-svc/1").desired_count, 0);
}

#[test]
fn rolling_update_50_100_stops_half_before_starting() {
    // The guide's example: "if the minimum healthy percent is 50 and the desired task
    // count is four, then the scheduler can stop two existing tasks before starting
    // two new tasks."
    let mut sim = Sim::steady(spec(4, 50, 100), false);
    let id = sim.update_service(2, false);
    let plan = sim.step();
    assert_eq!(plan.stop.len(), 2);
    assert!(
        plan.start.is_empty(),
        "no room until the stopped tasks are STOPPED"
    );
    sim.finish_stops();
    let plan = sim.step();
    assert_eq!(started(&plan), 2);
    drive(&mut sim, &id, 2, 4);
    assert_eq!(sim.live_of(&id), 4);
    assert_eq!(sim.live_of("ecs-svc/1"), 0);
}

#[test]
fn rolling_update_50_100_on_three_tasks() {
    let mut sim = Sim::steady(spec(3, 50, 100), true);
    let id = sim.update_service(2, true);
    let plan = sim.step();
    // ceil(1.5) = 2 must stay healthy: one old task goes.
    assert_eq!(plan.stop.len(), 1);
    drive(&mut sim, &id, 2, 3);
    assert_eq!(sim.live_of(&id), 3);
}

#[test]
fn rolling_update_0_100_replaces_everything_at_once() {
    let mut sim = Sim::steady(spec(3, 0, 100), false);
    let id = sim.update_service(2, false);
    let plan = sim.step();
    assert_eq!(plan.stop.len(), 3);
    drive(&mut sim, &id, 0, 3);
}

#[test]
fn rolling_update_100_150_goes_in_batches() {
    let mut sim = Sim::steady(spec(4, 100, 150), true);
    let id = sim.update_service(2, true);
    let plan = sim.step();
    assert_eq!(started(&plan), 2, "floor(4 * 1.5) - 4 = 2 extra tasks");
    drive(&mut sim, &id, 4, 6);
}

#[test]
fn force_new_deployment_replaces_every_task_the_same_way() {
    let mut sim = Sim::steady(spec(3, 100, 200), false);
    let old: Vec<String> = sim.tasks.iter().map(|t| t.task_arn.to_string()).collect();
    // Same task definition revision, new deployment.
    let id = sim.update_service(1, false);
    assert_eq!(
        sim.deployment(&id).task_definition_arn,
        sim.deployment("ecs-svc/1").task_definition_arn
    );
    drive(&mut sim, &id, 3, 6);
    let live: Vec<&ServiceTask> = sim
        .tasks
        .iter()
        .filter(|t| t.last_status < TaskStatus::Stopped)
        .collect();
    assert_eq!(live.len(), 3);
    assert!(
        live.iter()
            .all(|t| !old.iter().any(|o| **o == *t.task_arn) && *t.deployment_id == *id)
    );
}

#[test]
fn a_second_update_during_a_rollout_drains_both_older_deployments() {
    let mut sim = Sim::steady(spec(3, 100, 200), false);
    let second = sim.update_service(2, false);
    sim.step();
    sim.run_pending();
    let third = sim.update_service(3, false);
    let plan = sim.step();
    assert_eq!(find(&plan, &second).status, DeploymentStatus::Active);
    // Deployment 2's three RUNNING tasks count as healthy, so three tasks (of 1 or 2)
    // may go; the maximum leaves no room for deployment 3 yet.
    assert_eq!(plan.stop.len(), 3);
    drive(&mut sim, &third, 3, 6);
    assert_eq!(sim.live_of("ecs-svc/1") + sim.live_of(&second), 0);
    assert_eq!(sim.deployment(&second).status, DeploymentStatus::Inactive);
}

#[test]
fn old_deployment_tasks_not_yet_running_are_stopped_at_once() {
    let mut deployments = vec![
        deployment(
            "ecs-svc/1",
            1,
            DeploymentStatus::Active,
            RolloutState::InProgress,
        ),
        deployment(
            "ecs-svc/2",
            2,
            DeploymentStatus::Primary,
            RolloutState::InProgress,
        ),
    ];
    deployments[0].has_health_check = true;
    let healthy = ServiceTask {
        health: HealthStatus::Healthy,
        ..running("h1", "ecs-svc/1")
    };
    let tasks = [
        healthy,
        task("p1", "ecs-svc/1", TaskStatus::Pending),
        running("r1", "ecs-svc/1"), // RUNNING, health UNKNOWN: not healthy
    ];
    let plan = plan(
        &spec(2, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    let mut ids = stopped_ids(&plan);
    ids.sort();
    assert_eq!(
        ids,
        ["p1", "r1"],
        "the healthy one stays: only 1 healthy, minimum 2"
    );
    assert_eq!(started(&plan), 1, "3 tasks live of 4 allowed");
}

#[test]
fn a_configuration_that_allows_no_progress_is_reported() {
    // min 100, max 100: no task may start or stop during a deployment.
    let mut sim = Sim::steady(spec(2, 100, 100), false);
    sim.update_service(2, false);
    let plan = sim.step();
    assert!(plan.start.is_empty() && plan.stop.is_empty());
    assert_eq!(
        messages(&plan),
        [
            "(service web) was unable to stop or start tasks during a deployment because of the \
          service deployment configuration. Update the minimumHealthyPercent or maximumPercent \
          value and try again."
        ]
    );
    assert_eq!(
        plan.events[0].kind,
        EventKind::DeploymentConfigurationBlocked
    );

    // 125% of 3 rounds down to 3: same.
    let mut sim = Sim::steady(spec(3, 100, 125), false);
    sim.update_service(2, false);
    let plan = sim.step();
    assert_eq!(plan.events.len(), 1);
    assert_eq!(
        plan.events[0].kind,
        EventKind::DeploymentConfigurationBlocked
    );
}

// ---------------------------------------------------------------------------------
// Scaling
// ---------------------------------------------------------------------------------

#[test]
fn scale_out_starts_the_difference() {
    let mut sim = Sim::steady(spec(3, 100, 200), false);
    sim.spec.desired_count = 5;
    let plan = sim.step();
    assert_eq!(started(&plan), 2);
    assert!(plan.stop.is_empty());
    assert_eq!(find(&plan, "ecs-svc/1").desired_count, 5);
    sim.run_pending();
    assert!(sim.step().steady());
}

#[test]
fn scale_out_within_the_maximum() {
    // 100% of 10 is 10: with 3 running, 7 more, all at once.
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::Completed,
    )];
    let tasks: Vec<ServiceTask> = (0..3)
        .map(|i| running(&format!("t{i}"), "ecs-svc/1"))
        .collect();
    let plan = plan(
        &spec(10, 100, 100),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(started(&plan), 7);
}

#[test]
fn scale_in_stops_the_surplus_balancing_zones() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::Completed,
    )];
    let tasks = [
        in_zone(running("a1", "ecs-svc/1"), "a", "i-a1"),
        in_zone(running("a2", "ecs-svc/1"), "a", "i-a1"),
        in_zone(running("a3", "ecs-svc/1"), "a", "i-a2"),
        in_zone(running("b1", "ecs-svc/1"), "b", "i-b1"),
        in_zone(running("b2", "ecs-svc/1"), "b", "i-b1"),
        in_zone(running("c1", "ecs-svc/1"), "c", "i-c1"),
    ];
    let plan = plan(
        &spec(3, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert!(plan.start.is_empty());
    let ids = stopped_ids(&plan);
    assert_eq!(ids.len(), 3);
    // Zone a (3 tasks) loses one first, on its busiest instance; then a and b tie at
    // 2 and each loses one: one task per zone remains.
    assert!(ids[0] == "a1" || ids[0] == "a2", "{ids:?}");
    let left: Vec<&str> = tasks
        .iter()
        .map(|t| t.zone.as_deref().unwrap_or(""))
        .zip(tasks.iter().map(ServiceTask::id))
        .filter(|(_, id)| !ids.contains(id))
        .map(|(zone, _)| zone)
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["a", "b", "c"]);
    assert!(
        plan.stop
            .iter()
            .all(|s| s.reason == "Scaling activity initiated by (deployment ecs-svc/1)")
    );
    assert_eq!(
        messages(&plan),
        [format!(
            "(service web) has stopped 3 running tasks: (task {}) (task {}) (task {}).",
            ids[0], ids[1], ids[2]
        )
        .as_str()]
    );
}

#[test]
fn scale_in_binpacks_within_a_zone() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::Completed,
    )];
    let mut full = in_zone(running("full", "ecs-svc/1"), "a", "i-full");
    full.instance_available = Some(256);
    let mut empty = in_zone(running("empty", "ecs-svc/1"), "a", "i-empty");
    empty.instance_available = Some(4096);
    let mut middle = in_zone(running("middle", "ecs-svc/1"), "a", "i-middle");
    middle.instance_available = Some(1024);
    let tasks = [full, empty, middle];
    let plan = plan(
        &spec(1, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    // The instance left with the most resources loses its task first.
    assert_eq!(stopped_ids(&plan), ["empty", "middle"]);
}

/// Instance facts from a table by instance id, counting how often zones and free
/// resources are asked for.
struct ByInstance {
    facts: HashMap<&'static str, (&'static str, i64)>,
    draining: Vec<&'static str>,
    asked: std::cell::Cell<usize>,
}

impl ByInstance {
    /// The zone and free memory of the task's instance, counted as asked.
    fn of(&self, task: &ServiceTask) -> Option<(&'static str, i64)> {
        self.asked.set(self.asked.get() + 1);
        self.facts.get(task.instance_id.as_deref()?).copied()
    }
}

impl InstanceFacts for ByInstance {
    fn zone<'a>(&'a self, task: &'a ServiceTask) -> Option<&'a str> {
        self.of(task).map(|(zone, _)| zone)
    }

    fn available(&self, task: &ServiceTask) -> Option<i64> {
        self.of(task).map(|(_, free)| free)
    }

    fn draining(&self, task: &ServiceTask) -> bool {
        (task.instance_id.as_deref()).is_some_and(|id| self.draining.contains(&id))
    }
}

#[test]
fn facts_given_apart_choose_as_facts_carried_and_are_asked_only_to_choose() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::Completed,
    )];
    let facts = ByInstance {
        facts: HashMap::from([
            ("i-a1", ("a", 512)),
            ("i-a2", ("a", 4096)),
            ("i-b1", ("b", 1024)),
            ("i-c1", ("c", 2048)),
        ]),
        draining: Vec::new(),
        asked: std::cell::Cell::new(0),
    };
    let placed = [
        ("a1", "i-a1"),
        ("a2", "i-a2"),
        ("a3", "i-a2"),
        ("b1", "i-b1"),
        ("b2", "i-b1"),
        ("c1", "i-c1"),
    ];
    let carried: Vec<ServiceTask> = placed
        .iter()
        .map(|(id, instance)| {
            let (zone, free) = facts.facts[instance];
            let mut task = in_zone(running(id, "ecs-svc/1"), zone, instance);
            task.instance_available = Some(free);
            task
        })
        .collect();
    let bare: TaskList = carried
        .iter()
        .cloned()
        .map(|mut task| {
            task.zone = None;
            task.instance_available = None;
            task
        })
        .collect();
    for desired in [6, 4, 2, 1] {
        let expected = plan(
            &spec(desired, 100, 200),
            &deployments,
            &carried,
            &SchedulerState::default(),
            T0,
        );
        facts.asked.set(0);
        let given = plan_with(
            &spec(desired, 100, 200),
            &deployments,
            &bare,
            &SchedulerState::default(),
            T0,
            &facts,
        );
        assert_eq!(
            stopped_ids(&given),
            stopped_ids(&expected),
            "desired {desired}"
        );
        assert_eq!(stopped_ids(&given).len(), 6 - desired as usize);
        // Nothing to stop, nothing asked.
        assert_eq!(facts.asked.get() == 0, desired == 6, "desired {desired}");
    }
    // An instance DRAINING: told by the facts, its tasks are replaced as when they
    // carry it.
    let facts = ByInstance {
        draining: vec!["i-a2"],
        ..facts
    };
    let carried: Vec<ServiceTask> = (carried.into_iter())
        .map(|mut task| {
            task.instance_draining = task.instance_id.as_deref() == Some("i-a2");
            task
        })
        .collect();
    for (desired, maximum) in [(6, 200), (6, 100), (4, 150)] {
        let expected = plan(
            &spec(desired, 50, maximum),
            &deployments,
            &carried,
            &SchedulerState::default(),
            T0,
        );
        let given = plan_with(
            &spec(desired, 50, maximum),
            &deployments,
            &bare,
            &SchedulerState::default(),
            T0,
            &facts,
        );
        assert_eq!(started(&given), started(&expected), "desired {desired}");
        assert_eq!(
            stopped_ids(&given),
            stopped_ids(&expected),
            "desired {desired}"
        );
        assert!(started(&given) > 0 || !stopped_ids(&given).is_empty());
    }
}

#[test]
fn a_list_shaped_by_many_changes_plans_as_the_same_tasks_in_a_slice() {
    // A rolling update half done, 300 tasks over two deployments in every state,
    // held in a vector whose leaves are of uneven sizes (tasks added at both ends
    // and in the middle, some replaced, some removed), as the controller's index
    // makes them.
    let deployments = [
        deployment(
            "ecs-svc/1",
            1,
            DeploymentStatus::Active,
            RolloutState::Completed,
        ),
        deployment(
            "ecs-svc/2",
            2,
            DeploymentStatus::Primary,
            RolloutState::InProgress,
        ),
    ];
    let statuses = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Stopped,
    ];
    let made = |n: usize| {
        let deployment = if n.is_multiple_of(3) {
            "ecs-svc/2"
        } else {
            "ecs-svc/1"
        };
        let zone = ["a", "b", "c"][n % 3];
        let instance = format!("i-{}", n % 17);
        in_zone(
            task(&format!("t{n}"), deployment, statuses[n % 3]),
            zone,
            &instance,
        )
    };
    let mut list = TaskList::new();
    for n in 0..300 {
        match n % 4 {
            0 => list.push_front(made(n)),
            1 => list.push_back(made(n)),
            _ => list.insert(list.len() / 2, made(n)),
        }
    }
    for at in (0..list.len()).step_by(7) {
        list.set(at, made(1000 + at));
    }
    for at in (0..40).map(|k| k * 5) {
        list.remove(at);
    }
    assert!(
        list.leaves().count() > list.len() / 64 + 1,
        "leaves of uneven sizes"
    );
    let flat: Vec<ServiceTask> = list.iter().cloned().collect();
    for (desired, min, max) in [
        (300, 100, 200),
        (200, 50, 100),
        (120, 100, 150),
        (400, 0, 100),
    ] {
        let spec = spec(desired, min, max);
        let state = SchedulerState::default();
        let from_list = plan_with(&spec, &deployments, &list, &state, T0, &Carried);
        let from_slice = plan(&spec, &deployments, &flat, &state, T0);
        assert_eq!(from_list, from_slice, "desired {desired}");
        assert!(!from_list.stop.is_empty() || started(&from_list) > 0);
    }
}

#[test]
fn scale_in_stops_tasks_not_yet_running_first() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::Completed,
    )];
    let tasks = [
        running("r1", "ecs-svc/1"),
        running("r2", "ecs-svc/1"),
        task("p1", "ecs-svc/1", TaskStatus::Pending),
        running("r3", "ecs-svc/1"),
    ];
    let plan = plan(
        &spec(2, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    let ids = stopped_ids(&plan);
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], "p1");
}

#[test]
fn scale_in_during_a_rollout_stops_old_tasks_first() {
    let deployments = [
        deployment(
            "ecs-svc/1",
            1,
            DeploymentStatus::Active,
            RolloutState::Completed,
        ),
        deployment(
            "ecs-svc/2",
            2,
            DeploymentStatus::Primary,
            RolloutState::InProgress,
        ),
    ];
    let tasks = [
        running("old1", "ecs-svc/1"),
        running("old2", "ecs-svc/1"),
        running("new1", "ecs-svc/2"),
        running("new2", "ecs-svc/2"),
    ];
    let plan = plan(
        &spec(2, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    let mut ids = stopped_ids(&plan);
    ids.sort();
    assert_eq!(ids, ["old1", "old2"]);
}

#[test]
fn scale_to_zero_stops_everything_and_is_then_steady() {
    let mut sim = Sim::steady(spec(3, 100, 200), false);
    sim.spec.desired_count = 0;
    let plan = sim.step();
    assert_eq!(plan.stop.len(), 3);
    sim.finish_stops();
    let plan = sim.step();
    assert!(plan.steady());
    assert_eq!(
        messages(&plan),
        ["(service web) has reached a steady state."]
    );
}

// ---------------------------------------------------------------------------------
// Unhealthy tasks
// ---------------------------------------------------------------------------------

#[test]
fn an_unhealthy_task_is_replaced_before_it_is_stopped() {
    let mut sim = Sim::steady(spec(3, 100, 200), true);
    sim.tasks[1].health = HealthStatus::Unhealthy;
    let sick = sim.tasks[1].task_arn.clone();
    let plan = sim.step();
    assert_eq!(started(&plan), 1);
    assert_eq!(plan.unhealthy_replacements, 1);
    assert!(
        plan.stop.is_empty(),
        "the unhealthy task waits for its replacement"
    );

    sim.run_pending();
    assert!(
        sim.step().stop.is_empty(),
        "the replacement is not HEALTHY yet"
    );
    sim.become_healthy();
    let plan = sim.step();
    assert_eq!(plan.stop.len(), 1);
    assert_eq!(*plan.stop[0].task_arn, *sick);
    assert_eq!(plan.stop[0].cause, StopCause::FailedHealthChecks);
    assert_eq!(plan.stop[0].reason, "Task failed container health checks");
    assert_eq!(
        messages(&plan),
        [
            format!(
                "(service web) (task {}) failed container health checks.",
                task_id(&sick)
            ),
            format!(
                "(service web) has stopped 1 running tasks: (task {}).",
                task_id(&sick)
            ),
        ]
    );

    // Once STOPPED it is a failure of its deployment.
    sim.finish_stops();
    sim.step();
    assert_eq!(sim.deployment("ecs-svc/1").failed_tasks, 1);
    assert!(sim.state.steady);
}

#[test]
fn without_room_for_a_replacement_unhealthy_tasks_are_stopped_one_by_one() {
    let mut sim = Sim::steady(spec(3, 100, 100), true);
    sim.tasks[0].health = HealthStatus::Unhealthy;
    sim.tasks[1].health = HealthStatus::Unhealthy;
    let plan = sim.step();
    assert!(plan.start.is_empty());
    assert_eq!(plan.stop.len(), 1);
    // The next one waits while the first is still being stopped.
    let plan = sim.step();
    assert!(plan.stop.is_empty() && plan.start.is_empty());
    sim.finish_stops();
    let plan = sim.step();
    assert_eq!(started(&plan), 1);
    assert!(
        plan.stop.is_empty(),
        "room again: the other waits for its replacement"
    );
}

// ---------------------------------------------------------------------------------
// Circuit breaker
// ---------------------------------------------------------------------------------

fn breaker(rollback: bool) -> Option<CircuitBreaker> {
    Some(CircuitBreaker {
        enable: true,
        rollback,
    })
}

#[test]
fn crashing_new_tasks_trip_the_breaker_and_roll_back() {
    let mut sim = Sim::steady(
        ServiceSpec {
            circuit_breaker: breaker(true),
            ..spec(3, 100, 200)
        },
        true,
    );
    let id = sim.update_service(2, true);
    let old: Vec<String> = sim.tasks.iter().map(|t| t.task_arn.to_string()).collect();
    let mut tripped = None;
    for _ in 0..20 {
        let plan = sim.step();
        assert!(sim.healthy() >= 3, "the old tasks keep serving");
        assert!(sim.total() <= 6);
        if plan.rollback.is_some() {
            tripped = Some(plan);
            break;
        }
        if plan.start.is_empty() {
            // Throttled: wait for the next attempt.
            let wake = plan.wake_at.unwrap_or(sim.now + 1.0);
            sim.now = sim.now.max(wake);
        }
        sim.crash_pending(&id);
    }
    let plan = tripped.unwrap_or_else(|| panic!("no rollback; events {:#?}", sim.events));
    assert_eq!(
        plan.rollback,
        Some(Rollback {
            failed_deployment_id: id.clone(),
            deployment_id: "ecs-svc/1".to_string(),
            task_definition_arn: sim.deployment("ecs-svc/1").task_definition_arn.clone(),
        })
    );
    let failed = find(&plan, &id);
    assert_eq!(failed.failed_tasks, 3, "the threshold for 3 tasks is 3");
    assert_eq!(failed.rollout_state, RolloutState::Failed);
    assert_eq!(
        failed.rollout_state_reason,
        "ECS deployment circuit breaker: tasks failed to start."
    );
    // The old tasks never stopped (minimum 100%), so the rollback is complete in the
    // same round: the failed deployment has no task left and goes INACTIVE.
    assert_eq!(failed.status, DeploymentStatus::Inactive);
    let back = find(&plan, "ecs-svc/1");
    assert_eq!(back.status, DeploymentStatus::Primary);
    assert_eq!(back.rollout_state, RolloutState::Completed);
    let tail: Vec<&str> = messages(&plan).into_iter().rev().take(4).rev().collect();
    assert_eq!(
        tail,
        [
            format!("(service web) (deployment {id}) deployment failed: tasks failed to start.")
                .as_str(),
            "(service web) rolling back to deployment ecs-svc/1.",
            "(service web) (deployment ecs-svc/1) deployment completed.",
            "(service web) has reached a steady state.",
        ]
    );
    assert!(sim.events.contains(&format!(
        "(service web) (deployment {id}) deployment failed: tasks failed to start."
    )));
    let failed_at = sim
        .events
        .iter()
        .position(|e| e.contains("deployment failed"));
    let back_at = sim
        .events
        .iter()
        .position(|e| e == "(service web) rolling back to deployment ecs-svc/1.");
    assert!(
        failed_at.is_some() && back_at > failed_at,
        "{:#?}",
        sim.events
    );
    // The throttle starts afresh for the rollback deployment.
    assert_eq!(plan.state.backoff, Backoff::for_deployment("ecs-svc/1"));

    // The rollback converges on the old tasks, which never stopped.
    drive(&mut sim, "ecs-svc/1", 3, 6);
    let live: Vec<&str> = sim
        .tasks
        .iter()
        .filter(|t| t.last_status < TaskStatus::Stopped)
        .map(|t| &*t.task_arn)
        .collect();
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|arn| old.iter().any(|o| o == arn)));
    assert_eq!(sim.deployment(&id).status, DeploymentStatus::Inactive);
    assert_eq!(sim.deployment(&id).rollout_state, RolloutState::Failed);
}

#[test]
fn the_breaker_trips_exactly_at_the_threshold() {
    let deployments = |failed: u32| {
        let mut new = deployment(
            "ecs-svc/2",
            2,
            DeploymentStatus::Primary,
            RolloutState::InProgress,
        );
        new.failed_tasks = failed;
        vec![
            deployment(
                "ecs-svc/1",
                1,
                DeploymentStatus::Active,
                RolloutState::Completed,
            ),
            new,
        ]
    };
    let mut crashed = task("x", "ecs-svc/2", TaskStatus::Stopped);
    crashed.stop_code = Some(TaskStopCode::TaskFailedToStart);
    let spec = ServiceSpec {
        circuit_breaker: breaker(true),
        ..spec(8, 100, 200)
    };
    // 8 desired: threshold 4.
    let below = plan(
        &spec,
        &deployments(2),
        std::slice::from_ref(&crashed),
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(find(&below, "ecs-svc/2").failed_tasks, 3);
    assert!(below.rollback.is_none());
    assert_eq!(
        find(&below, "ecs-svc/2").rollout_state,
        RolloutState::InProgress
    );
    let at = plan(
        &spec,
        &deployments(3),
        std::slice::from_ref(&crashed),
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(find(&at, "ecs-svc/2").failed_tasks, 4);
    assert!(at.rollback.is_some());
}

#[test]
fn tasks_failing_health_checks_count_toward_the_breaker() {
    let mut deployments = vec![
        deployment(
            "ecs-svc/1",
            1,
            DeploymentStatus::Active,
            RolloutState::Completed,
        ),
        deployment(
            "ecs-svc/2",
            2,
            DeploymentStatus::Primary,
            RolloutState::InProgress,
        ),
    ];
    deployments[1].failed_tasks = 2;
    deployments[1].has_health_check = true;
    let mut sick = running("sick", "ecs-svc/2");
    sick.health = HealthStatus::Unhealthy;
    sick.last_status = TaskStatus::Stopped;
    sick.desired_status = TaskStatus::Stopped;
    sick.stop_code = Some(TaskStopCode::ServiceSchedulerInitiated);
    let spec = ServiceSpec {
        circuit_breaker: breaker(false),
        ..spec(2, 100, 200)
    };
    let plan = plan(
        &spec,
        &deployments,
        &[sick, running("old", "ecs-svc/1")],
        &SchedulerState::default(),
        T0,
    );
    let failed = find(&plan, "ecs-svc/2");
    assert_eq!(failed.rollout_state, RolloutState::Failed);
    // Without rollback the failed deployment stays PRIMARY and launches nothing.
    assert_eq!(failed.status, DeploymentStatus::Primary);
    assert!(plan.rollback.is_none());
    assert!(plan.start.is_empty() && plan.stop.is_empty());
    assert_eq!(
        messages(&plan),
        ["(service web) (deployment ecs-svc/2) deployment failed: tasks failed to start."]
    );
    assert_eq!(
        find(&plan, "ecs-svc/1").status,
        DeploymentStatus::Active,
        "nothing to roll back to, kept"
    );
}

#[test]
fn a_failed_deployment_launches_no_new_tasks() {
    let mut deployments = vec![
        deployment(
            "ecs-svc/1",
            1,
            DeploymentStatus::Active,
            RolloutState::Completed,
        ),
        deployment(
            "ecs-svc/2",
            2,
            DeploymentStatus::Primary,
            RolloutState::Failed,
        ),
    ];
    deployments[1].failed_tasks = 10;
    let spec = ServiceSpec {
        circuit_breaker: breaker(false),
        ..spec(3, 100, 200)
    };
    let plan = plan(
        &spec,
        &deployments,
        &[running("old", "ecs-svc/1")],
        &SchedulerState::default(),
        T0,
    );
    assert!(plan.start.is_empty() && plan.stop.is_empty());
    assert!(plan.events.is_empty(), "it failed once: {:?}", plan.events);
}

#[test]
fn without_a_completed_deployment_the_rollback_stalls() {
    let deployments = vec![
        deployment(
            "ecs-svc/1",
            1,
            DeploymentStatus::Active,
            RolloutState::InProgress,
        ),
        deployment(
            "ecs-svc/2",
            2,
            DeploymentStatus::Primary,
            RolloutState::InProgress,
        ),
    ];
    let crashed: Vec<ServiceTask> = (0..3)
        .map(|i| {
            let mut t = task(&format!("x{i}"), "ecs-svc/2", TaskStatus::Stopped);
            t.stop_code = Some(TaskStopCode::TaskFailedToStart);
            t
        })
        .collect();
    let spec = ServiceSpec {
        circuit_breaker: breaker(true),
        ..spec(2, 100, 200)
    };
    let plan = plan(
        &spec,
        &deployments,
        &crashed,
        &SchedulerState::default(),
        T0,
    );
    assert!(plan.rollback.is_none());
    assert_eq!(find(&plan, "ecs-svc/2").rollout_state, RolloutState::Failed);
    assert_eq!(find(&plan, "ecs-svc/2").status, DeploymentStatus::Primary);
    assert!(plan.start.is_empty());
}

#[test]
fn the_rollback_goes_to_the_most_recent_completed_deployment() {
    let mut older = deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Inactive,
        RolloutState::Completed,
    );
    older.created_at = T0;
    let mut recent = deployment(
        "ecs-svc/2",
        2,
        DeploymentStatus::Active,
        RolloutState::Completed,
    );
    recent.created_at = T0 + 100.0;
    let mut failing = deployment(
        "ecs-svc/3",
        3,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    );
    failing.created_at = T0 + 200.0;
    failing.failed_tasks = 3;
    let spec = ServiceSpec {
        circuit_breaker: breaker(true),
        ..spec(2, 0, 100)
    };
    let plan = plan(
        &spec,
        &[older, recent, failing],
        &[],
        &SchedulerState::default(),
        T0 + 300.0,
    );
    assert_eq!(
        plan.rollback.as_ref().map(|r| r.deployment_id.as_str()),
        Some("ecs-svc/2")
    );
    // The rollback deployment has no task: it starts its desired count at once.
    assert_eq!(
        plan.start,
        vec![Start {
            deployment_id: "ecs-svc/2".to_string(),
            count: 2,
            instances: Vec::new(),
        }]
    );
    let back = find(&plan, "ecs-svc/2");
    assert_eq!(back.desired_count, 2);
    assert_eq!(back.status, DeploymentStatus::Primary);
    assert_eq!(back.rollout_state, RolloutState::InProgress);
    assert_eq!(
        back.rollout_state_reason,
        "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/2."
    );
    assert_eq!(find(&plan, "ecs-svc/3").status, DeploymentStatus::Active);
    assert_eq!(find(&plan, "ecs-svc/3").rollout_state, RolloutState::Failed);
    assert_eq!(find(&plan, "ecs-svc/1").status, DeploymentStatus::Inactive);
}

#[test]
fn a_disabled_breaker_never_trips() {
    let mut deployments = vec![
        deployment(
            "ecs-svc/1",
            1,
            DeploymentStatus::Active,
            RolloutState::Completed,
        ),
        deployment(
            "ecs-svc/2",
            2,
            DeploymentStatus::Primary,
            RolloutState::InProgress,
        ),
    ];
    deployments[1].failed_tasks = 500;
    let spec = ServiceSpec {
        circuit_breaker: Some(CircuitBreaker {
            enable: false,
            rollback: true,
        }),
        ..spec(2, 100, 200)
    };
    let plan = plan(&spec, &deployments, &[], &SchedulerState::default(), T0);
    assert!(plan.rollback.is_none());
    assert_eq!(
        find(&plan, "ecs-svc/2").rollout_state,
        RolloutState::InProgress
    );
    assert_eq!(started(&plan), 2);
}

#[test]
fn a_completed_deployment_is_not_failed_by_later_crashes() {
    let mut deployments = vec![deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::Completed,
    )];
    deployments[0].failed_tasks = 100;
    let spec = ServiceSpec {
        circuit_breaker: breaker(true),
        ..spec(2, 100, 200)
    };
    let plan = plan(&spec, &deployments, &[], &SchedulerState::default(), T0);
    assert_eq!(
        find(&plan, "ecs-svc/1").rollout_state,
        RolloutState::Completed
    );
    assert_eq!(started(&plan), 2);
}

// ---------------------------------------------------------------------------------
// Start throttle
// ---------------------------------------------------------------------------------

#[test]
fn the_wait_doubles_up_to_27_minutes() {
    assert_eq!(Backoff::delay_after(0), Duration::ZERO);
    assert_eq!(Backoff::delay_after(1), Duration::ZERO);
    assert_eq!(Backoff::delay_after(2), Duration::from_secs(10));
    assert_eq!(Backoff::delay_after(3), Duration::from_secs(20));
    assert_eq!(Backoff::delay_after(4), Duration::from_secs(40));
    assert_eq!(Backoff::delay_after(9), Duration::from_secs(1280));
    assert_eq!(Backoff::delay_after(10), THROTTLE_MAX);
    assert_eq!(Backoff::delay_after(u32::MAX), THROTTLE_MAX);

    let mut backoff = Backoff::for_deployment("ecs-svc/1");
    assert!(!backoff.record_failure(T0));
    assert!(!backoff.throttled(T0));
    assert!(
        backoff.record_failure(T0),
        "the second failure starts the throttle"
    );
    assert!(backoff.throttled(T0 + 9.0));
    assert!(!backoff.throttled(T0 + 10.0));
    assert!(!backoff.record_failure(T0 + 10.0), "reported once");
    assert_eq!(backoff.next_attempt_at, Some(T0 + 30.0));
    backoff.clear();
    assert_eq!(backoff, Backoff::for_deployment("ecs-svc/1"));
}

/// A task of `deployment` that stopped before reaching RUNNING.
fn failed_start(id: &str, deployment: &str) -> ServiceTask {
    let mut t = task(id, deployment, TaskStatus::Stopped);
    t.desired_status = TaskStatus::Stopped;
    t.stop_code = Some(TaskStopCode::TaskFailedToStart);
    t
}

#[test]
fn tasks_that_keep_failing_to_start_are_retried_ever_more_slowly() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    )];
    let spec = spec(1, 100, 200);
    let mut state = SchedulerState::default();
    let mut now = T0;
    let mut waits = Vec::new();
    for n in 0..6 {
        let tasks = [failed_start(&format!("f{n}"), "ecs-svc/1")];
        let plan = plan(&spec, &deployments, &tasks, &state, now);
        state = plan.state.clone();
        match plan.state.backoff.next_attempt_at {
            None => {
                assert_eq!(started(&plan), 1, "the first failure is retried at once");
            }
            Some(at) => {
                assert!(plan.start.is_empty(), "throttled");
                assert_eq!(plan.wake_at, Some(at));
                waits.push(at - now);
                // Nothing more happens before the wait ends...
                let early = super::plan(&spec, &deployments, &[], &state, at - 1.0);
                assert!(early.start.is_empty());
                // ...and then the task is started again.
                let due = super::plan(&spec, &deployments, &[], &state, at);
                assert_eq!(started(&due), 1);
                now = at;
            }
        }
        if n == 1 {
            assert_eq!(
                messages(&plan),
                ["(service web) is unable to consistently start tasks successfully."]
            );
            assert_eq!(plan.events[0].kind, EventKind::StartImpaired);
        } else {
            assert!(plan.events.is_empty(), "{:?}", plan.events);
        }
    }
    assert_eq!(waits, [10.0, 20.0, 40.0, 80.0, 160.0]);
    assert_eq!(state.backoff.consecutive_failures, 6);
}

#[test]
fn a_new_deployment_ends_the_throttle() {
    let state = SchedulerState {
        backoff: Backoff {
            deployment_id: Some("ecs-svc/1".to_string()),
            consecutive_failures: 7,
            last_failure_at: Some(T0),
            next_attempt_at: Some(T0 + 900.0),
        },
        ..SchedulerState::default()
    };
    let deployments = [
        deployment(
            "ecs-svc/1",
            1,
            DeploymentStatus::Active,
            RolloutState::InProgress,
        ),
        deployment(
            "ecs-svc/2",
            2,
            DeploymentStatus::Primary,
            RolloutState::InProgress,
        ),
    ];
    let plan = plan(&spec(2, 100, 200), &deployments, &[], &state, T0 + 1.0);
    assert_eq!(started(&plan), 2);
    assert_eq!(plan.state.backoff, Backoff::for_deployment("ecs-svc/2"));

    // The same deployment stays throttled.
    let same = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    )];
    let plan = super::plan(&spec(2, 100, 200), &same, &[], &state, T0 + 1.0);
    assert!(plan.start.is_empty());
    assert_eq!(plan.wake_at, Some(T0 + 900.0));
}

#[test]
fn a_task_that_starts_ends_the_run_of_failures() {
    let state = SchedulerState {
        backoff: Backoff {
            deployment_id: Some("ecs-svc/1".to_string()),
            consecutive_failures: 3,
            last_failure_at: Some(T0),
            next_attempt_at: Some(T0 + 20.0),
        },
        ..SchedulerState::default()
    };
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    )];
    let mut up = running("up", "ecs-svc/1");
    up.started_at = Some(T0 + 5.0);
    let plan = plan(&spec(2, 100, 200), &deployments, &[up], &state, T0 + 6.0);
    assert_eq!(plan.state.backoff.consecutive_failures, 0);
    assert_eq!(started(&plan), 1);
}

#[test]
fn tasks_stopped_after_running_do_not_feed_the_throttle() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    )];
    let mut exited = running("x", "ecs-svc/1");
    exited.last_status = TaskStatus::Stopped;
    exited.stop_code = Some(TaskStopCode::EssentialContainerExited);
    let state = SchedulerState {
        backoff: Backoff {
            deployment_id: Some("ecs-svc/1".to_string()),
            consecutive_failures: 1,
            last_failure_at: Some(T0 + 10.0),
            next_attempt_at: None,
        },
        ..SchedulerState::default()
    };
    let plan = plan(
        &spec(1, 100, 200),
        &deployments,
        &[exited],
        &state,
        T0 + 20.0,
    );
    assert_eq!(plan.state.backoff.consecutive_failures, 1);
    assert_eq!(
        find(&plan, "ecs-svc/1").failed_tasks,
        1,
        "still a deployment failure"
    );
}

// ---------------------------------------------------------------------------------
// Health grace
// ---------------------------------------------------------------------------------

#[test]
fn without_health_checks_a_running_task_counts_after_the_grace() {
    let mut sim = Sim::steady(
        ServiceSpec {
            running_grace: ECS_RUNNING_GRACE,
            ..spec(2, 100, 200)
        },
        false,
    );
    let id = sim.update_service(2, false);
    sim.step();
    sim.run_pending();
    let plan = sim.step();
    assert!(plan.stop.is_empty(), "new tasks are not healthy for 40 s");
    assert_eq!(plan.wake_at, Some(sim.now + 40.0));
    sim.advance(40.0);
    let plan = sim.step();
    assert_eq!(plan.stop.len(), 2);
    drive(&mut sim, &id, 2, 4);
}

// ---------------------------------------------------------------------------------
// Deployments
// ---------------------------------------------------------------------------------

#[test]
fn one_primary_at_most() {
    let mut a = deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::Completed,
    );
    a.created_at = T0;
    let mut b = deployment(
        "ecs-svc/2",
        2,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    );
    b.created_at = T0 + 1.0;
    let plan = plan(
        &spec(1, 100, 200),
        &[a, b],
        &[],
        &SchedulerState::default(),
        T0,
    );
    // The older one is ACTIVE (and no task of it left: INACTIVE once 2 completes).
    assert_eq!(find(&plan, "ecs-svc/1").status, DeploymentStatus::Active);
    assert_eq!(find(&plan, "ecs-svc/2").status, DeploymentStatus::Primary);
    assert_eq!(plan.start[0].deployment_id, "ecs-svc/2");
}

#[test]
fn an_old_deployment_stays_active_while_the_rollout_is_in_progress() {
    let deployments = [
        deployment(
            "ecs-svc/1",
            1,
            DeploymentStatus::Active,
            RolloutState::Completed,
        ),
        deployment(
            "ecs-svc/2",
            2,
            DeploymentStatus::Primary,
            RolloutState::InProgress,
        ),
    ];
    // Deployment 1 has no task left, but 2 is not done: 1 stays a rollback target.
    let tasks = [task("new", "ecs-svc/2", TaskStatus::Pending)];
    let plan = plan(
        &spec(1, 0, 100),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(find(&plan, "ecs-svc/1").status, DeploymentStatus::Active);
}

#[test]
fn tasks_of_unknown_deployments_are_drained() {
    let deployments = [deployment(
        "ecs-svc/2",
        2,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    )];
    let tasks = [running("orphan", "ecs-svc/0"), running("kept", "ecs-svc/2")];
    let plan = plan(
        &spec(1, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(stopped_ids(&plan), ["orphan"]);
}

#[test]
fn without_a_primary_deployment_nothing_is_started_or_stopped() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Active,
        RolloutState::Completed,
    )];
    let plan = plan(
        &spec(2, 100, 200),
        &deployments,
        &[running("a", "ecs-svc/1")],
        &SchedulerState::default(),
        T0,
    );
    assert!(plan.start.is_empty() && plan.stop.is_empty());
    assert!(!plan.steady());
}

// ---------------------------------------------------------------------------------
// Event texts and the event log
// ---------------------------------------------------------------------------------

#[test]
fn event_texts_are_ecs_texts() {
    assert_eq!(
        message::tasks_started("web", [arn("aaa").as_str(), "bbb"], 0),
        "(service web) has started 2 tasks: (task aaa) (task bbb)."
    );
    assert_eq!(
        message::tasks_started("web", ["aaa"], 1),
        "(service web) has started 1 tasks: (task aaa). Amazon ECS replaced 1 tasks due to an \
         unhealthy status."
    );
    assert_eq!(
        message::unable_to_place(
            "web",
            "The closest matching container-instance i-1 has insufficient memory available."
        ),
        "(service web) was unable to place a task because no container instance met all of its \
         requirements. The closest matching container-instance i-1 has insufficient memory available."
    );
    assert_eq!(
        message::unable_to_place("web", ""),
        "(service web) was unable to place a task because no container instance met all of its requirements."
    );
    assert_eq!(
        reason::in_progress("ecs-svc/9"),
        "ECS deployment ecs-svc/9 in progress."
    );
    assert_eq!(task_id(&arn("abc")), "abc");
    assert_eq!(task_id("abc"), "abc");
    assert_eq!(
        DeploymentStatus::parse("ACTIVE"),
        Some(DeploymentStatus::Active)
    );
    assert_eq!(
        RolloutState::parse(RolloutState::Failed.as_str()),
        Some(RolloutState::Failed)
    );
    assert_eq!(RolloutState::parse("DONE"), None);
}

#[derive(Debug, Clone, PartialEq)]
struct Logged {
    message: String,
    at: Timestamp,
}

impl EventRecord for Logged {
    fn message(&self) -> &str {
        &self.message
    }
    fn created_at(&self) -> Timestamp {
        self.at
    }
}

fn logged(kind: EventKind, message: &str, at: Timestamp) -> (EventKind, Logged) {
    (
        kind,
        Logged {
            message: message.to_string(),
            at,
        },
    )
}

#[test]
fn the_event_log_is_newest_first_and_keeps_100() {
    let mut log = Vec::new();
    record_events(
        &mut log,
        [
            logged(EventKind::TasksStopped, "first", T0),
            logged(EventKind::DeploymentCompleted, "second", T0),
        ],
        T0,
    );
    assert_eq!(log[0].message, "second");
    assert_eq!(log[1].message, "first");
    for i in 0..150 {
        record_events(
            &mut log,
            [logged(EventKind::TasksStarted, &format!("e{i}"), T0)],
            T0,
        );
    }
    assert_eq!(log.len(), EVENT_LOG_CAPACITY);
    assert_eq!(log[0].message, "e149");
    assert_eq!(log[99].message, "e50");
}

#[test]
fn a_repeated_condition_is_recorded_once_per_six_hours() {
    let blocked = message::deployment_configuration_blocked("web");
    let mut log = Vec::new();
    record_events(
        &mut log,
        [logged(
            EventKind::DeploymentConfigurationBlocked,
            &blocked,
            T0,
        )],
        T0,
    );
    record_events(
        &mut log,
        [logged(
            EventKind::DeploymentConfigurationBlocked,
            &blocked,
            T0 + 60.0,
        )],
        T0 + 60.0,
    );
    assert_eq!(log.len(), 1);
    let later = T0 + 6.0 * 3600.0;
    record_events(
        &mut log,
        [logged(
            EventKind::DeploymentConfigurationBlocked,
            &blocked,
            later,
        )],
        later,
    );
    assert_eq!(log.len(), 2);
    // Events that are not conditions are always recorded.
    let steady = message::steady_state("web");
    record_events(
        &mut log,
        [logged(EventKind::SteadyState, &steady, later)],
        later,
    );
    record_events(
        &mut log,
        [logged(EventKind::SteadyState, &steady, later)],
        later,
    );
    assert_eq!(log.len(), 4);
}

// ---------------------------------------------------------------------------------
// Property: no plan breaks the bounds
// ---------------------------------------------------------------------------------

const STATUSES: [TaskStatus; 9] = [
    TaskStatus::Provisioning,
    TaskStatus::Pending,
    TaskStatus::Activating,
    TaskStatus::Running,
    TaskStatus::Deactivating,
    TaskStatus::Stopping,
    TaskStatus::Deprovisioning,
    TaskStatus::Stopped,
    TaskStatus::Deleted,
];
const HEALTHS: [HealthStatus; 3] = [
    HealthStatus::Healthy,
    HealthStatus::Unhealthy,
    HealthStatus::Unknown,
];
const STOP_CODES: [Option<TaskStopCode>; 5] = [
    None,
    Some(TaskStopCode::TaskFailedToStart),
    Some(TaskStopCode::EssentialContainerExited),
    Some(TaskStopCode::ServiceSchedulerInitiated),
    Some(TaskStopCode::UserInitiated),
];
const ROLLOUTS: [RolloutState; 3] = [
    RolloutState::InProgress,
    RolloutState::Completed,
    RolloutState::Failed,
];

fn arb_task() -> impl Strategy<Value = (usize, usize, bool, usize, bool, usize, u8, bool, bool)> {
    (
        0..4usize,     // deployment (3 = unknown)
        0..9usize,     // last status
        any::<bool>(), // desired STOPPED
        0..3usize,     // health
        any::<bool>(), // started
        0..5usize,     // stop code
        0..4u8,        // zone
        any::<bool>(), // accounted
        any::<bool>(), // started long ago (past the grace)
    )
}

fn arb_deployment() -> impl Strategy<Value = (bool, usize, u32)> {
    (any::<bool>(), 0..3usize, 0..12u32)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_plan_breaks_the_bounds(
        desired in 0..10u32,
        min in 0..=100u32,
        max in 0..=250u32,
        breaker_on in any::<bool>(),
        rollback in any::<bool>(),
        grace in any::<bool>(),
        primary_rollout in 0..3usize,
        primary_health_check in any::<bool>(),
        primary_failed in 0..12u32,
        old in proptest::collection::vec(arb_deployment(), 0..3),
        tasks in proptest::collection::vec(arb_task(), 0..16),
        throttled in any::<bool>(),
    ) {
        let spec = ServiceSpec {
            circuit_breaker: breaker_on.then_some(CircuitBreaker { enable: true, rollback }),
            running_grace: if grace { ECS_RUNNING_GRACE } else { Duration::ZERO },
            ..spec(desired, min, max)
        };
        let mut deployments = Vec::new();
        for (i, (health_check, rollout, failed)) in old.iter().enumerate() {
            let id = format!("ecs-svc/{}", i + 1);
            let mut d = deployment(&id, i as u32 + 1, DeploymentStatus::Active, ROLLOUTS[*rollout]);
            d.has_health_check = *health_check;
            d.failed_tasks = *failed;
            deployments.push(d);
        }
        let mut primary = deployment("ecs-svc/9", 9, DeploymentStatus::Primary, ROLLOUTS[primary_rollout]);
        primary.has_health_check = primary_health_check;
        primary.failed_tasks = primary_failed;
        deployments.push(primary);
        let now = T0 + 1000.0;
        let ids: Vec<String> = deployments.iter().map(|d| d.id.clone()).chain(["ecs-svc/404".to_string()]).collect();
        let tasks: Vec<ServiceTask> = tasks
            .iter()
            .enumerate()
            .map(|(n, &(d, last, stopping, health, started, code, zone, accounted, long_ago))| {
                let deployment = &ids[d.min(ids.len() - 1)];
                let mut t = task(&format!("t{n}"), deployment, STATUSES[last]);
                if stopping {
                    t.desired_status = TaskStatus::Stopped;
                }
                t.health = HEALTHS[health];
                t.started_at = started.then_some(if long_ago { T0 } else { now - 1.0 });
                t.stop_code = STOP_CODES[code];
                t.zone = (zone < 3).then(|| ["a", "b", "c"][zone as usize].into());
                t.accounted = accounted;
                t
            })
            .collect();
        let state = SchedulerState {
            backoff: Backoff {
                deployment_id: Some("ecs-svc/9".to_string()),
                consecutive_failures: if throttled { 4 } else { 0 },
                last_failure_at: throttled.then_some(now - 1.0),
                next_attempt_at: throttled.then_some(now + 10.0),
            },
            ..SchedulerState::default()
        };

        let plan = plan(&spec, &deployments, &tasks, &state, now);
        let bounds = Bounds::of(&spec);

        // What the input says, by the rules: live tasks count toward the maximum;
        // wanted RUNNING tasks that pass their checks (or the grace) toward the minimum.
        let has_hc = |id: &str| deployments.iter().any(|d| d.id == id && d.has_health_check);
        let live = tasks.iter().filter(|t| t.last_status < TaskStatus::Stopped).count() as u32;
        let healthy = |t: &ServiceTask| {
            t.last_status == TaskStatus::Running
                && t.desired_status == TaskStatus::Running
                && if has_hc(&t.deployment_id) {
                    t.health == HealthStatus::Healthy
                } else {
                    t.started_at.is_none_or(|at| now >= at + spec.running_grace.as_secs_f64())
                }
        };
        let healthy_before = tasks.iter().filter(|t| healthy(t)).count() as u32;

        // The maximum: starts never take the live tasks past it.
        let starts = started(&plan);
        if live >= bounds.max_tasks {
            prop_assert_eq!(starts, 0);
        } else {
            prop_assert!(live + starts <= bounds.max_tasks, "live {} + starts {} > {}", live, starts, bounds.max_tasks);
        }

        // The minimum: healthy tasks are stopped only down to it.
        let mut seen = std::collections::HashSet::new();
        let mut healthy_stops = 0;
        for stop in &plan.stop {
            prop_assert!(seen.insert(stop.task_arn.clone()), "stopped twice");
            let task = tasks.iter().find(|t| *t.task_arn == *stop.task_arn);
            prop_assert!(task.is_some());
            let task = task.unwrap_or_else(|| unreachable!());
            prop_assert!(task.last_status <= TaskStatus::Running && task.desired_status == TaskStatus::Running,
                "only live, wanted tasks are stopped");
            if healthy(task) {
                healthy_stops += 1;
            }
        }
        if healthy_stops > 0 {
            prop_assert!(healthy_before - healthy_stops >= bounds.min_healthy,
                "{} healthy, {} stopped, minimum {}", healthy_before, healthy_stops, bounds.min_healthy);
        }

        // Starts: only for the PRIMARY deployment, never a FAILED one, never throttled.
        let primaries: Vec<&Deployment> = plan.deployments.iter().filter(|d| d.status == DeploymentStatus::Primary).collect();
        prop_assert_eq!(primaries.len(), 1);
        for start in &plan.start {
            prop_assert_eq!(&start.deployment_id, &primaries[0].id);
            prop_assert!(primaries[0].rollout_state != RolloutState::Failed);
            prop_assert!(!plan.state.backoff.throttled(now));
        }

        // Every stopped task not yet accounted is accounted now, and only those.
        let expected: Vec<&str> = tasks.iter().filter(|t| t.last_status >= TaskStatus::Stopped && !t.accounted).map(|t| &*t.task_arn).collect();
        prop_assert_eq!(plan.accounted.iter().map(String::as_str).collect::<Vec<_>>(), expected);

        // The counts add up.
        prop_assert_eq!(plan.running_count, plan.deployments.iter().map(|d| d.running_count).sum::<u32>()
            + tasks.iter().filter(|t| !ids[..ids.len() - 1].iter().any(|i| **i == *t.deployment_id)
                && t.last_status == TaskStatus::Running && t.desired_status == TaskStatus::Running
                && !plan.stop.iter().any(|s| *s.task_arn == *t.task_arn)).count() as u32);
        // A steady plan does nothing.
        if plan.steady() {
            prop_assert!(plan.start.is_empty() && plan.stop.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------------
// Draining instances and DAEMON services
// ---------------------------------------------------------------------------------

fn completed(id: &str, revision: u32) -> Deployment {
    deployment(
        id,
        revision,
        DeploymentStatus::Primary,
        RolloutState::Completed,
    )
}

fn on(mut task: ServiceTask, instance: &str) -> ServiceTask {
    task.instance_id = Some(instance.into());
    task
}

fn draining(mut task: ServiceTask) -> ServiceTask {
    task.instance_draining = true;
    task
}

fn daemon_spec(instances: &[&str], busy: &[&str], min: u32) -> ServiceSpec {
    ServiceSpec {
        daemon: Some(DaemonSpec {
            instances: instances.iter().map(|i| i.to_string()).collect(),
            draining_busy: busy.iter().map(|i| i.to_string()).collect(),
        }),
        ..spec(u32::try_from(instances.len()).unwrap_or(0), min, 100)
    }
}

#[test]
fn a_draining_instance_s_task_is_replaced_before_it_stops() {
    let deployments = [completed("ecs-svc/1", 1)];
    let mut tasks = vec![
        on(running("a", "ecs-svc/1"), "i-1"),
        on(running("b", "ecs-svc/1"), "i-2"),
        draining(on(running("c", "ecs-svc/1"), "i-3")),
    ];
    let first = plan(
        &spec(3, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(started(&first), 1, "a replacement starts first");
    assert!(first.stop.is_empty(), "nothing stops below the minimum");
    assert!(!first.steady());

    tasks.push(on(running("d", "ecs-svc/1"), "i-1"));
    let second = plan(
        &spec(3, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(started(&second), 0);
    assert_eq!(
        stopped_ids(&second),
        vec!["c"],
        "then the drained task stops"
    );
}

#[test]
fn a_pending_task_on_a_draining_instance_stops_at_once() {
    let deployments = [completed("ecs-svc/1", 1)];
    let tasks = [
        on(running("a", "ecs-svc/1"), "i-1"),
        draining(on(task("p", "ecs-svc/1", TaskStatus::Pending), "i-3")),
    ];
    let plan = plan(
        &spec(2, 100, 200),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(stopped_ids(&plan), vec!["p"]);
    assert_eq!(started(&plan), 1);
}

#[test]
fn a_daemon_starts_one_task_on_each_instance_without_one() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    )];
    let tasks = [on(running("a", "ecs-svc/1"), "i-1")];
    let plan = plan(
        &daemon_spec(&["i-1", "i-2", "i-3"], &[], 0),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(plan.start.len(), 1);
    assert_eq!(plan.start[0].instances, vec!["i-2", "i-3"]);
    assert_eq!(plan.start[0].count, 2);
    assert!(plan.stop.is_empty());
    assert_eq!(find(&plan, "ecs-svc/1").desired_count, 3);
    assert!(!plan.steady());
}

#[test]
fn a_daemon_with_a_task_everywhere_is_steady() {
    let deployments = [deployment(
        "ecs-svc/1",
        1,
        DeploymentStatus::Primary,
        RolloutState::InProgress,
    )];
    let tasks = [
        on(running("a", "ecs-svc/1"), "i-1"),
        on(running("b", "ecs-svc/1"), "i-2"),
    ];
    let plan = plan(
        &daemon_spec(&["i-1", "i-2"], &[], 0),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert!(plan.start.is_empty() && plan.stop.is_empty());
    assert!(plan.steady());
    assert_eq!(
        find(&plan, "ecs-svc/1").rollout_state,
        RolloutState::Completed
    );
}

#[test]
fn a_daemon_stops_duplicates_and_tasks_on_instances_it_left() {
    let deployments = [completed("ecs-svc/1", 1)];
    let tasks = [
        on(running("a", "ecs-svc/1"), "i-1"),
        on(task("a2", "ecs-svc/1", TaskStatus::Pending), "i-1"),
        on(running("gone", "ecs-svc/1"), "i-9"),
    ];
    let plan = plan(
        &daemon_spec(&["i-1"], &[], 0),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    let mut stopped = stopped_ids(&plan);
    stopped.sort();
    assert_eq!(stopped, vec!["a2", "gone"]);
    assert!(plan.start.is_empty());
}

#[test]
fn a_daemon_s_task_on_a_busy_draining_instance_stops_last() {
    let deployments = [completed("ecs-svc/1", 1)];
    let tasks = [
        on(running("a", "ecs-svc/1"), "i-1"),
        draining(on(running("d", "ecs-svc/1"), "i-2")),
    ];
    let busy = plan(
        &daemon_spec(&["i-1"], &["i-2"], 0),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert!(busy.stop.is_empty(), "other tasks still run on i-2");
    assert!(!busy.steady());
    let idle = plan(
        &daemon_spec(&["i-1"], &[], 0),
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(stopped_ids(&idle), vec!["d"]);
}

#[test]
fn a_daemon_rollout_stops_old_tasks_within_the_minimum_then_starts_new_ones() {
    let deployments = [
        deployment(
            "ecs-svc/1",
            1,
            DeploymentStatus::Active,
            RolloutState::Completed,
        ),
        deployment(
            "ecs-svc/2",
            2,
            DeploymentStatus::Primary,
            RolloutState::InProgress,
        ),
    ];
    let old = [
        on(running("a", "ecs-svc/1"), "i-1"),
        on(running("b", "ecs-svc/1"), "i-2"),
    ];
    // Minimum 50% of 2: one may stop at a time, and nothing starts beside an old
    // task (a daemon never runs two tasks on one instance).
    let half = plan(
        &daemon_spec(&["i-1", "i-2"], &[], 50),
        &deployments,
        &old,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(stopped_ids(&half), vec!["a"]);
    assert!(half.start.is_empty());
    // ECS's default minimum for daemons, 0: all at once.
    let all = plan(
        &daemon_spec(&["i-1", "i-2"], &[], 0),
        &deployments,
        &old,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(all.stop.len(), 2);
    // While an old task is still stopping, its instance waits.
    let mut stopping = old.clone();
    stopping[0].desired_status = TaskStatus::Stopped;
    stopping[1].last_status = TaskStatus::Stopped;
    stopping[1].stop_code = Some(TaskStopCode::ServiceSchedulerInitiated);
    let next = plan(
        &daemon_spec(&["i-1", "i-2"], &[], 0),
        &deployments,
        &stopping,
        &SchedulerState::default(),
        T0,
    );
    assert_eq!(next.start.len(), 1);
    assert_eq!(next.start[0].instances, vec!["i-2"]);
}

#[test]
fn a_running_task_on_a_draining_instance_waits_to_be_healthy_before_it_is_replaced() {
    let deployments = [completed("ecs-svc/1", 1)];
    let mut young = draining(on(running("y", "ecs-svc/1"), "i-3"));
    young.started_at = Some(T0);
    let tasks = [on(running("a", "ecs-svc/1"), "i-1"), young];
    let spec = ServiceSpec {
        running_grace: Duration::from_secs(40),
        ..spec(2, 100, 200)
    };
    let plan = plan(
        &spec,
        &deployments,
        &tasks,
        &SchedulerState::default(),
        T0 + 1.0,
    );
    assert!(
        plan.stop.is_empty(),
        "a RUNNING task is not stopped at once"
    );
    assert_eq!(started(&plan), 1, "its replacement starts");
}

//! Tasks: the ECS shapes of running task definitions and the operations on them,
//! with the pure rules the control plane applies when it starts one.
//!
//! - [`shapes`] holds Task, Container and what they carry (network bindings and
//!   interfaces, attachments, managed agents) and the task enums;
//! - [`launch`] holds what RunTask and StartTask say about placement, networking,
//!   tag propagation and volumes configured at launch;
//! - [`overrides`] holds TaskOverride and [`apply_overrides`];
//! - [`requests`] holds RunTask, StartTask, StopTask, DescribeTasks and ListTasks;
//! - [`state_change`] holds SubmitTaskStateChange and SubmitContainerStateChange;
//! - [`resources`] holds [`TaskResources`], what a task reserves on its instance.
//!
//! Every member of the ECS model is here; members are optional unless the model
//! requires them, absent members are omitted from responses and unknown members
//! are ignored.

pub mod launch;
pub mod overrides;
pub mod requests;
pub mod resources;
pub mod shapes;
pub mod state_change;

#[cfg(test)]
mod tests;

pub use launch::*;
pub use overrides::*;
pub use requests::*;
pub use resources::TaskResources;
pub use shapes::*;
pub use state_change::*;

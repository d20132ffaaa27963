//! Task definitions: the complete ECS shapes, the checks RegisterTaskDefinition
//! makes, what registration adds, and how requests name a revision.
//!
//! - [`shapes`] holds RegisterTaskDefinitionRequest/Response, TaskDefinition and
//!   the task-level members;
//! - [`container`] holds ContainerDefinition and everything nested in it;
//! - [`volume`] holds the task volumes;
//! - [`size`] reads task CPU and memory strings and knows the Fargate sizes;
//! - [`validate`] holds `validate_registration`;
//! - [`register`] holds `TaskDefinition::from_registration`, compatibilities and
//!   required attributes;
//! - [`reference`] parses `family`, `family:revision` and ARN references.
//!
//! Registration keeps every member of the ECS model, including those berth does not
//! act on yet, and returns them unchanged; unknown members are ignored.

pub mod container;
pub mod reference;
pub mod register;
pub mod shapes;
pub mod size;
pub mod validate;
pub mod volume;

#[cfg(test)]
mod tests;

pub use container::*;
pub use reference::{TaskDefinitionRef, family_and_revision, is_valid_family};
pub use register::{compatibilities, requires_attributes};
pub use shapes::*;
pub use size::{TaskSize, is_fargate_size, parse_task_cpu, parse_task_memory};
pub use validate::{validate_registration, validate_registration_sent};
pub use volume::*;

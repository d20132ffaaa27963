//! berth's task placement engine and the ECS cluster query language. Pure: no
//! I/O, no clock; the caller builds [`InstanceView`]s from the store, and the
//! same inputs and seed always give the same placements.
//!
//! - [`query`]: the cluster query language (`memberOf` expressions,
//!   ListContainerInstances' `filter`): [`Expression`] and [`filter`];
//! - [`model`]: [`InstanceView`], what placement and queries read of an instance;
//! - [`place`](mod@place): [`place()`], where the tasks of a request go, and why
//!   not when they cannot;
//! - [`placer`]: [`Placer`], a cluster kept between requests: each request shape's
//!   engine is brought forward by the instances that changed instead of rebuilt;
//! - [`sample`]: [`sample_random`], random placement by rejection sampling, for
//!   requests with no constraint and no strategy but `random`;
//! - [`eligible`]: which instances the `memberOf` constraints allow at all;
//! - [`validate`]: the rules of placement constraints and strategies.

pub mod eligible;
pub mod model;
pub mod place;
pub mod placer;
pub mod query;
pub mod sample;
pub mod validate;

pub use eligible::satisfies_member_of;
pub use model::{InstanceView, Remaining};
pub use place::{
    AGENT, DISTINCT_INSTANCE, INACTIVE, MEMBER_OF, Placeable, PlacementFailure, PlacementRequest,
    PlacementResult, place,
};
pub use placer::Placer;
pub use query::{Expression, QueryError, QueryTarget, filter};
pub use sample::sample_random;
pub use validate::{validate_constraints, validate_expression, validate_strategies};

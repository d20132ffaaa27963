//! Unit tests of the service model: serde fidelity of every shape, ECS's
//! deployment defaults and circuit breaker thresholds, and the request checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod deployment;
mod fidelity;
mod validate;

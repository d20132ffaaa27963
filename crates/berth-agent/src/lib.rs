//! The berth container agent: turns a host with a container engine into a container
//! instance of a cluster. It registers the host, keeps one session with the control
//! plane, runs the tasks the control plane assigns as containers, and reports their
//! state back.
//!
//! - [`agent`]: the process: registration, identity, the session loop.
//! - [`client`]: signed API calls and the session WebSocket.
//! - [`engine`]: the task engine (container and task state machines).
//! - [`runtime`]: the container engine (Docker through bollard; a fake for tests).
//! - [`sim`]: thousands of simulated instances (the agent on the fake runtime) in one process.

pub mod agent;
pub mod client;
pub mod engine;
pub mod runtime;
pub mod sim;

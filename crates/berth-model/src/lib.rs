//! The ECS model as berth knows it: request and response shapes (serde, camelCase),
//! ARNs and ids, validation, and the API errors. Pure: no I/O.

pub mod account_setting;
pub mod arn;
pub mod attribute;
pub mod cluster;
pub mod common;
pub mod container_instance;
pub mod decode;
pub mod error;
pub mod pagination;
pub mod service;
pub mod tagging;
pub mod task;
pub mod task_definition;

pub use decode::decode;
pub use error::{ApiError, ApiResult, ErrorCode};

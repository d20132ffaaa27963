pub mod plan;
pub mod services;

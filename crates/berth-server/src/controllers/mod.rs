pub mod lost_agents;
pub mod plan;
pub mod services;

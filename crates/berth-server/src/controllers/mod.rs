pub mod lost_agents;
pub mod plan;
pub mod service_index;
pub mod services;

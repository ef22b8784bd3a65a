//! The plumbing between pods: DNS, the agent-to-agent HTTP client, the clone
//! stream's wire format, and SQL connections with deadlines.

pub mod agent_client;
pub mod dns;
pub mod sql;
pub mod wire;

//! Helpers shared by the integration tests.

pub mod app;
pub mod backend;
pub mod cognigy;
pub mod events;
pub mod harness;
pub mod process;
pub mod redis_server;
pub mod redis_topology;
pub mod running;
pub mod shuffle;
pub mod store;
pub mod traffic;
pub mod vectors;
pub mod wire;

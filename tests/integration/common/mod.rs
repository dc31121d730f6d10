//! Helpers shared by the integration tests.

pub mod app;
pub mod backend;
pub mod cognigy;
pub mod events;
pub mod harness;
pub mod process;
pub mod redis_server;
pub mod running;
pub mod shuffle;
pub mod store;
pub mod vectors;
pub mod wire;

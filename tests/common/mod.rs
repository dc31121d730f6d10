//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod app;
pub mod backend;
pub mod events;
pub mod harness;
pub mod process;
pub mod redis_server;
pub mod running;
pub mod shuffle;
pub mod vectors;

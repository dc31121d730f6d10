//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod app;
pub mod events;
pub mod harness;
pub mod running;
pub mod shuffle;
pub mod vectors;

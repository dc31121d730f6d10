//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod events;
pub mod harness;
pub mod shuffle;
pub mod vectors;

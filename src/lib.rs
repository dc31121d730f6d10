//! handover-receiver: tells Cognigy.AI when a chat handed over to Genesys Cloud agents has ended.

pub mod genesys;
pub mod engine;

//! handover-receiver: tells Cognigy.AI when a chat handed over to Genesys Cloud agents through
//! Open Messaging has really ended, from the conversation events Genesys publishes to EventBridge.
//!
//! - [`genesys`]: wire types, topics and filters (lenient).
//! - [`engine`]: the decision rules, pure.
//! - [`store`]: conversation state, grace-window timers and the outbox.
//! - [`conversation`]: one step of a conversation (event or tick) and what follows it.
//! - [`forward`]: the call to Cognigy and its delivery worker.
//! - [`http`]: router, API key, handlers, status codes.
//! - [`server`]: connections, with their timeouts and limit.
//! - [`service`]: everything wired together, with the shutdown drain.

pub mod allocator;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod engine;
pub mod forward;
pub mod genesys;
pub mod hash;
pub mod http;
pub mod json_log;
pub mod keys;
pub mod log_writer;
pub mod metrics;
pub mod plain_text;
pub mod replay;
pub mod report;
pub mod server;
pub mod service;
pub mod store;
pub mod store_health;
pub mod telemetry;
pub mod timers;

pub use http::{AppState, router as app};
pub use service::Service;

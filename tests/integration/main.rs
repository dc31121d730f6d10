//! The integration tests, in one binary (one link of the crate instead of one per file): the
//! real router, the executable, a wiremock Cognigy and real redis-servers, as a user sees them.

mod common;

mod admin;
mod binary;
mod crash;
mod end_to_end;
mod engine_properties;
mod engine_rules;
mod engine_vectors;
mod hostile;
mod http_api;
mod memory_store;
mod metrics;
mod observability;
mod passthrough;
mod redis_production;
mod redis_store;
mod replay;
mod storage_format;

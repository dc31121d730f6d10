//! The Redis store as operators really run it (`docs/contract.md` §9): Redis Cluster maintenance
//! and crashes, Sentinel failovers, replication that cannot keep up, readiness that means
//! writable, background loops against a failing store, TLS from a private CA, and the signals of
//! a store that lost or may evict its data. Real redis-server processes, started by the tests.

mod background;
mod cluster;
mod readiness;
mod replication;
mod sentinel;
mod services;
mod signals;
mod tls;

//! The handover-ended call to Cognigy and the worker that delivers it (spec section 5).

mod body;
mod client;
mod retry;
mod worker;

pub use body::{ForwardFormat, render};
pub use client::{Attempt, CognigyClient, CognigyTarget};
pub use retry::RetryPolicy;
pub use worker::{DeliveryWorker, Sender};

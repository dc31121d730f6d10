//! The handover-ended call to Cognigy and the worker that delivers it (`docs/contract.md` §6).

mod body;
mod client;
mod retry;
mod url;
mod worker;

pub use body::{ForwardFormat, render};
pub use client::{Attempt, CognigyClient, CognigyTarget, cause_of};
pub use retry::RetryPolicy;
pub use url::{CognigyUrl, PLACEHOLDER, UrlTemplateError, percent_encode_segment};
pub use worker::{DeliveryWorker, Sender, Shadow};

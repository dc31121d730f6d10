//! The store a test runs the service on: one test body, two stores.

use super::redis_server::RedisServer;
use super::running::Running;

pub struct Backend {
    pub redis: Option<RedisServer>,
}

impl Backend {
    pub fn memory() -> Self {
        Self { redis: None }
    }

    pub fn redis() -> Self {
        Self {
            redis: Some(RedisServer::start()),
        }
    }

    /// Starts the service on this store with `extra` flags.
    pub async fn start(&self, extra: &[String]) -> Running {
        let mut args: Vec<String> = extra.to_vec();
        if let Some(server) = &self.redis {
            args.extend(["--store".to_owned(), server.url()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Running::start(&args).await
    }
}

/// Generates `memory::<name>` and `redis::<name>` tests from `async fn <name>(Backend)`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::backend::Backend::memory()).await
                }
            )+
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::backend::Backend::redis()).await
                }
            )+
        }
    };
}

//! Settings: every one an environment variable and a command-line flag (`--help` lists them),
//! and their validation. The command line around them (subcommands) is in `cli.rs`.

use crate::forward::{CognigyUrl, ForwardFormat, RetryPolicy, UrlTemplateError};
use crate::genesys::EventFilter;
use crate::store::RedisOptions;
use crate::store::redis::{
    CA_FILE_ENV, CLIENT_CERT_FILE_ENV, CLIENT_KEY_FILE_ENV, RedisTarget, TargetError, TlsPaths,
};
use clap::builder::BoolishValueParser;
use secrecy::SecretString;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

pub const API_KEY_ENV: &str = "GENESYS_EVENTBRIDGE_HANDOVER_API_KEY";
pub const API_KEY_PREVIOUS_ENV: &str = "GENESYS_EVENTBRIDGE_HANDOVER_API_KEY_PREVIOUS";
pub const ADMIN_TOKEN_ENV: &str = "HANDOVER_ADMIN_TOKEN";
pub const FORWARD_FLAG_ENV: &str = "FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST";
/// Shortest and longest accepted secret (API keys, admin token).
pub const SECRET_MIN_CHARS: usize = 12;
pub const SECRET_MAX_CHARS: usize = 512;
const REDIS_SCHEMES: [&str; 6] = [
    "redis://",
    "rediss://",
    "redis+unix://",
    "unix://",
    "redis+sentinel://",
    "rediss+sentinel://",
];

/// The settings as flags and environment variables, before validation. No `Debug`: it holds the
/// secrets in the clear.
#[derive(clap::Args)]
pub struct SettingsArgs {
    /// API key EventBridge sends in the Authorization header (required).
    #[arg(long, env = API_KEY_ENV, hide_env_values = true)]
    pub api_key: Option<String>,

    /// A second accepted key while the key is being rotated.
    #[arg(long, env = API_KEY_PREVIOUS_ENV, hide_env_values = true)]
    pub api_key_previous: Option<String>,

    /// Forward ends to Cognigy; otherwise shadow mode: decide and log, send nothing.
    #[arg(
        long,
        env = FORWARD_FLAG_ENV,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub forward: bool,

    /// Target of the handover-ended call; may contain {organisationId}.
    #[arg(long, env = "HANDOVER_COGNIGY_URL")]
    pub cognigy_url: Option<String>,

    /// Value of the Authorization header of the call to Cognigy.
    #[arg(long, env = "HANDOVER_COGNIGY_AUTHORIZATION", hide_env_values = true)]
    pub cognigy_authorization: Option<String>,

    /// Body of the call to Cognigy.
    #[arg(
        long,
        env = "HANDOVER_FORWARD_FORMAT",
        value_enum,
        default_value = "event"
    )]
    pub forward_format: ForwardFormat,

    /// HTTP listener.
    #[arg(long, env = "HANDOVER_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,

    /// Separate listener for /metrics; unset: /metrics is on the main listener.
    #[arg(long, env = "HANDOVER_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Enables the /admin routes, which then need `Authorization: Bearer <token>`.
    #[arg(long, env = ADMIN_TOKEN_ENV, hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Relay Open Messaging webhooks (signed, no API key) arriving on the events path to this URL.
    #[arg(long, env = "HANDOVER_PASSTHROUGH_URL", hide_env_values = true)]
    pub passthrough_url: Option<String>,

    /// Verify X-Hub-Signature-256 of relayed webhooks with this secret first (bad: 403).
    #[arg(long, env = "HANDOVER_OM_WEBHOOK_SECRET", hide_env_values = true)]
    pub om_webhook_secret: Option<String>,

    /// `memory`, a redis:// or rediss:// URL (redis+unix:// for a local socket), or
    /// redis+sentinel://[:password@]host:port[,host:port]/<master name>[/<db>] (rediss+sentinel://
    /// for TLS to the data nodes).
    #[arg(
        long,
        env = "HANDOVER_STORE",
        default_value = "memory",
        hide_env_values = true
    )]
    pub store: String,

    /// Grace window before a final user.end ends the handover, in milliseconds.
    #[arg(long, env = "HANDOVER_END_GRACE_MS", default_value_t = 10_000)]
    pub end_grace_ms: u64,

    /// Comma-separated organisationIds to handle; unset: all.
    #[arg(long, env = "HANDOVER_ALLOWED_ORGANISATIONS", value_delimiter = ',')]
    pub allowed_organisations: Option<Vec<String>>,

    /// Comma-separated Genesys messageTypes handled.
    #[arg(
        long,
        env = "HANDOVER_MESSAGE_TYPES",
        value_delimiter = ',',
        default_value = "OPEN"
    )]
    pub message_types: Vec<String>,

    /// Lifetime of an idle conversation's state, in seconds.
    #[arg(long, env = "HANDOVER_STATE_TTL_SECS", default_value_t = 604_800)]
    pub state_ttl_secs: u64,

    /// Longest wait on SIGTERM for open grace windows and undelivered ends, in seconds.
    #[arg(long, env = "HANDOVER_SHUTDOWN_GRACE_SECS", default_value_t = 25)]
    pub shutdown_grace_secs: u64,

    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, env = "HANDOVER_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,

    /// Largest accepted request body, in bytes (EventBridge events are at most 256 KB).
    #[arg(long, env = "HANDOVER_MAX_BODY_BYTES", default_value_t = 512 * 1024)]
    pub max_body_bytes: usize,

    /// Longest time to answer an event, in milliseconds (EventBridge gives up after 5 s).
    #[arg(long, env = "HANDOVER_REQUEST_TIMEOUT_MS", default_value_t = 4_000)]
    pub request_timeout_ms: u64,

    /// Events processed at once; more are answered 503 so that EventBridge retries later.
    #[arg(long, env = "HANDOVER_MAX_IN_FLIGHT", default_value_t = 1_024)]
    pub max_in_flight: usize,

    /// Conversations the in-memory store keeps at most; beyond, new ones get 503.
    #[arg(long, env = "HANDOVER_MAX_CONVERSATIONS", default_value_t = 1_000_000)]
    pub max_conversations: usize,

    /// HANDOVER_STORE names Redis Cluster seed nodes (comma-separated URLs).
    #[arg(
        long,
        env = "HANDOVER_REDIS_CLUSTER",
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub redis_cluster: bool,

    /// Longest wait for one Redis operation before the store counts as unavailable (503), in ms.
    #[arg(long, env = "HANDOVER_REDIS_TIMEOUT_MS", default_value_t = 1_500)]
    pub redis_timeout_ms: u64,

    /// Replicas that must hold a commit before an event is acknowledged (Redis WAIT); 0: none.
    #[arg(long, env = "HANDOVER_REDIS_MIN_REPLICAS", default_value_t = 0)]
    pub redis_min_replicas: u32,

    /// Longest wait for those replicas, in ms; fewer in time: 503 and EventBridge retries.
    #[arg(long, env = "HANDOVER_REDIS_REPLICA_TIMEOUT_MS", default_value_t = 500)]
    pub redis_replica_timeout_ms: u64,

    /// PEM file of a private CA trusted for rediss:// besides the system's roots.
    #[arg(long, env = CA_FILE_ENV)]
    pub redis_ca_file: Option<PathBuf>,

    /// PEM client certificate for rediss:// (with HANDOVER_REDIS_CLIENT_KEY_FILE).
    #[arg(long, env = CLIENT_CERT_FILE_ENV)]
    pub redis_client_cert_file: Option<PathBuf>,

    /// PEM private key of that client certificate.
    #[arg(long, env = CLIENT_KEY_FILE_ENV)]
    pub redis_client_key_file: Option<PathBuf>,

    /// Timeout of one call to Cognigy, in milliseconds.
    #[arg(long, env = "HANDOVER_COGNIGY_TIMEOUT_MS", default_value_t = 3_000)]
    pub cognigy_timeout_ms: u64,

    /// Delay after the first failed delivery, in milliseconds (doubles per attempt, with jitter).
    #[arg(long, env = "HANDOVER_RETRY_BASE_MS", default_value_t = 1_000)]
    pub retry_base_ms: u64,

    /// Longest delay between delivery attempts, in milliseconds.
    #[arg(long, env = "HANDOVER_RETRY_MAX_MS", default_value_t = 300_000)]
    pub retry_max_ms: u64,

    /// How long an end is retried before it becomes a dead letter, in seconds.
    #[arg(long, env = "HANDOVER_DELIVERY_GIVE_UP_SECS", default_value_t = 86_400)]
    pub delivery_give_up_secs: u64,

    /// Largest accepted lead of an event's eventTime over this clock, in milliseconds; further
    /// ahead is refused with 400 event_time_out_of_range.
    #[arg(long, env = "HANDOVER_MAX_FUTURE_MS", default_value_t = 300_000)]
    pub max_future_ms: u64,

    /// Agent legs one conversation may have; an event that would open one more is ignored.
    #[arg(long, env = "HANDOVER_MAX_LEGS", default_value_t = 200)]
    pub max_legs: usize,

    /// Time a client has to send a request's head, in milliseconds.
    #[arg(
        long,
        env = "HANDOVER_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_read_timeout_ms: u64,

    /// Idle keep-alive connections are closed after this many seconds.
    #[arg(long, env = "HANDOVER_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Connections open at once; more wait in the kernel's backlog.
    #[arg(long, env = "HANDOVER_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Calls to Cognigy in flight at once.
    #[arg(long, env = "HANDOVER_DELIVERY_CONCURRENCY", default_value_t = 32)]
    pub delivery_concurrency: usize,

    /// Calls in flight to one resolved Cognigy URL at once, so a hung tenant delays no other.
    #[arg(long, env = "HANDOVER_DELIVERY_PER_DESTINATION", default_value_t = 8)]
    pub delivery_per_destination: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Which store holds the state.
#[derive(Clone)]
pub enum StoreKind {
    Memory,
    /// The target may carry a password and a private key: it never prints.
    Redis {
        target: Box<RedisTarget>,
        options: RedisOptions,
    },
}

impl std::fmt::Debug for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreKind::Memory => f.write_str("Memory"),
            StoreKind::Redis { target, options } => f
                .debug_struct("Redis")
                .field("topology", &target.kind())
                .field("options", options)
                .finish_non_exhaustive(),
        }
    }
}

/// Where ends go.
#[derive(Debug, Clone)]
pub enum Forwarding {
    Shadow,
    Cognigy {
        url: CognigyUrl,
        authorization: Option<SecretString>,
        format: ForwardFormat,
        timeout: Duration,
    },
}

/// Validated settings. Secrets are wrapped so that they never print.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api_keys: Vec<SecretString>,
    pub forwarding: Forwarding,
    pub listen_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub admin_token: Option<SecretString>,
    pub passthrough_url: Option<SecretString>,
    pub om_webhook_secret: Option<SecretString>,
    pub store: StoreKind,
    pub end_grace_ms: u64,
    pub filter: EventFilter,
    pub state_ttl: Duration,
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub max_in_flight: usize,
    pub max_conversations: usize,
    pub retry: RetryPolicy,
    pub max_legs: usize,
    pub connections: ConnectionLimits,
    pub delivery: DeliveryLimits,
}

/// What one client connection may take (`docs/contract.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// How many calls to Cognigy run at once (`docs/contract.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryLimits {
    pub concurrency: usize,
    pub per_destination: usize,
}

/// A setting that makes the service refuse to start. Each names its variable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "{API_KEY_ENV} is not set or empty: set it to the API key of the EventBridge connection"
    )]
    MissingApiKey,
    #[error("HANDOVER_COGNIGY_URL is required when {FORWARD_FLAG_ENV}=true")]
    MissingCognigyUrl,
    #[error("HANDOVER_COGNIGY_URL {0}")]
    InvalidCognigyUrl(UrlTemplateError),
    #[error("{name} {problem}")]
    BadSecret { name: &'static str, problem: String },
    #[error(
        "HANDOVER_STORE must be `memory`, a redis:// or rediss:// URL, or a redis+sentinel:// URL"
    )]
    UnknownStore,
    #[error(transparent)]
    Redis(#[from] TargetError),
    #[error(
        "HANDOVER_REDIS_REPLICA_TIMEOUT_MS must be below HANDOVER_REDIS_TIMEOUT_MS (a WAIT must end before its command times out)"
    )]
    ReplicaTimeout,
    #[error("HANDOVER_PASSTHROUGH_URL is not an http(s) URL")]
    InvalidPassthroughUrl,
    #[error("HANDOVER_ADMIN_TOKEN must differ from the EventBridge API keys")]
    AdminTokenIsApiKey,
    #[error("HANDOVER_MESSAGE_TYPES names no message type")]
    NoMessageTypes,
    #[error("{0} must be greater than 0")]
    Zero(&'static str),
}

impl Settings {
    /// The effective settings, one `NAME=value` line each, secrets masked.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let secret = |set: bool| {
            if set {
                "<set>".to_owned()
            } else {
                "<unset>".to_owned()
            }
        };
        let list = |items: Option<&HashSet<String>>| match items {
            None => "<all>".to_owned(),
            Some(items) => {
                let mut sorted: Vec<_> = items.iter().cloned().collect();
                sorted.sort();
                sorted.join(",")
            }
        };
        let (forward, url, authorization, format) = match &self.forwarding {
            Forwarding::Shadow => (
                "false (shadow mode)",
                "<unset>".to_owned(),
                "<unset>".to_owned(),
                "event".to_owned(),
            ),
            Forwarding::Cognigy {
                url,
                authorization,
                format,
                ..
            } => (
                "true",
                // Never the query (it may carry a token); user information is refused at start.
                url.redacted(),
                secret(authorization.is_some()),
                format!("{format:?}").to_lowercase(),
            ),
        };
        let cognigy_timeout_ms = match &self.forwarding {
            Forwarding::Shadow => "<unused>".to_owned(),
            Forwarding::Cognigy { timeout, .. } => timeout.as_millis().to_string(),
        };
        let unused = || "<unused>".to_owned();
        let file = |set: bool| if set { "<set>" } else { "<unset>" }.to_owned();
        let redis: [String; 8] = match &self.store {
            StoreKind::Memory => std::array::from_fn(|n| {
                if n == 0 {
                    "memory".to_owned()
                } else {
                    unused()
                }
            }),
            StoreKind::Redis { target, options } => {
                let tls = target.tls.as_ref();
                [
                    format!("{} (URL <set>)", target.kind()),
                    (target.kind() == "redis cluster").to_string(),
                    options.operation_timeout.as_millis().to_string(),
                    options.min_replicas.to_string(),
                    options.replica_timeout.as_millis().to_string(),
                    file(tls.is_some_and(|t| t.ca.is_some())),
                    file(tls.is_some_and(|t| t.client.is_some())),
                    file(tls.is_some_and(|t| t.client.is_some())),
                ]
            }
        };
        let [
            store,
            redis_cluster,
            redis_timeout_ms,
            min_replicas,
            replica_timeout_ms,
            ca_file,
            client_cert_file,
            client_key_file,
        ] = redis;
        vec![
            (API_KEY_ENV, secret(true)),
            (API_KEY_PREVIOUS_ENV, secret(self.api_keys.len() > 1)),
            (FORWARD_FLAG_ENV, forward.to_owned()),
            ("HANDOVER_COGNIGY_URL", url),
            ("HANDOVER_COGNIGY_AUTHORIZATION", authorization),
            ("HANDOVER_FORWARD_FORMAT", format),
            ("HANDOVER_COGNIGY_TIMEOUT_MS", cognigy_timeout_ms),
            ("HANDOVER_LISTEN_ADDR", self.listen_addr.to_string()),
            (
                "HANDOVER_METRICS_ADDR",
                self.metrics_addr
                    .map_or("<main listener>".into(), |a| a.to_string()),
            ),
            (ADMIN_TOKEN_ENV, secret(self.admin_token.is_some())),
            (
                "HANDOVER_PASSTHROUGH_URL",
                secret(self.passthrough_url.is_some()),
            ),
            (
                "HANDOVER_OM_WEBHOOK_SECRET",
                secret(self.om_webhook_secret.is_some()),
            ),
            ("HANDOVER_STORE", store),
            ("HANDOVER_REDIS_CLUSTER", redis_cluster),
            ("HANDOVER_REDIS_TIMEOUT_MS", redis_timeout_ms),
            ("HANDOVER_REDIS_MIN_REPLICAS", min_replicas),
            ("HANDOVER_REDIS_REPLICA_TIMEOUT_MS", replica_timeout_ms),
            (CA_FILE_ENV, ca_file),
            (CLIENT_CERT_FILE_ENV, client_cert_file),
            (CLIENT_KEY_FILE_ENV, client_key_file),
            ("HANDOVER_END_GRACE_MS", self.end_grace_ms.to_string()),
            (
                "HANDOVER_ALLOWED_ORGANISATIONS",
                list(self.filter.allowed_organisations.as_ref()),
            ),
            (
                "HANDOVER_MESSAGE_TYPES",
                list(Some(&self.filter.message_types)),
            ),
            (
                "HANDOVER_STATE_TTL_SECS",
                self.state_ttl.as_secs().to_string(),
            ),
            (
                "HANDOVER_SHUTDOWN_GRACE_SECS",
                self.shutdown_grace.as_secs().to_string(),
            ),
            (
                "HANDOVER_LOG_FORMAT",
                format!("{:?}", self.log_format).to_lowercase(),
            ),
            ("HANDOVER_MAX_BODY_BYTES", self.max_body_bytes.to_string()),
            (
                "HANDOVER_REQUEST_TIMEOUT_MS",
                self.request_timeout.as_millis().to_string(),
            ),
            ("HANDOVER_MAX_IN_FLIGHT", self.max_in_flight.to_string()),
            (
                "HANDOVER_MAX_CONVERSATIONS",
                self.max_conversations.to_string(),
            ),
            ("HANDOVER_RETRY_BASE_MS", self.retry.base_ms.to_string()),
            ("HANDOVER_RETRY_MAX_MS", self.retry.max_ms.to_string()),
            (
                "HANDOVER_DELIVERY_GIVE_UP_SECS",
                (self.retry.give_up_after_ms / 1_000).to_string(),
            ),
            (
                "HANDOVER_MAX_FUTURE_MS",
                self.filter.max_future_ms.to_string(),
            ),
            ("HANDOVER_MAX_LEGS", self.max_legs.to_string()),
            (
                "HANDOVER_HEADER_READ_TIMEOUT_MS",
                self.connections.header_read_timeout.as_millis().to_string(),
            ),
            (
                "HANDOVER_IDLE_TIMEOUT_SECS",
                self.connections.idle_timeout.as_secs().to_string(),
            ),
            (
                "HANDOVER_MAX_CONNECTIONS",
                self.connections.max_connections.to_string(),
            ),
            (
                "HANDOVER_DELIVERY_CONCURRENCY",
                self.delivery.concurrency.to_string(),
            ),
            (
                "HANDOVER_DELIVERY_PER_DESTINATION",
                self.delivery.per_destination.to_string(),
            ),
        ]
    }
}

impl SettingsArgs {
    pub fn settings(self) -> Result<Settings, ConfigError> {
        if self.api_key.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::MissingApiKey);
        }
        for (name, value) in [
            (API_KEY_ENV, &self.api_key),
            (API_KEY_PREVIOUS_ENV, &self.api_key_previous),
            (ADMIN_TOKEN_ENV, &self.admin_token),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                check_secret(value).map_err(|problem| ConfigError::BadSecret { name, problem })?;
            }
        }
        let api_keys: Vec<SecretString> = [self.api_key.clone(), self.api_key_previous.clone()]
            .into_iter()
            .flatten()
            .filter(|key| !key.is_empty())
            .map(SecretString::from)
            .collect();
        let forwarding = self.forwarding()?;
        let admin_token = self.admin_token.clone().filter(|token| !token.is_empty());
        if admin_token.as_ref().is_some_and(|token| {
            [&self.api_key, &self.api_key_previous]
                .into_iter()
                .any(|key| key.as_ref() == Some(token))
        }) {
            return Err(ConfigError::AdminTokenIsApiKey);
        }
        let admin_token = admin_token.map(SecretString::from);
        let passthrough_url = match self
            .passthrough_url
            .clone()
            .filter(|u| !u.trim().is_empty())
        {
            Some(url) => {
                match reqwest::Url::parse(&url) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                    _ => return Err(ConfigError::InvalidPassthroughUrl),
                }
                Some(SecretString::from(url))
            }
            None => None,
        };
        let store = self.store_kind()?;
        let message_types: HashSet<String> = self
            .message_types
            .iter()
            .map(|kind| kind.trim().to_ascii_uppercase())
            .filter(|kind| !kind.is_empty())
            .collect();
        if message_types.is_empty() {
            return Err(ConfigError::NoMessageTypes);
        }
        let allowed_organisations = self.allowed_organisations.map(|list| {
            list.iter()
                .map(|org| org.trim().to_owned())
                .filter(|org| !org.is_empty())
                .collect::<HashSet<_>>()
        });
        for (name, value) in [
            ("HANDOVER_STATE_TTL_SECS", self.state_ttl_secs),
            ("HANDOVER_MAX_BODY_BYTES", self.max_body_bytes as u64),
            ("HANDOVER_REQUEST_TIMEOUT_MS", self.request_timeout_ms),
            ("HANDOVER_MAX_IN_FLIGHT", self.max_in_flight as u64),
            ("HANDOVER_MAX_CONVERSATIONS", self.max_conversations as u64),
            ("HANDOVER_COGNIGY_TIMEOUT_MS", self.cognigy_timeout_ms),
            ("HANDOVER_REDIS_TIMEOUT_MS", self.redis_timeout_ms),
            ("HANDOVER_RETRY_BASE_MS", self.retry_base_ms),
            ("HANDOVER_MAX_LEGS", self.max_legs as u64),
            (
                "HANDOVER_HEADER_READ_TIMEOUT_MS",
                self.header_read_timeout_ms,
            ),
            ("HANDOVER_IDLE_TIMEOUT_SECS", self.idle_timeout_secs),
            ("HANDOVER_MAX_CONNECTIONS", self.max_connections as u64),
            (
                "HANDOVER_DELIVERY_CONCURRENCY",
                self.delivery_concurrency as u64,
            ),
            (
                "HANDOVER_DELIVERY_PER_DESTINATION",
                self.delivery_per_destination as u64,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(Settings {
            api_keys,
            forwarding,
            listen_addr: self.listen_addr,
            metrics_addr: self.metrics_addr,
            admin_token,
            passthrough_url,
            om_webhook_secret: self
                .om_webhook_secret
                .clone()
                .filter(|s| !s.is_empty())
                .map(SecretString::from),
            store,
            end_grace_ms: self.end_grace_ms,
            filter: EventFilter {
                allowed_organisations,
                message_types,
                max_future_ms: self.max_future_ms,
            },
            state_ttl: Duration::from_secs(self.state_ttl_secs),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            log_format: self.log_format,
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_in_flight: self.max_in_flight,
            max_conversations: self.max_conversations,
            retry: RetryPolicy {
                base_ms: self.retry_base_ms,
                max_ms: self.retry_max_ms.max(self.retry_base_ms),
                give_up_after_ms: self.delivery_give_up_secs.saturating_mul(1_000),
            },
            max_legs: self.max_legs,
            connections: ConnectionLimits {
                header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
                idle_timeout: Duration::from_secs(self.idle_timeout_secs),
                max_connections: self.max_connections,
            },
            delivery: DeliveryLimits {
                concurrency: self.delivery_concurrency,
                per_destination: self.delivery_per_destination.min(self.delivery_concurrency),
            },
        })
    }

    fn store_kind(&self) -> Result<StoreKind, ConfigError> {
        let url = self.store.trim();
        if url == "memory" {
            return Ok(StoreKind::Memory);
        }
        if !REDIS_SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
            return Err(ConfigError::UnknownStore);
        }
        let paths = TlsPaths {
            ca: self
                .redis_ca_file
                .as_deref()
                .filter(|p| !p.as_os_str().is_empty()),
            client_cert: self
                .redis_client_cert_file
                .as_deref()
                .filter(|p| !p.as_os_str().is_empty()),
            client_key: self
                .redis_client_key_file
                .as_deref()
                .filter(|p| !p.as_os_str().is_empty()),
        };
        let target = RedisTarget::parse(url, self.redis_cluster, &paths)?;
        let operation_timeout = Duration::from_millis(self.redis_timeout_ms);
        let replica_timeout = Duration::from_millis(self.redis_replica_timeout_ms);
        if self.redis_min_replicas > 0 && replica_timeout >= operation_timeout {
            return Err(ConfigError::ReplicaTimeout);
        }
        Ok(StoreKind::Redis {
            target: Box::new(target),
            options: RedisOptions {
                operation_timeout,
                // Tries again within most of the request's time, leaving room to answer.
                budget: Duration::from_millis(self.request_timeout_ms * 3 / 4)
                    .max(operation_timeout),
                state_ttl_ms: self.state_ttl_secs.saturating_mul(1_000),
                min_replicas: self.redis_min_replicas,
                replica_timeout,
            },
        })
    }

    fn forwarding(&self) -> Result<Forwarding, ConfigError> {
        if !self.forward {
            return Ok(Forwarding::Shadow);
        }
        let url = self
            .cognigy_url
            .clone()
            .filter(|url| !url.trim().is_empty())
            .ok_or(ConfigError::MissingCognigyUrl)?;
        // The parser's message never echoes the URL (it may carry a token).
        let url = CognigyUrl::parse(url.trim()).map_err(ConfigError::InvalidCognigyUrl)?;
        Ok(Forwarding::Cognigy {
            url,
            authorization: self
                .cognigy_authorization
                .clone()
                .filter(|value| !value.is_empty())
                .map(SecretString::from),
            format: self.forward_format,
            timeout: Duration::from_millis(self.cognigy_timeout_ms),
        })
    }
}

/// `docs/contract.md` §5: 12 to 512 printable ASCII characters, no whitespace. The problem is said without
/// the value. (A key with a trailing newline would never match EventBridge's header: every event
/// would get 401 and EventBridge would de-authorize the connection.)
pub fn check_secret(value: &str) -> Result<(), String> {
    if value.ends_with('\n') || value.ends_with('\r') {
        return Err("ends with a newline (remove it: e.g. `printf %s` instead of `echo`)".into());
    }
    if value.chars().any(char::is_whitespace) {
        return Err("contains whitespace".into());
    }
    if !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err("contains a character that is not printable ASCII".into());
    }
    let length = value.chars().count();
    if length < SECRET_MIN_CHARS {
        return Err(format!(
            "is {length} characters long; at least {SECRET_MIN_CHARS} are needed"
        ));
    }
    if length > SECRET_MAX_CHARS {
        return Err(format!(
            "is {length} characters long; at most {SECRET_MAX_CHARS} are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "current-key-0123456789";
    const PREVIOUS: &str = "previous-key-0123456789";
    const TOKEN: &str = "admin-token-0123456789";

    fn cli(args: &[&str]) -> SettingsArgs {
        use clap::Parser;
        let mut argv = vec!["handover-receiver"];
        argv.extend_from_slice(args);
        crate::cli::Cli::try_parse_from(argv)
            .expect("arguments parse")
            .settings
    }

    #[test]
    fn defaults_follow_the_spec() {
        let settings = cli(&["--api-key", KEY]).settings().unwrap();
        assert!(matches!(settings.forwarding, Forwarding::Shadow));
        assert_eq!(settings.listen_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(settings.end_grace_ms, 10_000);
        assert_eq!(settings.state_ttl, Duration::from_secs(604_800));
        assert_eq!(settings.shutdown_grace, Duration::from_secs(25));
        assert_eq!(settings.max_body_bytes, 512 * 1024);
        assert_eq!(
            settings.filter.message_types,
            HashSet::from(["OPEN".to_owned()])
        );
        assert_eq!(settings.filter.allowed_organisations, None);
        assert_eq!(settings.log_format, LogFormat::Json);
    }

    #[test]
    fn the_api_key_is_required_and_not_empty() {
        assert_eq!(cli(&[]).settings().unwrap_err(), ConfigError::MissingApiKey);
        assert_eq!(
            cli(&["--api-key", ""]).settings().unwrap_err(),
            ConfigError::MissingApiKey
        );
        let message = ConfigError::MissingApiKey.to_string();
        assert!(message.contains(API_KEY_ENV));
    }

    #[test]
    fn forwarding_needs_a_url() {
        let error = cli(&["--api-key", KEY, "--forward", "true"])
            .settings()
            .unwrap_err();
        assert_eq!(error, ConfigError::MissingCognigyUrl);
        assert!(error.to_string().contains("HANDOVER_COGNIGY_URL"));
        let error = cli(&[
            "--api-key",
            KEY,
            "--forward",
            "true",
            "--cognigy-url",
            "ftp://x",
        ])
        .settings()
        .unwrap_err();
        assert!(matches!(error, ConfigError::InvalidCognigyUrl(_)));
        let settings = cli(&[
            "--api-key",
            KEY,
            "--forward",
            "true",
            "--cognigy-url",
            "https://cognigy.example/{organisationId}/handover",
        ])
        .settings()
        .unwrap();
        assert!(matches!(settings.forwarding, Forwarding::Cognigy { .. }));
    }

    #[test]
    fn lists_are_trimmed_and_message_types_upper_cased() {
        let settings = cli(&[
            "--api-key",
            KEY,
            "--allowed-organisations",
            "a, b ,",
            "--message-types",
            "open,whatsapp",
        ])
        .settings()
        .unwrap();
        assert_eq!(
            settings.filter.allowed_organisations,
            Some(HashSet::from(["a".to_owned(), "b".to_owned()]))
        );
        assert_eq!(
            settings.filter.message_types,
            HashSet::from(["OPEN".to_owned(), "WHATSAPP".to_owned()])
        );
    }

    #[test]
    fn store_is_memory_or_a_redis_url() {
        let redis = cli(&[
            "--api-key",
            KEY,
            "--store",
            "rediss://:pw@redis.example:6380/0",
        ]);
        let settings = redis.settings().unwrap();
        assert!(matches!(settings.store, StoreKind::Redis { .. }));
        assert!(
            !format!("{settings:?}").contains(":pw@"),
            "the Redis password printed"
        );
        let error = cli(&["--api-key", KEY, "--store", "postgres://x"])
            .settings()
            .unwrap_err();
        assert_eq!(error, ConfigError::UnknownStore);
    }

    #[test]
    fn the_admin_token_must_not_be_an_eventbridge_key() {
        let error = cli(&["--api-key", KEY, "--admin-token", KEY])
            .settings()
            .unwrap_err();
        assert_eq!(error, ConfigError::AdminTokenIsApiKey);
        let error = cli(&[
            "--api-key",
            KEY,
            "--api-key-previous",
            PREVIOUS,
            "--admin-token",
            PREVIOUS,
        ])
        .settings()
        .unwrap_err();
        assert_eq!(error, ConfigError::AdminTokenIsApiKey);
        assert!(
            cli(&["--api-key", KEY, "--admin-token", TOKEN])
                .settings()
                .is_ok()
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let settings = cli(&[
            "--api-key",
            "super-secret-key",
            "--forward",
            "true",
            "--cognigy-url",
            "https://c.example",
            "--cognigy-authorization",
            "Basic c2VjcmV0",
        ])
        .settings()
        .unwrap();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("super-secret-key"), "{printed}");
        assert!(!printed.contains("c2VjcmV0"), "{printed}");
    }

    #[test]
    fn secrets_must_be_12_to_512_printable_characters_without_whitespace() {
        let good = "a-good-key-1234";
        for (key, problem) in [
            ("a-good-key-1234\n", "ends with a newline"),
            ("a-good-key-1234\r\n", "ends with a newline"),
            ("a-good key-1234", "contains whitespace"),
            ("a-good-key-1234\u{7f}", "not printable ASCII"),
            ("a-good-kéy-1234", "not printable ASCII"),
            ("short-key", "at least 12"),
        ] {
            for flag in ["--api-key", "--api-key-previous", "--admin-token"] {
                let mut args = vec![flag, key];
                if flag != "--api-key" {
                    args.extend(["--api-key", good]);
                }
                let error = cli(&args).settings().unwrap_err();
                let text = error.to_string();
                assert!(text.contains(problem), "{flag} {key:?}: {text}");
                assert!(!text.contains(key.trim()), "the value is echoed: {text}");
                let name = match flag {
                    "--api-key" => API_KEY_ENV,
                    "--api-key-previous" => API_KEY_PREVIOUS_ENV,
                    _ => ADMIN_TOKEN_ENV,
                };
                assert!(text.starts_with(name), "{text}");
            }
        }
        let long = "k".repeat(SECRET_MAX_CHARS + 1);
        let error = cli(&["--api-key", &long]).settings().unwrap_err();
        assert!(error.to_string().contains("at most 512"), "{error}");
        assert!(
            cli(&["--api-key", &"k".repeat(SECRET_MAX_CHARS)])
                .settings()
                .is_ok()
        );
        assert!(cli(&["--api-key", good]).settings().is_ok());
    }
}

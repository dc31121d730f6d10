//! The HTTP call to Cognigy, and what its answer means for delivery.

use super::body::{ForwardFormat, render};
use super::url::CognigyUrl;
use crate::engine::EndNotice;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use std::time::{Duration, SystemTime};

/// Where and how ends are sent.
#[derive(Debug, Clone)]
pub struct CognigyTarget {
    /// May contain `{organisationId}`, replaced per end.
    pub url: CognigyUrl,
    pub authorization: Option<SecretString>,
    pub format: ForwardFormat,
    pub timeout: Duration,
}

/// What one attempt achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        status: u16,
    },
    /// Shadow mode: decided and logged, deliberately not sent.
    NotSent,
    /// Cognigy has no such handover: many Genesys conversations never were one. Not retried.
    NotFound,
    Failed {
        error: String,
        retry_after: Option<Duration>,
        /// A 4xx other than 404 and 429: our configuration is wrong, so an operator must act.
        configuration: bool,
    },
}

pub struct CognigyClient {
    http: reqwest::Client,
    target: CognigyTarget,
}

impl CognigyClient {
    pub fn new(target: CognigyTarget) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(target.timeout)
            .connect_timeout(target.timeout)
            // A redirected POST would turn into a GET; treat redirects as misconfiguration.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("handover-receiver/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, target })
    }

    pub fn url_for(&self, end: &EndNotice) -> String {
        self.target
            .url
            .for_organisation(end.key.organisation_id.as_str())
    }

    pub async fn send(&self, end: &EndNotice, idempotency_key: &str) -> Attempt {
        let mut request = self
            .http
            .post(self.url_for(end))
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", idempotency_key)
            .body(render(self.target.format, end));
        if let Some(secret) = &self.target.authorization {
            match HeaderValue::from_str(secret.expose_secret()) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    request = request.header(AUTHORIZATION, value);
                }
                Err(_) => {
                    return Attempt::Failed {
                        error: "HANDOVER_COGNIGY_AUTHORIZATION is not a valid header value".into(),
                        retry_after: None,
                        configuration: true,
                    };
                }
            }
        }
        match request.send().await {
            Ok(response) => classify(response.status().as_u16(), retry_after(response.headers())),
            Err(error) => Attempt::Failed {
                error: cause_of(&error),
                retry_after: None,
                configuration: false,
            },
        }
    }
}

/// What went wrong, first in a word an operator can search for (timeout, connection refused,
/// connection reset, DNS, TLS, ...), then the whole chain of causes. Never the URL: it may
/// carry a token.
pub fn cause_of(error: &reqwest::Error) -> String {
    let mut chain = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        let text = inner.to_string();
        if !chain.iter().any(|known| known.contains(&text)) {
            chain.push(text);
        }
        source = inner.source();
    }
    let io_kind = io_error_kind(error);
    let joined = chain.join(": ").to_lowercase();
    let cause = if error.is_timeout() || io_kind == Some(std::io::ErrorKind::TimedOut) {
        "timeout"
    } else if io_kind == Some(std::io::ErrorKind::ConnectionRefused) {
        "connection refused"
    } else if matches!(
        io_kind,
        Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted)
    ) || joined.contains("connection reset")
    {
        "connection reset"
    } else if joined.contains("dns error") || joined.contains("failed to lookup address") {
        "DNS"
    } else if joined.contains("certificate")
        || joined.contains("tls")
        || joined.contains("handshake")
    {
        "TLS"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else if joined.contains("connection closed") || joined.contains("incomplete message") {
        "connection closed"
    } else {
        "request"
    };
    let chain = chain.join(": ");
    let chain = match error.url() {
        Some(url) => chain.replace(url.as_str(), "<url>"),
        None => chain,
    };
    format!("{cause}: {chain}")
}

fn io_error_kind(error: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = inner.source();
    }
    None
}

fn classify(status: u16, retry_after: Option<Duration>) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered { status },
        404 => Attempt::NotFound,
        429 | 500..=599 => Attempt::Failed {
            error: format!("Cognigy answered {status}"),
            retry_after,
            configuration: false,
        },
        _ => Attempt::Failed {
            error: format!(
                "Cognigy answered {status}: check HANDOVER_COGNIGY_URL and HANDOVER_COGNIGY_AUTHORIZATION"
            ),
            retry_after,
            configuration: true,
        },
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_delivery_outcomes() {
        assert_eq!(classify(202, None), Attempt::Delivered { status: 202 });
        assert_eq!(classify(404, None), Attempt::NotFound);
        for (status, configuration) in [
            (429, false),
            (503, false),
            (500, false),
            (401, true),
            (400, true),
            (302, true),
        ] {
            match classify(status, None) {
                Attempt::Failed {
                    configuration: c, ..
                } => assert_eq!(c, configuration, "{status}"),
                other => panic!("{status} gave {other:?}"),
            }
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let parsed = retry_after(&headers).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}

//! The one builder of the Cognigy URL. `HANDOVER_COGNIGY_URL` may hold `{organisationId}` in its
//! path or in a query value only; the organisationId is percent-encoded into it, so whatever an
//! event carries can never move the call to another path, query, fragment or host.

use reqwest::Url;
use std::fmt;

pub const PLACEHOLDER: &str = "{organisationId}";
/// Stands in for the placeholder while the template is parsed: letters only, so the URL parser
/// keeps it as it is wherever it stands, and so the check below can see where it landed.
const MARKER: &str = "hrorganisationidmarker";

/// Why a template is refused at start-up. The text never repeats the URL: it may carry a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlTemplateError {
    #[error("is not a valid URL ({0})")]
    Unparsable(String),
    #[error("must use http or https")]
    Scheme,
    #[error("must not carry user information (user:password@); use HANDOVER_COGNIGY_AUTHORIZATION")]
    UserInfo,
    #[error("may hold {PLACEHOLDER} only in the path or in a query value, not in the {0}")]
    PlaceholderPlacement(&'static str),
}

/// A validated `HANDOVER_COGNIGY_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct CognigyUrl {
    /// The template as parsed, with [`MARKER`] where the placeholder stood.
    parsed: String,
    has_placeholder: bool,
}

impl fmt::Debug for CognigyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The query may carry a token.
        f.write_str("CognigyUrl(")?;
        f.write_str(&self.redacted())?;
        f.write_str(")")
    }
}

impl CognigyUrl {
    pub fn parse(template: &str) -> Result<Self, UrlTemplateError> {
        let has_placeholder = template.contains(PLACEHOLDER);
        if has_placeholder && template_authority(template).contains(MARKER) {
            return Err(UrlTemplateError::PlaceholderPlacement("host"));
        }
        let url = Url::parse(&template.replace(PLACEHOLDER, MARKER))
            .map_err(|error| UrlTemplateError::Unparsable(error.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlTemplateError::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlTemplateError::UserInfo);
        }
        if has_placeholder {
            if url
                .fragment()
                .is_some_and(|fragment| fragment.contains(MARKER))
            {
                return Err(UrlTemplateError::PlaceholderPlacement("fragment"));
            }
            if url.query_pairs().any(|(name, _)| name.contains(MARKER)) {
                return Err(UrlTemplateError::PlaceholderPlacement("query name"));
            }
        }
        Ok(Self {
            parsed: url.to_string(),
            has_placeholder,
        })
    }

    /// The URL for one organisation: its id percent-encoded into every placeholder.
    pub fn for_organisation(&self, organisation_id: &str) -> String {
        if !self.has_placeholder {
            return self.parsed.clone();
        }
        self.parsed
            .replace(MARKER, &percent_encode_segment(organisation_id))
    }

    /// Scheme, host, port and path, without the query (it may carry a token); for operators.
    pub fn redacted(&self) -> String {
        let mut url = Url::parse(&self.parsed).expect("parsed before");
        let had_query = url.query().is_some();
        url.set_query(None);
        url.set_fragment(None);
        let text = url.as_str().replace(MARKER, PLACEHOLDER);
        if had_query {
            format!("{text}?<hidden>")
        } else {
            text
        }
    }
}

/// The authority part of a template as written (between `//` and the next `/`, `?` or `#`).
fn template_authority(template: &str) -> String {
    let after_scheme = template
        .split_once("//")
        .map_or(template, |(_, rest)| rest)
        .replace(PLACEHOLDER, MARKER);
    after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Everything but RFC 3986's unreserved characters is escaped, and a name made only of dots is
/// escaped whole, so the result is one path segment and one query value, never `.` or `..`.
pub fn percent_encode_segment(text: &str) -> String {
    let only_dots = !text.is_empty() && text.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let unreserved = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'~')
            || byte == b'.' && !only_dots;
        if unreserved {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if text.is_empty() {
        // An empty segment would join two slashes; Cognigy would route it elsewhere.
        out.push_str("%00");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_goes_into_the_path_or_a_query_value_encoded() {
        let url = CognigyUrl::parse("https://c.example/handover/{organisationId}/end").unwrap();
        assert_eq!(
            url.for_organisation("handover-prod"),
            "https://c.example/handover/handover-prod/end"
        );
        assert_eq!(
            url.for_organisation(".."),
            "https://c.example/handover/%2E%2E/end"
        );
        assert_eq!(
            url.for_organisation("x?inject=1&a="),
            "https://c.example/handover/x%3Finject%3D1%26a%3D/end"
        );
        assert_eq!(
            url.for_organisation("a/b#c"),
            "https://c.example/handover/a%2Fb%23c/end"
        );
        assert_eq!(
            url.for_organisation("x\r\nHost: evil"),
            "https://c.example/handover/x%0D%0AHost%3A%20evil/end"
        );
        let query = CognigyUrl::parse("https://c.example/end?org={organisationId}&k=v").unwrap();
        assert_eq!(
            query.for_organisation("a&b=c"),
            "https://c.example/end?org=a%26b%3Dc&k=v"
        );
    }

    #[test]
    fn the_placeholder_anywhere_else_is_refused() {
        for (template, place) in [
            ("https://{organisationId}.cognigy.example/end", "host"),
            ("https://{organisationId}/end", "host"),
            ("http://127.0.0.1:{organisationId}/end", "host"),
            ("https://c.example/end#{organisationId}", "fragment"),
            ("https://c.example/end?{organisationId}=1", "query name"),
        ] {
            match CognigyUrl::parse(template) {
                Err(UrlTemplateError::PlaceholderPlacement(found)) => {
                    assert_eq!(found, place, "{template}")
                }
                other => panic!("{template}: {other:?}"),
            }
        }
    }

    #[test]
    fn user_information_and_other_schemes_are_refused() {
        assert_eq!(
            CognigyUrl::parse("https://user:secret@c.example/end"),
            Err(UrlTemplateError::UserInfo)
        );
        assert_eq!(
            CognigyUrl::parse("ftp://c.example/end"),
            Err(UrlTemplateError::Scheme)
        );
        let error = CognigyUrl::parse("https://user:secret@c.example/end").unwrap_err();
        assert!(!error.to_string().contains("secret"));
    }

    #[test]
    fn redacted_hides_the_query() {
        let url = CognigyUrl::parse("https://c.example/{organisationId}/end?token=s3cret").unwrap();
        assert_eq!(
            url.redacted(),
            "https://c.example/{organisationId}/end?<hidden>"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
    }
}

//! Fetching an application's `/metrics` over HTTP/1.1 (hyper's client connection on a tokio
//! socket), bounded in time and in size: a slow, dead, huge or garbled endpoint is an error with
//! its reason, never a hang or unbounded memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Largest body read from an endpoint; pgvigil's own is about 6 KB, a busy Spring Boot service's
/// a few hundred KB.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Longest application name accepted in `NAME=URL`: it shares a table row with the address.
pub const MAX_NAME_CHARS: usize = 24;

/// An endpoint to read, with its URL for display (credentials redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: url::Url,
    shown: String,
    /// The application's name, when given (`--app NAME=URL`).
    name: Option<String>,
    kept: KeptAlive,
}

/// The connection the last good fetch left open, for the next one: a dashboard reading twenty
/// instances every second otherwise spends most of its time opening and closing sockets.
/// Clones of an endpoint share it; a fetch takes it out while in flight, so a timed-out or
/// failed fetch drops it and the next one connects afresh.
#[derive(Clone, Default)]
struct KeptAlive(Arc<Mutex<Option<SendRequest<Empty<Bytes>>>>>);

impl KeptAlive {
    fn take(&self) -> Option<SendRequest<Empty<Bytes>>> {
        let taken = self.0.lock().map(|mut c| c.take()).unwrap_or(None);
        taken.filter(|s| !s.is_closed())
    }

    fn keep(&self, sender: SendRequest<Empty<Bytes>>) {
        if let Ok(mut c) = self.0.lock() {
            *c = Some(sender);
        }
    }
}

impl std::fmt::Debug for KeptAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeptAlive")
    }
}

/// Endpoints are equal by URL; the kept connection is a cache.
impl PartialEq for KeptAlive {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for KeptAlive {}

impl Endpoint {
    /// Parses `http://host:port/path`. `what` names the flag or variable for errors.
    pub fn parse(raw: &str, what: &str) -> Result<Self, ScrapeError> {
        let bad = |reason: &str| ScrapeError::BadUrl {
            what: what.to_string(),
            value: crate::sanitize::printable(&redact(raw)).into_owned(),
            reason: reason.to_string(),
        };
        let url = url::Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "http" {
            return Err(bad(
                "only http:// is supported (a metrics port inside the network)",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let shown = redact(url.as_str());
        Ok(Self {
            url,
            shown,
            name: None,
            kept: KeptAlive::default(),
        })
    }

    /// Parses an application's endpoint: `URL` or `NAME=URL` (`docs-api-1=http://10.0.4.11:8080/metrics`),
    /// the name shown beside the address. `what` names the flag or variable for errors.
    pub fn parse_app(raw: &str, what: &str) -> Result<Self, ScrapeError> {
        let raw = raw.trim();
        let bad = |reason: String| ScrapeError::BadApp {
            what: what.to_string(),
            value: crate::sanitize::printable(&redact(raw)).into_owned(),
            reason,
        };
        // A name has no `:` or `/`; a URL's own `=` (in its query) comes after `://`.
        let (name, url) = match raw.split_once('=') {
            Some((name, url)) if !name.contains([':', '/']) => (Some(name), url),
            _ => (None, raw),
        };
        if let Some(name) = name {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
            if name.is_empty()
                || name.chars().count() > MAX_NAME_CHARS
                || !name.chars().all(allowed)
            {
                return Err(bad(format!(
                    "the name must be 1 to {MAX_NAME_CHARS} letters, digits, `.`, `_` or `-`"
                )));
            }
        }
        let mut endpoint = Self::parse(url, what).map_err(|e| match e {
            ScrapeError::BadUrl { reason, .. } => bad(reason),
            other => other,
        })?;
        endpoint.name = name.map(str::to_string);
        Ok(endpoint)
    }

    /// The application's name given with `NAME=URL`.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The URL with any password replaced by `***`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// `host:port`, for compact display.
    pub fn authority(&self) -> String {
        format!(
            "{}:{}",
            self.url.host_str().unwrap_or("?"),
            self.url.port_or_known_default().unwrap_or(80)
        )
    }

    /// The same server with another path and query (for an API under a base URL).
    pub fn with_path_and_query(&self, path: &str, query: &[(&str, &str)]) -> Self {
        let mut url = self.url.clone();
        url.set_path(path);
        url.query_pairs_mut().clear().extend_pairs(query);
        Self {
            shown: self.shown.clone(),
            name: self.name.clone(),
            url,
            // The same server: the same kept connection.
            kept: self.kept.clone(),
        }
    }

    /// GET a JSON answer within `timeout` and [`MAX_BODY_BYTES`].
    pub async fn fetch_json(&self, timeout: Duration) -> Result<String, ScrapeError> {
        tokio::time::timeout(timeout, self.get(true))
            .await
            .unwrap_or(Err(ScrapeError::Timeout(timeout)))
    }

    /// GET the body within `timeout` and [`MAX_BODY_BYTES`].
    pub async fn fetch(&self, timeout: Duration) -> Result<String, ScrapeError> {
        tokio::time::timeout(timeout, self.get(false))
            .await
            .unwrap_or(Err(ScrapeError::Timeout(timeout)))
    }

    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, ScrapeError> {
        let host = self.url.host_str().unwrap_or_default().to_string();
        let port = self.url.port_or_known_default().unwrap_or(80);
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| ScrapeError::Connect(e.into()))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ScrapeError::Http(e.into()))?;
        // The connection's driver ends when its last sender is dropped or the peer closes.
        tokio::spawn(conn);
        Ok(sender)
    }

    async fn get(&self, json: bool) -> Result<String, ScrapeError> {
        // A kept connection the peer closed while idle fails at once: then once more afresh.
        if let Some(sender) = self.kept.take() {
            match self.exchange(sender, json).await {
                Err(ScrapeError::Http(_)) => {}
                answer => return answer,
            }
        }
        let sender = self.connect().await?;
        self.exchange(sender, json).await
    }

    async fn exchange(
        &self,
        mut sender: SendRequest<Empty<Bytes>>,
        json: bool,
    ) -> Result<String, ScrapeError> {
        let mut path = self.url.path().to_string();
        if let Some(q) = self.url.query() {
            path.push('?');
            path.push_str(q);
        }
        let mut request = hyper::Request::get(path)
            .header(hyper::header::HOST, self.authority())
            .header(
                hyper::header::ACCEPT,
                "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5",
            )
            .header(hyper::header::ACCEPT_ENCODING, "identity");
        if !self.url.username().is_empty() {
            let user = percent(self.url.username());
            let pass = self.url.password().map(percent).unwrap_or_default();
            request = request.header(
                hyper::header::AUTHORIZATION,
                format!("Basic {}", base64(format!("{user}:{pass}").as_bytes())),
            );
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| ScrapeError::Http(e.into()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ScrapeError::Http(e.into()))?;
        let status = response.status();
        let header = |name: hyper::header::HeaderName| {
            response
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase())
        };
        if !status.is_success() {
            // Redirects are not followed (a login page, or a hop to somewhere else): say where
            // it pointed, password redacted, escaped and short.
            let location = status.is_redirection().then(|| {
                let raw = response
                    .headers()
                    .get(hyper::header::LOCATION)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                shortened(&crate::sanitize::printable(&redact(&raw)))
            });
            return Err(ScrapeError::Status {
                code: status.as_u16(),
                reason: status.canonical_reason().unwrap_or("").to_string(),
                location,
            });
        }
        // Nothing is inflated: a compressed body (asked for or not) is refused, not unpacked
        // into who knows how many bytes.
        if let Some(encoding) = header(hyper::header::CONTENT_ENCODING)
            && !matches!(encoding.trim(), "" | "identity")
        {
            return Err(ScrapeError::Encoded(shortened(
                &crate::sanitize::printable(encoding.trim()),
            )));
        }
        let content_type = header(hyper::header::CONTENT_TYPE).unwrap_or_default();
        let refused = content_type.starts_with("text/html")
            || (!json && content_type.starts_with("application/json"));
        if refused {
            let shown = content_type.split(';').next().unwrap_or("").trim();
            return Err(ScrapeError::NotMetrics(shortened(
                &crate::sanitize::printable(shown),
            )));
        }
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ScrapeError::TooLarge
                } else {
                    ScrapeError::Http(TransportError::from_boxed(e))
                }
            })?
            .to_bytes();
        self.kept.keep(sender);
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// A URL's user or password as typed: percent-decoded as URLs are (`%2B` is a plus, and so is
/// `+`: form encoding's `+` for a space does not apply to the user part of a URL).
fn percent(s: &str) -> String {
    crate::config::percent_decode(s)
}

/// Text from a peer cut to one screen line.
fn shortened(text: &str) -> String {
    const CHARS: usize = 120;
    if text.chars().count() <= CHARS {
        return text.to_string();
    }
    let cut: String = text.chars().take(CHARS).collect();
    format!("{cut}...")
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Replaces the password of a URL with `***` (whatever the scheme; unparsable text is kept
/// only up to the `@`).
pub(crate) fn redact(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string().replace("%2A%2A%2A", "***")
        }
        Ok(u) => u.to_string(),
        Err(_) => match raw.rfind('@') {
            Some(at) => format!("***{}", &raw[at..]),
            None => raw.to_string(),
        },
    }
}

/// A connection or an HTTP exchange that broke, kept as the error it was (an I/O error, hyper's
/// error) so that its kind and its own source stay at hand. Two are equal when they say the
/// same. Built from words (`"connection refused".into()`) for failures with no error behind
/// them, such as a fixture's.
#[derive(Debug, Clone)]
pub struct TransportError(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl TransportError {
    pub(crate) fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(e))
    }

    fn from_boxed(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self(e.into())
    }

    /// The error itself.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for TransportError {}

impl From<std::io::Error> for TransportError {
    fn from(e: std::io::Error) -> Self {
        Self(std::sync::Arc::new(e))
    }
}

impl From<hyper::Error> for TransportError {
    fn from(e: hyper::Error) -> Self {
        Self(std::sync::Arc::new(e))
    }
}

impl From<hyper::http::Error> for TransportError {
    fn from(e: hyper::http::Error) -> Self {
        Self(std::sync::Arc::new(e))
    }
}

impl From<String> for TransportError {
    fn from(words: String) -> Self {
        Self(std::sync::Arc::new(std::io::Error::other(words)))
    }
}

impl From<&str> for TransportError {
    fn from(words: &str) -> Self {
        words.to_string().into()
    }
}

/// Why an endpoint could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScrapeError {
    /// The URL is not one pgvigil can read.
    #[error("{what}: `{value}` is not a metrics URL ({reason}); expected http://HOST:PORT/metrics")]
    BadUrl {
        /// The flag or variable.
        what: String,
        /// The value, password redacted.
        value: String,
        /// Why.
        reason: String,
    },
    /// An application endpoint (`--app`) is neither `URL` nor `NAME=URL`.
    #[error(
        "{what}: `{value}` is not an application endpoint ({reason}); expected URL or NAME=URL, \
         such as http://HOST:PORT/metrics or docs-api-1=http://HOST:PORT/metrics"
    )]
    BadApp {
        /// The flag or variable.
        what: String,
        /// The value, password redacted.
        value: String,
        /// Why.
        reason: String,
    },
    /// The fleet's selector is not a list of label matchers.
    #[error(
        "{what}: `{value}` is not a label-matcher list ({reason}); expected \
         {{name=\"v\", name=~\"re\", name!=\"v\", name!~\"re\", ...}}"
    )]
    BadSelector {
        /// The flag or variable.
        what: String,
        /// The value, escaped for the terminal.
        value: String,
        /// Why.
        reason: String,
    },
    /// No TCP connection.
    #[error("cannot connect: {0}")]
    Connect(#[source] TransportError),
    /// No complete answer in time.
    #[error("no answer within {}", crate::config::format_duration(*.0))]
    Timeout(Duration),
    /// Not 2xx.
    #[error(
        "answered {code} {reason}{}",
        location.as_ref().map_or(String::new(), |l| format!(" (redirect to {l}; not followed)"))
    )]
    Status {
        /// The status code.
        code: u16,
        /// Its reason phrase (`Found`).
        reason: String,
        /// For a redirect, where it pointed (redacted, escaped, shortened).
        location: Option<String>,
    },
    /// HTML or JSON, not the text exposition.
    #[error("answered {0}, not Prometheus text")]
    NotMetrics(String),
    /// A compressed body.
    #[error(
        "answered {0}-encoded body, not accepted (pgvigil asks for identity and inflates nothing)"
    )]
    Encoded(String),
    /// Over [`MAX_BODY_BYTES`].
    #[error("body larger than {} MiB", MAX_BODY_BYTES / 1024 / 1024)]
    TooLarge,
    /// A protocol error.
    #[error("HTTP error: {0}")]
    Http(#[source] TransportError),
    /// The body has none of the known pool metrics.
    #[error("no pool metrics in the body ({0} samples; expected pgvigil_pool_* or hikaricp_*)")]
    NoPoolMetrics(usize),
    /// A figure outside what it can be (see [`super::bounds`]).
    #[error("{series} = {value}: {expected}")]
    Implausible {
        /// The series as written (`hikaricp_connections_max{pool="x"}`), escaped.
        series: String,
        /// Its value as Prometheus writes it.
        value: String,
        /// What it may be.
        expected: String,
    },
    /// The same series twice in one body.
    #[error(
        "the series {0} appears twice in one body (Prometheus drops such duplicates; pgvigil \
         will not sum them)"
    )]
    Duplicate(String),
    /// More pool series than [`super::bounds::MAX_POOL_SERIES`].
    #[error(
        "more than {limit} pool series in one body (at {0}; the bound per target)",
        limit = super::bounds::MAX_POOL_SERIES
    )]
    TooManySeries(String),
    /// A histogram with more bucket bounds than [`super::bounds::MAX_BUCKETS`].
    #[error(
        "{0} has more than {limit} bucket bounds (the bound per histogram)",
        limit = super::bounds::MAX_BUCKETS
    )]
    TooManyBuckets(String),
    /// Prometheus answered, but not with an instant query's result pgvigil can use.
    #[error("{0}")]
    BadAnswer(String),
}

impl ScrapeError {
    /// Whether nothing answered (no connection, no answer in time, a broken exchange), as
    /// opposed to an answer pgvigil refuses.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::Timeout(_) | Self::Http(_))
    }

    /// The word for a source's row: UNREACHABLE when nothing answered, BAD ANSWER when what
    /// answered cannot be used.
    pub fn verdict(&self) -> &'static str {
        if self.is_unreachable() {
            "UNREACHABLE"
        } else {
            "BAD ANSWER"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_keeps_its_io_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint =
            Endpoint::parse(&format!("http://127.0.0.1:{port}/metrics"), "--app").unwrap();
        let Err(ScrapeError::Connect(cause)) = endpoint.fetch(Duration::from_secs(5)).await else {
            panic!("a refused connection is Connect");
        };
        let io = cause
            .get_ref()
            .downcast_ref::<std::io::Error>()
            .expect("the I/O error itself");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        let io = io.to_string();
        let err = ScrapeError::Connect(cause);
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.is_unreachable());
        assert_eq!(err.to_string(), format!("cannot connect: {io}"));
    }

    #[test]
    fn basic_auth_is_encoded_and_passwords_are_redacted() {
        assert_eq!(base64(b"app:s3cret"), "YXBwOnMzY3JldA==");
        assert_eq!(base64(b"ab"), "YWI=");
        let e = Endpoint::parse("http://app:s3cret@10.0.0.7:8080/metrics", "--app").unwrap();
        assert_eq!(e.shown(), "http://app:***@10.0.0.7:8080/metrics");
        assert_eq!(e.authority(), "10.0.0.7:8080");
        let err = Endpoint::parse("https://u:pw@x/metrics", "--app")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--app: `https://u:***@x/metrics`"), "{err}");
        assert!(!err.contains("pw@"), "{err}");
    }

    #[test]
    fn an_application_is_url_or_name_equals_url() {
        let e = Endpoint::parse_app("docs-api-1=http://10.0.0.7:8080/metrics", "--app").unwrap();
        assert_eq!(
            (e.name(), e.authority().as_str()),
            (Some("docs-api-1"), "10.0.0.7:8080")
        );
        // An `=` in the URL's query is the URL's.
        let e = Endpoint::parse_app("http://10.0.0.7:8080/metrics?x=1", "--app").unwrap();
        assert_eq!(e.name(), None);
        for (value, reason) in [
            ("=http://h:1/metrics", "the name must be"),
            ("a b=http://h:1/metrics", "the name must be"),
            ("api=ftp://u:pw@h/metrics", "only http://"),
            ("api", "relative URL"),
        ] {
            let err = Endpoint::parse_app(value, "--app").unwrap_err().to_string();
            assert!(err.starts_with("--app: `"), "{err}");
            assert!(err.contains(reason), "{value}: {err}");
            assert!(err.contains("expected URL or NAME=URL"), "{err}");
            assert!(!err.contains("pw@"), "{err}");
        }
    }

    #[test]
    fn a_plus_in_the_password_is_a_plus_and_percent_escapes_are_decoded() {
        // Form decoding turned `p+ss` into `p ss`.
        assert_eq!(percent("p+ss"), "p+ss");
        assert_eq!(percent("p%2Bss%20x%40y"), "p+ss x@y");
        // A `%` that starts no escape stays, before a multi-byte character too.
        assert_eq!(percent("100%"), "100%");
        assert_eq!(percent("%a\u{e9}"), "%a\u{e9}");
    }
}

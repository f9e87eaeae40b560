//! Where a driver error becomes words. Every sqlx error pgvigil meets is turned, once, where it
//! enters pgvigil (a connect or an acquire, a check's read, the dev database, the PgBouncer
//! console, the dry-run), into a [`DbError`]: its kind (retryable or fatal, and why: [`kind`]),
//! its words for a person (the server's message, or the driver's description, with the
//! password removed), and the driver's error as its [`source`](std::error::Error::source),
//! scrubbed as well. Error enums further out carry a `DbError` and print it as it is: nobody
//! downstream explains or scrubs again, and no printer of the chain (`{:#}`, `{:?}`,
//! color-eyre's report) can show a password.

mod kind;

use std::fmt;
use std::sync::Arc;

pub use self::kind::{FailureKind, classify, classify_sqlstate};
use crate::config::DatabaseUrl;

/// A driver error's words for a person: a server error's own message (sqlx's Display adds
/// "error returned from database: " before it and " at line N", a line of PostgreSQL's source,
/// after it), else the driver's description. Not scrubbed: [`DbError::new`] scrubs them; the
/// few readers that keep the `sqlx::Error` itself (a read's savepoint, a migration's position)
/// take their words from here too, so there is one wording.
pub(crate) fn words(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    }
}

/// What holds the secrets a driver's message might echo, and removes them from text.
/// [`DatabaseUrl`] is one (its password, raw and percent-decoded, and `password=` values);
/// a dev server started with a password of its own is another.
pub trait Secrets {
    /// `text` without the secrets (each replaced by `***`).
    fn scrub(&self, text: &str) -> String;
}

impl Secrets for DatabaseUrl {
    fn scrub(&self, text: &str) -> String {
        DatabaseUrl::scrub(self, text)
    }
}

/// Both sets of secrets: a migration run on the dev database may carry production's password
/// (a dblink connection string), and its error may echo it.
impl<A: Secrets + ?Sized, B: Secrets + ?Sized> Secrets for (&A, &B) {
    fn scrub(&self, text: &str) -> String {
        self.1.scrub(&self.0.scrub(text))
    }
}

/// For a failure on a connection that is already open, whose login the caller does not hold
/// (connect options built elsewhere): what the server says about a statement holds nothing of
/// the login, so there is nothing to remove.
#[derive(Debug, Clone, Copy)]
pub struct NoSecrets;

impl Secrets for NoSecrets {
    fn scrub(&self, text: &str) -> String {
        text.to_string()
    }
}

/// A database failure as pgvigil reports it: classified, worded and scrubbed once, where it
/// entered. `Display` is the words; [`source`](std::error::Error::source) is the driver's own
/// error, scrubbed too ([`DriverError`]). Cheap to clone.
#[derive(Clone)]
pub struct DbError {
    kind: FailureKind,
    words: String,
    // Shared, so that the error stays small (it travels in every error enum) and cheap to clone.
    source: Option<Arc<DriverError>>,
}

impl DbError {
    /// Classifies `err`, words it for a person and removes `secrets` from every text it holds:
    /// for a server error its message (sqlx's Display appends " at line N", a line of
    /// PostgreSQL's own source code, which reads like a position in the user's SQL), otherwise
    /// the driver's description.
    pub fn new(err: sqlx::Error, secrets: &(impl Secrets + ?Sized)) -> Self {
        let kind = classify(&err);
        let words = secrets.scrub(&words(&err));
        Self {
            kind,
            words,
            source: Some(Arc::new(DriverError::new(err, secrets))),
        }
    }

    /// A failure pgvigil saw itself, with no driver error behind it (a deadline of its own
    /// passed). `words` must hold no secret: scrub text that came from elsewhere first.
    pub(crate) fn observed(kind: FailureKind, words: String) -> Self {
        Self {
            kind,
            words,
            source: None,
        }
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// Whether a later attempt can overcome it (the server restarting, the network, a timeout).
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// The words for a person, without secrets (the same as `Display`).
    pub fn words(&self) -> &str {
        &self.words
    }

    /// What to fix, in the words of this failure where they say more than its kind.
    pub fn hint(&self) -> String {
        self.kind.hint_for(&self.words)
    }

    /// The server's SQLSTATE (`55P03` lock not available, `42501` permission denied), when the
    /// server returned one.
    pub fn sqlstate(&self) -> Option<&str> {
        self.source.as_ref()?.sqlstate.as_deref()
    }

    /// The driver's error itself, for code that inspects it (a position, a constraint name).
    /// Its text is NOT scrubbed: never print it; print the `DbError` instead.
    pub fn driver(&self) -> Option<&sqlx::Error> {
        self.source.as_ref().map(|s| &s.error)
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words)
    }
}

impl fmt::Debug for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbError")
            .field("kind", &self.kind)
            .field("words", &self.words)
            .field("source", &self.source)
            .finish()
    }
}

/// Two failures are the same when they say the same (kind and words): what a screen that shows
/// the latest failure compares.
impl PartialEq for DbError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.words == other.words
    }
}

impl Eq for DbError {}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as _)
    }
}

/// The driver's error as pgvigil passes it on: its `Display` and `Debug` are sqlx's, scrubbed
/// of the secrets when the error entered. The chain ends here: the driver's own sources (an
/// I/O error, a TLS library's error) are in that text already, and printing them raw could
/// show what the scrub removed.
pub struct DriverError {
    text: String,
    debug: String,
    sqlstate: Option<String>,
    error: sqlx::Error,
}

impl DriverError {
    fn new(error: sqlx::Error, secrets: &(impl Secrets + ?Sized)) -> Self {
        Self {
            text: secrets.scrub(&error.to_string()),
            debug: secrets.scrub(&format!("{error:?}")),
            sqlstate: error
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned()),
            error,
        }
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.debug)
    }
}

impl std::error::Error for DriverError {}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    const SECRET: &str = "s3cr#t/p@ss?x";

    fn url() -> DatabaseUrl {
        DatabaseUrl::parse(
            "postgres://app:s3cr%23t%2Fp%40ss%3Fx@db.internal/prod?password=qu3ry-s3cret",
        )
        .unwrap()
    }

    fn every_text(err: &DbError) -> Vec<String> {
        let mut texts = vec![err.to_string(), format!("{err:?}"), format!("{err:#}")];
        let mut source = err.source();
        while let Some(s) = source {
            texts.push(s.to_string());
            texts.push(format!("{s:?}"));
            source = s.source();
        }
        texts
    }

    #[test]
    fn driver_text_that_echoes_the_password_is_scrubbed_everywhere() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("refused for {SECRET} (qu3ry-s3cret, s3cr%23t%2Fp%40ss%3Fx)"),
        );
        let err = DbError::new(sqlx::Error::Io(io), &url());
        assert_eq!(err.kind(), FailureKind::Io);
        assert!(err.is_retryable());
        let texts = every_text(&err);
        assert!(
            texts.len() >= 5,
            "the driver error is the source: {texts:?}"
        );
        for text in texts {
            assert!(text.contains("refused for ***"), "{text}");
            for secret in [SECRET, "qu3ry-s3cret", "s3cr%23t%2Fp%40ss%3Fx"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        // The driver error itself stays available to code that inspects it.
        assert!(matches!(err.driver(), Some(sqlx::Error::Io(_))));
    }

    #[test]
    fn configuration_errors_are_fatal_with_a_hint() {
        let err = DbError::new(
            sqlx::Error::Configuration(format!("bad option near {SECRET}").into()),
            &url(),
        );
        assert_eq!(err.kind(), FailureKind::Configuration);
        assert!(!err.is_retryable());
        assert_eq!(err.hint(), FailureKind::Configuration.hint());
        for text in every_text(&err) {
            assert!(!text.contains(SECRET), "{text}");
        }
    }

    #[test]
    fn observed_failures_have_no_driver_source() {
        let err = DbError::observed(FailureKind::Timeout, "no connection within 5s".into());
        assert_eq!(err.to_string(), "no connection within 5s");
        assert!(err.source().is_none() && err.driver().is_none() && err.sqlstate().is_none());
        assert!(err.is_retryable());
    }
}

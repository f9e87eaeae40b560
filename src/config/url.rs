//! The database URL, held so that its password cannot leak: `Display` and `Debug` print
//! `postgres://user:***@host:5432/db`, and `scrub` removes the password from any text (a driver
//! error, a log line) before pgvigil shows it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use url::Url;

/// sslmode values libpq and sqlx understand, quoted in errors.
pub const ACCEPTED_SSLMODES: &str = "disable, allow, prefer, require, verify-ca, verify-full";

/// Why a DATABASE_URL was refused. Messages never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is not a URL ({reason}); expected postgres://user:password@host:5432/database")]
    Unparsable { reason: String },
    #[error("has scheme `{scheme}`; expected postgres:// or postgresql://")]
    Scheme { scheme: String },
    #[error("has sslmode=`{value}`; expected one of: {ACCEPTED_SSLMODES}")]
    SslMode { value: String },
    #[error(
        "names sslrootcert=`{path}`, which cannot be read ({reason}); expected a readable PEM file"
    )]
    SslRootCert { path: String, reason: String },
    #[error(
        "has no host; expected postgres://user:password@host:5432/database or ?host=/socket/dir"
    )]
    NoHost,
}

/// A validated PostgreSQL URL that redacts its own password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: Url,
    redacted: String,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let url = Url::parse(raw.trim()).map_err(|e| UrlError::Unparsable {
            // url's messages describe the defect without echoing the input.
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(UrlError::Scheme {
                scheme: url.scheme().to_string(),
            });
        }
        let socket_host = url
            .query_pairs()
            .any(|(k, v)| k == "host" && v.starts_with('/'));
        if url.host_str().is_none_or(str::is_empty) && !socket_host {
            return Err(UrlError::NoHost);
        }
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" | "ssl-mode" if PgSslMode::from_str(&value).is_err() => {
                    return Err(UrlError::SslMode {
                        value: value.into_owned(),
                    });
                }
                "sslrootcert" | "ssl-root-cert" | "ssl-ca" => {
                    if let Err(e) = std::fs::File::open(value.as_ref()) {
                        return Err(UrlError::SslRootCert {
                            path: value.into_owned(),
                            reason: e.to_string(),
                        });
                    }
                }
                _ => {}
            }
        }
        let redacted = redact(&url);
        Ok(Self { url, redacted })
    }

    /// Connect options for sqlx; sslmode, sslrootcert, host=/socket and the rest come from the URL.
    pub fn connect_options(&self) -> PgConnectOptions {
        // The URL was validated above; sqlx parses the same query keys we checked.
        PgConnectOptions::from_str(self.url.as_str())
            .expect("a URL validated by DatabaseUrl::parse is accepted by sqlx")
    }

    pub fn username(&self) -> String {
        let user = self.url.username();
        if user.is_empty() {
            // libpq's default is the operating-system user; sqlx follows it.
            std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "postgres".into())
        } else {
            percent_decode(user)
        }
    }

    pub fn database(&self) -> String {
        let path = self.url.path().trim_start_matches('/');
        if path.is_empty() {
            self.username()
        } else {
            percent_decode(path)
        }
    }

    /// `host:port`, or the socket directory for a unix-socket URL.
    pub fn endpoint(&self) -> String {
        if let Some((_, dir)) = self
            .url
            .query_pairs()
            .find(|(k, v)| k == "host" && v.starts_with('/'))
        {
            let port = self.url.port().unwrap_or(5432);
            return format!("{dir}/.s.PGSQL.{port}");
        }
        format!(
            "{}:{}",
            self.url.host_str().unwrap_or("localhost"),
            self.url.port().unwrap_or(5432)
        )
    }

    pub fn ssl_root_cert(&self) -> Option<PathBuf> {
        self.url
            .query_pairs()
            .find(|(k, _)| matches!(k.as_ref(), "sslrootcert" | "ssl-root-cert" | "ssl-ca"))
            .map(|(_, v)| PathBuf::from(v.as_ref()))
    }

    pub fn has_password(&self) -> bool {
        self.url.password().is_some()
    }

    /// The URL with its password: only for handing to the driver. Never log or display it.
    pub fn expose_secret(&self) -> &str {
        self.url.as_str()
    }

    /// Removes the password (raw and percent-decoded) from `text`, for driver messages that
    /// might echo it.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Some(pw) = self.url.password() {
            let decoded = percent_decode(pw);
            for secret in [pw.to_string(), decoded] {
                if secret.len() >= 2 {
                    out = out.replace(&secret, "***");
                }
            }
        }
        out
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted)
    }
}

impl serde::Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted)
    }
}

fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    // Query values such as `password=` or `sslpassword=` are secrets too.
    let pairs: Vec<(String, String)> = shown
        .query_pairs()
        .map(|(k, v)| {
            let v = if k.contains("password") {
                "***".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    if !pairs.is_empty() {
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // Show the default port so on-call can see exactly where pgvigil points.
    if shown.port().is_none() && shown.host_str().is_some_and(|h| !h.is_empty()) {
        let _ = shown.set_port(Some(5432));
    }
    shown.to_string().replace("%2A%2A%2A", "***")
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_debug_hide_the_password() {
        let url = DatabaseUrl::parse("postgres://app:hunter2secret@db.internal/prod").unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db.internal:5432/prod");
        let debug = format!("{url:?}");
        assert!(!debug.contains("hunter2secret"), "{debug}");
        assert!(debug.contains("app:***@"), "{debug}");
        assert_eq!(
            serde_json::to_string(&url).unwrap(),
            "\"postgres://app:***@db.internal:5432/prod\""
        );
    }

    #[test]
    fn query_passwords_are_redacted_too() {
        let url =
            DatabaseUrl::parse("postgresql://app@h:6432/db?password=topsecret&sslmode=require")
                .unwrap();
        let shown = url.to_string();
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
    }

    #[test]
    fn scrub_removes_raw_and_decoded_password() {
        let url = DatabaseUrl::parse("postgres://app:p%40ss%2Fword@h/db").unwrap();
        let text = "failed for p@ss/word and p%40ss%2Fword";
        assert_eq!(url.scrub(text), "failed for *** and ***");
    }

    #[test]
    fn refuses_other_schemes_and_bad_sslmode() {
        assert_eq!(
            DatabaseUrl::parse("mysql://a:b@h/db").unwrap_err(),
            UrlError::Scheme {
                scheme: "mysql".into()
            }
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://a@h/db?sslmode=sometimes").unwrap_err(),
            UrlError::SslMode { value } if value == "sometimes"
        ));
        assert!(matches!(
            DatabaseUrl::parse("postgres://a@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .unwrap_err(),
            UrlError::SslRootCert { path, .. } if path == "/nonexistent/ca.pem"
        ));
    }

    #[test]
    fn socket_urls_are_accepted() {
        let url = DatabaseUrl::parse("postgres://app:pw@localhost:5433/db?host=/tmp/pg").unwrap();
        assert_eq!(url.endpoint(), "/tmp/pg/.s.PGSQL.5433");
        assert_eq!(
            url.connect_options().get_socket().unwrap().to_str(),
            Some("/tmp/pg")
        );
    }
}

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
#[non_exhaustive]
pub enum UrlError {
    /// Not a URL at all.
    #[error("is not a URL ({reason}); expected postgres://user:password@host:5432/database")]
    Unparsable {
        /// What the URL parser objected to (never the input itself).
        reason: String,
    },
    /// Not a PostgreSQL URL.
    #[error("has scheme `{scheme}`; expected postgres:// or postgresql://")]
    Scheme {
        /// The scheme it has instead.
        scheme: String,
    },
    /// An sslmode libpq and sqlx do not know.
    #[error("has sslmode=`{value}`; expected one of: {ACCEPTED_SSLMODES}")]
    SslMode {
        /// The value given.
        value: String,
    },
    /// The `sslrootcert` file cannot be read (checked now, not at connect time).
    #[error(
        "names sslrootcert=`{path}`, which cannot be read ({reason}); expected a readable PEM file"
    )]
    SslRootCert {
        /// The path given.
        path: String,
        /// Why it cannot be read (absent, not a regular file, too large...).
        reason: String,
    },
    /// Neither a host nor a `?host=/socket/dir` parameter.
    #[error(
        "has no host; expected postgres://user:password@host:5432/database or ?host=/socket/dir"
    )]
    NoHost,
    /// A query parameter sqlx does not understand (its value is not echoed: it may be a secret).
    #[error("has an unknown parameter `{key}`; expected only {ACCEPTED_PARAMETERS}")]
    UnknownParameter {
        /// The parameter's name.
        key: String,
    },
    /// sqlx itself refused the URL (a port that is not a number, a bad escape).
    #[error("is refused by the driver ({reason}); check the port, host and parameters")]
    Driver {
        /// The driver's message, password removed.
        reason: String,
    },
}

/// Query parameters sqlx understands. Anything else would be logged by the driver, value
/// included, so it is refused here without echoing the value.
pub const ACCEPTED_PARAMETERS: &str = "sslmode, sslrootcert, sslcert, sslkey, host, hostaddr, \
     port, dbname, user, password, application_name, options, statement-cache-capacity";

fn known_parameter(key: &str) -> bool {
    matches!(
        key,
        "sslmode"
            | "ssl-mode"
            | "sslrootcert"
            | "ssl-root-cert"
            | "ssl-ca"
            | "sslcert"
            | "ssl-cert"
            | "sslkey"
            | "ssl-key"
            | "statement-cache-capacity"
            | "host"
            | "hostaddr"
            | "port"
            | "dbname"
            | "user"
            | "password"
            | "application_name"
            | "options"
    ) || key.starts_with("options[")
}

/// A validated PostgreSQL URL that redacts its own password.
#[derive(Clone)]
pub struct DatabaseUrl {
    url: Url,
    redacted: String,
    options: PgConnectOptions,
}

impl PartialEq for DatabaseUrl {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl Eq for DatabaseUrl {}

impl DatabaseUrl {
    /// Validates `raw` (scheme, host, parameters, sslmode, a readable sslrootcert) and parses it
    /// for sqlx once, so a bad URL is a configuration error here rather than at connect time.
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let url = Url::parse(raw.trim()).map_err(|e| UrlError::Unparsable {
            // url's messages describe the defect without echoing the input.
            reason: format!("{e}{}", unencoded_password_hint(raw)),
        })?;
        // `postgres://app:123/x@db/prod` parses as host `app`, port 123 and a database named
        // after the rest of the password: refuse it rather than connect somewhere else (and
        // show part of the password as a database name).
        let hint = unencoded_password_hint(raw);
        if !hint.is_empty() && url.password().is_none() && url.path().contains('@') {
            return Err(UrlError::Unparsable {
                reason: format!("an `@` comes after the host part{hint}"),
            });
        }
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
            if !known_parameter(&key) {
                return Err(UrlError::UnknownParameter {
                    key: key.into_owned(),
                });
            }
            match key.as_ref() {
                "sslmode" | "ssl-mode" if PgSslMode::from_str(&value).is_err() => {
                    return Err(UrlError::SslMode {
                        value: value.into_owned(),
                    });
                }
                "sslrootcert" | "ssl-root-cert" | "ssl-ca" => {
                    // Read here, bounded, regular files only: the driver would read a FIFO
                    // forever at connect time.
                    if let Err(e) =
                        crate::files::read_text(std::path::Path::new(value.as_ref()), 1024 * 1024)
                    {
                        return Err(UrlError::SslRootCert {
                            path: value.into_owned(),
                            reason: e.reason(),
                        });
                    }
                }
                _ => {}
            }
        }
        // Parsed once, here: a URL sqlx would refuse (a port that is not a number, a bad
        // escape) is a configuration error now, not a panic later in a background task.
        let mut options =
            PgConnectOptions::from_str(url.as_str()).map_err(|e| UrlError::Driver {
                reason: scrub_secret(&e.to_string(), url.password()),
            })?;
        // sqlx keeps the brackets of an IPv6 literal (`[::1]`) as the host name, which then
        // does not resolve; connect to the address itself.
        if let Some(url::Host::Ipv6(addr)) = url.host() {
            options = options.host(&addr.to_string());
        }
        let redacted = redact(&url);
        Ok(Self {
            url,
            redacted,
            options,
        })
    }

    /// Connect options for sqlx; sslmode, sslrootcert, host=/socket and the rest come from the URL.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    /// The user name from the URL, percent-decoded; without one, `PGUSER`, else `USER`, else
    /// `postgres`, as libpq does.
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

    /// The database name from the URL's path, percent-decoded; without one, the user name, as
    /// libpq does.
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

    /// The `sslrootcert` (or `ssl-root-cert`, `ssl-ca`) path, when the URL names one.
    pub fn ssl_root_cert(&self) -> Option<PathBuf> {
        self.url
            .query_pairs()
            .find(|(k, _)| matches!(k.as_ref(), "sslrootcert" | "ssl-root-cert" | "ssl-ca"))
            .map(|(_, v)| PathBuf::from(v.as_ref()))
    }

    /// Whether the URL's user part carries a password (a `password=` parameter does not count).
    pub fn has_password(&self) -> bool {
        self.url.password().is_some()
    }

    /// The URL as libpq tools (pg_dump) read it, WITHOUT the password and without its query
    /// parameters, which come back as libpq's environment variables (`PGSSLMODE`,
    /// `PGSSLROOTCERT`, `PGHOST` for a socket directory, `PGOPTIONS`, ...): a URL query would
    /// need libpq's exact percent-encoding, an environment variable needs none. Hand the
    /// password over through [`DatabaseUrl::password`] and `PGPASSWORD`, never on a command
    /// line.
    pub fn libpq_parts(&self) -> (String, Vec<(&'static str, String)>) {
        let mut url = self.url.clone();
        let _ = url.set_password(None);
        url.set_query(None);
        let mut env = Vec::new();
        for (k, v) in self.url.query_pairs() {
            let var = match k.as_ref() {
                "sslmode" | "ssl-mode" => "PGSSLMODE",
                "sslrootcert" | "ssl-root-cert" | "ssl-ca" => "PGSSLROOTCERT",
                "sslcert" | "ssl-cert" => "PGSSLCERT",
                "sslkey" | "ssl-key" => "PGSSLKEY",
                "host" => "PGHOST",
                "hostaddr" => "PGHOSTADDR",
                "port" => "PGPORT",
                "dbname" => "PGDATABASE",
                "user" => "PGUSER",
                "application_name" => "PGAPPNAME",
                "options" => "PGOPTIONS",
                _ => continue,
            };
            env.push((var, v.into_owned()));
        }
        if self
            .url
            .query_pairs()
            .any(|(k, _)| k == "host" || k == "hostaddr")
        {
            // In a connection URL its host beats PGHOST: a socket directory given as `?host=`
            // (what sqlx connected to) must reach libpq without the URL's own host, or pg_dump
            // would connect to `localhost` over TCP instead. The user and port move to the
            // environment ahead of the query's own, which win.
            let mut moved = Vec::new();
            let user = percent_decode(self.url.username());
            if !user.is_empty() {
                moved.push(("PGUSER", user));
            }
            if let Some(port) = self.url.port() {
                moved.push(("PGPORT", port.to_string()));
            }
            moved.append(&mut env);
            return (format!("postgresql://{}", self.url.path()), moved);
        }
        (url.to_string(), env)
    }

    /// The password, percent-decoded (from the URL's user part or a `password=` parameter).
    pub fn password(&self) -> Option<String> {
        self.url.password().map(percent_decode).or_else(|| {
            self.url
                .query_pairs()
                .find(|(k, _)| k == "password")
                .map(|(_, v)| v.into_owned())
        })
    }

    /// The URL with its password: only for handing to the driver. Never log or display it.
    pub fn expose_secret(&self) -> &str {
        self.url.as_str()
    }

    /// Removes the secrets (the password, raw and percent-decoded, and `password=` /
    /// `sslpassword=` query values) from `text`, for driver messages that might echo them.
    /// A driver error is scrubbed with it once, where it enters pgvigil (a `DbError`).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = scrub_secret(text, self.url.password());
        for (k, v) in self.url.query_pairs() {
            if k.contains("password") {
                out = scrub_secret(&out, Some(&v));
            }
        }
        out
    }
}

/// How a database is named on screen, built once from its URL (never with the password):
/// the redacted URL, and the short `user@host:port/db` for narrow places.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// `postgres://user:***@host:5432/db?sslmode=...`
    pub url: String,
    /// `user@host:5432/db`
    pub short: String,
}

impl DatabaseUrl {
    /// The names to show this database by.
    pub fn target(&self) -> Target {
        Target {
            url: self.redacted.clone(),
            short: format!(
                "{}@{}/{}",
                self.username(),
                self.endpoint(),
                self.database()
            ),
        }
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

/// When the part of a URL before its last `@` holds `/`, `?` or `#`, the password probably
/// does, unencoded: the URL parser then ends the host part early. Says so without showing it.
fn unencoded_password_hint(raw: &str) -> &'static str {
    let Some(rest) = raw.trim().split_once("://").map(|(_, r)| r) else {
        return "";
    };
    match rest.rfind('@') {
        Some(at) if rest[..at].contains(['/', '?', '#']) => {
            "; the part before the last @ holds `/`, `?` or `#`: if the password contains them, \
             percent-encode them (/ as %2F, ? as %3F, # as %23)"
        }
        _ => "",
    }
}

/// A raw URL string as it may be shown: password masked, or hidden whole when it is not a URL.
pub fn redact_raw(raw: &str) -> String {
    match Url::parse(raw.trim()) {
        Ok(url) => redact(&url),
        Err(_) => "<hidden: not a URL>".to_string(),
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

/// Replaces `secret` (as written and percent-decoded) in `text`. One-character secrets are
/// left alone: replacing every occurrence of a single letter would make messages unreadable.
fn scrub_secret(text: &str, secret: Option<&str>) -> String {
    let Some(secret) = secret else {
        return text.to_string();
    };
    let mut out = text.to_string();
    for s in [secret.to_string(), percent_decode(secret)] {
        if s.chars().count() >= 2 {
            out = out.replace(&s, "***");
        }
    }
    out
}

/// Percent-decoding as URLs use it (`+` stays a plus, unlike form encoding). Works on bytes,
/// so a `%` before a multi-byte character is kept as written rather than split mid-character.
pub(crate) fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_socket_directory_in_the_query_reaches_libpq_without_the_urls_host() {
        let url = super::DatabaseUrl::parse(
            "postgres://app:pw@localhost:6000/bench?host=/tmp/pg%20sock&port=5433&sslmode=disable",
        )
        .unwrap();
        let (target, env) = url.libpq_parts();
        assert_eq!(target, "postgresql:///bench");
        assert_eq!(
            env,
            vec![
                ("PGUSER", "app".to_string()),
                ("PGPORT", "6000".to_string()),
                ("PGHOST", "/tmp/pg sock".to_string()),
                ("PGPORT", "5433".to_string()),
                ("PGSSLMODE", "disable".to_string()),
            ]
        );
        let plain = super::DatabaseUrl::parse("postgres://app:pw@db:5432/x").unwrap();
        assert_eq!(plain.libpq_parts().0, "postgres://app@db:5432/x");
    }

    #[test]
    fn an_unencoded_slash_in_the_password_is_explained_not_misread() {
        for raw in [
            "postgres://app:pa/ss@db:5432/prod",
            "postgres://app:123/ss@db:5432/prod",
            "postgres://app:pa#ss@db/prod",
            "postgres://app:pa?ss@db/prod",
        ] {
            let err = DatabaseUrl::parse(raw).unwrap_err().to_string();
            assert!(err.contains("percent-encode"), "{raw}: {err}");
            assert!(!err.contains("ss@db"), "{raw}: {err}");
        }
        assert!(DatabaseUrl::parse("postgres://app:pa%2Fss@db/prod").is_ok());
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets_for_the_driver() {
        let url = DatabaseUrl::parse("postgres://app:pw@[::1]:5433/prod").unwrap();
        assert_eq!(url.connect_options().get_host(), "::1");
        assert_eq!(url.to_string(), "postgres://app:***@[::1]:5433/prod");
    }

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
    fn unknown_parameters_are_refused_without_their_value() {
        let err = DatabaseUrl::parse("postgres://a:b@h/db?token=s3cr3t-token").unwrap_err();
        assert_eq!(
            err,
            UrlError::UnknownParameter {
                key: "token".into()
            }
        );
        assert!(!err.to_string().contains("s3cr3t-token"));
    }

    #[test]
    fn urls_the_driver_refuses_are_errors_not_panics() {
        let err = DatabaseUrl::parse("postgres://a:pw-x@h/db?port=abc").unwrap_err();
        assert!(matches!(err, UrlError::Driver { .. }), "{err}");
        assert!(!err.to_string().contains("pw-x"));
    }

    #[test]
    fn scrub_handles_plus_signs_and_query_passwords() {
        let url = DatabaseUrl::parse("postgres://app:a+b%2Bc@h/db?password=keyphrase").unwrap();
        assert_eq!(url.scrub("x a+b+c y keyphrase"), "x *** y ***");
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

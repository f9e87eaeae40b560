//! The dev database: where migration SQL runs when pgvigil judges it, never the server behind
//! DATABASE_URL. Like Atlas's dev database, it is either a private throwaway PostgreSQL that
//! pgvigil starts on this machine (same major version as production, with pgvector), or an
//! empty scratch server the engineer names with `--dev-url` / `DEV_DATABASE_URL`. Each use gets
//! a database of its own (`pgvigil_scratch_...`) that is dropped afterwards; one left by a
//! process that was killed outright is found and dropped by the next run.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};

use std::any::Any;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::config::DatabaseUrl;
use crate::sanitize::quote_ident;

mod extension_policy;
mod size_bound;
pub use extension_policy::{ExtensionPolicy, RefusedExtension, migration_file};
pub use size_bound::{ACCEPTED_SIZE, DEFAULT_MAX_DEV_SIZE, SizeWatch, format_size, parse_size};

/// Starts a dev server that pgvigil owns outright (a private throwaway cluster): the library
/// does not care who starts it. The `pgvigil` binary provides one built on
/// `pgvigil-cluster`; an application may provide its own.
pub trait DevProvider: Send + Sync {
    /// Starts a server of PostgreSQL `major` (production's, when known) and returns it as a
    /// [`DevServer`] made with [`DevServer::owned`].
    fn start(&self, major: Option<u32>) -> BoxFuture<'_, Result<DevServer, DevError>>;
}

/// Where the dev database comes from, and which extensions it may create
/// ([`ExtensionPolicy`]: by default none that reach other servers).
#[derive(Clone)]
pub struct DevSource {
    origin: DevOrigin,
    extensions: ExtensionPolicy,
}

/// Who provides the dev server.
#[derive(Clone)]
pub enum DevOrigin {
    /// A server pgvigil starts and owns (a private cluster), removed afterwards.
    Owned(Arc<dyn DevProvider>),
    /// An empty scratch server (staging, a CI service); pgvigil creates and drops its own
    /// databases there and touches nothing else.
    Url(Box<DatabaseUrl>),
}

impl std::fmt::Debug for DevSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.origin {
            DevOrigin::Owned(_) => f.write_str("DevSource::Owned")?,
            DevOrigin::Url(url) => write!(f, "DevSource::Url({url})")?,
        }
        let allowed: Vec<&str> = self.extensions.allowed().collect();
        if !allowed.is_empty() {
            write!(f, " allowing {}", allowed.join(", "))?;
        }
        Ok(())
    }
}

impl DevSource {
    /// A server pgvigil starts through `provider` (a private cluster).
    pub fn owned(provider: Arc<dyn DevProvider>) -> Self {
        Self {
            origin: DevOrigin::Owned(provider),
            extensions: ExtensionPolicy::refusing(),
        }
    }

    /// An empty scratch server at `url`.
    pub fn url(url: DatabaseUrl) -> Self {
        Self {
            origin: DevOrigin::Url(Box::new(url)),
            extensions: ExtensionPolicy::refusing(),
        }
    }

    /// Lets the dev database create these extensions although they reach other servers
    /// (`--allow-extension`).
    pub fn with_extensions(mut self, policy: ExtensionPolicy) -> Self {
        self.extensions = policy;
        self
    }

    /// Which extensions the dev database may create.
    pub fn extensions(&self) -> &ExtensionPolicy {
        &self.extensions
    }

    /// Who provides the server.
    pub fn origin(&self) -> &DevOrigin {
        &self.origin
    }

    /// `--dev-url` over `DEV_DATABASE_URL` (from the environment, or `fallback` when the
    /// caller read it from a .env file); neither means `owned`.
    pub fn from_flag_or_env(
        flag: Option<&str>,
        fallback: Option<String>,
        owned: Arc<dyn DevProvider>,
    ) -> Result<Self, DevError> {
        let (raw, origin) = match flag {
            Some(v) => (v.to_string(), "--dev-url"),
            None => match std::env::var("DEV_DATABASE_URL").ok().or(fallback) {
                Some(v) if !v.trim().is_empty() => (v, "DEV_DATABASE_URL"),
                _ => return Ok(Self::owned(owned)),
            },
        };
        DatabaseUrl::parse(&raw)
            .map(Self::url)
            .map_err(|e| DevError::Url {
                origin,
                reason: e.to_string(),
            })
    }
}

/// What the dev server can reach beyond itself, as far as pgvigil knows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "network", content = "detail", rename_all = "snake_case")]
pub enum DevNetwork {
    /// A private cluster in network and mount namespaces of its own: no interface up, no TCP
    /// listener, other servers' socket directories (/tmp, /var/tmp, /run) hidden.
    Isolated,
    /// A private cluster that can open connections (why it is not isolated).
    Open(String),
    /// A `--dev-url` server: what it reaches is up to whoever runs it.
    Unknown,
}

impl std::fmt::Display for DevNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Isolated => f.write_str(
                "the dev server had no network route (its own network and mount namespaces: no \
                 interface up, /tmp, /var/tmp and /run hidden; unix sockets elsewhere on this \
                 machine stay reachable)",
            ),
            Self::Open(why) => write!(
                f,
                "the dev server was NOT network-isolated ({why}): SQL in it could open \
                 connections wherever this machine can"
            ),
            Self::Unknown => f.write_str(
                "the dev server is --dev-url's: pgvigil cannot tell or limit what it reaches",
            ),
        }
    }
}

/// Why no dev database could be had.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// `--dev-url` / `DEV_DATABASE_URL` is not a usable URL.
    #[error(
        "{origin}: {reason}; expected the URL of an empty scratch PostgreSQL server \
         (postgres://user:password@host:5432/postgres) whose role may create databases"
    )]
    Url {
        /// Which of the two gave it (`--dev-url` or `DEV_DATABASE_URL`).
        origin: &'static str,
        /// What is wrong with it (no password in it).
        reason: String,
    },
    /// The [`DevProvider`] could not start a private cluster.
    #[error("no private dev database could be started: {0}")]
    Start(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Neither a dev URL nor a [`DevProvider`] was given.
    #[error(
        "no dev database is configured: pass --dev-url / DEV_DATABASE_URL (an empty scratch \
         server), or give the library a DevProvider"
    )]
    NotConfigured,
    /// The dev server could not be reached (refused, timed out after 30 s, rejected the login).
    #[error("the dev database at {target} did not answer: {reason}")]
    Connect {
        /// The dev server as reports name it (a redacted URL, or `private cluster`).
        target: String,
        /// The driver's message, secrets removed.
        reason: String,
    },
    /// The dev URL's role lacks CREATEDB, so no scratch database can be made there.
    #[error(
        "role \"{role}\" on the dev database at {target} may not create databases; give it \
         CREATEDB, or leave out --dev-url to use a private cluster"
    )]
    NotAllowed {
        /// The role the dev URL logs in as.
        role: String,
        /// The dev server, URL redacted.
        target: String,
    },
    /// A statement on the dev server failed.
    #[error("the dev database at {target}: {reason}")]
    Database {
        /// The dev server as reports name it (a redacted URL, or `private cluster`).
        target: String,
        /// The server's message, secrets removed.
        reason: String,
    },
    /// The dev URL reaches production's own server (same [`server_identity`]): refused.
    #[error(
        "--dev-url / DEV_DATABASE_URL ({target}) names the same PostgreSQL server as \
         DATABASE_URL; the dev database must be a separate, empty scratch server (migration SQL \
         never runs on production's server), or leave it out to use a private cluster"
    )]
    SameServer {
        /// The dev server, URL redacted.
        target: String,
    },
}

/// What tells one running server from another without privileges: when its postmaster started
/// (to the microsecond), its port and version.
pub async fn server_identity(conn: &mut crate::session::Reader<'_>) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT pg_postmaster_start_time()::text || ' port ' || current_setting('port')
                || ' version ' || current_setting('server_version_num')",
    )
    .fetch_one(conn)
    .await
}

enum Kind {
    /// Kept alive (a cluster handle) until the server is dropped; `secret` is scrubbed from
    /// every message.
    Owned {
        _keep: Box<dyn Any + Send + Sync>,
        secret: String,
    },
    Url(Box<DatabaseUrl>),
}

/// A running dev server. Dropping it removes a private cluster.
pub struct DevServer {
    kind: Kind,
    admin: PgConnectOptions,
    /// On a private cluster, migrations run as this role, not as the superuser: a hostile
    /// migration must not run programs or read files on this machine (COPY ... PROGRAM,
    /// pg_read_file), change the cluster's settings or create roles. It owns each scratch
    /// database; extensions, which need a superuser, are created for it beforehand.
    migrator: Option<PgConnectOptions>,
    /// Which extensions may be created in its scratch databases.
    extensions: ExtensionPolicy,
    /// What it can reach beyond itself.
    network: DevNetwork,
    /// `server_version_num`, e.g. 150020.
    pub version_num: i32,
    /// `server_version`, e.g. `15.2`, for reports.
    pub version: String,
    identity: String,
}

impl std::fmt::Debug for DevServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevServer({})", self.describe())
    }
}

impl DevServer {
    /// Starts (private) or reaches (URL) the dev server. `major` is production's major version:
    /// a private cluster must be of that version; a dev URL of another version is accepted and
    /// the mismatch is reported by whoever compares [`DevServer::major`].
    pub async fn start(source: &DevSource, major: Option<u32>) -> Result<Self, DevError> {
        let mut server = match &source.origin {
            DevOrigin::Owned(provider) => provider.start(major).await?,
            DevOrigin::Url(url) => {
                let admin = url
                    .connect_options()
                    .application_name("pgvigil-dev")
                    .log_statements(tracing::log::LevelFilter::Trace);
                let mut server = Self {
                    kind: Kind::Url(url.clone()),
                    admin,
                    migrator: None,
                    extensions: ExtensionPolicy::refusing(),
                    network: DevNetwork::Unknown,
                    version_num: 0,
                    version: String::new(),
                    identity: String::new(),
                };
                server.read_version().await?;
                server.require_createdb().await?;
                server.sweep_stale_scratch().await;
                server
            }
        };
        server.extensions = source.extensions.clone();
        Ok(server)
    }

    /// A server pgvigil owns (a private cluster it just started): `admin` reaches it as its
    /// superuser, whose password is `secret`; `keep` is held until this value is dropped (the
    /// cluster's handle, whose drop removes it). Migrations will run there as an ordinary role
    /// made here.
    pub async fn owned(
        admin: PgConnectOptions,
        secret: String,
        keep: Box<dyn Any + Send + Sync>,
    ) -> Result<Self, DevError> {
        let admin = admin
            .application_name("pgvigil-dev")
            .log_statements(tracing::log::LevelFilter::Trace);
        let password: String = format!("{:032x}", rand::random::<u128>());
        let migrator = admin.clone().username(MIGRATOR).password(&password);
        let mut server = Self {
            kind: Kind::Owned {
                _keep: keep,
                secret,
            },
            admin,
            migrator: Some(migrator),
            extensions: ExtensionPolicy::refusing(),
            network: DevNetwork::Open("its provider did not isolate it".into()),
            version_num: 0,
            version: String::new(),
            identity: String::new(),
        };
        server.read_version().await?;
        let mut conn = server.admin().await?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE ROLE {MIGRATOR} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'"
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| server.db_err(e))?;
        let _ = conn.close().await;
        Ok(server)
    }

    /// Records what the server can reach (a [`DevProvider`] that isolated it says so).
    pub fn with_network(mut self, network: DevNetwork) -> Self {
        self.network = network;
        self
    }

    /// What the server can reach beyond itself.
    pub fn network(&self) -> &DevNetwork {
        &self.network
    }

    /// Which extensions its scratch databases may create.
    pub fn extensions(&self) -> &ExtensionPolicy {
        &self.extensions
    }

    /// What the reports call it (no password).
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Owned { .. } => format!(
                "private PostgreSQL {} on this machine (removed afterwards)",
                self.version
            ),
            Kind::Url(url) => format!("dev database {url} (PostgreSQL {})", self.version),
        }
    }

    /// The major version (`server_version_num / 10000`), e.g. 15.
    pub fn major(&self) -> u32 {
        (self.version_num / 10000) as u32
    }

    /// Whether this is a private cluster pgvigil started (not a `--dev-url` server).
    pub fn is_private(&self) -> bool {
        matches!(self.kind, Kind::Owned { .. })
    }

    fn target(&self) -> String {
        match &self.kind {
            Kind::Owned { .. } => "private cluster".into(),
            Kind::Url(url) => url.to_string(),
        }
    }

    fn scrub(&self, text: &str) -> String {
        match &self.kind {
            Kind::Owned { secret, .. } if !secret.is_empty() => {
                text.replace(secret.as_str(), "***")
            }
            Kind::Owned { .. } => text.to_string(),
            Kind::Url(url) => url.scrub(text),
        }
    }

    fn db_err(&self, e: sqlx::Error) -> DevError {
        DevError::Database {
            target: self.target(),
            reason: self.scrub(&crate::pool::error_text(&e)),
        }
    }

    /// A connection to the dev server's maintenance database.
    pub async fn admin(&self) -> Result<PgConnection, DevError> {
        match tokio::time::timeout(Duration::from_secs(30), self.admin.connect()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(DevError::Connect {
                target: self.target(),
                reason: self.scrub(&crate::pool::error_text(&e)),
            }),
            Err(_) => Err(DevError::Connect {
                target: self.target(),
                reason: "no answer within 30 s".into(),
            }),
        }
    }

    async fn read_version(&mut self) -> Result<(), DevError> {
        let mut conn = self.admin().await?;
        let (num, text): (String, String) = sqlx::query_as(
            "SELECT current_setting('server_version_num'), current_setting('server_version')",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(|e| self.db_err(e))?;
        self.version_num = num.parse().unwrap_or(0);
        self.version = text;
        self.identity = server_identity(&mut crate::session::Reader::dev(&mut conn))
            .await
            .map_err(|e| self.db_err(e))?;
        let _ = conn.close().await;
        Ok(())
    }

    /// Refuses to stand in for production when it IS production's server (a --dev-url that
    /// names it by mistake): `production` is [`server_identity`] read there.
    pub fn ensure_apart_from(&self, production: &str) -> Result<(), DevError> {
        if self.identity == production {
            return Err(DevError::SameServer {
                target: self.target(),
            });
        }
        Ok(())
    }

    async fn require_createdb(&self) -> Result<(), DevError> {
        let mut conn = self.admin().await?;
        let (role, may): (String, bool) = sqlx::query_as(
            "SELECT current_user::text, rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(|e| self.db_err(e))?;
        let _ = conn.close().await;
        if may {
            Ok(())
        } else {
            Err(DevError::NotAllowed {
                role,
                target: self.target(),
            })
        }
    }

    /// Creates a scratch database of our own; it is dropped when the returned value is (or by
    /// the next run, if this process is killed before).
    pub async fn scratch(&self) -> Result<ScratchDatabase, DevError> {
        let name = scratch_name();
        let mut conn = self.admin().await?;
        let creator: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.db_err(e))?;
        // This session holds an advisory lock named after the database for as long as the
        // database lives: a later run's sweep drops only databases whose lock is free (their
        // maker's session is gone), whatever the pid and host say.
        sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
            .bind(&name)
            .execute(&mut conn)
            .await
            .map_err(|e| self.db_err(e))?;
        // The guard exists before the database does: cancelled at any instant (even while
        // CREATE DATABASE runs on the server), its drop first stops the creating statement,
        // then drops whatever exists.
        let mut scratch = ScratchDatabase {
            options: self
                .migrator
                .clone()
                .unwrap_or_else(|| self.admin.clone())
                .database(&name),
            superuser: self.admin.clone().database(&name),
            admin: self.admin.clone(),
            extensions: self.extensions.clone(),
            name: name.clone(),
            dropped: false,
            creator: Some(creator),
            keeper: None,
        };
        let owner = if self.migrator.is_some() {
            format!(" OWNER {MIGRATOR}")
        } else {
            String::new()
        };
        sqlx::query(AssertSqlSafe(format!(
            "CREATE DATABASE {}{owner} TEMPLATE template0",
            quote_ident(&name)
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| self.db_err(e))?;
        // The comment says who made it, for the sweep of a later run.
        let stamp = format!(
            "pgvigil scratch: host={} pid={}",
            host_name(),
            std::process::id()
        );
        let _ = sqlx::query(AssertSqlSafe(format!(
            "COMMENT ON DATABASE {} IS {}",
            quote_ident(&name),
            crate::sanitize::quote_literal(&stamp)
        )))
        .execute(&mut conn)
        .await;
        scratch.creator = None;
        scratch.keeper = Some(conn);
        Ok(scratch)
    }

    /// Drops scratch databases on a shared dev server whose maker was this host's process that
    /// no longer runs. Anything not named and commented by pgvigil on this host is left alone.
    async fn sweep_stale_scratch(&self) {
        let Ok(mut conn) = self.admin().await else {
            return;
        };
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT d.datname::text, shobj_description(d.oid, 'pg_database')
               FROM pg_database d WHERE d.datname LIKE 'pgvigil\\_scratch\\_%'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        for (name, comment) in rows {
            // A statement of the killed run may still be running in it (a backend notices a
            // vanished client only when it next writes): the drop ends it too (WITH FORCE).
            if !stale_scratch(&name, comment.as_deref(), &host_name()) {
                continue;
            }
            // Its maker's session holds this lock while the database lives.
            let free: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(&name)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap_or(false);
            if !free {
                continue;
            }
            let dropped = drop_database(&mut conn, &name).await;
            let _ = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                .bind(&name)
                .execute(&mut conn)
                .await;
            match dropped {
                Ok(()) => tracing::info!(
                    target: "pgvigil::dev",
                    "dropped scratch database {name} left by a pgvigil process that no longer runs"
                ),
                Err(e) => tracing::warn!(
                    target: "pgvigil::dev",
                    "could not drop stale scratch database {name}: {}",
                    self.scrub(&e.to_string())
                ),
            }
        }
        let _ = conn.close().await;
    }
}

/// An extension to create on a dev database: `version` and `schema` as on production when
/// known, else the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Extension name (`vector`).
    pub name: String,
    /// Version to install, `None` for the server's default.
    pub version: Option<String>,
    /// Schema to install it in (created when missing), `None` for the default.
    pub schema: Option<String>,
}

/// The error of an extension the policy refuses, where no migration is known to name.
fn refused(name: &str, why: &str) -> sqlx::Error {
    sqlx::Error::InvalidArgument(format!(
        "extension {name} {why}, so the dev database does not create it; pass \
         --allow-extension {name} to create it anyway"
    ))
}

/// The role migrations run as on a private dev cluster.
const MIGRATOR: &str = "pgvigil_migrator";

/// `pgvigil_scratch_<pid>_<ms>_<random>`: unique, and it names the process that made it.
fn scratch_name() -> String {
    format!(
        "pgvigil_scratch_{}_{}_{:08x}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis(),
        rand::random::<u32>()
    )
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// A scratch database is stale when its name and comment say pgvigil made it on this host, in a
/// process that is gone.
fn stale_scratch(name: &str, comment: Option<&str>, host: &str) -> bool {
    let Some(rest) = name.strip_prefix("pgvigil_scratch_") else {
        return false;
    };
    let Some(pid) = rest.split('_').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    let Some(comment) = comment else {
        return false;
    };
    let ours = comment == format!("pgvigil scratch: host={host} pid={pid}");
    ours && pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Cancels a CREATE DATABASE that may still be running on backend `pid` and waits (up to 10 s)
/// until that backend is no longer busy, so that the drop that follows sees the outcome.
async fn stop_creator(conn: &mut PgConnection, pid: i32) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_cancel_backend($1)")
        .bind(pid)
        .execute(&mut *conn)
        .await?;
    for _ in 0..200 {
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active')",
        )
        .bind(pid)
        .fetch_one(&mut *conn)
        .await?;
        if !busy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Drops a database, terminating sessions still in it (PostgreSQL 13+), or plainly on older
/// servers.
pub(crate) async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    let forced = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(name)
    )))
    .execute(&mut *conn)
    .await;
    match forced {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42601") => sqlx::query(
            AssertSqlSafe(format!("DROP DATABASE IF EXISTS {}", quote_ident(name))),
        )
        .execute(&mut *conn)
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    }
}

/// A database of our own on the dev server. [`ScratchDatabase::drop_now`] drops it and waits;
/// plain dropping (a cancelled job) drops it from a task of its own.
pub struct ScratchDatabase {
    /// The scratch database's name, `pgvigil_scratch_<pid>_<ms>_<random>`.
    pub name: String,
    /// As the role migrations run as.
    options: PgConnectOptions,
    /// As the dev server's administrator (the superuser on a private cluster), for what only
    /// it may do: creating extensions.
    superuser: PgConnectOptions,
    admin: PgConnectOptions,
    /// Checked again where extensions are created, whoever asked for them.
    extensions: ExtensionPolicy,
    dropped: bool,
    /// The backend running CREATE DATABASE while it may still be running.
    creator: Option<i32>,
    /// The session that made the database and holds its advisory lock until it is dropped.
    keeper: Option<PgConnection>,
}

impl ScratchDatabase {
    /// Connect options as the role migrations run as, for the scratch database.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    /// A connection as the role migrations run as.
    pub async fn connect(&self) -> Result<PgConnection, sqlx::Error> {
        self.options.connect().await
    }

    /// Which extensions may be created here.
    pub fn extensions(&self) -> &ExtensionPolicy {
        &self.extensions
    }

    /// A connection as the dev server's administrator.
    pub async fn connect_admin(&self) -> Result<PgConnection, sqlx::Error> {
        self.superuser.connect().await
    }

    /// Creates extensions a non-superuser may not (most are untrusted, pgvector included),
    /// before any migration runs (an extension script runs as the superuser and must not meet
    /// objects a migration planted), each in its schema (created, owned by the migrations' role,
    /// when missing). One the [`ExtensionPolicy`] refuses is not created, nor is one that
    /// would bring it along (`CASCADE`): nothing is, and the error names it.
    pub async fn create_extensions(&self, extensions: &[Extension]) -> Result<(), sqlx::Error> {
        if extensions.is_empty() {
            return Ok(());
        }
        if let Some((name, why)) = extensions
            .iter()
            .find_map(|e| self.extensions.refuses(&e.name).map(|why| (&e.name, why)))
        {
            return Err(refused(name, why));
        }
        let mut conn = self.connect_admin().await?;
        let owner: String = sqlx::query_scalar(
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = current_database()",
        )
        .fetch_one(&mut conn)
        .await?;
        let mut tx = conn.begin().await?;
        for e in extensions {
            let version = e
                .version
                .as_ref()
                .map(|v| format!(" VERSION {}", crate::sanitize::quote_literal(v)))
                .unwrap_or_default();
            let schema = match &e.schema {
                Some(schema) => {
                    sqlx::raw_sql(AssertSqlSafe(format!(
                        "CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}",
                        quote_ident(schema),
                        quote_ident(&owner)
                    )))
                    .execute(&mut *tx)
                    .await?;
                    format!(" SCHEMA {}", quote_ident(schema))
                }
                None => String::new(),
            };
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE EXTENSION IF NOT EXISTS {}{schema}{version} CASCADE",
                quote_ident(&e.name)
            )))
            .execute(&mut *tx)
            .await?;
        }
        // CASCADE creates what an extension requires: refused ones must not come in that way.
        let present: Vec<String> = sqlx::query_scalar("SELECT extname::text FROM pg_extension")
            .fetch_all(&mut *tx)
            .await?;
        if let Some((name, why)) = present
            .iter()
            .find_map(|n| self.extensions.refuses(n).map(|why| (n, why)))
        {
            tx.rollback().await?;
            return Err(refused(name, why));
        }
        tx.commit().await?;
        conn.close().await
    }

    /// Drops the database now and waits for the outcome (ending sessions still in it on
    /// PostgreSQL 13+).
    pub async fn drop_now(mut self) -> Result<(), sqlx::Error> {
        self.dropped = true;
        let mut conn = self.admin.connect().await?;
        let result = drop_database(&mut conn, &self.name).await;
        let _ = conn.close().await;
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.close().await;
        }
        result
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (name, admin, creator) = (self.name.clone(), self.admin.clone(), self.creator);
        // Closed only after the drop: until then its lock keeps other runs' sweeps away.
        let keeper = self.keeper.take();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                crate::cleanup::spawn(&handle, async move {
                    let dropped = async {
                        let mut conn = admin.connect().await?;
                        if let Some(pid) = creator {
                            stop_creator(&mut conn, pid).await?;
                        }
                        drop_database(&mut conn, &name).await?;
                        drop(keeper);
                        conn.close().await
                    };
                    if let Err(e) = dropped.await {
                        tracing::warn!(target: "pgvigil::dev", "could not drop abandoned scratch database {name}: {e}; the next run drops it");
                    }
                });
            }
            Err(_) => tracing::warn!(
                target: "pgvigil::dev",
                "scratch database {name} left behind; the next run drops it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_dead_scratch_databases_are_stale() {
        let host = "bastion-1";
        // A pid that cannot exist (above pid_max).
        let dead = 99_999_999u32;
        let name = format!("pgvigil_scratch_{dead}_1_00000000");
        let ours = format!("pgvigil scratch: host={host} pid={dead}");
        assert!(stale_scratch(&name, Some(&ours), host));
        assert!(!stale_scratch(&name, Some(&ours), "other-host"));
        assert!(!stale_scratch(&name, None, host));
        assert!(!stale_scratch(&name, Some("someone else's"), host));
        assert!(!stale_scratch("pgvigil_scratchy", Some(&ours), host));
        assert!(!stale_scratch("app_db", Some(&ours), host));
        let alive = format!("pgvigil_scratch_{}_1_0", std::process::id());
        let me = format!("pgvigil scratch: host={host} pid={}", std::process::id());
        assert!(!stale_scratch(&alive, Some(&me), host));
    }
}

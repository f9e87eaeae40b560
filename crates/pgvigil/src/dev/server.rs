//! A running dev server: started through its [`DevSource`] (a private cluster) or reached at a
//! dev URL, its version, its administrator's connection, and the refusal to stand in for
//! production's own server.

use std::any::Any;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};

use super::{DevError, DevNetwork, DevOrigin, DevSource, ExtensionPolicy, server_identity};
use crate::config::DatabaseUrl;
use crate::db_error::{DbError, FailureKind, Secrets};

/// The role migrations run as on a private dev cluster.
pub(super) const MIGRATOR: &str = "pgvigil_migrator";

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
    pub(super) admin: PgConnectOptions,
    /// On a private cluster, migrations run as this role, not as the superuser: a hostile
    /// migration must not run programs or read files on this machine (COPY ... PROGRAM,
    /// pg_read_file), change the cluster's settings or create roles. It owns each scratch
    /// database; extensions, which need a superuser, are created for it beforehand.
    pub(super) migrator: Option<PgConnectOptions>,
    /// Which extensions may be created in its scratch databases.
    pub(super) extensions: ExtensionPolicy,
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

    /// Records what the server can reach (a [`DevProvider`](super::DevProvider) that isolated
    /// it says so).
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

    /// How a libpq client (pg_restore) reaches `database` on this server as its
    /// administrator, as environment variables only (PGHOST, PGPORT, PGUSER, PGDATABASE,
    /// PGPASSWORD and a dev URL's TLS settings): nothing of it belongs on a command line.
    pub(crate) fn libpq_env(&self, database: &str) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        match self.admin.get_socket() {
            Some(dir) => env.push(("PGHOST", dir.display().to_string())),
            None => env.push(("PGHOST", self.admin.get_host().to_string())),
        }
        env.push(("PGPORT", self.admin.get_port().to_string()));
        env.push(("PGUSER", self.admin.get_username().to_string()));
        let password = match &self.kind {
            Kind::Owned { secret, .. } => Some(secret.clone()),
            Kind::Url(url) => {
                let (_, params) = url.libpq_parts();
                env.extend(
                    params
                        .into_iter()
                        .filter(|(var, _)| !matches!(*var, "PGDATABASE" | "PGAPPNAME")),
                );
                url.password()
            }
        };
        env.push(("PGDATABASE", database.to_string()));
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            env.push(("PGPASSWORD", p));
        }
        env
    }

    pub(super) fn target(&self) -> String {
        match &self.kind {
            Kind::Owned { .. } => "private cluster".into(),
            Kind::Url(url) => url.to_string(),
        }
    }
}

/// A dev server's secrets: the password pgvigil gave its private cluster, or the dev URL's.
impl Secrets for DevServer {
    fn scrub(&self, text: &str) -> String {
        match &self.kind {
            Kind::Owned { secret, .. } if !secret.is_empty() => {
                text.replace(secret.as_str(), "***")
            }
            Kind::Owned { .. } => text.to_string(),
            Kind::Url(url) => url.scrub(text),
        }
    }
}

impl DevServer {
    pub(super) fn db_err(&self, e: sqlx::Error) -> DevError {
        DevError::Database {
            target: self.target(),
            source: DbError::new(e, self),
        }
    }

    /// A connection to the dev server's maintenance database.
    pub async fn admin(&self) -> Result<PgConnection, DevError> {
        match tokio::time::timeout(Duration::from_secs(30), self.admin.connect()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(DevError::Connect {
                target: self.target(),
                source: DbError::new(e, self),
            }),
            Err(_) => Err(DevError::Connect {
                target: self.target(),
                source: DbError::observed(FailureKind::Timeout, "no answer within 30 s".into()),
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
}

//! Where the dev server comes from: a server pgvigil starts and owns (a [`DevProvider`]), or a
//! `--dev-url` / `DEV_DATABASE_URL` scratch server; and what it can reach ([`DevNetwork`]).

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{DevError, DevServer, ExtensionPolicy};
use crate::config::DatabaseUrl;

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
    pub(super) origin: DevOrigin,
    pub(super) extensions: ExtensionPolicy,
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

//! The pool sources `check` and the dashboard read, from flags or variables: application
//! instances (`--app`, APP_METRICS_URLS), PgBouncer (`--pgbouncer`, PGBOUNCER_URL) and a
//! fleet through Prometheus (`--prometheus`/`--selector`, PROMETHEUS_URL/PROMETHEUS_SELECTOR).

use crate::cli::PoolSourceArgs;

/// A pool source that is not valid.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A selector without the Prometheus to ask.
    #[error("--selector needs --prometheus URL (or PROMETHEUS_URL)")]
    SelectorWithoutPrometheus,
    /// An `--app` or `--prometheus` URL, or a selector.
    #[error(transparent)]
    Scrape(#[from] pgvigil::remote::ScrapeError),
    /// The PgBouncer console's URL.
    #[error("{setting}: {source}")]
    Bouncer {
        /// `--pgbouncer`, or PGBOUNCER_URL and where it was set.
        setting: String,
        /// Why it is not a URL pgvigil accepts.
        source: pgvigil::config::UrlError,
    },
}

/// Every pool source the flags or variables name.
pub struct PoolSources {
    /// Application instances' `/metrics`.
    pub apps: Vec<pgvigil::remote::Endpoint>,
    /// The PgBouncer console.
    pub bouncer: Option<pgvigil::DatabaseUrl>,
    /// A fleet through Prometheus.
    pub fleet: Option<pgvigil::remote::Fleet>,
}

impl PoolSources {
    /// Reads them in this order: applications, PgBouncer, the fleet (the first bad one is the
    /// error).
    pub fn read(
        args: &PoolSourceArgs,
        sources: &pgvigil::ConfigSources,
    ) -> Result<PoolSources, SourceError> {
        Ok(PoolSources {
            apps: app_endpoints(&args.apps, sources)?,
            bouncer: bouncer_url(args.pgbouncer.as_deref(), sources)?,
            fleet: fleet_source(args, sources)?,
        })
    }

    /// Whether any source is named.
    pub fn any(&self) -> bool {
        !self.apps.is_empty() || self.bouncer.is_some() || self.fleet.is_some()
    }
}

/// `--prometheus` / `--selector`, else PROMETHEUS_URL / PROMETHEUS_SELECTOR.
fn fleet_source(
    args: &PoolSourceArgs,
    sources: &pgvigil::ConfigSources,
) -> Result<Option<pgvigil::remote::Fleet>, SourceError> {
    let url = args
        .prometheus
        .clone()
        .or_else(|| sources.lookup("PROMETHEUS_URL").map(|(v, _)| v));
    let url_from = match args.prometheus {
        Some(_) => "--prometheus".to_string(),
        None => sources
            .lookup("PROMETHEUS_URL")
            .map_or(String::new(), |(_, s)| s.to_string()),
    };
    let (selector, selector_from) = match &args.selector {
        Some(s) => (Some(s.clone()), "--selector".to_string()),
        None => match sources.lookup("PROMETHEUS_SELECTOR") {
            Some((v, setting)) => (Some(v), setting.to_string()),
            None => (None, "--selector".to_string()),
        },
    };
    match url {
        None if selector.is_some() => Err(SourceError::SelectorWithoutPrometheus),
        None => Ok(None),
        Some(url) => pgvigil::remote::Fleet::from_settings(
            &url,
            &url_from,
            selector.as_deref(),
            &selector_from,
        )
        .map(Some)
        .map_err(SourceError::from),
    }
}

/// `--pgbouncer`, else PGBOUNCER_URL.
fn bouncer_url(
    flag: Option<&str>,
    sources: &pgvigil::ConfigSources,
) -> Result<Option<pgvigil::DatabaseUrl>, SourceError> {
    let (raw, setting) = match (flag, sources.lookup("PGBOUNCER_URL")) {
        (Some(v), _) => (v.to_string(), "--pgbouncer".to_string()),
        (None, Some((v, setting))) => (v, setting.to_string()),
        (None, None) => return Ok(None),
    };
    pgvigil::DatabaseUrl::parse(&raw)
        .map(Some)
        .map_err(|source| SourceError::Bouncer { setting, source })
}

/// The `--app` endpoints, else APP_METRICS_URLS (flag, environment or .env).
fn app_endpoints(
    flags: &[String],
    sources: &pgvigil::ConfigSources,
) -> Result<Vec<pgvigil::remote::Endpoint>, pgvigil::remote::ScrapeError> {
    if !flags.is_empty() {
        return flags
            .iter()
            .map(|v| pgvigil::remote::Endpoint::parse_app(v, "--app"))
            .collect();
    }
    let Some((list, setting)) = sources.lookup("APP_METRICS_URLS") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| pgvigil::remote::Endpoint::parse_app(v, &setting.to_string()))
        .collect()
}

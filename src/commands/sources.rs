//! The pool sources `check` and the dashboard read, from flags or variables: application
//! instances (`--app`, APP_METRICS_URLS), PgBouncer (`--pgbouncer`, PGBOUNCER_URL) and a
//! fleet through Prometheus (`--prometheus`/`--selector`, PROMETHEUS_URL/PROMETHEUS_SELECTOR).

use crate::cli::PoolSourceArgs;

pub fn fleet_source(
    args: &PoolSourceArgs,
    sources: &pgvigil::ConfigSources,
) -> Result<Option<pgvigil::remote::Fleet>, String> {
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
        None if selector.is_some() => {
            Err("--selector needs --prometheus URL (or PROMETHEUS_URL)".to_string())
        }
        None => Ok(None),
        Some(url) => pgvigil::remote::Fleet::from_settings(
            &url,
            &url_from,
            selector.as_deref(),
            &selector_from,
        )
        .map(Some)
        .map_err(|e| e.to_string()),
    }
}

/// `--pgbouncer`, else PGBOUNCER_URL.
pub fn bouncer_url(
    flag: Option<&str>,
    sources: &pgvigil::ConfigSources,
) -> Result<Option<pgvigil::DatabaseUrl>, String> {
    let (raw, what) = match (flag, sources.lookup("PGBOUNCER_URL")) {
        (Some(v), _) => (v.to_string(), "--pgbouncer".to_string()),
        (None, Some((v, setting))) => (v, setting.to_string()),
        (None, None) => return Ok(None),
    };
    pgvigil::DatabaseUrl::parse(&raw)
        .map(Some)
        .map_err(|e| format!("{what}: {e}"))
}

/// The `--app` endpoints, else APP_METRICS_URLS (flag, environment or .env).
pub fn app_endpoints(
    flags: &[String],
    sources: &pgvigil::ConfigSources,
) -> Result<Vec<pgvigil::remote::Endpoint>, pgvigil::remote::ScrapeError> {
    if !flags.is_empty() {
        return flags
            .iter()
            .map(|v| pgvigil::remote::Endpoint::parse(v, "--app"))
            .collect();
    }
    let Some((list, setting)) = sources.lookup("APP_METRICS_URLS") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| pgvigil::remote::Endpoint::parse(v, &setting.to_string()))
        .collect()
}

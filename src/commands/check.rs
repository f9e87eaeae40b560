//! `pgvigil check`: every check once, as a report (text or JSON) and a Nagios exit code; with
//! pool sources, the `pool.sizing` finding. A database that cannot be reached is a report too
//! (UNKNOWN, its `connection` finding says why).

use std::time::Duration;

use pgvigil::PoolConfig;
use pgvigil::checks::{CheckOptions, CheckReport, Finding, Group, Status, run_checks};
use pgvigil::dev::DevSource;
use pgvigil::pool::InstrumentedPool;
use pgvigil::remote::sizing::SizingInput;

use super::sources::PoolSources;
use super::{connect_one_shot, print_json, print_out};
use crate::cli::CheckArgs;
use crate::error::CommandError;
use crate::report::render_check;

pub async fn run(
    config: PoolConfig,
    args: CheckArgs,
    colour: bool,
    dev: DevSource,
    sources: &pgvigil::ConfigSources,
) -> Result<Status, CommandError> {
    let target = config.database_url.to_string();
    // The pool sources are read before connecting: a bad URL is a usage error (exit 3).
    let pools = PoolSources::read(&args.sources, sources)?;
    let report = match connect_one_shot(config).await {
        Ok(pool) => {
            let options = CheckOptions {
                only: args.only,
                migrations_dir: args.dir.migrations,
                expected_file: args.expected,
                strict: args.strict,
                knn_samples: args.knn_samples,
                dev: Some(dev),
                ..CheckOptions::default()
            };
            let mut report = run_checks(&pool, &options).await;
            let wants_pool = matches!(options.only, None | Some(Group::Pool));
            if wants_pool && pools.any() {
                let mut holds = Vec::new();
                report.push(sizing_finding(&pool, &pools, &mut holds).await);
                for held in holds {
                    report.push(held);
                }
            }
            pool.close().await;
            report
        }
        Err(e) => CheckReport::unknown(target, e.to_string()),
    };
    if args.json {
        print_json(&report);
    } else {
        print_out(&render_check(&report, colour));
    }
    Ok(report.overall())
}

/// `pool.sizing`: one reading of every pool source and the server's view, sized by the
/// library; what holds PgBouncer's clients (a PAUSE, a SUSPEND) goes to `holds`.
async fn sizing_finding(
    pool: &InstrumentedPool,
    pools: &PoolSources,
    holds: &mut Vec<Finding>,
) -> Finding {
    let unknown = |why: String| Finding::unknown(Group::Pool, "pool.sizing", why);
    let timeout = Duration::from_secs(5);
    let server = match pool.acquire_labeled("sizing").await {
        Ok(conn) => match async {
            let mut session =
                pgvigil::session::ProductionSession::from_checkout(conn, pool.config()).await?;
            session.read(pgvigil::catalog::server_view).await
        }
        .await
        {
            Ok(s) => s,
            Err(e) => {
                let why = pgvigil::DbError::new(e, &pool.config().database_url);
                return unknown(format!("the server view could not be read: {why}"));
            }
        },
        Err(e) => return unknown(format!("the server view could not be read: {e}")),
    };
    let readings = futures_util::future::join_all(
        pools
            .apps
            .iter()
            .map(|e| pgvigil::remote::read_endpoint(e, timeout)),
    )
    .await;
    let now = std::time::Instant::now();
    let mut instances = Vec::new();
    for (endpoint, reading) in pools.apps.iter().zip(readings) {
        match reading {
            Ok(r) => instances.push((
                endpoint.authority(),
                pgvigil::remote::InstanceWindow::default().push(now, r),
            )),
            Err(e) => {
                let shown = pgvigil::sanitize::printable(endpoint.shown());
                return unknown(format!("{shown}: {e}"));
            }
        }
    }
    let bouncer = match &pools.bouncer {
        Some(url) => match pgvigil::remote::pgbouncer::read(url, timeout).await {
            Ok(v) => {
                holds.extend(v.finding());
                Some(v)
            }
            Err(e) => return unknown(e.to_string()),
        },
        None => None,
    };
    let fleet = match &pools.fleet {
        Some(f) => match f.read(timeout).await {
            Ok(v) => Some(v),
            Err(e) => return unknown(format!("Prometheus {}: {e}", f.shown())),
        },
        None => None,
    };
    let apps = instances.iter().map(|(name, f)| (name.as_str(), f));
    match SizingInput::from_readings(&server, apps, bouncer.as_ref(), fleet.as_ref()) {
        Some(input) => pgvigil::remote::sizing::sizing(&input).finding(),
        None => unknown("no pool figures were read".to_string()),
    }
}

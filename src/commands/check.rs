//! `pgvigil check`: every check once, as a report (text or JSON) and a Nagios exit code; with
//! pool sources, the `pool.sizing` finding.

use std::time::Duration;

use pgvigil::PoolConfig;
use pgvigil::checks::{CheckOptions, CheckReport, Group, Status, run_checks};
use pgvigil::dev::DevSource;
use pgvigil::pool::InstrumentedPool;

use super::sources::{app_endpoints, bouncer_url, fleet_source};
use super::{UNKNOWN, connect_one_shot, print_out, say};
use crate::cli::CheckArgs;
use crate::report::render_check;

pub async fn run(
    config: PoolConfig,
    args: CheckArgs,
    colour: bool,
    dev: DevSource,
    sources: &pgvigil::ConfigSources,
) -> Status {
    let target = config.database_url.to_string();
    // The pool sources are read before connecting: a bad URL is a usage error (exit 3).
    let pool_sources = match (
        app_endpoints(&args.sources.apps, sources).map_err(|e| e.to_string()),
        bouncer_url(args.sources.pgbouncer.as_deref(), sources),
        fleet_source(&args.sources, sources),
    ) {
        (Ok(a), Ok(b), Ok(f)) => (a, b, f),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            say(&e);
            return UNKNOWN;
        }
    };
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
            let (apps, bouncer, fleet) = &pool_sources;
            let wants_pool = matches!(options.only, None | Some(Group::Pool));
            if wants_pool && (!apps.is_empty() || bouncer.is_some() || fleet.is_some()) {
                let mut holds = Vec::new();
                let sizing =
                    sizing_finding(&pool, apps, bouncer.as_ref(), fleet.as_ref(), &mut holds).await;
                report.push(sizing);
                for held in holds {
                    report.push(held);
                }
            }
            pool.close().await;
            report
        }
        Err(e) => CheckReport::unknown(target, e),
    };
    if args.json {
        print_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).expect("report serialises")
        ));
    } else {
        print_out(&render_check(&report, colour));
    }
    report.overall()
}

/// `pool.sizing`: one reading of every pool source and the server's view; what holds
/// PgBouncer's clients (a PAUSE, a SUSPEND) goes to `holds`.
async fn sizing_finding(
    pool: &InstrumentedPool,
    apps: &[pgvigil::remote::Endpoint],
    bouncer: Option<&pgvigil::DatabaseUrl>,
    fleet: Option<&pgvigil::remote::Fleet>,
    holds: &mut Vec<pgvigil::Finding>,
) -> pgvigil::Finding {
    use pgvigil::checks::Group;
    let unknown = |why: String| pgvigil::Finding::unknown(Group::Pool, "pool.sizing", why);
    let timeout = Duration::from_secs(5);
    let server = match pool.acquire_labeled("sizing").await {
        Ok(mut conn) => pgvigil::catalog::server_view(&mut conn)
            .await
            .map_err(|e| pool.config().database_url.explain(&e)),
        Err(e) => Err(e.to_string()),
    };
    let server = match server {
        Ok(s) => s,
        Err(e) => return unknown(format!("the server view could not be read: {e}")),
    };
    let readings = futures_util::future::join_all(
        apps.iter()
            .map(|e| pgvigil::remote::read_endpoint(e, timeout)),
    )
    .await;
    let now = std::time::Instant::now();
    let mut instances = Vec::new();
    for (endpoint, reading) in apps.iter().zip(readings) {
        match reading {
            Ok(r) => instances.push(crate::tui::apps::AppInstance {
                name: endpoint.authority(),
                figures: Ok(pgvigil::remote::InstanceWindow::default().push(now, r)),
                last_ok: None,
            }),
            Err(e) => {
                return unknown(format!(
                    "{}: {e}",
                    pgvigil::sanitize::printable(endpoint.shown())
                ));
            }
        }
    }
    let snapshot = crate::tui::apps::AppsSnapshot {
        taken_at: chrono::Utc::now(),
        instances,
    };
    let bouncer = match bouncer {
        Some(url) => match pgvigil::remote::pgbouncer::read(url, timeout).await {
            Ok(v) => {
                holds.extend(v.finding());
                Some(v)
            }
            Err(e) => return unknown(e.to_string()),
        },
        None => None,
    };
    let fleet = match fleet {
        Some(f) => match f.read(timeout).await {
            Ok(v) => Some(v),
            Err(e) => return unknown(format!("Prometheus {}: {e}", f.shown())),
        },
        None => None,
    };
    match crate::tui::apps::sizing_input(
        &server,
        (!apps.is_empty()).then_some(&snapshot),
        bouncer.as_ref(),
        fleet.as_ref(),
    ) {
        Some(input) => pgvigil::remote::sizing::sizing(&input).finding(),
        None => unknown("no pool figures were read".to_string()),
    }
}

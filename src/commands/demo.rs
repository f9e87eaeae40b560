//! `pgvigil demo`: a private cluster, PgBouncer, three application instances and a workload
//! (crate::demo), watched by the dashboard; everything is removed when it ends.

use std::time::Duration;

use pgvigil::checks::Status;
use pgvigil::dev::DevSource;

use super::UNKNOWN;
use crate::cli::DashboardArgs;
use crate::demo::Demo;

pub async fn run(args: DashboardArgs, no_color: bool, dev: DevSource) -> Status {
    eprintln!(
        "pgvigil demo: starting a private PostgreSQL with pgvector and applying the reference migrations..."
    );
    let demo = match Demo::prepare().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("pgvigil demo: {e}");
            return UNKNOWN;
        }
    };
    eprintln!("pgvigil demo: starting PgBouncer and three application instances...");
    let instances = match crate::demo::Instances::start(&demo).await {
        Ok(i) => i,
        Err(e) => {
            eprintln!("pgvigil demo: {e}");
            return UNKNOWN;
        }
    };
    let sources = (
        instances
            .metrics
            .iter()
            .map(|m| pgvigil::remote::Endpoint::parse(m, "--app"))
            .collect::<Result<Vec<_>, _>>(),
        pgvigil::DatabaseUrl::parse(&instances.bouncer_admin),
    );
    let (apps, bouncer) = match sources {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) => {
            eprintln!("pgvigil demo: {e}");
            return UNKNOWN;
        }
        (_, Err(e)) => {
            eprintln!("pgvigil demo: {e}");
            return UNKNOWN;
        }
    };
    let workload = tokio::spawn(crate::demo::workload(
        demo.config.clone(),
        instances.pools.clone(),
        instances.addrs.clone(),
    ));
    let code = super::dashboard::run(
        demo.config.clone(),
        args,
        no_color,
        Some(demo.migrations_dir.clone()),
        None,
        dev,
        (apps, Some(bouncer), None),
    )
    .await;
    workload.abort();
    let _ = workload.await;
    // Requests still waiting on a lock hold their connections: closing a pool waits for them,
    // so the closes get two seconds together (dropping the pools closes what is left).
    let closes = futures_util::future::join_all(instances.pools.iter().map(|p| p.close()));
    let _ = tokio::time::timeout(Duration::from_secs(2), closes).await;
    drop(instances);
    drop(demo);
    eprintln!("pgvigil demo: workload, instances and PgBouncer stopped, private cluster removed");
    code
}

//! `pgvigil demo`: a private cluster, PgBouncer, three application instances and a workload
//! (crate::demo), watched by the dashboard; everything is removed when it ends.

use std::time::Duration;

use pgvigil::checks::Status;
use pgvigil::dev::DevSource;

use super::sources::PoolSources;
use crate::cli::DashboardArgs;
use crate::demo::{Demo, DemoError, Instances};
use crate::error::CommandError;

pub async fn run(
    args: DashboardArgs,
    no_color: bool,
    dev: DevSource,
) -> Result<Status, CommandError> {
    eprintln!(
        "pgvigil demo: starting a private PostgreSQL with pgvector and applying the reference migrations..."
    );
    let demo = Demo::prepare().await?;
    eprintln!("pgvigil demo: starting PgBouncer and three application instances...");
    let instances = Instances::start(&demo).await?;
    let apps = instances
        .metrics
        .iter()
        .map(|m| pgvigil::remote::Endpoint::parse_app(m, "--app"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DemoError::Scrape)?;
    let bouncer =
        pgvigil::DatabaseUrl::parse(&instances.bouncer_admin).map_err(DemoError::BouncerUrl)?;
    let workload = tokio::spawn(crate::demo::workload(
        demo.config.clone(),
        instances.pools.clone(),
        instances.addrs.clone(),
    ));
    let pools = PoolSources {
        apps,
        bouncer: Some(bouncer),
        fleet: None,
    };
    let outcome = super::dashboard::run(
        demo.config.clone(),
        args,
        no_color,
        Some(demo.migrations_dir.clone()),
        dev,
        pools,
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
    outcome
}

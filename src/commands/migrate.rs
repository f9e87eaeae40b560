//! `pgvigil migrate dry-run`: the pending migrations on a dev copy of production's schema
//! (production is only read), reported as text or JSON.

use std::path::PathBuf;

use pgvigil::PoolConfig;
use pgvigil::checks::Status;
use pgvigil::window::{DryRunOptions, dry_run};

use super::{UNKNOWN, connect_dedicated, print_out, say};
use crate::report::render_dry_run;

pub async fn dry_run_command(
    config: PoolConfig,
    dir: PathBuf,
    json: bool,
    options: DryRunOptions,
    colour: bool,
) -> Status {
    // A read-only session on production: only reads (catalog, ledger, pg_dump) happen there.
    let Some(mut conn) = connect_dedicated(&config).await else {
        return UNKNOWN;
    };
    match dry_run(&config, &mut conn, &dir, &options).await {
        Ok(report) => {
            if json {
                print_out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&report).expect("report serialises")
                ));
            } else {
                print_out(&render_dry_run(&report, colour));
            }
            report.status().verdict()
        }
        Err(e) => {
            say(&config.database_url.scrub(&e.to_string()));
            UNKNOWN
        }
    }
}

//! `pgvigil backup create` and `pgvigil backup verify`: the library's verified backup
//! (pgvigil::window::backup) with progress on stderr, the report on stdout (text through
//! sanitize, or JSON), and the verdict as the exit code (verify: 0 only when every figure
//! matched, 2 otherwise).

use std::path::PathBuf;

use pgvigil::PoolConfig;
use pgvigil::checks::Status;
use pgvigil::dev::{DevOrigin, DevSource};
use pgvigil::sanitize::printable;
use pgvigil::window::backup::{
    self, BackupManifest, CreateOptions, TargetError, VerifyOptions, VerifyOutcome,
};

use super::{connect_dedicated, print_json, print_out};
use crate::commands::migrate::progress_on_stderr;
use crate::error::CommandError;

/// `backup create`: the manifest's path is the last line printed (text), or in the JSON.
pub async fn create(
    config: PoolConfig,
    options: CreateOptions,
    json: bool,
) -> Result<Status, CommandError> {
    let mut session = connect_dedicated(&config).await?;
    let report = backup::create(&config, &mut session, &options, &progress_on_stderr())
        .await
        .map_err(|e| CommandError::BackupCreate(Box::new(e)))?;
    session.close().await;
    if json {
        print_json(&report);
    } else {
        let m = &report.manifest;
        let mut out = format!(
            "backup of {} (PostgreSQL {}) at snapshot {}: {} tables, {} files, {:.1} MiB, pg_dump -j {}\n",
            printable(&m.source.database),
            printable(&m.source.server_version),
            m.taken_at,
            m.tables.len(),
            m.dump.files.len(),
            report.dump_bytes as f64 / 1048576.0,
            report.jobs
        );
        for t in &m.tables {
            out.push_str(&format!(
                "  {}: {} rows, {} key ranges, {}\n",
                printable(&t.qualified()),
                t.rows,
                t.ranges.len(),
                match t.coverage {
                    backup::manifest::Coverage::Full => "every row hashed",
                    backup::manifest::Coverage::Sampled => "sampled ranges hashed",
                }
            ));
        }
        out.push_str(&format!("{}\n", report.manifest_path.display()));
        print_out(&out);
    }
    Ok(Status::Pass)
}

/// `backup verify MANIFEST [--restore-url URL]`.
pub async fn verify(
    config: PoolConfig,
    manifest_path: PathBuf,
    restore_url: Option<String>,
    jobs: Option<u16>,
    json: bool,
    dev: DevSource,
) -> Result<Status, CommandError> {
    let manifest = BackupManifest::load(&manifest_path)
        .map_err(|e| CommandError::BackupVerify(Box::new(e.into())))?;
    let source = match &restore_url {
        Some(raw) => {
            DevSource::url(pgvigil::DatabaseUrl::parse(raw).map_err(CommandError::RestoreUrl)?)
                .with_extensions(dev.extensions().clone())
        }
        None => dev,
    };
    // Never production's server (a --restore-url or a --dev-url / DEV_DATABASE_URL one):
    // compared with production's identity when it answers; the restore itself also refuses a
    // server with the backup's system identifier. A private cluster needs no comparison.
    let mut production = None;
    if matches!(source.origin(), DevOrigin::Url(_)) {
        match connect_dedicated(&config).await {
            Ok(session) => production = Some(session),
            Err(e) => crate::error::say(&format!(
                "production did not answer ({e}); the restore target is checked against the backup's system identifier only"
            )),
        }
    }
    let server = backup::restore_target(&source, &manifest, &config, production.as_mut()).await;
    if let Some(session) = production {
        session.close().await;
    }
    let server = server.map_err(|e| match e {
        TargetError::Dev(pgvigil::dev::DevError::SameServer { target }) => {
            CommandError::RestoreOnProduction {
                flag: if restore_url.is_some() {
                    "--restore-url"
                } else {
                    "--dev-url / DEV_DATABASE_URL"
                },
                target,
            }
        }
        TargetError::Dev(other) => CommandError::RestoreTarget(other),
        TargetError::Production(e) => CommandError::Query(e),
        other => CommandError::RestoreTarget(pgvigil::dev::DevError::Start(Box::new(other))),
    })?;
    let options = VerifyOptions {
        jobs: jobs.map(usize::from),
        ..VerifyOptions::default()
    };
    let report = backup::verify(&manifest_path, &server, &options, &progress_on_stderr())
        .await
        .map_err(|e| CommandError::BackupVerify(Box::new(e)))?;
    drop(server);
    let recorded = match pgvigil::checks::state_dir() {
        Some(dir) => Some(
            backup::record::record(&dir, &manifest, &report)
                .map_err(|e| CommandError::Record(Box::new(e)))?,
        ),
        None => None,
    };
    if json {
        print_json(&report);
    } else {
        let mut out = format!(
            "backup {} restored on {}: {}\n  files: {}/{} match their SHA-256\n",
            manifest_path.display(),
            printable(&report.restored_on),
            match report.outcome {
                VerifyOutcome::Match => "every figure matches",
                VerifyOutcome::Mismatch => "MISMATCH",
            },
            report.files_matching,
            report.files_checked
        );
        for t in &report.tables {
            out.push_str(&format!(
                "  {}: {} rows expected, {} restored; {} ranges compared, {} differ{}\n",
                printable(&t.table),
                t.rows_expected,
                t.rows_found.map_or("none".into(), |n| n.to_string()),
                t.ranges_checked,
                t.ranges_differing.len(),
                if t.ranges_differing.is_empty() {
                    String::new()
                } else {
                    format!(": {}", printable(&t.ranges_differing.join(", ")))
                }
            ));
        }
        if report.restored {
            out.push_str(&format!("  indexes compared: {}\n", report.indexes_checked));
        }
        for f in &report.findings {
            out.push_str(&format!(
                "  FAIL {}: {}\n       fix: {}\n",
                printable(&f.subject),
                printable(&f.detail),
                printable(&f.fix)
            ));
        }
        if let Some(path) = recorded {
            out.push_str(&format!("  recorded in {}\n", path.display()));
        }
        print_out(&out);
    }
    Ok(match report.outcome {
        VerifyOutcome::Match => Status::Pass,
        VerifyOutcome::Mismatch => Status::Fail,
    })
}

/// `pgvigil backup create|verify`: the flags become the step's options.
pub async fn run(
    command: crate::cli::BackupCommand,
    config: PoolConfig,
    dev: DevSource,
) -> Result<Status, CommandError> {
    use crate::cli::BackupCommand;
    match command {
        BackupCommand::Create {
            output,
            jobs,
            full_hash_limit,
            compress,
            json,
        } => {
            let options = CreateOptions {
                output,
                jobs: jobs.map(usize::from),
                full_hash_limit,
                compress,
                ..Default::default()
            };
            create(config, options, json).await
        }
        BackupCommand::Verify {
            manifest,
            restore_url,
            jobs,
            json,
        } => verify(config, manifest, restore_url, jobs, json, dev).await,
    }
}

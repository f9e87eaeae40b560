//! Fixture states for the dashboard's unit tests: a finished lint, a verified backup and its
//! record, as the jobs would deliver them (the render tests draw these; nothing here is real).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};

use super::message::{JobMessage, Message};
use super::state::{BackupVerified, Effect, JobOutcome, State, update};
use super::theme::{Glyphs, Theme};
use super::ui::Look;
use pgvigil::window::backup::manifest::{BackupManifest, Coverage, DumpFiles, SourceServer};
use pgvigil::window::backup::record::RECORD_FORMAT;
use pgvigil::window::backup::{
    CreateReport, Finding, FindingKind, TableCheck, VerificationRecord, VerifyOutcome, VerifyReport,
};
use pgvigil::window::lint::{self, FileLint, LintReport, Severity, TableFacts};

pub fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 14, 3, 0).unwrap() + chrono::Duration::seconds(s)
}

pub fn state() -> State {
    State::new(
        pgvigil::DatabaseUrl::parse("postgres://app:pw@db.internal:5432/prod")
            .unwrap()
            .target(),
        t(0),
        FixedOffset::east_opt(3600).unwrap(),
        Duration::from_secs(1),
        0.8,
    )
}

/// Draws `draw` on a `width` x `height` TestBackend with the default theme, as text rows.
pub fn screen(
    (width, height): (u16, u16),
    draw: impl FnOnce(&mut ratatui::Frame, &Look),
) -> Vec<String> {
    let theme = Theme::builtin("default");
    let glyphs = Glyphs::unicode();
    let look = Look {
        theme: &theme,
        glyphs: &glyphs,
        log: None,
    };
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| draw(f, &look)).unwrap();
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

/// The rows joined, borders and line breaks as spaces, whitespace collapsed: a wrapped line
/// reads whole.
pub fn joined(rows: &[String]) -> String {
    rows.iter()
        .map(|r| r.replace('\u{2502}', " "))
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn lint_report() -> LintReport {
    let finding = |rule: &str, severity, line, message: &str, fix: Option<&str>| lint::Finding {
        rule: rule.into(),
        severity,
        line,
        column: 1,
        message: message.into(),
        fix: fix.map(Into::into),
        table: Some("public.documents".into()),
        why: Some("documents: 200 k rows, 1.2 GB, 140 writes/s: big".into()),
    };
    LintReport {
        format: lint::LINT_FORMAT,
        selection: "the 1 pending migration (ledger on DATABASE_URL)".into(),
        pg_version: "15".into(),
        catalog_read: true,
        assumptions: vec!["read pg_stat_user_tables twice, 5 s apart".into()],
        tables: vec![TableFacts {
            table: "public.documents".into(),
            rows: 200_000,
            bytes: 1_200_000_000,
            writes_per_s: 140.0,
            scans_per_s: 3.0,
        }],
        files: vec![FileLint {
            file: "/srv/app/migrations/20261201000000_index_title.sql".into(),
            no_transaction: false,
            parse_failed: false,
            findings: vec![
                finding(
                    "require-concurrent-index-creation",
                    Severity::Error,
                    3,
                    "CREATE INDEX without CONCURRENTLY blocks writes to documents",
                    Some("CREATE INDEX CONCURRENTLY in a -- no-transaction file"),
                ),
                finding(
                    "prefer-robust-stmts",
                    Severity::Warning,
                    7,
                    "ALTER TABLE without IF NOT EXISTS",
                    None,
                ),
            ],
            waivers: Vec::new(),
        }],
        elapsed_ms: 3.2,
    }
}

fn manifest() -> BackupManifest {
    BackupManifest {
        format: "pgvigil.backup/1".into(),
        pgvigil_version: "0.1.0".into(),
        taken_at: "2026-11-26T12:00:00.000000Z".into(),
        source: SourceServer {
            server_version: "15.20".into(),
            server_version_num: 150020,
            system_identifier: Some("7312345678901234567".into()),
            database: "prod".into(),
        },
        dump: DumpFiles {
            directory: "dump".into(),
            format: "directory".into(),
            pg_dump: "pg_dump (PostgreSQL) 15.20".into(),
            snapshot: "00000003-0000001B-1".into(),
            files: Vec::new(),
        },
        extensions: Vec::new(),
        ledger: None,
        tables: Vec::new(),
        vector_columns: Vec::new(),
        indexes: Vec::new(),
        full_hash_limit: 10_000_000,
    }
}

/// A backup job's result: `matched` or with one range of documents that differs.
pub fn backup(matched: bool) -> BackupVerified {
    let path = PathBuf::from("/var/lib/pgvigil/backups/prod-20261126T120000Z/manifest.json");
    let table = |name: &str, rows, differing: Vec<String>| TableCheck {
        table: name.into(),
        rows_expected: rows,
        rows_found: Some(rows),
        coverage: Coverage::Full,
        ranges_checked: 8,
        ranges_differing: differing,
    };
    let (tables, findings) = if matched {
        (
            vec![
                table("public.documents", 2000, Vec::new()),
                table("public._sqlx_migrations", 5, Vec::new()),
            ],
            Vec::new(),
        )
    } else {
        (
            vec![
                table("public.documents", 2000, vec!["[250, 500)".into()]),
                table("public._sqlx_migrations", 5, Vec::new()),
            ],
            vec![Finding {
                kind: FindingKind::RangeHash,
                subject: "public.documents [250, 500)".into(),
                detail: "hash 9f2c... expected, 41aa... restored".into(),
                fix: "do not rely on this backup; take a new one".into(),
            }],
        )
    };
    let verified = VerifyReport {
        manifest: path.clone(),
        verified_at: "2026-11-26T12:01:00Z".into(),
        restored_on: "private PostgreSQL 15.20 on this machine (removed afterwards)".into(),
        files_checked: 12,
        files_matching: 12,
        restored: true,
        tables,
        indexes_checked: 5,
        outcome: if findings.is_empty() {
            VerifyOutcome::Match
        } else {
            VerifyOutcome::Mismatch
        },
        findings,
    };
    let record = VerificationRecord {
        format: RECORD_FORMAT.into(),
        manifest: path.clone(),
        manifest_sha256: "ab".repeat(32),
        taken_at: "2026-11-26T12:00:00.000000Z".into(),
        database: "prod".into(),
        system_identifier: Some("7312345678901234567".into()),
        verified_at: verified.verified_at.clone(),
        outcome: verified.outcome,
        findings: verified.findings.len(),
    };
    BackupVerified {
        created: CreateReport {
            manifest_path: path,
            manifest: manifest(),
            dump_bytes: 31_000_000,
            jobs: 2,
        },
        verified,
        record: Some(record),
    }
}

/// `state` after the job `key` starts ran to `outcome`, as the engineer would see it: the key
/// pressed, the job's end arriving on the bus.
pub fn after_job(state: &mut State, key: char, outcome: JobOutcome) -> Vec<Effect> {
    let key = crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char(key),
        crossterm::event::KeyModifiers::NONE,
    );
    let effects = update(state, Message::Key(key));
    let id = match effects.as_slice() {
        [Effect::StartJob { id, .. }] => *id,
        other => panic!("the key started no job: {other:?}"),
    };
    update(state, JobMessage::Done { id, outcome }.into())
}

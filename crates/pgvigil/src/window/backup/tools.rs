//! The PostgreSQL client programs a backup runs (pg_dump, pg_restore): found on PATH or under
//! /usr/lib/postgresql/*/bin, of at least the server's major version (pg_dump reads older
//! servers, never newer ones), and started with the connection in their environment: the URL
//! without its password on the command line, the password in `PGPASSWORD` of the child only.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::config::DatabaseUrl;

/// A client program and its major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its path.
    pub path: PathBuf,
    /// Its major version (15 for `pg_dump (PostgreSQL) 15.10`).
    pub major: u32,
    /// Its `--version` line.
    pub version: String,
}

/// No client program of the version needed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{program} for PostgreSQL {needed} or newer is not installed here (the server is \
     PostgreSQL {needed}; found: {found}); install postgresql-client-{needed} (scripts/\
     setup-postgres.sh does) or put its bin directory on PATH"
)]
pub struct NoClient {
    /// `pg_dump` or `pg_restore`.
    pub program: &'static str,
    /// The server's major version.
    pub needed: u32,
    /// What was found instead (`pg_dump 14 at /usr/bin/pg_dump`), or `none`.
    pub found: String,
}

/// The `--version` line of `path` and the major version in it.
fn version_of(path: &Path) -> Option<(u32, String)> {
    let out = std::process::Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = parse_major(&line)?;
    Some((major, line))
}

/// `pg_dump (PostgreSQL) 15.10 (Debian 15.10-1)` → 15; `9.6.24` → 9.
pub fn parse_major(version_line: &str) -> Option<u32> {
    let number = version_line
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    number
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The `program` to use for a server of `major`: the same major if installed, else the oldest
/// newer one, among PATH's and /usr/lib/postgresql/*/bin's.
pub fn find(program: &'static str, major: u32) -> Result<Client, NoClient> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(program))
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(program)));
    }
    let mut found: Vec<Client> = Vec::new();
    for path in candidates.into_iter().filter(|p| p.is_file()) {
        if found.iter().any(|c| c.path == path) {
            continue;
        }
        if let Some((m, version)) = version_of(&path) {
            found.push(Client {
                path,
                major: m,
                version,
            });
        }
    }
    let best = found
        .iter()
        .filter(|c| c.major >= major)
        .min_by_key(|c| c.major)
        .cloned();
    best.ok_or_else(|| NoClient {
        program,
        needed: major,
        found: if found.is_empty() {
            "none".into()
        } else {
            found
                .iter()
                .map(|c| format!("{program} {} at {}", c.major, c.path.display()))
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// A command for `client` connecting to `url`'s database: `--dbname` without the password,
/// the URL's parameters as libpq's variables, the password in the child's `PGPASSWORD` (or
/// the caller's PGPASSWORD / PGPASSFILE when the URL has none), nothing else of ours that
/// starts with PG. Killed when dropped.
pub fn command(client: &Client, url: &DatabaseUrl, application: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&client.path);
    let inherited: Vec<(&str, std::ffi::OsString)> = ["PGPASSWORD", "PGPASSFILE"]
        .into_iter()
        .filter_map(|v| std::env::var_os(v).map(|x| (v, x)))
        .collect();
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
    let (target, params) = url.libpq_parts();
    for (var, value) in params {
        cmd.env(var, value);
    }
    cmd.arg(format!("--dbname={target}"))
        .env("PGAPPNAME", application)
        .env("PGCONNECT_TIMEOUT", "30")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    match url.password() {
        Some(password) => {
            cmd.env("PGPASSWORD", password);
        }
        None => {
            for (var, value) in inherited {
                cmd.env(var, value);
            }
        }
    }
    cmd
}

/// A name for a child's sessions (`application_name`), so a way out can find and cancel them.
pub fn application_name(what: &str) -> String {
    format!(
        "pgvigil-{what}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_are_read_from_version_lines() {
        assert_eq!(
            parse_major("pg_dump (PostgreSQL) 15.10 (Debian 15.10-1.pgdg120+1)"),
            Some(15)
        );
        assert_eq!(parse_major("pg_restore (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("pg_dump (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("nothing"), None);
    }

    #[test]
    fn the_password_travels_in_the_environment_not_the_arguments() {
        let url =
            DatabaseUrl::parse("postgres://app:s3cret-pw@db.example:5433/docs?sslmode=require")
                .unwrap();
        let client = Client {
            path: "/usr/bin/pg_dump".into(),
            major: 15,
            version: String::new(),
        };
        let cmd = command(&client, &url, "pgvigil-test");
        let std = cmd.as_std();
        let args: Vec<String> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["--dbname=postgres://app@db.example:5433/docs"]);
        assert!(args.iter().all(|a| !a.contains("s3cret-pw")));
        let env: Vec<(String, Option<String>)> = std
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert!(env.contains(&("PGPASSWORD".into(), Some("s3cret-pw".into()))));
        assert!(env.contains(&("PGSSLMODE".into(), Some("require".into()))));
    }
}

//! Which extensions the dev database may have. Some let SQL inside it reach other servers:
//! dblink and postgres_fdw (in PostgreSQL's contrib the only extensions linked with libpq) open
//! connections wherever a connection string points, production included, with credentials a
//! migration carries; other foreign-data wrappers (`mysql_fdw`, `oracle_fdw`, `file_fdw`'s
//! programs) and HTTP clients (`http`, `pg_net`) do the same outside PostgreSQL. None is
//! created for a migration or for production's copy unless the engineer names it
//! (`--allow-extension NAME`).

use std::collections::BTreeSet;

use crate::migrations::LocalMigration;

/// The extensions a dev database may create although they reach outside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionPolicy {
    allowed: BTreeSet<String>,
}

/// An extension that was not created, and who asked for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefusedExtension {
    /// The extension (`dblink`).
    pub name: String,
    /// Who asked: `migration 20261201000000_x.sql`, or `production` (its schema has it).
    pub asked_by: String,
    /// What it would let the dev database do.
    pub reaches: &'static str,
}

impl std::fmt::Display for RefusedExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "extension {} (asked for by {}) {}, so the dev database does not create it; pass \
             --allow-extension {} to create it anyway (the private dev server has no network \
             route when pgvigil runs as root)",
            self.name, self.asked_by, self.reaches, self.name
        )
    }
}

impl ExtensionPolicy {
    /// The default policy: every extension that reaches out is refused.
    pub fn refusing() -> Self {
        Self::default()
    }

    /// Allows these extensions (names as in `CREATE EXTENSION`, case-insensitive).
    pub fn allowing<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            allowed: names
                .into_iter()
                .map(|n| n.as_ref().trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// The extensions allowed beyond the default, sorted.
    pub fn allowed(&self) -> impl Iterator<Item = &str> {
        self.allowed.iter().map(String::as_str)
    }

    /// Why `name` is refused, or `None` when the dev database may create it.
    pub fn refuses(&self, name: &str) -> Option<&'static str> {
        let name = name.to_ascii_lowercase();
        if self.allowed.contains(&name) {
            return None;
        }
        reaches_out(&name)
    }

    /// The extensions the pending `migrations` create (with or without IF NOT EXISTS) that
    /// this policy refuses, each with the first migration that asks for it.
    pub fn refused_in(&self, migrations: &[&LocalMigration]) -> Vec<RefusedExtension> {
        let mut refused: Vec<RefusedExtension> = Vec::new();
        for m in migrations {
            for name in crate::sql_scan::extensions_created(&m.sql) {
                if let Some(reaches) = self.refuses(&name)
                    && !refused.iter().any(|r| r.name == name)
                {
                    refused.push(RefusedExtension {
                        name,
                        asked_by: migration_file(m),
                        reaches,
                    });
                }
            }
        }
        refused
    }
}

/// A migration as its file is named (`<version>_<description>.sql`).
pub fn migration_file(m: &LocalMigration) -> String {
    format!(
        "migration {}_{}.sql",
        m.version,
        m.description.replace(' ', "_")
    )
}

/// What an extension lets SQL reach beyond its own database, for those that do.
fn reaches_out(name: &str) -> Option<&'static str> {
    match name {
        "dblink" | "postgres_fdw" => Some("opens connections to other PostgreSQL servers"),
        "file_fdw" => Some("reads the server's files and runs programs on it"),
        "http" | "pgsql_http" | "pg_net" | "pgsql-http" => {
            Some("makes HTTP requests to other servers")
        }
        n if n.ends_with("_fdw") || n.ends_with("_fdw_ext") => {
            Some("is a foreign-data wrapper: it opens connections to other servers")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_that_reach_out_are_refused_unless_named() {
        let policy = ExtensionPolicy::refusing();
        for name in ["dblink", "DBLINK", "postgres_fdw", "mysql_fdw", "pg_net"] {
            assert!(policy.refuses(name).is_some(), "{name}");
        }
        for name in ["vector", "pg_trgm", "hstore", "uuid-ossp"] {
            assert_eq!(policy.refuses(name), None, "{name}");
        }
        let allowing = ExtensionPolicy::allowing(["DBlink"]);
        assert_eq!(allowing.refuses("dblink"), None);
        assert!(allowing.refuses("postgres_fdw").is_some());
    }
}

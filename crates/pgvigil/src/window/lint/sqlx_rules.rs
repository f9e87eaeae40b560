//! Rules from sqlx's way of running a file that squawk does not know: sqlx wraps every file in
//! a transaction unless its first line is `-- no-transaction`, even a file of one statement
//! (squawk's `ban-concurrent-index-creation-in-transaction` stays silent on a single statement,
//! taking it to run on its own).

use super::squawk::Raw;
use super::statements::Statement;

/// `pgvigil-concurrent-in-transaction`: a CONCURRENTLY build, drop or reindex in a file sqlx runs
/// in a transaction, where PostgreSQL refuses it.
pub(crate) fn check(stmts: &[Statement], no_transaction: bool) -> Vec<Raw> {
    if no_transaction {
        return Vec::new();
    }
    stmts
        .iter()
        .filter(|s| {
            (s.starts_with(&["create"]) || s.starts_with(&["drop"]) || s.starts_with(&["reindex"]))
                && s.find("concurrently", 1).is_some_and(|i| i <= 3)
        })
        .map(|s| Raw {
            rule: "pgvigil-concurrent-in-transaction".into(),
            offset: s.start,
            message: "CONCURRENTLY in a file sqlx runs in a transaction (its first line is not `-- no-transaction`): PostgreSQL refuses it (\"cannot run inside a transaction block\") and the migration fails".into(),
            fix: Some("make it the only statement of a file whose first line is `-- no-transaction`".into()),
        })
        .collect()
}

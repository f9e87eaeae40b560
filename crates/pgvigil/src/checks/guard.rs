//! One failing read must not spoil the others. Every read group of a check runs under its own
//! savepoint inside the READ ONLY transaction: a permission error or a lock timeout on one table
//! is rolled back to the savepoint and reported by that check, and the next check still decides.
//! A read that gave up waiting for a lock names the session that held it.

use crate::session::Reader;

use crate::catalog::locks::{LockHolder, read_blockers};

/// A read that failed, with who blocked it when it waited on a lock.
#[derive(Debug, thiserror::Error)]
#[error("{message}{blockers}")]
pub struct ReadError {
    message: String,
    blockers: String,
    #[source]
    source: sqlx::Error,
}

impl From<sqlx::Error> for ReadError {
    fn from(source: sqlx::Error) -> Self {
        Self {
            message: server_message(&source),
            blockers: String::new(),
            source,
        }
    }
}

impl ReadError {
    /// The server's SQLSTATE (`42501` permission denied, `55P03` lock not available), when the
    /// database returned one.
    pub fn sqlstate(&self) -> Option<String> {
        match &self.source {
            sqlx::Error::Database(d) => d.code().map(|c| c.to_string()),
            _ => None,
        }
    }
}

/// Runs `read` under a savepoint; on failure rolls back to it so the transaction stays usable.
pub async fn guarded<T>(
    conn: &mut Reader<'_>,
    read: impl AsyncFnOnce(&mut Reader<'_>) -> Result<T, sqlx::Error>,
) -> Result<T, ReadError> {
    // Outside a transaction a savepoint is an error; the check runner always opens one.
    let savepoint = conn.savepoint().await;
    let result = read(&mut *conn).await;
    match result {
        Ok(v) => {
            if savepoint {
                conn.release_savepoint().await;
            }
            Ok(v)
        }
        Err(source) => {
            if savepoint {
                conn.rollback_to_savepoint().await;
            }
            let lock_wait =
                matches!(&source, sqlx::Error::Database(d) if d.code().as_deref() == Some("55P03"));
            let blockers = if lock_wait {
                blockers(conn).await
            } else {
                String::new()
            };
            Err(ReadError {
                message: server_message(&source),
                blockers,
                source,
            })
        }
    }
}

/// The server's message without the driver's prefix and with a hint for the usual causes.
pub fn server_message(e: &sqlx::Error) -> String {
    let mut m = crate::db_error::words(e);
    if let sqlx::Error::Database(d) = e
        && d.code().as_deref() == Some("42501")
    {
        m.push_str(" (the role lacks a privilege: see README, \"The role to give pgvigil\")");
    }
    m
}

/// Sessions holding a lock a reader cannot share (one that blocks reads, on a relation of this
/// database), as "; waited on a lock held by pid 123 (app, ACCESS EXCLUSIVE on documents,
/// transaction open 41 s)". Sessions queued for such a lock are named too: a migration waiting
/// behind a long transaction blocks every later reader just the same.
pub(crate) async fn blockers(conn: &mut Reader<'_>) -> String {
    let holders = read_blockers(&mut *conn, 3).await.unwrap_or_default();
    if holders.is_empty() {
        return "; the session holding the lock could not be seen (grant pg_monitor)".into();
    }
    let list: Vec<String> = holders.iter().map(LockHolder::to_string).collect();
    format!("; waited on a lock held by {}", list.join(", "))
}

//! Scratch databases a killed run left behind on a shared dev server: found by their name,
//! comment and free advisory lock, and dropped by the next run.

use sqlx::Connection;

use super::DevServer;
use super::scratch::drop_database;
use crate::db_error::DbError;

impl DevServer {
    /// Drops scratch databases on a shared dev server whose maker was this host's process that
    /// no longer runs. Anything not named and commented by pgvigil on this host is left alone.
    pub(super) async fn sweep_stale_scratch(&self) {
        let Ok(mut conn) = self.admin().await else {
            return;
        };
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT d.datname::text, shobj_description(d.oid, 'pg_database')
               FROM pg_database d WHERE d.datname LIKE 'pgvigil\\_scratch\\_%'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        for (name, comment) in rows {
            // A statement of the killed run may still be running in it (a backend notices a
            // vanished client only when it next writes): the drop ends it too (WITH FORCE).
            if !stale_scratch(&name, comment.as_deref(), &host_name()) {
                continue;
            }
            // Its maker's session holds this lock while the database lives.
            let free: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(&name)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap_or(false);
            if !free {
                continue;
            }
            let dropped = drop_database(&mut conn, &name).await;
            let _ = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                .bind(&name)
                .execute(&mut conn)
                .await;
            match dropped {
                Ok(()) => tracing::info!(
                    target: "pgvigil::dev",
                    "dropped scratch database {name} left by a pgvigil process that no longer runs"
                ),
                Err(e) => tracing::warn!(
                    target: "pgvigil::dev",
                    "could not drop stale scratch database {name}: {}",
                    DbError::new(e, self)
                ),
            }
        }
        let _ = conn.close().await;
    }
}

pub(super) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// A scratch database is stale when its name and comment say pgvigil made it on this host, in a
/// process that is gone.
fn stale_scratch(name: &str, comment: Option<&str>, host: &str) -> bool {
    let Some(rest) = name.strip_prefix("pgvigil_scratch_") else {
        return false;
    };
    let Some(pid) = rest.split('_').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    let Some(comment) = comment else {
        return false;
    };
    let ours = comment == format!("pgvigil scratch: host={host} pid={pid}");
    ours && pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_dead_scratch_databases_are_stale() {
        let host = "bastion-1";
        // A pid that cannot exist (above pid_max).
        let dead = 99_999_999u32;
        let name = format!("pgvigil_scratch_{dead}_1_00000000");
        let ours = format!("pgvigil scratch: host={host} pid={dead}");
        assert!(stale_scratch(&name, Some(&ours), host));
        assert!(!stale_scratch(&name, Some(&ours), "other-host"));
        assert!(!stale_scratch(&name, None, host));
        assert!(!stale_scratch(&name, Some("someone else's"), host));
        assert!(!stale_scratch("pgvigil_scratchy", Some(&ours), host));
        assert!(!stale_scratch("app_db", Some(&ours), host));
        let alive = format!("pgvigil_scratch_{}_1_0", std::process::id());
        let me = format!("pgvigil scratch: host={host} pid={}", std::process::id());
        assert!(!stale_scratch(&alive, Some(&me), host));
    }
}

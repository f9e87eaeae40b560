//! What tells one running server from another, so a dev URL that names production's own server
//! is refused.

/// What tells one running server from another without privileges: when its postmaster started
/// (to the microsecond), its port and version.
pub async fn server_identity(conn: &mut crate::session::Reader<'_>) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT pg_postmaster_start_time()::text || ' port ' || current_setting('port')
                || ' version ' || current_setting('server_version_num')",
    )
    .fetch_one(conn)
    .await
}

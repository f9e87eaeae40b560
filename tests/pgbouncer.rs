//! PgBouncer's admin console on a real PgBouncer: with 5 clients holding transactions through a
//! pool of 3 server connections, SHOW POOLS reads 3 servers active and 2 clients waiting, in
//! the snapshot and on the dashboard's screen.

mod support;

use std::time::{Duration, Instant};

use pgvigil::DatabaseUrl;
use sqlx::{ConnectOptions, Connection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_clients_through_a_pool_of_three_show_three_active_and_two_waiting() {
    let cluster = support::cluster();
    let db = support::fresh_database(cluster, "bouncer");
    let name = db.rsplit('/').next().unwrap().to_string();
    let bouncer = pgvigil_cluster::PrivateBouncer::start(cluster, &name, 3);
    let admin = DatabaseUrl::parse(&bouncer.admin_url()).unwrap();
    // The dashboard watching the same console, up before the clients arrive.
    let admin_url = bouncer.admin_url();
    // The console's password in the environment, as DATABASE_URL's, not among the arguments.
    let pane = support::pane::Pane::start(
        "bouncer",
        (120, 40),
        &[
            ("DATABASE_URL", db.as_str()),
            ("PGBOUNCER_URL", admin_url.as_str()),
        ],
        &["--migrations", "/nonexistent"],
    );
    pane.wait_for("pgbouncer: no client pools yet", Duration::from_secs(20));

    let mut holders = Vec::new();
    for _ in 0..5 {
        let url = bouncer.app_url();
        holders.push(tokio::spawn(async move {
            let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
            // Under CI's load PgBouncer has once closed a fresh client before its BEGIN: try a
            // few times, so the test is about the pool's counts, not that close (the reading
            // below still has to show exactly three active and two waiting).
            let mut tries = 0;
            let mut conn = loop {
                tries += 1;
                let attempt = async {
                    let mut conn = options.clone().extra_float_digits(None).connect().await?;
                    // BEGIN takes a server connection until COMMIT (transaction pooling).
                    sqlx::raw_sql("BEGIN").execute(&mut conn).await?;
                    Ok::<_, sqlx::Error>(conn)
                };
                match attempt.await {
                    Ok(conn) => break conn,
                    Err(e) if tries < 3 => {
                        eprintln!("client through pgbouncer, try {tries}: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("through pgbouncer: {e}"),
                }
            };
            sqlx::raw_sql("SELECT pg_sleep(6)")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
            let _ = conn.close().await;
        }));
    }
    let started = Instant::now();
    let view = loop {
        let view = pgvigil::remote::pgbouncer::read(&admin, Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", bouncer.log()));
        if view
            .pools
            .iter()
            .any(|p| (p.cl_active, p.cl_waiting, p.sv_active) == (3, 2, 3))
        {
            break view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{view:?}\n{}",
            bouncer.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pool = view.pools.iter().find(|p| p.database == "app").unwrap();
    assert_eq!(
        (pool.cl_active, pool.cl_waiting, pool.sv_active),
        (3, 2, 3),
        "{pool:?}"
    );
    assert_eq!(pool.pool_mode, "transaction");
    // The same figures on screen (the first three hold their servers for 6 s).
    let (screen, _) = pane.wait_for("3 active, 2 waiting", Duration::from_secs(4));
    assert!(screen.contains("servers 3 active"), "{screen}");
    pane.keys("q");
    assert!(view.lists.contains_key("used_servers"), "{:?}", view.lists);
    for h in holders {
        h.await.unwrap();
    }
    // An application's instrumented pool works through PgBouncer: every session setting
    // pgvigil makes (idle_in_transaction_session_timeout) is a SET after connecting, never a
    // startup parameter the pooler would refuse.
    let app = pgvigil::Connector::new(
        pgvigil::PoolConfig::builder(bouncer.app_url())
            .min_connections(1)
            .max_connections(2)
            .build()
            .unwrap(),
    )
    .connect()
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", bouncer.log()));
    let mut conn = app.acquire().await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    drop(conn);
    app.close().await;
    // A wrong console URL is an error naming it, without a password.
    let wrong = DatabaseUrl::parse(&format!(
        "postgres://postgres:Secr3t@127.0.0.1:{}/pgbouncer",
        support::http::free_port()
    ))
    .unwrap();
    let err = pgvigil::remote::pgbouncer::read(&wrong, Duration::from_secs(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("PgBouncer postgres://postgres:***@127.0.0.1:"),
        "{err}"
    );
    assert!(!err.contains("Secr3t"), "{err}");
}

#[tokio::test]
async fn the_dashboards_console_reading_keeps_one_connection_open() {
    let cluster = support::cluster();
    let db = support::fresh_database(cluster, "console");
    let name = db.rsplit('/').next().unwrap().to_string();
    let bouncer = pgvigil_cluster::PrivateBouncer::start(cluster, &name, 2);
    let admin = DatabaseUrl::parse(&bouncer.admin_url()).unwrap();
    let console = pgvigil::remote::pgbouncer::Console::new(admin.clone());
    for _ in 0..5 {
        console
            .read(Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", bouncer.log()));
    }
    // SHOW CLIENTS on a connection of our own: the console's one kept connection and ours.
    let options = admin.connect_options().extra_float_digits(None);
    let mut own = sqlx::postgres::PgConnection::connect_with(&options)
        .await
        .unwrap();
    let clients = sqlx::raw_sql("SHOW CLIENTS")
        .fetch_all(&mut own)
        .await
        .unwrap();
    let on_console = clients
        .iter()
        .filter(|r| {
            sqlx::Row::try_get_unchecked::<String, _>(*r, "database")
                .is_ok_and(|d| d == "pgbouncer")
        })
        .count();
    assert_eq!(on_console, 2, "five readings, one kept connection");
    let _ = own.close().await;
}

#[test]
fn a_paused_database_is_shown_paused_in_check_and_on_the_panel() {
    let cluster = support::cluster();
    let db = support::fresh_database(cluster, "paused");
    let name = db.rsplit('/').next().unwrap().to_string();
    let bouncer = pgvigil_cluster::PrivateBouncer::start(cluster, &name, 2);
    let admin_url = bouncer.admin_url();
    let console = |sql: &str| {
        // The password on psql's environment, not its command line.
        let out = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &bouncer.port.to_string()])
            .args(["-U", pgvigil_cluster::BOUNCER_ADMIN_USER, "-d", "pgbouncer"])
            .args(["-X", "-c", sql])
            .env("PGPASSWORD", bouncer.admin_password())
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {out:?}\n{}", bouncer.log());
    };
    console("PAUSE app");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["check", "--only", "pool", "--json"])
        .env_clear()
        .env("DATABASE_URL", &db)
        .env("PGBOUNCER_URL", &admin_url)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let held = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "pool.pgbouncer")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(held["status"], "warn", "{held}");
    assert!(
        held["summary"]
            .as_str()
            .unwrap()
            .contains("database app is PAUSED"),
        "{held}"
    );
    let pane = support::pane::Pane::start(
        "paused",
        (120, 40),
        &[
            ("DATABASE_URL", db.as_str()),
            ("PGBOUNCER_URL", admin_url.as_str()),
        ],
        &["--migrations", "/nonexistent"],
    );
    pane.wait_for("pgbouncer app: PAUSED", Duration::from_secs(20));
    console("RESUME app");
    pane.wait_for("pgbouncer: no client pools yet", Duration::from_secs(5));
    assert!(!pane.screen().contains("PAUSED"), "{}", pane.screen());
    pane.keys("q");
}

#[test]
fn a_refused_console_login_is_not_retried_every_tick() {
    let cluster = support::cluster();
    let db = support::fresh_database(cluster, "refused");
    let name = db.rsplit('/').next().unwrap().to_string();
    let bouncer = pgvigil_cluster::PrivateBouncer::start(cluster, &name, 2);
    // A user PgBouncer does not know, with a wrong password: refused whatever auth_type is.
    let wrong = format!(
        "postgres://nosuchadmin:wrong@127.0.0.1:{}/pgbouncer",
        bouncer.port
    );
    let refusals = || {
        bouncer
            .log()
            .lines()
            .filter(|l| l.contains("nosuchadmin") && l.contains("closing because"))
            .count()
    };
    let pane = support::pane::Pane::start(
        "refused",
        (120, 40),
        &[("DATABASE_URL", db.as_str())],
        &["--pgbouncer", &wrong, "--migrations", "/nonexistent"],
    );
    pane.wait_for("not retried", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(refusals(), 1, "one login in 4 s:\n{}", bouncer.log());
    assert!(!pane.screen().contains("wrong"), "{}", pane.screen());
    pane.keys("r");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(refusals(), 2, "r tries once more:\n{}", bouncer.log());
    pane.keys("q");
}

#[test]
fn another_local_user_can_neither_read_pgbouncers_files_nor_log_in_without_a_password() {
    use support::exposure::{
        cat_as_nobody, count_entries, is_auth_refusal, open_to_others, psql_as_nobody,
    };
    let cluster = support::cluster();
    let db = support::fresh_database(cluster, "exposure");
    let name = db.rsplit('/').next().unwrap().to_string();
    let bouncer = pgvigil_cluster::PrivateBouncer::start(cluster, &name, 2);
    let bin = cluster.bindir();
    let port = bouncer.port;
    // Everything in its directory (ini, userlist, log, pid file, owner file) is private.
    assert!(
        bouncer.dir().join("pgbouncer.pid").exists(),
        "{}",
        bouncer.log()
    );
    assert!(count_entries(bouncer.dir()) >= 6);
    assert_eq!(open_to_others(bouncer.dir()), Vec::<String>::new());
    for file in ["pgbouncer.ini", "userlist.txt", "pgbouncer.log"] {
        let read = cat_as_nobody(&bouncer.dir().join(file));
        assert!(
            !read.success && read.stderr.contains("Permission denied"),
            "{file}: {read:?}"
        );
    }
    // The cluster's superuser password is in none of its files.
    for entry in std::fs::read_dir(bouncer.dir()).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(
            !text.contains(cluster.password()),
            "{}",
            entry.path().display()
        );
    }

    // With the right password nobody gets in, over the same route: so the refusals below are
    // authentication, not an unreachable port.
    let pooled = bouncer.app_user().to_string();
    let ok = psql_as_nobody(
        bin,
        "127.0.0.1",
        port,
        &pooled,
        "app",
        Some(bouncer.app_password()),
        "SELECT current_user, usesuper FROM pg_user WHERE usename = current_user",
    );
    assert!(ok.success, "{ok:?}\n{}", bouncer.log());
    assert_eq!(ok.stdout.trim(), format!("{pooled}|f"));
    let console = psql_as_nobody(
        bin,
        "127.0.0.1",
        port,
        pgvigil_cluster::BOUNCER_STATS_USER,
        "pgbouncer",
        Some(bouncer.stats_password()),
        "SHOW VERSION",
    );
    assert!(console.success, "{console:?}\n{}", bouncer.log());
    // The pooled role is no superuser: the report's attack (COPY TO PROGRAM) is refused.
    let attack = psql_as_nobody(
        bin,
        "127.0.0.1",
        port,
        &pooled,
        "app",
        Some(bouncer.app_password()),
        "COPY (SELECT 1) TO PROGRAM 'id'",
    );
    assert!(
        !attack.success && attack.stderr.contains("pg_execute_server_program"),
        "{attack:?}"
    );

    // Without the password, or with a wrong one: refused, for every user and both databases.
    let attempts = [
        ("postgres", "app"),
        (pooled.as_str(), "app"),
        ("postgres", "pgbouncer"),
        (pgvigil_cluster::BOUNCER_ADMIN_USER, "pgbouncer"),
        (pgvigil_cluster::BOUNCER_STATS_USER, "pgbouncer"),
    ];
    for (user, database) in attempts {
        for password in [None, Some("wrong-password")] {
            let refused =
                psql_as_nobody(bin, "127.0.0.1", port, user, database, password, "SELECT 1");
            assert!(
                !refused.success && is_auth_refusal(&refused.stderr),
                "{user}@{database} with {password:?}: {refused:?}"
            );
        }
    }
}

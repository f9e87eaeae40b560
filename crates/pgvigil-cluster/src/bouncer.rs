//! A private PgBouncer (Debian's package) in front of a private cluster, on a free port of
//! 127.0.0.1, as the `postgres` user when run as root (it refuses to run as root); stopped and
//! removed on drop, and by a watchdog when this process dies without dropping it.
//! The demo puts some of its application instances behind one; the tests read its console.
//!
//! Every login is SCRAM with a password generated here: the pooled database's clients log in
//! as a role created for this PgBouncer (not a superuser; CONNECT on the pooled database, and
//! whatever its caller grants it), and the console has an admin and a stats user of its own.
//! The passwords are in `userlist.txt` only, in a 0700 directory of the account PgBouncer runs
//! as; the cluster's superuser password is written nowhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::leftovers::{self, Watchdog};
use crate::private::{self, generate_secret};
use crate::{ClusterError, PrivateCluster};

/// The name every private PgBouncer's directory starts with (the sweep looks for it).
pub(crate) const BOUNCER_PREFIX: &str = "pgvigil-bouncer-";

/// The binary, from Debian's `pgbouncer` package.
const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// The console user who may run admin commands (PAUSE, SHUTDOWN...).
pub const BOUNCER_ADMIN_USER: &str = "pgbouncer_admin";
/// The console user who may only read (SHOW ...): what a dashboard needs.
pub const BOUNCER_STATS_USER: &str = "pgbouncer_stats";

/// A running PgBouncer with transaction pooling for one database, `app`.
pub struct PrivateBouncer {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    app_user: String,
    app_password: String,
    admin_password: String,
    stats_password: String,
    watchdog: Option<Watchdog>,
    dir: tempfile::TempDir,
}

impl PrivateBouncer {
    /// Database `app` on `database` of `cluster`, transaction pooling, `pool_size` servers.
    /// Panics with what to install when PgBouncer cannot start.
    pub fn start(cluster: &PrivateCluster, database: &str, pool_size: u32) -> Self {
        Self::try_start(cluster, database, pool_size).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`start`](Self::start), with the reason as an error.
    pub fn try_start(
        cluster: &PrivateCluster,
        database: &str,
        pool_size: u32,
    ) -> Result<Self, ClusterError> {
        if !Path::new(PGBOUNCER).exists() {
            return Err(ClusterError::Command {
                what: format!("start {PGBOUNCER}"),
                detail: "not installed (Debian package pgbouncer; scripts/setup-postgres.sh \
                         installs it)"
                    .into(),
            });
        }
        let run_as = if nix::unistd::Uid::effective().is_root() {
            let pg = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or(ClusterError::NoPostgresUser)?;
            Some((pg.uid, pg.gid))
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix(BOUNCER_PREFIX)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|e| io_err(Path::new("temporary directory"), e))?;
        let path = dir.path().to_path_buf();
        leftovers::write_owner_file(&path)
            .map_err(|e| io_err(&path.join(leftovers::OWNER_FILE), e))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| io_err(Path::new("127.0.0.1:0"), e))?;
        let app_user = format!("pooled_{}", generate_secret()[..6].to_lowercase());
        let (app_password, admin_password, stats_password) =
            (generate_secret(), generate_secret(), generate_secret());
        create_pooled_role(cluster, database, &app_user, &app_password)?;

        let userlist = format!(
            "\"{app_user}\" \"{app_password}\"\n\"{BOUNCER_ADMIN_USER}\" \"{admin_password}\"\n\
             \"{BOUNCER_STATS_USER}\" \"{stats_password}\"\n"
        );
        // No user or password in the connection string: PgBouncer logs in to the server as
        // the client did, with the client's password from userlist.txt, so a console user has
        // no way into the database. The server's own socket, in its private directory.
        let ini = format!(
            "[databases]\napp = host='{socket}' port={server_port} dbname='{database}' \
             pool_size={pool_size}\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = scram-sha-256\nauth_file = {dir}/userlist.txt\n\
             admin_users = {BOUNCER_ADMIN_USER}\nstats_users = {BOUNCER_STATS_USER}\n\
             pool_mode = transaction\nmax_client_conn = 200\ndefault_pool_size = {pool_size}\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n",
            socket = cluster.dir().display(),
            server_port = cluster.port(),
            dir = path.display(),
        );
        for (name, text) in [("userlist.txt", &userlist), ("pgbouncer.ini", &ini)] {
            let file = path.join(name);
            private::write_file(&file, text.as_bytes()).map_err(|e| io_err(&file, e))?;
        }
        if let Some((uid, gid)) = run_as {
            for f in ["", leftovers::OWNER_FILE, "userlist.txt", "pgbouncer.ini"] {
                let file = path.join(f);
                nix::unistd::chown(&file, Some(uid), Some(gid))
                    .map_err(|e| io_err(&file, e.into()))?;
            }
        }
        let ini_path = path.join("pgbouncer.ini");
        // Through sh for one reason: umask 077, so the log and pid files PgBouncer creates are
        // 0600 too. `exec` keeps the pid: the child is PgBouncer itself.
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", &format!("umask 077 && exec {PGBOUNCER} \"$0\"")])
            .arg(&ini_path)
            .current_dir("/")
            // Nothing of ours (PGPASSWORD, DATABASE_URL) for a process of another account.
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, as the server's: our signals reach it only through us, in
        // the order we choose.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if let Some((uid, gid)) = run_as {
            std::os::unix::process::CommandExt::uid(&mut cmd, uid.as_raw());
            std::os::unix::process::CommandExt::gid(&mut cmd, gid.as_raw());
        }
        let child = cmd.spawn().map_err(|e| io_err(Path::new(PGBOUNCER), e))?;
        let pid = child.id();
        // Once we are gone: SIGTERM (immediate up to 1.22), then SIGKILL after a second (1.23+
        // waits for clients on SIGTERM), only if the pid still runs this ini file.
        let stop = format!(
            "if {runs}; then kill -TERM {pid}; for i in 1 2 3 4 5 6 7 8 9 10; do \
             kill -0 {pid} 2>/dev/null || break; sleep 0.1; done; kill -KILL {pid} 2>/dev/null; fi",
            runs = leftovers::sh_runs_with(pid, &ini_path),
        );
        let watchdog = Watchdog::spawn(&path, &stop);
        let b = Self {
            child,
            port,
            app_user,
            app_password,
            admin_password,
            stats_password,
            watchdog,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() >= deadline {
                return Err(ClusterError::Command {
                    what: format!("start {PGBOUNCER} {}", ini_path.display()),
                    detail: format!("not listening on 127.0.0.1:{port} after 10 s: {}", b.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(b)
    }

    /// The admin console's URL, as the admin user (with its password).
    pub fn admin_url(&self) -> String {
        self.url(BOUNCER_ADMIN_USER, &self.admin_password, "pgbouncer")
    }

    /// The console's URL as the stats user, who may read (SHOW) and nothing more.
    pub fn stats_url(&self) -> String {
        self.url(BOUNCER_STATS_USER, &self.stats_password, "pgbouncer")
    }

    /// The pooled database's URL, as the pooled role (with its password).
    pub fn app_url(&self) -> String {
        self.url(&self.app_user, &self.app_password, "app")
    }

    /// The role clients of `app` log in as, on PgBouncer and on the server. It has CONNECT on
    /// the pooled database and nothing else: grant it what the application needs.
    pub fn app_user(&self) -> &str {
        &self.app_user
    }

    /// The pooled role's password.
    pub fn app_password(&self) -> &str {
        &self.app_password
    }

    /// The admin console user's password ([`BOUNCER_ADMIN_USER`]).
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The stats console user's password ([`BOUNCER_STATS_USER`]).
    pub fn stats_password(&self) -> &str {
        &self.stats_password
    }

    /// Its directory (configuration, userlist, log, pid file), 0700.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// PgBouncer's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log file's text.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    fn url(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }
}

impl Drop for PrivateBouncer {
    fn drop(&mut self) {
        // SIGTERM stops it at once up to 1.22; from 1.23 it waits for every client to leave,
        // so SIGQUIT (1.23's immediate shutdown) follows after a second, and SIGKILL after
        // another: a client stuck behind a lock must not hold the demo's exit.
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
        if !self.exited_within(Duration::from_secs(1)) {
            let _ = nix::sys::signal::kill(pid, Signal::SIGQUIT);
            if !self.exited_within(Duration::from_secs(1)) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.dismiss();
        }
    }
}

impl PrivateBouncer {
    fn exited_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl std::fmt::Debug for PrivateBouncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateBouncer")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .field("app_user", &self.app_user)
            .finish_non_exhaustive()
    }
}

/// The pooled role: it logs in, connects to `database` and nothing more; not a superuser, so
/// a client of PgBouncer gets no `COPY ... TO PROGRAM` and no other database's objects.
fn create_pooled_role(
    cluster: &PrivateCluster,
    database: &str,
    role: &str,
    password: &str,
) -> Result<(), ClusterError> {
    // On standard input, so the password is in no command line; not logged even if the
    // cluster logs every statement or the statement fails.
    let sql = format!(
        "SET log_statement = 'none';\nSET log_min_error_statement = 'panic';\n\
         CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS \
         PASSWORD '{password}';\nGRANT CONNECT ON DATABASE \"{database}\" TO {role};\n"
    );
    cluster
        .psql_stdin(database, &sql)
        .map(|_| ())
        .map_err(|e| match e {
            ClusterError::Command { what, detail } => ClusterError::Command {
                what,
                detail: detail.replace(password, "***"),
            },
            other => other,
        })
}

/// Ends the PgBouncer of a leftover directory, but only a process whose command line names
/// that directory's configuration.
pub(crate) fn stop_leftover_bouncer(dir: &Path) {
    let ini: PathBuf = dir.join("pgbouncer.ini");
    if let Some(pid) = leftovers::leftover_pid(&dir.join("pgbouncer.pid"), &ini) {
        leftovers::end(pid, Signal::SIGTERM, Duration::from_secs(1));
    }
}

fn io_err(path: &Path, source: std::io::Error) -> ClusterError {
    crate::io_err(path, source)
}

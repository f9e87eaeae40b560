//! Private, throwaway PostgreSQL clusters for tests and `pgvigil demo`: initdb in a temporary
//! directory, a free port on 127.0.0.1, the unix socket inside that directory, password (SCRAM)
//! authentication, pgvector required. The server can be stopped, restarted, paused (SIGSTOP)
//! and resumed, and everything is removed on drop.
//!
//! PostgreSQL refuses to run as root, so when we are root the server runs as the `postgres`
//! user in a directory it owns. A watchdog process removes the cluster if this process dies
//! without dropping it (a static shared by a test binary, a panic that aborts, SIGKILL).

mod bouncer;
mod isolation;
mod leftovers;
mod lock_holder;
pub mod private;
pub use bouncer::{BOUNCER_ADMIN_USER, BOUNCER_STATS_USER, PrivateBouncer};
pub use leftovers::sweep_stale;
pub use lock_holder::{LockHolder, LockRequest};

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User};

use leftovers::Watchdog;

/// Something that stops a private cluster from existing or running.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL server binaries not found (looked for initdb in $PGVIGIL_PG_BINDIR, \
         /usr/lib/postgresql/*/bin and PATH); run scripts/setup-postgres.sh as root"
    )]
    NoBinaries,
    #[error(
        "PostgreSQL {major} server binaries are not installed here (looked in \
         /usr/lib/postgresql/{major}/bin and $PGVIGIL_PG_BINDIR); install postgresql-{major} with \
         pgvector for it (scripts/setup-postgres.sh does so for 15), or pass --dev-url / \
         DEV_DATABASE_URL pointing at an empty scratch server of PostgreSQL {major}"
    )]
    NoBinariesForMajor { major: u32 },
    #[error(
        "pgvector is not installed for the PostgreSQL in {bindir}; run scripts/setup-postgres.sh as root"
    )]
    NoPgvector { bindir: String },
    #[error(
        "running as root but there is no `postgres` user to run the server as; install postgresql-15"
    )]
    NoPostgresUser,
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Settings written into postgresql.conf before the first start.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    pub settings: Vec<(String, String)>,
    /// The PostgreSQL major version the cluster must run (a dev database must match the server
    /// it stands in for); `None` takes the newest installed.
    pub major: Option<u32>,
    /// Replaces pg_hba.conf (tests of authentication and TLS).
    pub hba: Option<String>,
    /// No way out but its own unix socket: the server does not listen on TCP
    /// (`listen_addresses = ''`; reach it with [`PrivateCluster::socket_url`]) and, when we are
    /// root, runs in network and mount namespaces of its own (see `isolation.rs`): code inside
    /// it (dblink, postgres_fdw) reaches no other server. Without the privilege it runs as
    /// before and [`PrivateCluster::network_isolation`] says why.
    pub isolate_network: bool,
}

impl ClusterOptions {
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }
}

/// A private PostgreSQL server. The superuser is `postgres` with a random password.
pub struct PrivateCluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    password: String,
    run_as: Option<(Uid, Gid)>,
    watchdog: Option<Watchdog>,
    isolate_network: bool,
    /// How the last start went for [`ClusterOptions::isolate_network`].
    isolation: std::sync::Mutex<Isolation>,
}

/// Whether a server asked to be network-isolated is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// Not asked for: the server listens on 127.0.0.1 and can open connections anywhere.
    NotRequested,
    /// In namespaces of its own: no network interface up, /tmp, /var/tmp and /run empty.
    Isolated,
    /// Asked for but not possible (why, e.g. not root): the server can open connections.
    Unavailable(String),
}

impl PrivateCluster {
    /// initdb and start, with pgvector checked.
    pub fn start_new() -> Result<Self, ClusterError> {
        Self::start_with(ClusterOptions::default())
    }

    pub fn start_with(options: ClusterOptions) -> Result<Self, ClusterError> {
        let cluster = Self::init(options)?;
        cluster.start()?;
        cluster.require_pgvector()?;
        Ok(cluster)
    }

    /// initdb only: the server is not running until [`start`](Self::start).
    pub fn init(options: ClusterOptions) -> Result<Self, ClusterError> {
        let bindir = match options.major {
            None => find_bindir().ok_or(ClusterError::NoBinaries)?,
            Some(major) => {
                find_bindir_for(major).ok_or(ClusterError::NoBinariesForMajor { major })?
            }
        };
        let run_as = if Uid::effective().is_root() {
            let user = User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or(ClusterError::NoPostgresUser)?;
            Some((user.uid, user.gid))
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix(CLUSTER_PREFIX)
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| io_err(Path::new("temporary directory"), e))?;
        let password = private::generate_secret();
        let mut cluster = Self {
            dir,
            bindir,
            port: free_port()?,
            password,
            run_as,
            watchdog: None,
            isolate_network: options.isolate_network,
            isolation: std::sync::Mutex::new(Isolation::NotRequested),
        };
        cluster.give_to_server_user(cluster.dir.path())?;
        // Who made this directory, so that a later run can tell a leftover of a killed process
        // (see sweep_stale) from a live cluster of another process.
        leftovers::write_owner_file(cluster.dir.path())
            .map_err(|e| io_err(&cluster.dir.path().join(leftovers::OWNER_FILE), e))?;
        let pwfile = cluster.dir.path().join("pwfile");
        cluster.write_owned(&pwfile, &cluster.password.clone())?;
        let initdb = cluster.run(
            "initdb",
            &[
                "-D",
                cluster.data_dir().to_str().expect("utf-8 temp path"),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        // The superuser's password is needed on disk only for initdb, failed or not.
        let _ = fs::remove_file(&pwfile);
        initdb?;
        let listen = if options.isolate_network {
            ""
        } else {
            "127.0.0.1"
        };
        let mut conf = format!(
            "\n# pgvigil private cluster\nport = {}\nlisten_addresses = '{listen}'\n\
             unix_socket_directories = '{}'\nmax_connections = 300\nfsync = off\n\
             synchronous_commit = off\nfull_page_writes = off\nlogging_collector = off\n\
             log_min_messages = warning\n",
            cluster.port,
            cluster.dir.path().display()
        );
        // The socket is for the server's own account: any local user who can reach it may try
        // passwords, and a `local ... trust` line would let them straight in.
        conf.push_str("unix_socket_permissions = 0700\n");
        for (name, value) in &options.settings {
            conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        let conf_path = cluster.data_dir().join("postgresql.conf");
        let mut existing = fs::read_to_string(&conf_path).map_err(|e| io_err(&conf_path, e))?;
        existing.push_str(&conf);
        private::write_file(&conf_path, existing.as_bytes()).map_err(|e| io_err(&conf_path, e))?;
        if let Some(hba) = &options.hba {
            let hba_path = cluster.data_dir().join("pg_hba.conf");
            private::write_file(&hba_path, hba.as_bytes()).map_err(|e| io_err(&hba_path, e))?;
        }
        cluster.watchdog = cluster.spawn_watchdog();
        Ok(cluster)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server binaries this cluster runs (pg_dump, psql beside them).
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// TCP URL for `database` as the superuser (none answers with
    /// [`ClusterOptions::isolate_network`]: use [`socket_url`](Self::socket_url)).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Unix-socket URL for `database` as the superuser.
    pub fn socket_url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{}@localhost:{}/{database}?host={}",
            self.password,
            self.port,
            self.dir.path().display()
        )
    }

    /// Whether the server runs network-isolated ([`ClusterOptions::isolate_network`]).
    pub fn network_isolation(&self) -> Isolation {
        self.isolation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn start(&self) -> Result<(), ClusterError> {
        let log = self.log_path();
        let isolate = match (self.isolate_network, self.run_as) {
            (false, _) => None,
            (true, Some(run_as)) => Some(run_as),
            (true, None) => {
                *self.isolation.lock().unwrap_or_else(|e| e.into_inner()) = Isolation::Unavailable(
                    "pgvigil does not run as root (CAP_SYS_ADMIN), so the server could \
                         not be given network and mount namespaces of its own"
                        .into(),
                );
                None
            }
        };
        let data = self.data_dir();
        let args = [
            "-D",
            data.to_str().expect("utf-8 temp path"),
            "-l",
            log.to_str().expect("utf-8 temp path"),
            "-w",
            "-t",
            "60",
            "start",
        ];
        let mut started = self.run_with("pg_ctl", &args, isolate);
        if isolate.is_some() {
            let state = match &started {
                Ok(()) => Isolation::Isolated,
                Err(e) => Isolation::Unavailable(format!(
                    "the server could not be given network and mount namespaces of its own: {e}"
                )),
            };
            // The kernel refused the namespaces (a container without CAP_SYS_ADMIN): pg_ctl
            // never ran. The server starts as it would without the option, and says so.
            if let Err(ClusterError::Io { .. }) = &started {
                started = self.run_with("pg_ctl", &args, None);
            }
            *self.isolation.lock().unwrap_or_else(|e| e.into_inner()) = state;
        }
        started.map_err(|e| self.with_log_tail(e))
    }

    /// Fast shutdown: sessions are terminated (57P01), the server stops accepting connections.
    pub fn stop(&self) -> Result<(), ClusterError> {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data_dir().to_str().expect("utf-8 temp path"),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        )
    }

    /// Turns the server into a standby in recovery (standby.signal, no primary to follow): it
    /// answers read-only queries and `pg_is_in_recovery()` is true.
    pub fn make_standby(&self) -> Result<(), ClusterError> {
        self.stop()?;
        self.write_owned(&self.data_dir().join("standby.signal"), "")?;
        self.start()
    }

    pub fn restart(&self) -> Result<(), ClusterError> {
        self.stop()?;
        self.start()
    }

    /// Freezes the postmaster and every backend (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) -> Result<(), ClusterError> {
        let pids = self.server_pids()?;
        for pid in &pids {
            let _ = kill(*pid, Signal::SIGSTOP);
        }
        Ok(())
    }

    pub fn resume(&self) -> Result<(), ClusterError> {
        let pids = self.server_pids()?;
        for pid in pids.iter().rev() {
            let _ = kill(*pid, Signal::SIGCONT);
        }
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.postmaster_pid()
            .is_some_and(|pid| kill(pid, None).is_ok())
    }

    /// Runs SQL with psql as the superuser and returns its unaligned, tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, ClusterError> {
        self.run_psql(database, sql, false)
    }

    /// As [`psql`](Self::psql), but the SQL goes to psql's standard input, statement after
    /// statement, never into its command line (which `ps` shows every local user): the way for
    /// statements that carry a password.
    pub fn psql_stdin(&self, database: &str, sql: &str) -> Result<String, ClusterError> {
        self.run_psql(database, sql, true)
    }

    /// psql as the superuser on `database`: unaligned, tuples only, stopping at the first error.
    fn psql_command(&self, database: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join("psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", self.dir.path().to_str().expect("utf-8 temp path")])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .env("PGPASSWORD", &self.password);
        cmd
    }

    fn run_psql(&self, database: &str, sql: &str, on_stdin: bool) -> Result<String, ClusterError> {
        let mut cmd = self.psql_command(database);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if on_stdin {
            cmd.stdin(Stdio::piped());
        } else {
            cmd.args(["-c", sql]).stdin(Stdio::null());
        }
        let what = || {
            if on_stdin {
                // The statement may hold a password: name it by its first word only.
                format!(
                    "psql {:?} (on stdin)",
                    sql.split_whitespace().next().unwrap_or("")
                )
            } else {
                format!("psql {sql:?}")
            }
        };
        let mut child = cmd
            .spawn()
            .map_err(|e| io_err(&self.bindir.join("psql"), e))?;
        if on_stdin && let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(sql.as_bytes())
                .map_err(|e| io_err(&self.bindir.join("psql"), e))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| io_err(&self.bindir.join("psql"), e))?;
        if !out.status.success() {
            return Err(ClusterError::Command {
                what: what(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn create_database(&self, name: &str) -> Result<(), ClusterError> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map(|_| ())
    }

    fn require_pgvector(&self) -> Result<(), ClusterError> {
        let found = self.psql(
            "postgres",
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'",
        )?;
        if found != "1" {
            return Err(ClusterError::NoPgvector {
                bindir: self.bindir.display().to_string(),
            });
        }
        Ok(())
    }

    fn postmaster_pid(&self) -> Option<Pid> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok().map(Pid::from_raw)
    }

    /// The postmaster first, then its children (backends and auxiliary processes).
    fn server_pids(&self) -> Result<Vec<Pid>, ClusterError> {
        let postmaster = self.postmaster_pid().ok_or_else(|| ClusterError::Command {
            what: "find the postmaster".into(),
            detail: "no postmaster.pid: the server is not running".into(),
        })?;
        let mut pids = vec![postmaster];
        let proc_dir = Path::new("/proc");
        for entry in fs::read_dir(proc_dir)
            .map_err(|e| io_err(proc_dir, e))?
            .flatten()
        {
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...; comm may contain spaces, so split after the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let ppid: Option<i32> = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            if ppid == Some(postmaster.as_raw())
                && let Ok(pid) = entry.file_name().to_string_lossy().parse()
            {
                pids.push(Pid::from_raw(pid));
            }
        }
        Ok(pids)
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), ClusterError> {
        self.run_with(program, args, None)
    }

    /// As [`run`](Self::run); with `isolate`, in namespaces of its own as that user.
    fn run_with(
        &self,
        program: &str,
        args: &[&str],
        isolate: Option<(Uid, Gid)>,
    ) -> Result<(), ClusterError> {
        let out_path = self.dir.path().join(format!("{program}.out"));
        // initdb's and pg_ctl's output may quote settings and paths: not for other users.
        let out = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&out_path)
            .map_err(|e| io_err(&out_path, e))?;
        let err = out.try_clone().map_err(|e| io_err(&out_path, e))?;
        let mut cmd = Command::new(self.bindir.join(program));
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            // A file, not a pipe: the daemonised server would hold a pipe open forever.
            .stdout(out)
            .stderr(err);
        // The server inherits this environment, and code inside it (a migration's dblink or
        // postgres_fdw through libpq, an extension) could read it: PGPASSWORD, a service file,
        // ~/.pgpass, DATABASE_URL with production's password. It gets none of ours.
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("HOME", self.dir.path())
            .env("PGPASSFILE", self.dir.path().join("no-pgpass"))
            .env("PGSERVICEFILE", self.dir.path().join("no-pg-service"));
        if let Some(run_as) = isolate {
            isolation::isolate(&mut cmd, self.dir.path(), run_as);
        } else if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
        let status = cmd
            .status()
            .map_err(|e| io_err(&self.bindir.join(program), e))?;
        if status.success() {
            Ok(())
        } else {
            let output = fs::read_to_string(&out_path).unwrap_or_default();
            Err(ClusterError::Command {
                what: format!("{program} {}", args.join(" ")),
                detail: format!("{status}: {}", output.trim()),
            })
        }
    }

    fn with_log_tail(&self, err: ClusterError) -> ClusterError {
        match err {
            ClusterError::Command { what, detail } => {
                let log = fs::read_to_string(self.log_path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                ClusterError::Command {
                    what,
                    detail: format!("{detail}\nserver log:\n{}", tail.join("\n")),
                }
            }
            other => other,
        }
    }

    fn give_to_server_user(&self, path: &Path) -> Result<(), ClusterError> {
        if let Some((uid, gid)) = self.run_as {
            nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|e| io_err(path, e.into()))?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(|e| io_err(path, e))
    }

    /// Writes `contents` to `path` as a 0600 file of the server's account (0600 from its
    /// creation: the password file for initdb is one).
    fn write_owned(&self, path: &Path, contents: &str) -> Result<(), ClusterError> {
        private::write_file(path, contents.as_bytes()).map_err(|e| io_err(path, e))?;
        if let Some((uid, gid)) = self.run_as {
            nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|e| io_err(path, e.into()))?;
        }
        Ok(())
    }

    /// Once our pid is gone the watchdog stops the server immediately (SIGCONT first, in case
    /// it was paused) and removes the directory.
    fn spawn_watchdog(&self) -> Option<Watchdog> {
        let pid_file =
            private::sh_quote(&self.data_dir().join("postmaster.pid").display().to_string());
        let stop = format!(
            "pid=$(head -n1 {pid_file} 2>/dev/null); \
             if [ -n \"$pid\" ]; then kill -CONT $pid 2>/dev/null; pkill -CONT -P $pid 2>/dev/null; \
             kill -QUIT $pid 2>/dev/null; sleep 2; fi"
        );
        Watchdog::spawn(self.dir.path(), &stop)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if let Some(pid) = self.postmaster_pid() {
            if let Ok(pids) = self.server_pids() {
                for p in pids {
                    let _ = kill(p, Signal::SIGCONT);
                }
            }
            // Immediate shutdown: nothing here is worth a checkpoint.
            let _ = kill(pid, Signal::SIGQUIT);
            for _ in 0..100 {
                if kill(pid, None).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.dismiss();
        }
    }
}

impl std::fmt::Debug for PrivateCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateCluster")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path, source: std::io::Error) -> ClusterError {
    ClusterError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn free_port() -> Result<u16, ClusterError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| io_err(Path::new("127.0.0.1:0"), e))?;
    let port = listener
        .local_addr()
        .map_err(|e| io_err(Path::new("127.0.0.1:0"), e))?
        .port();
    Ok(port)
}

/// The server binaries of one major version: `$PGVIGIL_PG_BINDIR` when it holds that version,
/// else /usr/lib/postgresql/N/bin.
pub fn find_bindir_for(major: u32) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PGVIGIL_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").exists() && bindir_major(&dir) == Some(major) {
            return Some(dir);
        }
    }
    let bin = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    bin.join("initdb").exists().then_some(bin)
}

/// The major version of the binaries in `dir`, from `pg_config --version` or the path.
fn bindir_major(dir: &Path) -> Option<u32> {
    let out = Command::new(dir.join("pg_ctl"))
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    // "pg_ctl (PostgreSQL) 15.20 (Debian ...)"
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The name every private cluster's directory starts with (the sweep looks for it).
pub(crate) const CLUSTER_PREFIX: &str = "pgvigil-pg-";

/// Ends the server of a leftover cluster directory, but only a postmaster whose command line
/// names that data directory.
pub(crate) fn stop_leftover_cluster(dir: &Path) {
    let data = dir.join("data");
    if let Some(pid) = leftovers::leftover_pid(&data.join("postmaster.pid"), &data) {
        let _ = kill(pid, Signal::SIGCONT);
        let _ = kill(pid, Signal::SIGQUIT);
        leftovers::wait_gone(pid, Duration::from_secs(2));
    }
}

/// `$PGVIGIL_PG_BINDIR`, else the newest /usr/lib/postgresql/N/bin, else initdb on PATH.
pub fn find_bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PGVIGIL_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
    })
}

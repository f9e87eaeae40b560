//! A private PgBouncer (Debian's package) in front of a private cluster, on a free port, as the
//! `postgres` user when run as root (it refuses to run as root); stopped and removed on drop.
//! The demo puts some of its application instances behind one; the tests read its console.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::PrivateCluster;

/// A running PgBouncer with transaction pooling for one database, `app`.
pub struct PrivateBouncer {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: tempfile::TempDir,
}

impl PrivateBouncer {
    /// Database `app` on `database` of `cluster`, transaction pooling, `pool_size` servers.
    /// Panics with what to install when PgBouncer cannot start.
    pub fn start(cluster: &PrivateCluster, database: &str, pool_size: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let path = dir.path();
        std::fs::write(path.join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            path.join("pgbouncer.ini"),
            format!(
                "[databases]\napp = host=127.0.0.1 port={} dbname={database} user=postgres password={} pool_size={pool_size}\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {dir}/userlist.txt\nadmin_users = postgres\n\
                 pool_mode = transaction\nmax_client_conn = 200\ndefault_pool_size = {pool_size}\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n",
                cluster.port(),
                cluster.password(),
                dir = path.display(),
            ),
        )
        .unwrap();
        let root = nix::unistd::Uid::effective().is_root();
        if root {
            let pg = nix::unistd::User::from_name("postgres")
                .unwrap()
                .expect("user postgres");
            for f in ["", "userlist.txt", "pgbouncer.ini"] {
                nix::unistd::chown(&path.join(f), Some(pg.uid), Some(pg.gid)).unwrap();
            }
        }
        let ini = path.join("pgbouncer.ini");
        let mut cmd = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "/usr/sbin/pgbouncer"])
                .arg(&ini);
            c
        } else {
            let mut c = Command::new("/usr/sbin/pgbouncer");
            c.arg(&ini);
            c
        };
        let child = cmd
            .current_dir("/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer (Debian package; scripts/setup-postgres.sh installs it)");
        let b = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen: {}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    /// The admin console's URL.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/pgbouncer", self.port)
    }

    /// The pooled database's URL.
    pub fn app_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/app", self.port)
    }

    /// Its log file's text.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PrivateBouncer {
    fn drop(&mut self) {
        // runuser forwards the signals to pgbouncer. SIGTERM stops it at once up to 1.22; from
        // 1.23 it waits for every client to leave, so SIGQUIT (1.23's immediate shutdown)
        // follows after a second: a client stuck behind a lock must not hold the demo's exit.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        let _ = self.child.wait();
    }
}

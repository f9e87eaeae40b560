//! A session that holds a table lock: the other session a test of the lock-wait guard, the
//! dry-run, the server view or a signal must meet. psql runs in a child process and keeps the
//! transaction open until the [`LockHolder`] is dropped; then it rolls back (or, if the lock is
//! still queued, the session is terminated) and the lock is gone.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::{ClusterError, PrivateCluster, io_err};

/// How long a request may wait for its lock before the server gives up on it (lock_timeout):
/// no holder waits forever behind a session a failed test left.
const LOCK_TIMEOUT: &str = "30s";
/// How long [`LockRequest::hold`] and the session's start are waited for.
const WAIT: Duration = Duration::from_secs(35);

/// A `LOCK TABLE` to take on a private cluster; made by [`PrivateCluster::lock`].
#[must_use = "a lock request does nothing until it is held or sent"]
pub struct LockRequest<'a> {
    cluster: &'a PrivateCluster,
    database: String,
    table: String,
    mode: String,
    application_name: String,
}

/// A session holding (or queued for) a table lock in an open transaction. Dropping it ends
/// the transaction and the session.
pub struct LockHolder {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pid: i32,
    granted: bool,
    what: String,
    /// Ends the session from outside while its lock is still queued (a queued backend would
    /// not notice its client leaving until the lock timeout).
    terminate: Command,
}

impl PrivateCluster {
    /// `LOCK TABLE table IN mode MODE` on `database` (`mode` as PostgreSQL names it, e.g.
    /// `ACCESS EXCLUSIVE`; `table` may be schema-qualified), from a session whose
    /// application_name is `lock-holder` unless [`LockRequest::application_name`] says
    /// otherwise. Nothing happens until [`LockRequest::hold`] or [`LockRequest::send`].
    pub fn lock(&self, database: &str, table: &str, mode: &str) -> LockRequest<'_> {
        LockRequest {
            cluster: self,
            database: database.into(),
            table: table.into(),
            mode: mode.into(),
            application_name: "lock-holder".into(),
        }
    }

    /// Holds `LOCK TABLE table IN mode MODE` on `database` until the holder is dropped:
    /// `self.lock(database, table, mode).hold()`.
    pub fn hold_lock(
        &self,
        database: &str,
        table: &str,
        mode: &str,
    ) -> Result<LockHolder, ClusterError> {
        self.lock(database, table, mode).hold()
    }
}

impl LockRequest<'_> {
    /// The session's application_name, as other sessions and pgvigil's messages name it.
    pub fn application_name(mut self, name: &str) -> Self {
        self.application_name = name.into();
        self
    }

    /// Takes the lock and returns once it is granted.
    pub fn hold(self) -> Result<LockHolder, ClusterError> {
        let mut holder = self.send()?;
        holder.wait_granted(WAIT)?;
        Ok(holder)
    }

    /// Asks for the lock and returns as soon as the session exists: the request may be
    /// queued behind another session ([`LockHolder::wait_granted`]).
    pub fn send(self) -> Result<LockHolder, ClusterError> {
        let what = format!(
            "LOCK TABLE {} IN {} MODE on {}",
            self.table, self.mode, self.database
        );
        if self.mode.is_empty()
            || !self
                .mode
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == ' ')
        {
            return Err(ClusterError::Command {
                what,
                detail: format!(
                    "{:?} is not a lock mode; expected one as PostgreSQL names it, e.g. ACCESS EXCLUSIVE",
                    self.mode
                ),
            });
        }
        let table: Vec<String> = self
            .table
            .split('.')
            .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
            .collect();
        let psql = self.cluster.bindir.join("psql");
        let mut child = self
            .cluster
            .psql_command(&self.database)
            .env("PGAPPNAME", &self.application_name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io_err(&psql, e))?;
        // psql writes each result as the statement ends; a thread hands the lines over, so
        // that waiting for one can be bounded.
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut stdin = child.stdin.take().expect("piped");
        let script = format!(
            "SELECT pg_backend_pid();\nSET lock_timeout = '{LOCK_TIMEOUT}';\nBEGIN;\n\
             LOCK TABLE {} IN {} MODE;\nSELECT 'granted';\n",
            table.join("."),
            self.mode
        );
        stdin
            .write_all(script.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| io_err(&psql, e))?;
        let mut terminate = self.cluster.psql_command("postgres");
        terminate.stdout(Stdio::null()).stderr(Stdio::null());
        let mut holder = LockHolder {
            child,
            stdin: Some(stdin),
            lines,
            pid: 0,
            granted: false,
            what,
            terminate,
        };
        let pid = holder.next_line(WAIT)?;
        holder.pid = pid.parse().map_err(|_| ClusterError::Command {
            what: holder.what.clone(),
            detail: format!("psql answered {pid:?} for pg_backend_pid()"),
        })?;
        holder.terminate.args([
            "-c",
            &format!("SELECT pg_terminate_backend({})", holder.pid),
        ]);
        Ok(holder)
    }
}

impl std::fmt::Debug for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.granted { "held" } else { "asked" };
        write!(f, "LockHolder({}, pid {}, {state})", self.what, self.pid)
    }
}

impl LockHolder {
    /// The server process of the session (pg_stat_activity.pid, pg_locks.pid).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the lock has been seen granted.
    pub fn is_granted(&self) -> bool {
        self.granted
    }

    /// Waits up to `timeout` for the lock (at once if it was already granted); an error if it
    /// is not granted by then or the request failed (its lock_timeout of 30 s, a wrong table).
    pub fn wait_granted(&mut self, timeout: Duration) -> Result<(), ClusterError> {
        if !self.granted {
            let line = self.next_line(timeout)?;
            if line != "granted" {
                return Err(ClusterError::Command {
                    what: self.what.clone(),
                    detail: format!("psql answered {line:?}"),
                });
            }
            self.granted = true;
        }
        Ok(())
    }

    fn next_line(&mut self, timeout: Duration) -> Result<String, ClusterError> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line.trim().to_string()),
            Err(RecvTimeoutError::Timeout) => Err(ClusterError::Command {
                what: self.what.clone(),
                detail: format!("no answer within {timeout:?}"),
            }),
            Err(RecvTimeoutError::Disconnected) => {
                // psql ended (ON_ERROR_STOP): its error is on stderr.
                let _ = self.child.wait();
                let mut detail = String::new();
                if let Some(mut stderr) = self.child.stderr.take() {
                    let _ = stderr.read_to_string(&mut detail);
                }
                Err(ClusterError::Command {
                    what: self.what.clone(),
                    detail: detail.trim().to_string(),
                })
            }
        }
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        if self.granted {
            if let Some(stdin) = self.stdin.as_mut() {
                let _ = stdin.write_all(b"ROLLBACK;\n");
            }
        } else if self.pid != 0 {
            let _ = self.terminate.status();
        }
        // End of input: psql ends the session and exits.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

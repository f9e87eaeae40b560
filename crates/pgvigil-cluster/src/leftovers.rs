//! Nothing a pgvigil process starts outlives it. Each private server's directory names the
//! process that made it (the owner file); a watchdog shell per server ends the server and
//! removes the directory as soon as that process is gone, however it died; and when the
//! watchdog died with it (SIGKILL of the whole group, an OOM kill of the cgroup), the next run
//! sweeps what was left, ending the server only if it really runs from that directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::private::sh_quote;

/// The file in a private server's directory that names the process that made it.
pub(crate) const OWNER_FILE: &str = "pgvigil-owner";

/// Writes the owner file of `dir`: this process, by pid and start time.
pub(crate) fn write_owner_file(dir: &Path) -> std::io::Result<()> {
    crate::private::write_file(
        &dir.join(OWNER_FILE),
        owner_stamp(std::process::id()).as_bytes(),
    )
}

/// `pid start-time`: the start time (from /proc) tells a reused pid from the original.
fn owner_stamp(pid: u32) -> String {
    format!("{pid} {}", process_start_time(pid).unwrap_or(0))
}

fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    // Fields after the command: state(3) ppid(4) ... starttime is field 22 overall.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process recorded in an owner stamp is still the one running.
fn owner_alive(stamp: &str) -> bool {
    let mut parts = stamp.split_whitespace();
    let (Some(pid), Some(start)) = (
        parts.next().and_then(|p| p.parse::<u32>().ok()),
        parts.next().and_then(|p| p.parse::<u64>().ok()),
    ) else {
        // Unreadable: not provably ours to remove.
        return true;
    };
    process_start_time(pid).is_some_and(|now| now == start || start == 0)
}

/// A shell loop that outlives us only to clean up: once our pid is gone it runs `stop` (a
/// shell snippet that ends the server) and removes `dir`. Dismiss it when the owner cleans up
/// itself.
pub(crate) struct Watchdog(Child);

impl Watchdog {
    pub(crate) fn spawn(dir: &Path, stop: &str) -> Option<Watchdog> {
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; {stop}; rm -rf {dir}",
            parent = std::process::id(),
            dir = sh_quote(&dir.display().to_string()),
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group: a Ctrl-C aimed at us must not kill the cleaner first.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.spawn().ok().map(Watchdog)
    }

    /// The owner stopped its server itself: the watchdog has nothing left to do.
    pub(crate) fn dismiss(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The shell test that `pid` still runs with `arg` as one of its arguments: a pid recorded
/// earlier may since belong to another process, which must not be signalled.
pub(crate) fn sh_runs_with(pid: u32, arg: &Path) -> String {
    format!(
        "tr '\\0' '\\n' </proc/{pid}/cmdline 2>/dev/null | grep -qxF -- {}",
        sh_quote(&arg.display().to_string())
    )
}

/// The pid in the first line of `pid_file`, if that process still runs with a command line
/// that mentions `mention` (a directory or file of the leftover).
pub(crate) fn leftover_pid(pid_file: &Path, mention: &Path) -> Option<Pid> {
    let pid: i32 = fs::read_to_string(pid_file)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    cmdline
        .contains(&mention.display().to_string())
        .then_some(Pid::from_raw(pid))
}

/// Waits up to `limit` for `pid` to be gone; whether it is.
pub(crate) fn wait_gone(pid: Pid, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if kill(pid, None).is_err() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal`, waits up to `grace`, then SIGKILL (and waits once more).
pub(crate) fn end(pid: Pid, signal: Signal, grace: Duration) {
    let _ = kill(pid, signal);
    if !wait_gone(pid, grace) {
        let _ = kill(pid, Signal::SIGKILL);
        wait_gone(pid, Duration::from_secs(1));
    }
}

/// Ends the server found in a leftover directory, if it still runs from there.
type StopLeftover = fn(&Path);

/// The kinds of leftovers: each directory-name prefix and how to end the server found in one.
const KINDS: &[(&str, StopLeftover)] = &[
    (crate::CLUSTER_PREFIX, crate::stop_leftover_cluster),
    (
        crate::bouncer::BOUNCER_PREFIX,
        crate::bouncer::stop_leftover_bouncer,
    ),
];

/// Removes private clusters and PgBouncers left in the temporary directory by pgvigil
/// processes that were killed outright (SIGKILL, and their watchdog with them): the directory
/// is ours (its name and owner file say so) and its owner is gone. The server in it, if still
/// running, is ended first, but only when it really runs from that directory. Returns what
/// was removed.
pub fn sweep_stale() -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return removed;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let Some((_, stop)) = KINDS
            .iter()
            .find(|(prefix, _)| name.to_string_lossy().starts_with(prefix))
        else {
            continue;
        };
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let Ok(stamp) = fs::read_to_string(path.join(OWNER_FILE)) else {
            continue;
        };
        if owner_alive(&stamp) {
            continue;
        }
        stop(&path);
        if fs::remove_dir_all(&path).is_ok() {
            tracing::info!(target: "pgvigil::cluster", "removed a private server left by a killed pgvigil: {}", path.display());
            removed.push(path);
        }
    }
    removed
}

//! The real binary in a real terminal: a tmux server of our own per pane, what is on screen,
//! keys, the exit code, and the processes a pane left behind.

use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of our own with one session running pgvigil.
pub struct Pane {
    socket: String,
    exit_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Pane {
    pub fn start(name: &str, size: (u16, u16), env: &[(&str, &str)], args: &[&str]) -> Pane {
        let dir = tempfile::tempdir().unwrap();
        let exit_file = dir.path().join("exit");
        let socket = format!("pgvigil-e2e-{}-{name}", std::process::id());
        let mut cmdline = String::new();
        for (k, v) in env {
            cmdline.push_str(&format!("{k}='{v}' "));
        }
        cmdline.push_str(&format!("'{}'", env!("CARGO_BIN_EXE_pgvigil")));
        for a in args {
            cmdline.push_str(&format!(" '{a}'"));
        }
        cmdline.push_str(&format!("; echo $? > '{}'; sleep 30", exit_file.display()));
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                name,
            ])
            .args(["-x", &size.0.to_string(), "-y", &size.1.to_string()])
            .arg(format!("LANG=C.UTF-8 TERM=xterm-256color {cmdline}"))
            .status()
            .expect("tmux is installed by scripts/setup-postgres.sh");
        assert!(status.success());
        Pane {
            socket,
            exit_file,
            _dir: dir,
        }
    }

    pub fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p"])
    }

    pub fn screen_with_escapes(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-e"])
    }

    pub fn keys(&self, keys: &str) {
        self.tmux(&["send-keys", keys]);
    }

    /// Waits until the screen contains `needle`; returns the screen and how long it took.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> (String, Duration) {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return (screen, started.elapsed());
            }
            if started.elapsed() > limit {
                panic!("no {needle:?} on screen after {limit:?}:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn exit_code(&self, limit: Duration) -> Option<String> {
        let started = Instant::now();
        while started.elapsed() < limit {
            // The shell creates the file before it writes the code: an empty file is not yet
            // an answer.
            if let Ok(s) = std::fs::read_to_string(&self.exit_file)
                && !s.trim().is_empty()
            {
                return Some(s.trim().to_string());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// The pgvigil process running in a pane (a child of the pane's shell).
pub fn pgvigil_pid(pane: &Pane) -> u32 {
    let shell: u32 = pane
        .tmux(&["list-panes", "-F", "#{pane_pid}"])
        .trim()
        .parse()
        .unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid: Option<u32> = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(shell) && head.ends_with("(pgvigil") {
            return entry.file_name().to_string_lossy().parse().unwrap();
        }
    }
    panic!("no pgvigil under the pane's shell {shell}");
}

/// Processes whose command line mentions `needle` (the pane's tmux and shell aside: their
/// command line is the test's own).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) && !cmdline.contains("TERM=xterm-256color") {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

//! What another local user can see and reach: the modes of everything under a private
//! directory, and psql or cat run as `nobody` (the tests run as root, as CI does, so they can
//! switch to an unprivileged account with runuser).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Every file and directory under `dir` (and `dir` itself) that its group or other users may
/// read, write or enter, with its mode. Symbolic links are listed only if they exist: their
/// own mode means nothing.
pub fn open_to_others(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            // Removed while we walk (a server's temporary file): nothing to expose.
            continue;
        };
        if meta.file_type().is_symlink() {
            found.push(format!("{} is a symbolic link", path.display()));
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            found.push(format!("{} {mode:o}", path.display()));
        }
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            pending.extend(entries.flatten().map(|e| e.path()));
        }
    }
    found
}

/// How many files and directories are under `dir`, `dir` included (so a test can say it
/// walked something).
pub fn count_entries(dir: &Path) -> usize {
    let mut n = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        n += 1;
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            pending.extend(entries.flatten().map(|e| e.path()));
        }
    }
    n
}

/// What came of running a program as `nobody`.
#[derive(Debug)]
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

fn as_nobody(program: &Path, args: &[&str], password: Option<&str>) -> Outcome {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test switches to the unprivileged user nobody: run it as root (CI does)"
    );
    let mut cmd = Command::new("/usr/sbin/runuser");
    cmd.args(["-u", "nobody", "--"])
        .arg(program)
        .args(args)
        .current_dir("/")
        // Nothing of the test's environment: no PGPASSWORD, no DATABASE_URL.
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null());
    if let Some(p) = password {
        // The environment, not an argument: it must not be in the command line either.
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd.output().expect("runuser (util-linux)");
    Outcome {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `psql -h host -p port -U user -d database -c sql` as `nobody`, never prompting for a
/// password; with `password` in PGPASSWORD when given.
pub fn psql_as_nobody(
    bindir: &Path,
    host: &str,
    port: u16,
    user: &str,
    database: &str,
    password: Option<&str>,
    sql: &str,
) -> Outcome {
    let port = port.to_string();
    as_nobody(
        &bindir.join("psql"),
        &[
            "-X", "-w", "-A", "-t", "-h", host, "-p", &port, "-U", user, "-d", database, "-c", sql,
        ],
        password,
    )
}

/// `cat path` as `nobody`.
pub fn cat_as_nobody(path: &Path) -> Outcome {
    as_nobody(Path::new("/bin/cat"), &[path.to_str().unwrap()], None)
}

/// Whether psql's error is the server (or PgBouncer) refusing the login: a missing or wrong
/// password, not an unreachable port.
pub fn is_auth_refusal(stderr: &str) -> bool {
    stderr.contains("password authentication failed")
        || stderr.contains("no password supplied")
        || stderr.contains("SASL authentication failed")
}

//! What must stay private to the account that runs a private server: its files are created
//! 0600 and its directories 0700 from the first byte (never written with the umask's 0644 and
//! narrowed afterwards), and its secrets are generated here. On a shared host every other
//! local user is assumed hostile: a readable file that holds a password, or a server socket
//! they can reach, is an account handed over.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::RngExt;

/// Creates or replaces `path` with `contents`, readable and writable by its owner only. An
/// existing file keeps its owner and is narrowed to 0600 too.
pub fn write_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // The mode applies only when the file is created: a file that existed keeps its own.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)
}

/// Creates `path` (and its missing parents) with mode 0700; an existing directory is narrowed
/// to 0700.
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

/// A 24-character password from an alphabet without look-alikes (no 0/O, 1/l/I) and without
/// characters a URL, a connection string or a shell would have to quote.
pub fn generate_secret() -> String {
    let chars = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| chars[rng.random_range(0..chars.len())] as char)
        .collect()
}

/// `text` as one shell word: inside single quotes, each `'` closed, escaped and reopened.
pub(crate) fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_directories_are_created_private_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir(&dir).unwrap();
        let file = dir.join("secret");
        fs::write(&file, "old").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        write_file(&file, b"new").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(fs::read_to_string(&file).unwrap(), "new");
        write_file(&dir.join("fresh"), b"x").unwrap();
        assert_eq!(mode(&dir.join("fresh")), 0o600);
    }

    #[test]
    fn a_quoted_word_survives_the_shell() {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s {}", sh_quote("it's a $HOME"))])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's a $HOME");
    }
}

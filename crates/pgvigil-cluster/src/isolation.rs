//! A server with no way out but its own socket: the postmaster starts inside a new network
//! namespace (only a loopback interface, left down: no TCP or UDP to anywhere, this machine
//! included, and no abstract unix sockets of other namespaces) and a new mount namespace in
//! which /tmp, /var/tmp and /run are empty (where other servers' unix sockets live, production's
//! among them); the cluster's own directory is bound back in place, so its socket is the one
//! door, reached from outside through the real directory. Needs root (CAP_SYS_ADMIN); the
//! server still runs as its unprivileged user, set after the namespaces are made.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

/// Directories hidden from the server: the usual homes of unix sockets and of other clusters.
const HIDDEN: &[&str] = &["/tmp", "/var/tmp", "/run"];

/// What the child does between fork and exec, prepared beforehand (no allocation there).
struct Plan {
    hidden: Vec<CString>,
    /// The cluster directory and the directories to create, inside a hidden one, on the way
    /// to it (outermost first).
    cluster_dir: CString,
    make: Vec<CString>,
    rebind: bool,
    run_as: (Uid, Gid),
}

/// Makes `cmd` (pg_ctl start, whose postmaster inherits the namespaces) run isolated, as
/// `run_as`. `cluster_dir` must exist. The caller must not also set `cmd.uid()`: the user is
/// changed after the namespaces are made, which needs root.
pub(crate) fn isolate(cmd: &mut Command, cluster_dir: &Path, run_as: (Uid, Gid)) {
    let cstr = |p: &Path| CString::new(p.as_os_str().as_bytes()).expect("path without NUL");
    let dir = cluster_dir
        .canonicalize()
        .unwrap_or_else(|_| cluster_dir.to_path_buf());
    let hidden: Vec<PathBuf> = HIDDEN
        .iter()
        .map(PathBuf::from)
        // A symlink (/var/run -> /run) is covered by its target.
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
        .collect();
    let inside = hidden.iter().find(|h| dir.starts_with(h));
    let make: Vec<CString> = match inside {
        Some(h) => {
            let mut chain: Vec<&Path> = dir
                .ancestors()
                .take_while(|a| a != h && a.starts_with(h))
                .collect();
            chain.reverse();
            chain.into_iter().map(cstr).collect()
        }
        None => Vec::new(),
    };
    let plan = Plan {
        hidden: hidden.iter().map(|p| cstr(p)).collect(),
        cluster_dir: cstr(&dir),
        rebind: inside.is_some(),
        make,
        run_as,
    };
    // SAFETY: the closure runs in the forked child before exec; it only makes system calls on
    // data prepared above (CStr paths need no allocation) and formats into a stack buffer.
    unsafe {
        cmd.pre_exec(move || enter(&plan).map_err(std::io::Error::from));
    }
}

fn enter(plan: &Plan) -> nix::Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)?;
    // Nothing mounted here propagates back to the machine's namespace.
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    // Opened in the new namespace, before it is hidden: a bind source must belong to it.
    let dir = if plan.rebind {
        Some(nix::fcntl::open(
            plan.cluster_dir.as_c_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?)
    } else {
        None
    };
    for h in &plan.hidden {
        nix::mount::mount(
            Some("tmpfs"),
            h.as_c_str(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755,size=16m"),
        )?;
    }
    if let Some(fd) = dir {
        for d in &plan.make {
            match nix::unistd::mkdir(d.as_c_str(), Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
        }
        let mut buf = [0u8; 40];
        let source = fd_path(&mut buf, std::os::fd::AsRawFd::as_raw_fd(&fd));
        nix::mount::mount(
            Some(source),
            plan.cluster_dir.as_c_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
    }
    let (uid, gid) = plan.run_as;
    if Uid::effective().is_root() && !uid.is_root() {
        nix::unistd::setgroups(&[])?;
        nix::unistd::setgid(gid)?;
        nix::unistd::setuid(uid)?;
    }
    Ok(())
}

/// `/proc/self/fd/<fd>` written into `buf`, without allocating.
fn fd_path(buf: &mut [u8; 40], fd: i32) -> &std::ffi::CStr {
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 12];
    let mut n = fd.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[prefix.len() + i] = digits[len - 1 - i];
    }
    buf[prefix.len() + len] = 0;
    std::ffi::CStr::from_bytes_until_nul(&buf[..]).expect("NUL written above")
}

#[cfg(test)]
mod tests {
    #[test]
    fn descriptor_paths_are_written_without_allocating() {
        let mut buf = [0u8; 40];
        assert_eq!(super::fd_path(&mut buf, 7).to_str(), Ok("/proc/self/fd/7"));
        let mut buf = [0u8; 40];
        assert_eq!(
            super::fd_path(&mut buf, 1023).to_str(),
            Ok("/proc/self/fd/1023")
        );
    }
}

//! How a command ends on a signal: SIGINT / SIGTERM drop the running command, cancel what it
//! still runs on a server, and exit with the shell's code for the signal.

use std::process::ExitCode;
use std::time::Duration;

use pgvigil::checks::Status;

use crate::commands::exit;

/// Runs a command until it ends or SIGINT / SIGTERM arrives. On a signal the command is
/// dropped (its dev database and scratch databases with it), the statements it had running
/// on any server are cancelled there, and the exit code is 130 (SIGINT) or 143 (SIGTERM).
pub async fn interruptible(command: impl Future<Output = Status>) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return exit(command.await);
    };
    let (name, code) = tokio::select! {
        status = command => {
            // Cleanups the command started from guards (a scratch database dropped after an
            // error) must finish before the runtime goes.
            pgvigil::cleanup::finish(Duration::from_secs(5)).await;
            return exit(status);
        }
        // A signal's exit code is the shell's: 128 + the signal's number.
        _ = int.recv() => ("SIGINT", 128 + libc_signal::SIGINT),
        _ = term.recv() => ("SIGTERM", 128 + libc_signal::SIGTERM),
    };
    // The command's future is gone: its guards have run. Cancel what still runs on servers
    // and wait for the cleanup they started.
    let cancelled = pgvigil::cleanup::finish(Duration::from_secs(5)).await;
    eprintln!(
        "pgvigil: interrupted by {name}; cancelled {cancelled} running statement(s) on the server \
         and removed what this run created"
    );
    ExitCode::from(code)
}

/// The numbers of the signals a command exits on.
mod libc_signal {
    pub const SIGINT: u8 = 2;
    pub const SIGTERM: u8 = 15;
}

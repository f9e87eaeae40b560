//! The one way pgvigil hears a signal. A one-shot command ends on SIGINT / SIGTERM (its
//! running statements cancelled on the server, what it created removed, the shell's exit code
//! 128 + the signal's number); `serve` stops gracefully on the same two; the dashboard also
//! ends on SIGHUP (an SSH link that drops) and restores the terminal.

use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::error::{CommandError, Exit};

/// A signal that ends what pgvigil is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C outside the dashboard).
    Interrupt,
    /// SIGTERM (a scheduler, `kill`, Kubernetes).
    Terminate,
    /// SIGHUP (the terminal went away).
    Hangup,
}

impl Stop {
    fn kind(self) -> SignalKind {
        match self {
            Stop::Interrupt => SignalKind::interrupt(),
            Stop::Terminate => SignalKind::terminate(),
            Stop::Hangup => SignalKind::hangup(),
        }
    }

    /// Its name as a shell says it.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
            Stop::Hangup => "SIGHUP",
        }
    }

    /// The exit code a shell reports for a process this signal ended: 128 + its number.
    pub fn exit_code(self) -> u8 {
        let number = u8::try_from(self.kind().as_raw_value()).unwrap_or(0);
        128 + number
    }
}

/// Listens for the given signals from its creation on (a signal that arrives before it is
/// created keeps its default action).
pub struct Stops {
    listening: Vec<(Stop, Signal)>,
}

impl Stops {
    /// SIGINT and SIGTERM: what ends a command or `serve`. SIGHUP keeps its default action.
    pub fn command() -> std::io::Result<Stops> {
        Stops::listen(&[Stop::Interrupt, Stop::Terminate])
    }

    /// SIGINT, SIGTERM and SIGHUP: what ends the dashboard.
    pub fn session() -> std::io::Result<Stops> {
        Stops::listen(&[Stop::Interrupt, Stop::Terminate, Stop::Hangup])
    }

    fn listen(which: &[Stop]) -> std::io::Result<Stops> {
        let listening = which
            .iter()
            .map(|s| Ok((*s, signal(s.kind())?)))
            .collect::<std::io::Result<_>>()?;
        Ok(Stops { listening })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> Stop {
        let waits = self.listening.iter_mut().map(|(stop, signal)| {
            Box::pin(async move {
                signal.recv().await;
                *stop
            })
        });
        futures_util::future::select_all(waits).await.0
    }
}

/// Runs a command until it ends or SIGINT / SIGTERM arrives. On a signal the command is
/// dropped (its dev database and scratch databases with it), the statements it had running
/// on any server are cancelled there, and it ends as [`Exit::Interrupted`].
pub async fn interruptible(
    command: impl Future<Output = Result<pgvigil::checks::Status, CommandError>>,
) -> Exit {
    let Ok(mut stops) = Stops::command() else {
        return command.await.into();
    };
    let by = tokio::select! {
        outcome = command => {
            // Cleanups the command started from guards (a scratch database dropped after an
            // error) must finish before the runtime goes.
            pgvigil::cleanup::finish(Duration::from_secs(5)).await;
            return outcome.into();
        }
        by = stops.recv() => by,
    };
    // The command's future is gone: its guards have run. Cancel what still runs on servers
    // and wait for the cleanup they started.
    let cancelled = pgvigil::cleanup::finish(Duration::from_secs(5)).await;
    Exit::Interrupted { by, cancelled }
}

/// Resolves on the first SIGINT or SIGTERM (never, if they cannot be listened for), logging
/// which one: `serve`'s graceful stop.
pub async fn graceful_stop() {
    match Stops::command() {
        Ok(mut stops) => {
            let by = stops.recv().await;
            tracing::info!(target: "pgvigil::serve", "{}: finishing requests in flight and stopping", by.name());
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

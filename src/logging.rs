//! Where log lines go: the dashboard's into tui-logger's buffer (its Log panel), a command's
//! onto stderr (status lines for `serve`, only problems for a one-shot command).

use std::io::IsTerminal;

use crate::report::colour_wanted;

/// Logging for the dashboard (and the demo) or for a command (`server`: `pgvigil serve`);
/// `warnings` already said on stderr are logged again where the dashboard shows them.
pub fn init(dashboard: bool, server: bool, no_color: bool, warnings: &[String]) {
    if !dashboard {
        init_command_logging(server, no_color);
        return;
    }
    if let Err(e) = color_eyre::install() {
        crate::error::say(&e.to_string());
    }
    init_tui_logging();
    // The dashboard's log panel shows them too: stderr is hidden behind the screen.
    for warning in warnings {
        tracing::warn!(target: "pgvigil", "{warning}");
    }
}

/// The dashboard logs into tui-logger's buffer (shown in its Log panel), never onto the screen.
fn init_tui_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("PGVIGIL_LOG")
        .unwrap_or_else(|_| "trace,sqlx=error".into());
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tui_logger::TuiTracingSubscriberLayer)
        .try_init();
    // Not tui_logger::init_logger: it starts a thread that wakes every 10 ms to move events
    // into the widget's buffer. The app loop moves them itself before each frame.
    tui_logger::set_default_level(tui_logger::LevelFilter::Info);
}

/// A command logs onto stderr (PGVIGIL_LOG overrides the filter); `server` is `pgvigil serve`,
/// whose log is its status lines.
fn init_command_logging(server: bool, no_color: bool) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGVIGIL_LOG").unwrap_or_else(|_| {
                // A server's log is its status lines; a one-shot command says only problems.
                if server {
                    "info,sqlx=warn".into()
                } else {
                    "warn,sqlx=error".into()
                }
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_wanted(no_color, std::io::stderr().is_terminal()))
        .init();
    // A panic inside a source's reading is that source's error (pgvigil::contain), not a
    // report on stderr. The dashboard's own hook does the same (tui::panic).
    pgvigil::contain::quiet_contained_panics();
}

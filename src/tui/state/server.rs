//! The database server as the poller last saw it: the link's state, the server view, pgvigil's
//! own pool and their short histories for the sparklines. The first connection (or a
//! reconnection before any result) asks for the migration status.

use std::collections::VecDeque;

use super::jobs::{self, JobKind};
use super::{Effect, HISTORY, State, log_source};
use crate::tui::snapshot::Snapshot;
use crate::tui::source_errors::SourceFailure;

pub(super) fn apply(state: &mut State, snap: Snapshot) -> Vec<Effect> {
    let down = snap
        .link
        .down()
        .map(|d| SourceFailure::Database(d.last_error.clone()));
    let mut effects = log_source(state, "database", down);
    if state.paused {
        // Frozen for reading: the picture does not move until resumed.
        return effects;
    }
    let was_connected = state.link.is_connected();
    state.now = state.now.max(snap.taken_at);
    state.link = snap.link;
    if let Some(server) = snap.server {
        state.server = Some(server);
        state.server_at = Some(snap.taken_at);
    }
    if let Some(pool) = snap.pool {
        push(&mut state.in_use_history, pool.in_use as u64);
        push(
            &mut state.wait_history,
            (pool.acquire_wait.p95_ms * 10.0).round() as u64,
        );
        state.pool = Some(pool);
    }
    // First connection (or reconnection): read where the migrations stand, creating nothing.
    if !was_connected && state.link.is_connected() && state.checks.is_none() {
        effects.extend(jobs::request(state, JobKind::Status));
    }
    effects
}

fn push(history: &mut VecDeque<u64>, value: u64) {
    if history.len() == HISTORY {
        history.pop_front();
    }
    history.push_back(value);
}

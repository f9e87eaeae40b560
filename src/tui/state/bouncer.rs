//! The PgBouncer in front of the database (`--pgbouncer`): its last reading or the typed reason
//! it failed (`r` retries a refused login, see `Action::RetryNow`).

use super::{Effect, State, log_source};
use crate::tui::source_errors::SourceFailure;
use pgvigil::remote::pgbouncer::{BouncerError, BouncerView};

pub(super) fn apply(state: &mut State, view: Result<BouncerView, BouncerError>) -> Vec<Effect> {
    let failure = view.as_ref().err().cloned().map(SourceFailure::Bouncer);
    let effects = log_source(state, "pgbouncer", failure);
    if !state.paused {
        state.bouncer = Some(view);
    }
    effects
}

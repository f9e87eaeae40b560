//! A fleet through Prometheus (`--prometheus`): its sums or the typed reason the query failed.

use super::{Effect, State, log_source};
use crate::tui::source_errors::SourceFailure;
use pgvigil::remote::{FleetFigures, ScrapeError};

pub(super) fn apply(state: &mut State, figures: Result<FleetFigures, ScrapeError>) -> Vec<Effect> {
    let failure = figures.as_ref().err().cloned().map(SourceFailure::Scrape);
    let effects = log_source(state, "fleet", failure);
    if !state.paused {
        state.fleet = Some(figures);
    }
    effects
}

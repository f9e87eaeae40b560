//! The other processes' pool figures: the application pools (`--app`), the PgBouncer in front
//! of the database (`--pgbouncer`) and a fleet through Prometheus (`--prometheus`). Each reading
//! is kept as it came (figures, or the source's typed reason it failed) unless the picture is
//! paused; a failure is logged when it starts, changes and ends, never once a tick.

use super::{Effect, State, log_source};
use crate::tui::apps::AppsSnapshot;
use crate::tui::source_errors::SourceFailure;
use pgvigil::remote::pgbouncer::{BouncerError, BouncerView};
use pgvigil::remote::{FleetFigures, ScrapeError};

pub(super) fn apply_apps(state: &mut State, apps: AppsSnapshot) -> Vec<Effect> {
    let mut effects = Vec::new();
    for i in &apps.instances {
        let failure = i.figures.as_ref().err().cloned().map(SourceFailure::Scrape);
        effects.extend(log_source(state, &format!("app {}", i.name), failure));
    }
    keep(state, effects, |s| {
        s.verdicts.on_apps(&apps);
        s.apps = Some(apps);
    })
}

pub(super) fn apply_bouncer(
    state: &mut State,
    view: Result<BouncerView, BouncerError>,
) -> Vec<Effect> {
    let failure = view.as_ref().err().cloned().map(SourceFailure::Bouncer);
    let effects = log_source(state, "pgbouncer", failure);
    keep(state, effects, |s| s.bouncer = Some(view))
}

pub(super) fn apply_fleet(
    state: &mut State,
    figures: Result<FleetFigures, ScrapeError>,
) -> Vec<Effect> {
    let failure = figures.as_ref().err().cloned().map(SourceFailure::Scrape);
    let effects = log_source(state, "fleet", failure);
    keep(state, effects, |s| {
        if let Ok(f) = &figures {
            s.verdicts.on_fleet(f, s.now);
        }
        s.fleet = Some(figures);
    })
}

/// Stores the reading unless paused (frozen for reading: logged, not shown).
fn keep(state: &mut State, effects: Vec<Effect>, store: impl FnOnce(&mut State)) -> Vec<Effect> {
    if !state.paused {
        store(state);
    }
    effects
}

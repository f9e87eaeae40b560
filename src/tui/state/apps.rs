//! The application pools (`--app`): each instance's scrape, kept as it came (figures or the
//! typed reason it failed); a failing instance is logged when it starts, changes and ends.

use super::{Effect, State, log_source};
use crate::tui::apps::AppsSnapshot;
use crate::tui::source_errors::SourceFailure;

pub(super) fn apply(state: &mut State, apps: AppsSnapshot) -> Vec<Effect> {
    let mut effects = Vec::new();
    for i in &apps.instances {
        let failure = i.figures.as_ref().err().cloned().map(SourceFailure::Scrape);
        effects.extend(log_source(state, &format!("app {}", i.name), failure));
    }
    if !state.paused {
        state.apps = Some(apps);
    }
    effects
}

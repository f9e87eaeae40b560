//! The verdicts the screen shows, decided here (or in the library) and never in render: every
//! pool's saturation level by the library's one rule (`pgvigil::pool::SaturationRule`: warn at
//! the threshold, clear ten points lower after a hold), the sizing verdict, and each panel's
//! status for the narrow layout's tab bar. pgvigil's own pool is judged by the pool itself
//! (`PoolStats::saturation_level`); the pools read from other processes by a watch per pool
//! here, fed on the dashboard's clock as their readings arrive.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pgvigil::checks::{MigrationStatus, Status};
use pgvigil::pool::{SaturationLevel, SaturationRule, SaturationWatch};
use pgvigil::remote::FleetFigures;
use pgvigil::remote::sizing::Sizing;

use super::apps::{AppInstance, AppsSnapshot};
use super::state::{Panel, State};

/// One pool's warning and the ratio it last saw.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Judged {
    watch: SaturationWatch,
    ratio: f64,
}

impl Judged {
    fn new(rule: SaturationRule) -> Self {
        Self {
            watch: SaturationWatch::new(rule),
            ratio: 0.0,
        }
    }

    fn observe(&mut self, ratio: f64, at: Duration) {
        self.watch.observe(ratio, at);
        self.ratio = ratio;
    }

    fn level(&self) -> SaturationLevel {
        self.watch.level(self.ratio)
    }
}

/// The saturation warnings of the pools read from other processes.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolVerdicts {
    rule: SaturationRule,
    /// The dashboard's clock starts here (a watch needs monotonic offsets).
    origin: DateTime<Utc>,
    /// Per application instance, by its address.
    apps: BTreeMap<String, Judged>,
    /// The applications' sum (in use of the summed maximums).
    apps_total: Judged,
    /// The fleet's sum through Prometheus.
    fleet: Judged,
    /// The fleet's fullest instances, by label (only those Prometheus returned lately).
    fleet_top: BTreeMap<String, Judged>,
}

impl PoolVerdicts {
    /// Warnings at `warn_at` (the dashboard's POOL_SATURATION_WARN), with the library's hold.
    pub fn new(warn_at: f64, origin: DateTime<Utc>) -> Self {
        let rule = SaturationRule::new(warn_at, pgvigil::config::DEFAULT_SATURATION_HOLD);
        Self {
            rule,
            origin,
            apps: BTreeMap::new(),
            apps_total: Judged::new(rule),
            fleet: Judged::new(rule),
            fleet_top: BTreeMap::new(),
        }
    }

    pub fn rule(&self) -> &SaturationRule {
        &self.rule
    }

    fn at(&self, t: DateTime<Utc>) -> Duration {
        (t - self.origin).to_std().unwrap_or_default()
    }

    /// A scrape of every application: each instance that answered is judged, and the sum.
    pub fn on_apps(&mut self, apps: &AppsSnapshot) {
        let at = self.at(apps.taken_at);
        let rule = self.rule;
        for i in &apps.instances {
            if let Ok(f) = &i.figures {
                self.apps
                    .entry(i.name.clone())
                    .or_insert_with(|| Judged::new(rule))
                    .observe(f.reading.saturation(), at);
            }
        }
        // An instance no longer watched is forgotten (the list is fixed at start, but cheap).
        self.apps
            .retain(|name, _| apps.instances.iter().any(|i| &i.name == name));
        let totals = apps.totals();
        if totals.answering > 0 {
            self.apps_total
                .observe(ratio(totals.active, totals.max), at);
        }
    }

    /// A reading of the fleet through Prometheus.
    pub fn on_fleet(&mut self, fleet: &FleetFigures, now: DateTime<Utc>) {
        let at = self.at(now);
        let rule = self.rule;
        self.fleet.observe(ratio(fleet.active, fleet.max), at);
        for (label, s) in &fleet.top {
            self.fleet_top
                .entry(label.clone())
                .or_insert_with(|| Judged::new(rule))
                .observe(*s, at);
        }
        // Instances out of the top list keep their watch while raised (so a warning still
        // cools down); calm ones are forgotten, bounding the map by the list's length.
        self.fleet_top
            .retain(|label, j| j.watch.is_raised() || fleet.top.iter().any(|(l, _)| l == label));
    }

    /// An application instance's level (`Calm` before its first good reading).
    pub fn app(&self, instance: &AppInstance) -> SaturationLevel {
        self.apps
            .get(&instance.name)
            .map_or(SaturationLevel::Calm, Judged::level)
    }

    /// The applications' sum.
    pub fn apps_total(&self) -> SaturationLevel {
        self.apps_total.level()
    }

    /// The fleet's sum.
    pub fn fleet(&self) -> SaturationLevel {
        self.fleet.level()
    }

    /// One of the fleet's fullest instances.
    pub fn fleet_instance(&self, label: &str) -> SaturationLevel {
        self.fleet_top
            .get(label)
            .map_or(SaturationLevel::Calm, Judged::level)
    }
}

fn ratio(active: f64, max: f64) -> f64 {
    if max > 0.0 { active / max } else { 0.0 }
}

/// How an application instance is named on screen: its name beside its address.
pub fn instance_label(instance: &AppInstance) -> String {
    match &instance.app {
        Some(app) => format!("{app} {}", instance.name),
        None => instance.name.clone(),
    }
}

/// Can the watched pools together exhaust the server's connections? `None` without a server
/// view or a pool source.
pub fn sizing(state: &State) -> Option<Sizing> {
    let server = state.server.as_ref()?;
    let input = super::apps::sizing_input(
        server,
        state.apps.as_ref(),
        state.bouncer.as_ref().and_then(|b| b.as_ref().ok()),
        state.fleet.as_ref().and_then(|f| f.as_ref().ok()),
    )?;
    Some(pgvigil::remote::sizing::sizing(&input))
}

/// The server's client connections against what clients may use: failing near the maximum,
/// a warning from the saturation threshold on (as `check`'s `pool.server_connections`).
pub fn server_connections(state: &State) -> Status {
    match &state.server {
        None => Status::Unknown,
        Some(s) if s.near_max_connections() => Status::Fail,
        Some(s) if s.usage() >= state.warn_at => Status::Warn,
        Some(_) => Status::Pass,
    }
}

/// The worst of a panel's verdicts, for the tab bar of the narrow layout (`None`: nothing to
/// judge, or not judged yet).
pub fn panel_status(state: &State, panel: Panel) -> Option<Status> {
    match panel {
        Panel::Pool => pool_status(state),
        Panel::Server => {
            // Sessions waiting on a lock are drawn as a warning on the panel: its mark says so
            // too, whatever the connection count.
            let waiting = state.server.as_ref().is_some_and(|s| s.lock_waiters > 0);
            let connections = server_connections(state);
            Some(if waiting && connections == Status::Pass {
                Status::Warn
            } else {
                connections
            })
            .filter(|s| *s != Status::Unknown)
        }
        Panel::Migrations => {
            let (_, report) = state.checks.as_ref()?;
            let m = report.migrations.as_ref()?;
            let bad = [
                MigrationStatus::ChecksumMismatch,
                MigrationStatus::Failed,
                MigrationStatus::MissingLocally,
            ];
            Some(
                if bad.iter().any(|s| m.count(*s) > 0) || !m.partial.is_empty() {
                    Status::Fail
                } else if m.count(MigrationStatus::Pending) > 0 {
                    Status::Warn
                } else {
                    Status::Pass
                },
            )
        }
        Panel::Checks => state.checks.as_ref().map(|(_, r)| r.overall()),
        Panel::Jobs => Some(Status::worst(state.jobs.last.values().map(|l| l.status)))
            .filter(|_| !state.jobs.last.is_empty()),
        // Not ready until every step of the preparation has passed.
        Panel::Window => Some(Status::worst(
            crate::tui::state::checklist(state).iter().map(|i| i.status),
        )),
        Panel::Log => None,
    }
}

fn pool_status(state: &State) -> Option<Status> {
    let mut seen: Vec<Status> = Vec::new();
    let mut note = |s: Status| seen.push(s);
    // A saturated pool is a warning (as `check`'s pool.saturation); a source that cannot be
    // read, or the database down, a failure.
    let level = |l: SaturationLevel| {
        if l.is_warning() {
            Status::Warn
        } else {
            Status::Pass
        }
    };
    if state.link.down().is_some() {
        note(Status::Fail);
    }
    if let Some(p) = &state.pool {
        note(level(p.saturation_level()));
    }
    if let Some(apps) = &state.apps {
        note(level(state.verdicts.apps_total()));
        for i in &apps.instances {
            note(match &i.figures {
                Err(_) => Status::Fail,
                Ok(_) => level(state.verdicts.app(i)),
            });
        }
    }
    match &state.bouncer {
        Some(Err(_)) => note(Status::Fail),
        Some(Ok(view)) if view.pools.iter().any(|p| p.clients_wait()) => note(Status::Warn),
        _ => {}
    }
    match &state.fleet {
        Some(Err(_)) => note(Status::Fail),
        Some(Ok(_)) => note(level(state.verdicts.fleet())),
        None => {}
    }
    if let Some(s) = sizing(state) {
        note(if s.oversubscribed {
            Status::Warn
        } else {
            Status::Pass
        });
    }
    (!seen.is_empty()).then(|| Status::worst(seen))
}

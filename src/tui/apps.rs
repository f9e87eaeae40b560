//! The application pools the dashboard watches: each `--app` endpoint's `/metrics` scraped once
//! per tick, all concurrently, each bounded by a timeout, off the UI loop. A slow, dead or
//! garbled instance is a value with its reason and the age of its last good reading; the others
//! keep updating.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use pgvigil::remote::{Endpoint, InstanceFigures, InstanceWindow, ScrapeError, read_endpoint};
use tokio::sync::watch;

use super::message::{Bus, Message};

/// One instance as last read.
#[derive(Debug, Clone, PartialEq)]
pub struct AppInstance {
    /// `host:port` of its metrics endpoint (credentials never shown).
    pub name: String,
    /// The application's name: given with `--app NAME=URL`, else the `pool` label of its
    /// last good reading (pgvigil labels its pool with the application_name).
    pub app: Option<String>,
    /// The figures of the last scrape, or why it failed (`verdict()` tells an instance that
    /// did not answer from one whose answer was refused).
    pub figures: Result<InstanceFigures, ScrapeError>,
    /// When the last good reading was taken.
    pub last_ok: Option<DateTime<Utc>>,
}

/// Every instance at one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct AppsSnapshot {
    /// When the scrapes ended.
    pub taken_at: DateTime<Utc>,
    /// In the order given on the command line.
    pub instances: Vec<AppInstance>,
}

/// The fleet's sums over the instances that answered.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AppTotals {
    /// Instances that answered this tick.
    pub answering: usize,
    /// Connections in use, summed.
    pub active: f64,
    /// Pool maximums, summed.
    pub max: f64,
    /// Waiting acquires, summed.
    pub pending: f64,
    /// Acquire timeouts per minute, summed.
    pub timeouts_per_minute: f64,
    /// The worst instance's acquire p95 (seconds): a fleet p95 cannot be summed.
    pub worst_p95: Option<f64>,
    /// Leaked connections now, summed (pgvigil instances only).
    pub leaked: f64,
}

impl AppsSnapshot {
    /// The sums over the instances that answered.
    pub fn totals(&self) -> AppTotals {
        let mut t = AppTotals::default();
        for f in self
            .instances
            .iter()
            .filter_map(|i| i.figures.as_ref().ok())
        {
            t.answering += 1;
            t.active += f.reading.active;
            t.max += f.reading.max;
            t.pending += f.reading.pending;
            t.timeouts_per_minute += f.timeouts_per_minute;
            t.leaked += f.reading.leaked.unwrap_or(0.0);
            if let Some(p) = f.acquire_p95 {
                t.worst_p95 = Some(t.worst_p95.map_or(p, |w: f64| w.max(p)));
            }
        }
        t
    }

    /// Instances sorted for the table: unreachable first, then by saturation, highest first.
    pub fn by_saturation(&self) -> Vec<&AppInstance> {
        let mut v: Vec<&AppInstance> = self.instances.iter().collect();
        v.sort_by(|a, b| {
            let key = |i: &AppInstance| match &i.figures {
                Err(_) => f64::INFINITY,
                Ok(f) => f.reading.saturation(),
            };
            key(b).total_cmp(&key(a))
        });
        v
    }
}

/// One reading per tick: `read` gets its state and the time it may take (most of a tick, never
/// more than 2 s, so one dead source cannot hold the next reading back); each result goes on
/// the bus. Paused with the poller; ends when the bus closes.
fn every_tick<S, T>(
    mut state: S,
    mut refresh: watch::Receiver<Duration>,
    mut paused: watch::Receiver<bool>,
    tx: Bus,
    read: for<'a> fn(&'a mut S, Duration) -> BoxFuture<'a, T>,
) -> tokio::task::JoinHandle<()>
where
    S: Send + 'static,
    T: Into<Message> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let interval = *refresh.borrow();
            let timeout = (interval * 8 / 10).min(Duration::from_secs(2));
            let started = tokio::time::Instant::now();
            let value = read(&mut state, timeout).await;
            if tx.send(value.into()).await.is_err() {
                return;
            }
            // On the shared cadence (see tui::cadence): the first boundary at least half an
            // interval after this reading STARTED, so a slow source (a timeout of 80 % of the
            // interval) still reads on every boundary, and two readings never run back to back.
            let mut wake = super::cadence::next_boundary(interval);
            while wake < started + interval / 2 {
                wake += interval;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = refresh.changed() => {}
            }
            while *paused.borrow() {
                if paused.changed().await.is_err() {
                    return;
                }
            }
        }
    })
}

/// What the scraper keeps between ticks: the endpoints, their one-minute windows and when each
/// last answered. All the work on a body happens here, in the source's task (the parse on
/// tokio's blocking pool, see `read_endpoint`), bounded per target: the UI loop receives one
/// `AppInstance` per endpoint, figures already computed, and does O(instances) work with it.
struct Scraper {
    endpoints: Vec<Endpoint>,
    windows: Vec<InstanceWindow>,
    last_ok: Vec<Option<DateTime<Utc>>>,
    /// Each instance's name as last known (see [`AppInstance::app`]).
    apps: Vec<Option<String>>,
}

impl Scraper {
    async fn tick(&mut self, timeout: Duration) -> AppsSnapshot {
        let readings = futures_util::future::join_all(
            self.endpoints.iter().map(|e| read_endpoint(e, timeout)),
        )
        .await;
        let at = Instant::now();
        let taken_at = Utc::now();
        let instances = self
            .endpoints
            .iter()
            .zip(readings)
            .zip(self.windows.iter_mut().zip(self.last_ok.iter_mut()))
            .zip(self.apps.iter_mut())
            .map(|(((endpoint, reading), (window, last_ok)), app)| {
                let figures = reading.map(|r| window.push(at, r));
                if let Ok(f) = &figures {
                    *last_ok = Some(taken_at);
                    if endpoint.name().is_none() && !f.reading.pools.is_empty() {
                        *app = Some(f.reading.pools.join("+"));
                    }
                }
                AppInstance {
                    name: endpoint.authority(),
                    app: app.clone(),
                    figures,
                    last_ok: *last_ok,
                }
            })
            .collect();
        AppsSnapshot {
            taken_at,
            instances,
        }
    }
}

/// Scrapes every endpoint once per `refresh`, all at once, and sends a snapshot.
pub fn spawn(
    endpoints: Vec<Endpoint>,
    refresh: watch::Receiver<Duration>,
    paused: watch::Receiver<bool>,
    tx: Bus,
) -> tokio::task::JoinHandle<()> {
    let scraper = Scraper {
        windows: endpoints
            .iter()
            .map(|_| InstanceWindow::default())
            .collect(),
        last_ok: vec![None; endpoints.len()],
        apps: endpoints
            .iter()
            .map(|e| e.name().map(str::to_string))
            .collect(),
        endpoints,
    };
    every_tick(scraper, refresh, paused, tx, |s, timeout| {
        Box::pin(s.tick(timeout))
    })
}

/// What the PgBouncer task keeps: the console, and whether it refused the last login.
struct BouncerReader {
    console: pgvigil::remote::pgbouncer::Console,
    retry: pgvigil::pool::RetryNow,
    refused: bool,
}

/// Reads the PgBouncer admin console once per `refresh`. A refused login (wrong password,
/// unknown user) is not tried again until `retry` is triggered (`r`), as for the database:
/// each try would fail the same way and count against the account.
pub fn spawn_bouncer(
    url: pgvigil::DatabaseUrl,
    retry: pgvigil::pool::RetryNow,
    refresh: watch::Receiver<Duration>,
    paused: watch::Receiver<bool>,
    tx: Bus,
) -> tokio::task::JoinHandle<()> {
    let reader = BouncerReader {
        console: pgvigil::remote::pgbouncer::Console::new(url),
        retry,
        refused: false,
    };
    every_tick(reader, refresh, paused, tx, |reader, timeout| {
        Box::pin(async move {
            if reader.refused {
                reader.retry.wait().await;
            }
            let reading = reader.console.read(timeout).await;
            reader.refused = matches!(
                &reading,
                Err(e) if e.kind == pgvigil::remote::pgbouncer::BouncerFailure::LoginRefused
            );
            reading
        })
    })
}

/// Runs the fleet's one Prometheus query once per `refresh`.
pub fn spawn_fleet(
    fleet: pgvigil::remote::Fleet,
    refresh: watch::Receiver<Duration>,
    paused: watch::Receiver<bool>,
    tx: Bus,
) -> tokio::task::JoinHandle<()> {
    every_tick(fleet, refresh, paused, tx, |fleet, timeout| {
        Box::pin(fleet.read(timeout))
    })
}

/// The sizing inputs from what the dashboard has read (the library builds them:
/// [`pgvigil::remote::sizing::SizingInput::from_readings`]). `None` without any pool source.
pub fn sizing_input(
    server: &pgvigil::catalog::ServerView,
    apps: Option<&AppsSnapshot>,
    bouncer: Option<&pgvigil::remote::pgbouncer::BouncerView>,
    fleet: Option<&pgvigil::remote::FleetFigures>,
) -> Option<pgvigil::remote::sizing::SizingInput> {
    let read = apps.into_iter().flat_map(|a| &a.instances);
    let answered = read.filter_map(|i| Some((i.name.as_str(), i.figures.as_ref().ok()?)));
    pgvigil::remote::sizing::SizingInput::from_readings(server, answered, bouncer, fleet)
}

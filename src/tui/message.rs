//! The one message type every producer of the dashboard sends on its one channel (bottom's
//! `event.rs`): the poller, the application scrapes, PgBouncer, the fleet, the jobs with their
//! progress, the terminal and the clock. The app loop receives them in order, `state::update`
//! applies each one; a new source is one variant here and one state module, nothing else.

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;
use tokio::sync::mpsc;

use super::apps::AppsSnapshot;
use super::snapshot::Snapshot;
use super::state::JobOutcome;
use pgvigil::remote::pgbouncer::{BouncerError, BouncerView};
use pgvigil::remote::{FleetFigures, ScrapeError};
use pgvigil::window::Progress;

/// How many messages may wait for the loop. Producers wait when it is full (each sends at most
/// one reading a tick, so it fills only if the loop stalls); progress reports never wait (see
/// [`JobMessage::Progress`]).
pub const BUS_CAPACITY: usize = 64;

/// The sending end every producer gets a clone of.
pub type Bus = mpsc::Sender<Message>;

/// The bus: the producers' sending end and the loop's receiving end.
pub fn bus() -> (Bus, mpsc::Receiver<Message>) {
    mpsc::channel(BUS_CAPACITY)
}

#[derive(Debug)]
pub enum Message {
    /// The clock, on whole seconds (drives "checked 2 min ago", the retry countdown and the
    /// header time).
    Tick(DateTime<Utc>),
    /// A key pressed in the terminal.
    Key(KeyEvent),
    /// The terminal changed size: the next frame is drawn at once.
    Resize,
    /// The terminal's input ended (`None`) or failed: the dashboard ends.
    InputClosed(Option<std::io::Error>),
    /// The poller: the link's state, the server view and the pool's figures of one tick.
    Server(Box<Snapshot>),
    /// One scrape of every `--app` endpoint.
    Apps(Box<AppsSnapshot>),
    /// One reading of the PgBouncer admin console (`--pgbouncer`), or why not.
    Bouncer(Box<Result<BouncerView, BouncerError>>),
    /// The fleet's figures from Prometheus (`--prometheus`), or why not.
    Fleet(Box<Result<FleetFigures, ScrapeError>>),
    /// A job's progress or its end.
    Job(JobMessage),
}

/// What a running job tells the state, in the order it happened: any number of progress
/// reports, then one `Done`.
#[derive(Debug)]
pub enum JobMessage {
    /// How far job `id` has come. Sent without waiting (a step's progress callback must
    /// return at once); when the bus is full a report is dropped, the next one replaces it.
    Progress { id: u64, progress: Progress },
    /// Job `id` ended with `outcome`.
    Done { id: u64, outcome: JobOutcome },
}

impl Message {
    /// Whether the frame is drawn at once (input the engineer waits to see answered) rather
    /// than coalesced with the other readings of the tick.
    pub fn draws_at_once(&self) -> bool {
        matches!(self, Message::Key(_) | Message::Resize)
    }
}

impl From<JobMessage> for Message {
    fn from(m: JobMessage) -> Self {
        Message::Job(m)
    }
}

impl From<Snapshot> for Message {
    fn from(s: Snapshot) -> Self {
        Message::Server(Box::new(s))
    }
}

impl From<AppsSnapshot> for Message {
    fn from(s: AppsSnapshot) -> Self {
        Message::Apps(Box::new(s))
    }
}

impl From<Result<BouncerView, BouncerError>> for Message {
    fn from(r: Result<BouncerView, BouncerError>) -> Self {
        Message::Bouncer(Box::new(r))
    }
}

impl From<Result<FleetFigures, ScrapeError>> for Message {
    fn from(r: Result<FleetFigures, ScrapeError>) -> Self {
        Message::Fleet(Box::new(r))
    }
}

//! What the poller sends once per tick: the connection's state, the server's view and the
//! pool's figures. A database outage is a value here, not an error that ends anything.

use chrono::{DateTime, Utc};

use pgvigil::catalog::ServerView;
use pgvigil::pool::{LinkState, PoolStats};

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub taken_at: DateTime<Utc>,
    /// The connector's state machine, as the retry loop and the poller left it.
    pub link: LinkState,
    /// None when this tick could not read it.
    pub server: Option<ServerView>,
    pub pool: Option<PoolStats>,
}

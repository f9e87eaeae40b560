//! What the poller sends once per tick: the connection's state, the server's view and the
//! pool's figures. A database outage is a value here, not an error that ends anything.

use chrono::{DateTime, Utc};

use pgvigil::catalog::ServerView;
use pgvigil::pool::PoolStats;

#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// First attempt under way (the first frame shows this at once).
    Connecting {
        attempt: u32,
        since: DateTime<Utc>,
    },
    Connected {
        since: DateTime<Utc>,
    },
    /// Lost or never reached; retrying with backoff.
    Disconnected {
        since: DateTime<Utc>,
        attempt: u32,
        next_retry_at: Option<DateTime<Utc>>,
        last_error: String,
        /// False after a failure no retry cures (authentication, TLS, no such database):
        /// pgvigil waits for `r` instead of counting down to a retry that would fail again.
        retrying: bool,
    },
    /// Connected, but the last poll has not answered for a while (a frozen server, a lock).
    Unresponsive {
        since: DateTime<Utc>,
    },
}

impl Link {
    pub fn is_connected(&self) -> bool {
        matches!(self, Link::Connected { .. })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub taken_at: DateTime<Utc>,
    pub link: Link,
    /// None when this tick could not read it.
    pub server: Option<ServerView>,
    pub pool: Option<PoolStats>,
}

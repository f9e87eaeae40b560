//! The retry loop under tokio's paused clock: the schedule is exactly 1, 2, 4, 8, 16 s without
//! jitter, within bounds with full jitter, ends with a summary of attempts and time, stops at
//! once on a fatal failure, and "retry now" cuts a wait short.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgvigil::PoolConfig;
use pgvigil::config::Jitter;
use pgvigil::pool::{Backoff, ConnectError, Connector, FailureKind, LinkState};
use tokio::time::Instant;

fn config(jitter: Jitter, max_retries: Option<u32>) -> PoolConfig {
    PoolConfig::builder("postgres://app:pw@127.0.0.1:1/db")
        .jitter(jitter)
        .max_retries(max_retries)
        .build()
        .unwrap()
}

/// Runs the loop with an attempt that always fails retryably; returns the gaps between attempts.
async fn gaps(connector: &Connector, kind: FailureKind) -> (Vec<Duration>, ConnectError) {
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let err = connector
        .retry(move || {
            t.lock().unwrap().push(Instant::now());
            async move { Err::<(), _>((kind, "connection refused".to_string())) }
        })
        .await
        .unwrap_err();
    let times = times.lock().unwrap();
    (times.windows(2).map(|w| w[1] - w[0]).collect(), err)
}

#[tokio::test(start_paused = true)]
async fn schedule_without_jitter_is_1_2_4_8_16_seconds() {
    let (capture, _guard) = support::LogCapture::install();
    let connector = Connector::new(config(Jitter::None, Some(5)));
    let (gaps, err) = gaps(&connector, FailureKind::Io).await;
    let secs: Vec<u64> = gaps.iter().map(|d| d.as_secs()).collect();
    assert_eq!(secs, vec![1, 2, 4, 8, 16]);
    assert!(gaps.iter().all(|d| d.subsec_nanos() == 0), "{gaps:?}");
    assert_eq!(err.attempts(), 6);
    let msg = err.to_string();
    assert!(msg.contains("after 6 attempts in 31s"), "{msg}");
    assert!(msg.contains("postgres://app:***@127.0.0.1:1/db"), "{msg}");
    // Each retry logged at WARN: attempt n of max, the delay chosen, the cause.
    let warns = capture.lines_containing("WARN");
    assert_eq!(warns.len(), 5, "{}", capture.text());
    assert!(warns[0].contains("connect attempt 1 of 6"), "{}", warns[0]);
    assert!(warns[0].contains("connection refused"), "{}", warns[0]);
    assert!(warns[0].contains("retrying in 1s"), "{}", warns[0]);
    assert!(warns[4].contains("connect attempt 5 of 6"), "{}", warns[4]);
    assert!(warns[4].contains("retrying in 16s"), "{}", warns[4]);
    assert!(matches!(
        *connector.subscribe().borrow(),
        LinkState::Failed { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn schedule_is_capped_at_the_maximum_delay() {
    let connector = Connector::new(config(Jitter::None, Some(8)));
    let (gaps, _) = gaps(&connector, FailureKind::Timeout).await;
    let secs: Vec<u64> = gaps.iter().map(|d| d.as_secs()).collect();
    assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30]);
}

#[tokio::test(start_paused = true)]
async fn full_jitter_keeps_every_delay_within_its_bound() {
    let cfg = config(Jitter::Full, Some(8));
    let bounds = Backoff::new(cfg.retry.clone());
    for _ in 0..20 {
        let connector = Connector::new(cfg.clone());
        let (gaps, _) = gaps(&connector, FailureKind::Io).await;
        assert_eq!(gaps.len(), 8);
        for (n, gap) in gaps.iter().enumerate() {
            assert!(*gap <= bounds.ceiling(n as u32), "retry {n}: {gap:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn fatal_failure_stops_after_one_attempt() {
    let connector = Connector::new(config(Jitter::None, Some(5)));
    let (gaps, err) = gaps(&connector, FailureKind::Authentication).await;
    assert!(gaps.is_empty());
    assert_eq!(err.attempts(), 1);
    assert!(
        err.to_string().contains("check the user and password"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn unlimited_mode_keeps_going_and_retry_now_cuts_the_wait_short() {
    let connector = Arc::new(Connector::new(config(Jitter::None, None)));
    let mut state = connector.subscribe();
    let attempts = Arc::new(Mutex::new(0u32));
    let started = Instant::now();
    let task = {
        let connector = connector.clone();
        let attempts = attempts.clone();
        tokio::spawn(async move {
            connector
                .retry(move || {
                    let n = {
                        let mut a = attempts.lock().unwrap();
                        *a += 1;
                        *a
                    };
                    async move {
                        // Succeeds on the 12th attempt: far past the default 5 retries.
                        if n < 12 {
                            Err((FailureKind::Io, "refused".to_string()))
                        } else {
                            Ok(n)
                        }
                    }
                })
                .await
        })
    };
    // Wait until the loop is in its 11th wait (a 30 s capped delay), then cut it short.
    loop {
        state.changed().await.unwrap();
        if let LinkState::Waiting {
            attempt: 11,
            max_attempts,
            ..
        } = &*state.borrow()
        {
            assert_eq!(*max_attempts, None);
            break;
        }
    }
    let before = Instant::now();
    connector.retry_now().trigger();
    assert_eq!(task.await.unwrap().unwrap(), 12);
    assert!(Instant::now() - before < Duration::from_secs(1));
    // Without the cut the 11th wait alone would have added 30 s.
    let elapsed = Instant::now() - started;
    assert_eq!(elapsed.as_secs(), 1 + 2 + 4 + 8 + 16 + 30 * 5);
}

/// One state machine from the retry loop to the screen: a reader's "lost" starts an outage
/// that the next connect continues (same `since`, through Waiting and Failed), "unresponsive"
/// goes and comes back without losing when the connection was made, and a success ends it.
#[tokio::test(start_paused = true)]
async fn a_lost_link_keeps_its_outage_through_the_reconnect() {
    let connector = Connector::new(config(Jitter::None, Some(1)));
    connector
        .retry(|| async { Ok::<_, (FailureKind, String)>(()) })
        .await
        .unwrap();
    let LinkState::Connected { since: connected } = connector.state() else {
        panic!("{:?}", connector.state());
    };
    let stalled = chrono::Utc::now();
    connector.unresponsive(Some(stalled));
    assert_eq!(
        connector.state(),
        LinkState::Unresponsive {
            since: stalled,
            connected_since: connected
        }
    );
    connector.unresponsive(None);
    assert_eq!(connector.state(), LinkState::Connected { since: connected });

    connector.lost("terminating connection (password pw)");
    let down = connector.state().down().cloned().expect("an outage");
    assert_eq!(down.last_error, "terminating connection (password ***)");
    let err = gaps(&connector, FailureKind::Io).await.1;
    assert_eq!(err.attempts(), 2);
    let LinkState::Failed {
        down: after,
        attempts,
        ..
    } = connector.state()
    else {
        panic!("{:?}", connector.state());
    };
    assert_eq!(attempts, 2);
    assert_eq!(
        after.since, down.since,
        "the outage started when the link was lost"
    );
    assert_eq!(after.last_error, "connection refused");
    // Connected again: the outage is over, and the next loss starts a new one.
    connector
        .retry(|| async { Ok::<_, (FailureKind, String)>(()) })
        .await
        .unwrap();
    assert!(connector.state().is_connected());
    assert!(connector.state().down().is_none());
}

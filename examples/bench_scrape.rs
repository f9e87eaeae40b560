//! Cost of reading hostile `/metrics` bodies (the remote part of issue 15): the median time of
//! `pgvigil::remote::read_body` on the report's high-cardinality body (refused at the series
//! bound), on the largest body within the bounds (10 pools x 999 buckets, 9,990 bucket series),
//! and of one window step (`InstanceWindow::push`, the per-tick difference) with 999 buckets.
//! Before the fix the 87,000-bucket body cost about 0.9 s per scrape on the dashboard's thread.
//! Goal: every case well under a 1 s tick (the work is linear or n log n in the body).
//!
//! Run with `scripts/bench-scrape.sh` (release build). Argument: [runs].

use std::time::{Duration, Instant};

use pgvigil::remote::{InstanceWindow, read_body};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    )
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(21);
    let mut huge = String::from("pgvigil_pool_connections_max{pool=\"m\"} 10\n");
    for i in 0..87_000 {
        huge.push_str(&format!(
            "pgvigil_pool_acquire_seconds_bucket{{le=\"{i}\"}} 1\n"
        ));
    }
    let mut bounded = String::new();
    for pool in 0..10 {
        bounded.push_str(&format!(
            "pgvigil_pool_connections_max{{pool=\"p{pool}\"}} 10\n"
        ));
        for i in 0..999 {
            bounded.push_str(&format!(
                "pgvigil_pool_acquire_seconds_bucket{{pool=\"p{pool}\",le=\"{}\"}} {i}\n",
                i as f64 * 0.001
            ));
        }
    }
    let huge_ms = time(runs, || {
        assert!(read_body(&huge).is_err());
    });
    let bounded_ms = time(runs, || {
        assert!(read_body(&bounded).is_ok());
    });
    let reading = read_body(&bounded).unwrap();
    let mut window = InstanceWindow::default();
    let start = Instant::now();
    let mut tick = 0u64;
    let push_ms = time(runs, || {
        tick += 1;
        window.push(start + Duration::from_secs(tick), reading.clone());
    });
    println!(
        "87,000-bucket body ({} KiB), refused: median {huge_ms:.2} ms",
        huge.len() / 1024
    );
    println!(
        "bounded body, 9,990 bucket series ({} KiB): median {bounded_ms:.2} ms",
        bounded.len() / 1024
    );
    println!("window step with 999 buckets: median {push_ms:.3} ms");
}

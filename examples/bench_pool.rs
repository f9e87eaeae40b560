//! Cost of the instrumentation: acquire + `SELECT 1` + release through `InstrumentedPool`
//! against the same through the raw sqlx pool, 100 concurrent tasks, same private cluster, same
//! run. Rounds alternate (raw, instrumented, raw, ...) so drift hits both; medians are compared.
//!
//! Run with `scripts/bench-pool.sh` (release build). Arguments: [rounds] [seconds per round].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgvigil::PoolConfig;
use pgvigil::pool::{Connector, InstrumentedPool, connect_options, pool_options};
use pgvigil_cluster::PrivateCluster;
use sqlx::PgPool;

const TASKS: usize = 100;
const MAX_CONNECTIONS: u32 = 20;

#[derive(Clone)]
enum Target {
    Raw(PgPool),
    Instrumented(InstrumentedPool),
}

async fn round(target: &Target, length: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let (target, stop, done) = (target.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match &target {
                    Target::Raw(pool) => {
                        let mut conn = pool.acquire().await.expect("raw acquire");
                        sqlx::query("SELECT 1")
                            .execute(&mut *conn)
                            .await
                            .expect("query");
                    }
                    Target::Instrumented(pool) => {
                        let mut conn = pool.acquire_labeled("bench").await.expect("acquire");
                        sqlx::query("SELECT 1")
                            .execute(&mut *conn)
                            .await
                            .expect("query");
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let counted = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    for t in tasks {
        t.await.unwrap();
    }
    counted as f64 / elapsed.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(15);
    let seconds: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let cluster =
        PrivateCluster::start_new().expect("private cluster (run scripts/setup-postgres.sh)");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = PoolConfig::builder(cluster.url("postgres"))
            .min_connections(MAX_CONNECTIONS)
            .max_connections(MAX_CONNECTIONS)
            .build()
            .unwrap();
        let raw = pool_options(&config)
            .connect_with(connect_options(&config))
            .await
            .unwrap();
        let instrumented = Connector::new(config).connect().await.unwrap();
        let targets = [Target::Raw(raw), Target::Instrumented(instrumented.clone())];
        let length = Duration::from_secs_f64(seconds);
        // Warm-up: connections opened, statements prepared, caches hot.
        for t in &targets {
            round(t, Duration::from_millis(500)).await;
        }
        let (mut raw_rates, mut inst_rates) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            // Alternate which goes first so neither always follows the other.
            let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let rate = round(&targets[i], length).await;
                if i == 0 { raw_rates.push(rate) } else { inst_rates.push(rate) }
            }
        }
        let (raw_med, inst_med) = (median(raw_rates.clone()), median(inst_rates.clone()));
        // Rounds next to each other share the machine's state; their ratio cancels most drift.
        let pair_ratios: Vec<f64> = inst_rates.iter().zip(&raw_rates).map(|(i, r)| i / r).collect();
        let ratio = median(pair_ratios.clone());
        println!("pool overhead benchmark: {TASKS} tasks, max {MAX_CONNECTIONS} connections, {rounds} rounds x {seconds} s, acquire + SELECT 1 + release");
        println!("| pool | median ops/s | rounds (ops/s) |");
        println!("|---|---|---|");
        let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
        println!("| raw sqlx PgPool | {raw_med:.0} | {} |", fmt(&raw_rates));
        println!("| pgvigil InstrumentedPool | {inst_med:.0} | {} |", fmt(&inst_rates));
        println!(
            "instrumented / raw throughput: median of paired rounds {ratio:.3} (overhead {:+.1} %; goal: at most 3 %), ratio of medians {:.3}",
            (1.0 - ratio) * 100.0,
            inst_med / raw_med
        );
        println!("paired ratios: {}", pair_ratios.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", "));
        let s = instrumented.stats();
        println!(
            "instrumented pool saw {} acquisitions, wait p50 {:.3} ms p99 {:.3} ms (last 60 s)",
            s.acquisitions_total, s.acquire_wait.p50_ms, s.acquire_wait.p99_ms
        );
    });
}

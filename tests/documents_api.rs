//! The example documents API (`crates/docs-api`, the program `pgvigil demo` runs three of) against a private cluster with the reference
//! schema: it stores documents with 3072-dimension embeddings, finds the nearest by cosine
//! distance with a query the halfvec HNSW index serves, and mounts pgvigil's router (readiness
//! with the pgvector and ledger checks, /metrics with the application's own counter).

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::http::{free_port, get, post_json};

struct Api(Child);

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example_binary() -> std::path::PathBuf {
    // Built by `make test` (`cargo build --workspace --bins`), beside this test's binary.
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("docs-api"))
        .unwrap();
    assert!(
        example.exists(),
        "{} is missing: run `cargo build --workspace --bins` (make test does)",
        example.display()
    );
    // A binary older than its sources would test yesterday's code.
    let built = std::fs::metadata(&example).unwrap().modified().unwrap();
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates");
    let mut stack = vec![crates.join("pgvigil/src"), crates.join("docs-api/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry.metadata().unwrap().modified().unwrap() > built {
                panic!(
                    "{} is older than {}: run `cargo build --workspace --bins` (make test does)",
                    example.display(),
                    path.display()
                );
            }
        }
    }
    example
}

fn embedding(seed: u64) -> Vec<f32> {
    // Deterministic, distinct directions.
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..3072)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        })
        .collect()
}

#[test]
fn the_documents_api_stores_searches_and_reports_its_pool() {
    let cluster = support::cluster();
    let url = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(support::migrated_database(cluster, "docs_api"));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _api = Api(Command::new(example_binary())
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("LISTEN", addr.to_string())
        .env("POOL_MIN_CONNECTIONS", "1")
        .env("POOL_MAX_CONNECTIONS", "4")
        .env("READY_CHECK_PGVECTOR", "true")
        .env(
            "MIGRATIONS_DIR",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"),
        )
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the example"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(addr, "/health/live", &[]).map(|r| r.status).ok() != Some(200) {
        assert!(Instant::now() < deadline, "the example did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let ready = get(addr, "/health/ready", &[]).unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(
        body["checks"]["pgvector:dimensions"][0]["observedValue"], 3072,
        "{body}"
    );
    assert_eq!(
        body["checks"]["migrations:ledger"][0]["status"], "pass",
        "{body}"
    );
    assert_eq!(
        body["checks"]["migrations:ledger"][0]["observedValue"], 4,
        "{body}"
    );

    for i in 0..20u64 {
        let doc = serde_json::json!({
            "doc_type": "guide",
            "source_name": "handbook",
            "doc_path": format!("guide/{i}.md"),
            "content": format!("page {i}"),
            "embedding": embedding(i),
        });
        let r = post_json(addr, "/documents", &doc.to_string()).unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // The source counts its documents in the same transaction as the insert.
    let counted = cluster
        .psql(
            url.rsplit('/').next().unwrap(),
            "SELECT total_docs FROM document_sources WHERE doc_type = 'guide' AND source_name = 'handbook'",
        )
        .unwrap();
    assert_eq!(counted.trim(), "20");
    let q = serde_json::json!({ "embedding": embedding(7), "k": 3 });
    let r = post_json(addr, "/documents/search", &q.to_string()).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let hits: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["doc_path"], "guide/7.md");
    assert!(hits[0]["distance"].as_f64().unwrap() < 0.001, "{hits:?}");

    // The search's ORDER BY is the index's expression: the HNSW index can serve it.
    let plan = cluster
        .psql(
            url.rsplit('/').next().unwrap(),
            "SET enable_seqscan = off; EXPLAIN SELECT id FROM documents ORDER BY \
             embedding::halfvec(3072) <=> (SELECT embedding FROM documents LIMIT 1)::halfvec(3072) LIMIT 3",
        )
        .unwrap();
    assert!(plan.contains("documents_embedding_hnsw_idx"), "{plan}");

    // Bad input: a clear error naming the field and what is accepted.
    let bad = serde_json::json!({ "embedding": [1.0, 2.0], "k": 3 });
    let r = post_json(addr, "/documents/search", &bad.to_string()).unwrap();
    assert_eq!(r.status, 422);
    assert!(
        r.body.contains("embedding: 2 numbers given; expected 3072"),
        "{}",
        r.body
    );

    let metrics = get(addr, "/metrics", &[]).unwrap().body;
    assert!(
        metrics.contains("docs_api_requests_total{route=\"insert\",outcome=\"ok\"} 20"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pgvigil_pool_connections_max{pool=\"main\"} 4"),
        "{metrics}"
    );
    assert!(!metrics.contains(cluster.password()));
}

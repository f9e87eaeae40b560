//! Debian's Prometheus, started per test binary where needed.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http::{free_port, get};

/// Debian's Prometheus on a free port, scraping `targets` every second; killed when dropped.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(targets: &[SocketAddr]) -> Self {
        let targets: Vec<String> = targets.iter().map(|a| format!("'{a}'")).collect();
        Self::start_with(&[("pgvigil", &targets.join(", "))], None)
    }

    /// One scrape job per `(job, "'host:port', ...")`, every second; with `web_config` (the
    /// YAML of `--web.config.file`, e.g. basic_auth_users) when given.
    pub fn start_with(jobs: &[(&str, &str)], web_config: Option<&str>) -> Self {
        // Private like every directory the tests write (0700, files 0600): the configuration
        // names the targets, the data directory holds what they said.
        let dir = tempfile::Builder::new()
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .unwrap();
        let jobs: String = jobs
            .iter()
            .map(|(job, targets)| {
                format!("  - job_name: {job}\n    static_configs:\n      - targets: [{targets}]\n")
            })
            .collect();
        let config = dir.path().join("prometheus.yml");
        pgvigil_cluster::private::write_file(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}"
            )
            .as_bytes(),
        )
        .unwrap();
        pgvigil_cluster::private::create_dir(&dir.path().join("data")).unwrap();
        let log = dir.path().join("prometheus.log");
        pgvigil_cluster::private::write_file(&log, b"").unwrap();
        let web = web_config.map(|yaml| {
            let path = dir.path().join("web.yml");
            pgvigil_cluster::private::write_file(&path, yaml.as_bytes()).unwrap();
            path
        });
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .args(web.map(|w| format!("--web.config.file={}", w.display())))
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().append(true).open(&log).unwrap())
            .spawn()
            .expect("prometheus (Debian package; scripts/setup-postgres.sh installs it)");
        let p = Self {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        // Behind basic auth, 401 also says it is up.
        while !matches!(get(addr, "/-/ready", &[]).map(|r| r.status), Ok(200 | 401)) {
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query; the `result` array.
    pub fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        let r = get(self.addr, &format!("/api/v1/query?query={encoded}"), &[]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

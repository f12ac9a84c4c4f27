//! The real `journey-operator engine` binary as a child process, over TLS with a CA of its
//! own: the engine API (through `EngineClient`, the controller's client), the data plane and
//! the virtual clock, with the process's log printed when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use journey_engine_api::{ClientConfig, EngineClient};
use serde_json::Value;

use crate::operator_process::free_port;
use crate::support::eventually;

pub const ENGINE_TOKEN: &str = "engine-test-token";
pub const DATA_PLANE_TOKEN: &str = "data-plane-test-token";
/// The cluster the tests' controllers and clients speak for.
pub const CLUSTER_ID: &str = "test-cluster";

/// A CA and a serving certificate for `localhost` and `127.0.0.1`, written into `dir`.
pub fn write_certificates(dir: &Path) {
    xtask::control_plane::write_serving_certificates(dir).expect("certificates");
}

pub struct EngineProcess {
    child: Option<Child>,
    virtual_clock: bool,
    pub dir: PathBuf,
    pub api: u16,
    pub data_plane: u16,
    pub ops: u16,
    log: PathBuf,
}

impl EngineProcess {
    /// Starts an engine on a virtual clock on `dir` (created; certificates and tokens written
    /// on first use).
    pub async fn start(dir: &Path) -> EngineProcess {
        Self::start_with(dir, true).await
    }

    /// Starts an engine on the system clock (for tests that restart it: a virtual clock would
    /// start again from the wall clock's time).
    pub async fn start_real(dir: &Path) -> EngineProcess {
        Self::start_with(dir, false).await
    }

    async fn start_with(dir: &Path, virtual_clock: bool) -> EngineProcess {
        std::fs::create_dir_all(dir).expect("engine dir");
        if !dir.join("ca.crt").exists() {
            write_certificates(dir);
            std::fs::write(dir.join("engine.token"), ENGINE_TOKEN).expect("token");
            std::fs::write(dir.join("data-plane.token"), DATA_PLANE_TOKEN).expect("token");
        }
        let mut engine = EngineProcess {
            child: None,
            virtual_clock,
            dir: dir.to_path_buf(),
            api: free_port(),
            data_plane: free_port(),
            ops: free_port(),
            log: dir.join("engine.log"),
        };
        engine.spawn();
        engine.wait_ready().await;
        engine
    }

    fn spawn(&mut self) {
        let d = &self.dir;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let mut args = vec![
            "engine".to_string(),
            format!("--data-dir={}", d.join("data").display()),
            format!("--engine-api-addr=127.0.0.1:{}", self.api),
            format!("--engine-token-file={}", d.join("engine.token").display()),
            format!("--data-plane-addr=127.0.0.1:{}", self.data_plane),
            format!(
                "--data-plane-token-file={}",
                d.join("data-plane.token").display()
            ),
            format!("--ops-addr=127.0.0.1:{}", self.ops),
            format!("--tls-cert-file={}", d.join("tls.crt").display()),
            format!("--tls-key-file={}", d.join("tls.key").display()),
            "--scheduler-idle=50ms".into(),
            "--engine-metrics-refresh=1s".into(),
        ];
        if self.virtual_clock {
            args.push("--virtual-clock".into());
        }
        let child = Command::new(env!("CARGO_BIN_EXE_journey-operator"))
            .args(&args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start journey-operator engine");
        self.child = Some(child);
    }

    async fn wait_ready(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.ops);
        let http = crate::operator_process::http();
        eventually("the engine to become ready", async || {
            http.get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }

    /// SIGKILL: no shutdown, no flush; what is committed is all that survives.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same directory and ports.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_ready().await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api)
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            url: self.url(),
            ca_file: Some(self.dir.join("ca.crt")),
            token_file: self.dir.join("engine.token"),
            timeout: Duration::from_secs(10),
            cluster_id: Some(CLUSTER_ID.into()),
        }
    }

    /// The controller's own client.
    pub fn client(&self) -> EngineClient {
        journey_operator::tls::ensure_crypto_provider();
        EngineClient::new(&self.client_config()).expect("engine client")
    }

    /// An HTTPS client that trusts the engine's CA.
    pub fn https(&self) -> reqwest::Client {
        let pem = std::fs::read(self.dir.join("ca.crt")).expect("ca");
        let ca = reqwest::Certificate::from_pem(&pem).expect("ca pem");
        journey_operator::tls::http_client_builder()
            .tls_certs_only([ca])
            .build()
            .expect("https client")
    }

    pub fn data_plane_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.data_plane)
    }

    pub fn api_url(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// Moves the engine's virtual clock forward, in steps of at most ten minutes so every due
    /// time in between is visited; each step answers once the engine has run what was due
    /// (`advance(0)` runs what is due now). A virtual-clock engine runs no scheduler of its own.
    pub async fn advance(&self, millis: i64) {
        let http = self.https();
        let mut left = millis;
        loop {
            let step = left.min(10 * 60 * 1000);
            let r = http
                .post(self.api_url("/v1/test/clock/advance"))
                .bearer_auth(ENGINE_TOKEN)
                .json(&serde_json::json!({"millis": step}))
                .send()
                .await
                .expect("advance");
            assert!(r.status().is_success(), "advance: {}", r.status());
            left -= step;
            if left <= 0 {
                return;
            }
        }
    }

    /// Data-plane POST with the data-plane token.
    pub async fn ingest(&self, path: &str, body: &Value) -> reqwest::StatusCode {
        self.https()
            .post(self.data_plane_url(path))
            .bearer_auth(DATA_PLANE_TOKEN)
            .json(body)
            .send()
            .await
            .expect("data plane")
            .status()
    }

    /// Deliveries of a journey, as the data plane lists them.
    pub async fn deliveries(&self, key: &str) -> Vec<Value> {
        let body: Value = self
            .https()
            .get(self.data_plane_url(&format!("/v1/deliveries?journey={key}&limit=1000")))
            .bearer_auth(DATA_PLANE_TOKEN)
            .send()
            .await
            .expect("deliveries")
            .json()
            .await
            .expect("deliveries json");
        body["deliveries"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- journey-operator engine log ---\n{}", self.log());
        }
    }
}

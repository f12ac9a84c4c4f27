//! The real `journey-operator run` binary as a child process, for the tests that need the
//! process itself (leader election, kills, inputs that could crash it): its ops endpoints, its
//! data plane and its log, printed when a test fails.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use journey_operator::api::Journey;
use serde_json::{Value, json};

use crate::builders::Spec;
use crate::support;

pub use crate::support::{WAIT, eventually};
pub const TOKEN: &str = "operator-test-token";

pub fn http() -> reqwest::Client {
    journey_operator::tls::http_client_builder()
        .build()
        .expect("http client")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One `journey-operator run` process; killed when dropped, its log printed on failure.
pub struct Operator {
    child: Child,
    pub ops: u16,
    pub data_plane: u16,
    log: std::path::PathBuf,
}

impl Operator {
    pub fn start(ns: &str, instance: &str, data_dir: &Path, leader_election: bool) -> Operator {
        Self::start_with(ns, instance, data_dir, leader_election, &[])
    }

    /// A controller in remote mode: no embedded engine, `engine` reached over its API (`extra`
    /// may override `--resync` and the like).
    pub fn start_remote(
        ns: &str,
        instance: &str,
        data_dir: &Path,
        engine_url: &str,
        engine: &crate::engine_process::EngineProcess,
        extra: &[&str],
    ) -> Operator {
        let mut args = vec![
            format!("--engine-url={engine_url}"),
            format!("--engine-ca={}", engine.dir.join("ca.crt").display()),
            format!(
                "--engine-token-file={}",
                engine.dir.join("engine.token").display()
            ),
            format!("--cluster-id={}", crate::engine_process::CLUSTER_ID),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        Self::start_with(ns, instance, data_dir, false, &args)
    }

    /// An embedded controller with more flags (`--destinations`, say).
    pub fn start_with(
        ns: &str,
        instance: &str,
        data_dir: &Path,
        leader_election: bool,
        extra: &[String],
    ) -> Operator {
        let (ops, data_plane) = (free_port(), free_port());
        let token = data_dir.with_extension("token");
        std::fs::write(&token, TOKEN).expect("token file");
        std::fs::create_dir_all(data_dir).expect("data dir");
        let log = data_dir.with_extension(format!("{instance}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let mut args = vec![
            "run".to_string(),
            format!("--data-dir={}", data_dir.display()),
            format!("--namespace={ns}"),
            format!("--instance={instance}"),
            format!("--ops-addr=127.0.0.1:{ops}"),
            format!("--data-plane-addr=127.0.0.1:{data_plane}"),
            format!("--data-plane-token-file={}", token.display()),
            "--counts-refresh=1s".into(),
            "--scheduler-idle=100ms".into(),
            "--insecure-plain-http".into(),
        ];
        args.extend(extra.iter().cloned());
        if leader_election {
            args.extend([
                "--leader-election".into(),
                format!("--lease-namespace={ns}"),
                "--lease-duration=4".into(),
                "--lease-grace=1".into(),
            ]);
        }
        let child = Command::new(env!("CARGO_BIN_EXE_journey-operator"))
            .args(&args)
            .env("KUBECONFIG", support::kubeconfig())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start journey-operator run");
        Operator {
            child,
            ops,
            data_plane,
            log,
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.ops);
        match http().get(&url).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    pub async fn reconciles(&self) -> u64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix("journey_reconciles_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    pub async fn post(&self, path: &str, body: &Value) -> u16 {
        http()
            .post(format!("http://127.0.0.1:{}{path}", self.data_plane))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// A data-plane POST: the status and the JSON body (`Null` when there is none).
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        match http()
            .post(format!("http://127.0.0.1:{}{path}", self.data_plane))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
        {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }

    /// Whether the process still runs (a crash ends it).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub async fn deliveries(&self, journey: &str) -> Vec<Value> {
        let url = format!(
            "http://127.0.0.1:{}/v1/deliveries?journey={journey}&limit=1000",
            self.data_plane
        );
        let body: Value = http()
            .get(url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("deliveries")
            .json()
            .await
            .expect("json");
        body["deliveries"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- journey-operator log {}:\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}

/// The journey the process tests run: event entry, a 4 s wait, a `record` action; `extra`
/// adds or replaces spec fields.
pub fn journey(state: &str, extra: Value) -> Value {
    Spec::on_event("Go")
        .state(state)
        .wait("wait", "4s")
        .action("send", "record", Some(json!({"template": "t"})))
        .with(extra)
        .build()
}

/// Everyone still in the wait when a pause landed is held at the action.
pub fn held(j: Option<&Journey>) -> bool {
    j.and_then(|j| j.status.as_ref())
        .and_then(|s| s.profiles.as_ref())
        .is_some_and(|p| p.waiting + p.active == 0 && p.held > 1)
}

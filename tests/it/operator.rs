//! The real `journey-operator run` binary as a child process: leader election between two
//! replicas, and a kill in the middle of a resume. Journeys are fed through the HTTP data plane.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use journey_operator::api::{Journey, Phase};
use kube::Api;
use serde_json::{Value, json};

use crate::controller_support::{and, apply, has_condition, in_phase, wait_for};
use crate::support;

const WAIT: Duration = Duration::from_secs(90);
const TOKEN: &str = "operator-test-token";

fn http() -> reqwest::Client {
    journey_operator::tls::http_client_builder()
        .build()
        .expect("http client")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One `journey-operator run` process; killed when dropped, its log printed on failure.
struct Operator {
    child: Child,
    ops: u16,
    data_plane: u16,
    log: std::path::PathBuf,
}

impl Operator {
    fn start(ns: &str, instance: &str, data_dir: &Path, leader_election: bool) -> Operator {
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
        ];
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

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.ops);
        match http().get(&url).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    async fn reconciles(&self) -> u64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix("journey_reconciles_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn post(&self, path: &str, body: &Value) -> u16 {
        http()
            .post(format!("http://127.0.0.1:{}{path}", self.data_plane))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    async fn deliveries(&self, journey: &str) -> Vec<Value> {
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

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn journey(state: &str, extra: Value) -> Value {
    let mut spec = json!({
        "state": state,
        "entry": {"event": {"name": "Go"}},
        "steps": [
            {"id": "wait", "wait": {"duration": "4s"}},
            {"id": "send", "action": {"channel": "record", "message": {"template": "t"}}}
        ]
    });
    if let (Some(map), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_only_the_lease_holder_reconciles() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "replicas").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    let dir = tempfile::tempdir().expect("tempdir");
    // Both replicas share one data directory, as two pods on one volume would.
    let data = dir.path().join("data");
    let mut first = Operator::start(&ns, "replica-a", &data, true);
    eventually("replica a ready", async || {
        first.get("/readyz").await.0 == 200
    })
    .await;
    let second = Operator::start(&ns, "replica-b", &data, true);
    eventually("replica b answering", async || {
        second.get("/healthz").await.0 == 200
    })
    .await;

    apply(&ns, "j", journey("Published", json!({})));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    assert!(first.reconciles().await > 0);
    assert_eq!(second.reconciles().await, 0, "the standby never reconciles");
    assert_eq!(
        second.get("/readyz").await.0,
        503,
        "the standby is not ready"
    );
    assert_eq!(
        second
            .post("/v1/events", &json!({"profileId": "p", "name": "Go"}))
            .await,
        503
    );

    // The leader dies; the standby takes over the lease and the engine.
    first.kill();
    eventually("replica b takes over", async || {
        second.get("/readyz").await.0 == 200
    })
    .await;
    apply(&ns, "j", journey("Paused", json!({})));
    wait_for(
        &api,
        "j",
        "Paused by the new leader",
        WAIT,
        in_phase(Phase::Paused),
    )
    .await;
    assert!(second.reconciles().await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_controller_during_a_resume_releases_every_profile_once() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "kill").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut operator = Operator::start(&ns, "first", &data, false);
    eventually("ready", async || operator.get("/readyz").await.0 == 200).await;

    apply(&ns, "j", journey("Published", json!({})));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    const PROFILES: usize = 1000;
    for chunk in (0..PROFILES).collect::<Vec<_>>().chunks(500) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"profileId": format!("k{i}"), "name": "Go"}))
            .collect();
        assert_eq!(
            operator
                .post("/v1/events/batch", &json!({"events": events}))
                .await,
            202
        );
    }
    apply(
        &ns,
        "j",
        journey("Paused", json!({"pause": {"mode": "Hold"}})),
    );
    // Everyone still in the wait when the pause landed is held at the action (on a loaded
    // machine a few may have been sent before it: each still gets exactly one message).
    let held = |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.profiles.as_ref())
            .is_some_and(|p| p.waiting + p.active == 0 && p.held > 1)
    };
    wait_for(&api, "j", "the waiting profiles held", WAIT, held).await;

    apply(
        &ns,
        "j",
        journey("Published", json!({"resume": {"rate": 200}})),
    );
    let partly = |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.resume.as_ref())
            .is_some_and(|r| r.released > 0 && r.released < r.total)
    };
    wait_for(&api, "j", "resume under way", WAIT, partly).await;
    operator.kill();

    let restarted = Operator::start(&ns, "second", &data, false);
    eventually("ready again", async || {
        restarted.get("/readyz").await.0 == 200
    })
    .await;
    let done = wait_for(
        &api,
        "j",
        "Live after the restart",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Resuming", "False")),
    )
    .await;
    let sent = restarted.deliveries(&format!("{ns}/j")).await;
    let mut profiles: Vec<&str> = sent
        .iter()
        .filter_map(|d| d["profileId"].as_str())
        .collect();
    let total = profiles.len();
    profiles.sort_unstable();
    profiles.dedup();
    assert_eq!(profiles.len(), PROFILES, "every held profile released");
    assert_eq!(total, PROFILES, "each exactly once");
    let counts = done
        .status
        .as_ref()
        .and_then(|s| s.profiles.clone())
        .unwrap_or_default();
    assert_eq!(counts.held, 0);
}

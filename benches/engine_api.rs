//! Engine API round trip: `PUT` of an unchanged journey (one declaration, as a reconcile sends
//! it) through the controller's own client to a real `journey-operator engine` process over
//! TLS on loopback, and `GET` of its status. A benchmark command, never part of the tests:
//!
//! `cargo bench --bench engine_api -- [--calls 1000]`

#[path = "support/machine.rs"]
mod machine;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use journey_engine_api::{ClientConfig, EngineClient};
use journey_model::lifecycle::JourneyState;
use journey_operator::engine::{Declaration, Definition, JourneyEngine};

fn certificates(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    xtask::control_plane::write_serving_certificates(dir)?;
    std::fs::write(dir.join("engine.token"), "bench-engine-token")?;
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18091)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn measure(
    calls: usize,
    mut call: impl AsyncFnMut() -> Result<(), String>,
) -> Result<Vec<Duration>, String> {
    let mut took = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        call().await?;
        took.push(t.elapsed());
    }
    took.sort();
    Ok(took)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = std::env::args()
        .skip_while(|a| a != "--calls")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let (cpu, cores) = machine::cpu_and_cores();
    println!(
        "machine: {cpu}, {cores} cores available; engine API over TLS on loopback; calls: {calls}"
    );

    let dir = tempfile::tempdir()?;
    certificates(dir.path())?;
    let (api, ops) = (free_port(), free_port());
    let mut engine = Command::new(env!("CARGO_BIN_EXE_journey-operator"))
        .args([
            "engine".to_string(),
            format!("--data-dir={}", dir.path().join("data").display()),
            format!("--engine-api-addr=127.0.0.1:{api}"),
            format!(
                "--engine-token-file={}",
                dir.path().join("engine.token").display()
            ),
            format!("--ops-addr=127.0.0.1:{ops}"),
            format!("--tls-cert-file={}", dir.path().join("tls.crt").display()),
            format!("--tls-key-file={}", dir.path().join("tls.key").display()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let ready = async {
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http
                .get(format!("http://127.0.0.1:{ops}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    journey_operator::tls::ensure_crypto_provider();
    if !ready.await {
        let _ = engine.kill();
        return Err("the engine did not become ready".into());
    }
    let client = EngineClient::new(&ClientConfig {
        url: format!("https://127.0.0.1:{api}"),
        ca_file: Some(dir.path().join("ca.crt")),
        token_file: dir.path().join("engine.token"),
        timeout: Duration::from_secs(10),
        cluster_id: Some("bench".into()),
    })?;
    let definition = Definition::from_json(serde_json::json!({
        "entry": {"event": {"name": "AddToCart"}},
        "steps": [
            {"id": "wait", "wait": {"duration": "1h"}},
            {"id": "send", "action": {"channel": "email", "message": {"subject": "hi"}}}
        ]
    }))?;
    let declaration = Declaration {
        definition,
        state: JourneyState::Published,
        requests: Default::default(),
        expected_revision: None,
        hold: None,
        actor: None,
    };
    client.declare("bench/j", declaration.clone()).await?;
    // Warm the connection pool and the engine's caches.
    for _ in 0..50 {
        client.declare("bench/j", declaration.clone()).await?;
    }
    let put = measure(calls, async || {
        client
            .declare("bench/j", declaration.clone())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await?;
    let get = measure(calls, async || {
        client
            .status("bench/j")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await?;
    let _ = engine.kill();
    let _ = engine.wait();
    for (what, took) in [("PUT unchanged journey", &put), ("GET status", &get)] {
        println!(
            "{what}: p50 {} p90 {} p99 {} max {} over {} calls",
            ms(percentile(took, 0.5)),
            ms(percentile(took, 0.9)),
            ms(percentile(took, 0.99)),
            ms(*took.last().unwrap_or(&Duration::ZERO)),
            took.len()
        );
    }
    Ok(())
}

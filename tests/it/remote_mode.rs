//! The controller in remote mode (`run --engine-url`) against a separate `journey-operator
//! engine` process over TLS: the seed 002 sample end to end, the engine killed with SIGKILL in
//! the middle of a resume, and a network cut between them while a resume finishes.

use journey_operator::api::{Journey, Phase};
use kube::Api;
use serde_json::{Value, json};

use crate::controller_support::{and, apply, has_condition, in_phase, wait_for};
use crate::engine_process::EngineProcess;
use crate::operator_process::{Operator, WAIT, eventually, held, journey};
use crate::support;
use crate::tcp_proxy::TcpProxy;

/// Enters `n` profiles through the engine's data plane.
async fn enter(engine: &EngineProcess, prefix: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"profileId": format!("{prefix}{i}"), "name": "Go"}))
        .collect();
    let status = engine
        .ingest("/v1/events/batch", &json!({"events": events}))
        .await;
    assert_eq!(status.as_u16(), 202);
}

/// Every profile delivered, each exactly once.
async fn assert_each_delivered_once(engine: &EngineProcess, key: &str, n: usize) {
    let sent = engine.deliveries(key).await;
    let mut profiles: Vec<&str> = sent
        .iter()
        .filter_map(|d| d["profileId"].as_str())
        .collect();
    let total = profiles.len();
    profiles.sort_unstable();
    profiles.dedup();
    assert_eq!(profiles.len(), n, "every held profile released");
    assert_eq!(total, n, "each exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_mode_survives_the_engine_killed_mid_resume() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "remote-kill").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = EngineProcess::start_real(&dir.path().join("engine")).await;
    let operator = Operator::start_remote(
        &ns,
        "remote",
        &dir.path().join("controller"),
        &engine.url(),
        &engine,
        &[],
    );
    eventually("the controller ready", async || {
        operator.get("/readyz").await.0 == 200
    })
    .await;

    apply(&ns, "j", journey("Published", json!({})));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    const PROFILES: usize = 400;
    enter(&engine, "k", PROFILES).await;
    apply(
        &ns,
        "j",
        journey("Paused", json!({"pause": {"mode": "Hold"}})),
    );
    wait_for(&api, "j", "the waiting profiles held", WAIT, held).await;
    let key = format!("{ns}/j");
    let before = engine.deliveries(&key).await.len();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        engine.deliveries(&key).await.len(),
        before,
        "nothing is sent while paused"
    );

    apply(
        &ns,
        "j",
        journey("Published", json!({"resume": {"rate": 100}})),
    );
    let partly = |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.resume.as_ref())
            .is_some_and(|r| r.released > 0 && r.released < r.total)
    };
    wait_for(&api, "j", "resume under way", WAIT, partly).await;
    engine.restart().await;

    wait_for(
        &api,
        "j",
        "Live after the engine came back",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Resuming", "False")),
    )
    .await;
    assert_each_delivered_once(&engine, &key, PROFILES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_mode_catches_up_from_its_feed_cursor_after_a_network_cut() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "remote-cut").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = EngineProcess::start_real(&dir.path().join("engine")).await;
    let proxy = TcpProxy::start(engine.api).await;
    let operator = Operator::start_remote(
        &ns,
        "remote",
        &dir.path().join("controller"),
        &format!("https://127.0.0.1:{}", proxy.port),
        &engine,
        // A resync would reconcile every journey and hide a lost feed position.
        &["--resync=1h"],
    );
    eventually("the controller ready", async || {
        operator.get("/readyz").await.0 == 200
    })
    .await;
    // Quiet journeys that a full resync would reconcile too.
    const QUIET: usize = 8;
    for i in 0..QUIET {
        apply(&ns, &format!("quiet-{i}"), journey("Published", json!({})));
    }
    apply(&ns, "j", journey("Published", json!({})));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    for i in 0..QUIET {
        wait_for(
            &api,
            &format!("quiet-{i}"),
            "Live",
            WAIT,
            in_phase(Phase::Live),
        )
        .await;
    }
    const PROFILES: usize = 200;
    enter(&engine, "c", PROFILES).await;
    apply(
        &ns,
        "j",
        journey("Paused", json!({"pause": {"mode": "Hold"}})),
    );
    wait_for(&api, "j", "the waiting profiles held", WAIT, held).await;
    apply(
        &ns,
        "j",
        journey("Published", json!({"resume": {"rate": 100}})),
    );
    wait_for(
        &api,
        "j",
        "Resuming",
        WAIT,
        has_condition("Resuming", "True"),
    )
    .await;

    // The network goes while the resume finishes: the engine reaches Live on its own.
    proxy.cut();
    let key = format!("{ns}/j");
    let client_direct = engine.client();
    eventually("the engine finishes the resume", async || {
        use journey_operator::engine::JourneyEngine;
        client_direct
            .status(&key)
            .await
            .ok()
            .flatten()
            .is_some_and(|s| s.phase == journey_operator::engine::Phase::Live)
    })
    .await;
    let reconciles_before = operator.reconciles().await;
    proxy.restore();

    // The controller reconnects from its cursor and sees the change it missed.
    wait_for(
        &api,
        "j",
        "Live after the network came back",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Resuming", "False")),
    )
    .await;
    let reconciles_after = operator.reconciles().await;
    assert!(
        reconciles_after - reconciles_before < QUIET as u64,
        "no full resync: {reconciles_before} → {reconciles_after} reconciles"
    );
    assert_each_delivered_once(&engine, &key, PROFILES).await;
}

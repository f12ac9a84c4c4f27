//! The `plan` command's offline verdict equals the real apiserver's: for each before/after pair,
//! the "before" is applied for real and the "after" goes through `kubectl apply
//! --dry-run=server`; plan's apiserver rejections must match, case by case.

use journey_operator::plan::plan;
use serde_json::{Value, json};

use crate::controller_support::manifest;
use crate::support::{self, kubectl};

fn spec(state: &str) -> Value {
    json!({
        "state": state,
        "entry": {"event": {"name": "AddToCart"}},
        "exit": [{"event": {"name": "Purchase"}}],
        "steps": [
            {"id": "wait", "wait": {"duration": "1h"}},
            {"id": "send", "action": {"channel": "email"}}
        ]
    })
}

fn edit(mut spec: Value, f: impl FnOnce(&mut Value)) -> Value {
    f(&mut spec);
    spec
}

#[tokio::test]
async fn plan_verdicts_equal_the_apiservers_dry_run() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "plan").await;
    let cases: Vec<(&str, Option<Value>, Value)> = vec![
        ("publish", Some(spec("Draft")), spec("Published")),
        ("back-to-draft", Some(spec("Published")), spec("Draft")),
        (
            "closed-to-published",
            Some(spec("Closed")),
            spec("Published"),
        ),
        (
            "stopped-to-published",
            Some(spec("Stopped")),
            spec("Published"),
        ),
        (
            "stopped-edit",
            Some(spec("Stopped")),
            edit(spec("Stopped"), |s| {
                s["steps"][0]["wait"]["duration"] = json!("2h")
            }),
        ),
        (
            "filter-while-published",
            Some(spec("Published")),
            edit(spec("Published"), |s| {
                s["globalFilter"] = json!("profile.vip")
            }),
        ),
        (
            "filter-with-pause",
            Some(spec("Published")),
            edit(spec("Paused"), |s| s["globalFilter"] = json!("profile.vip")),
        ),
        (
            "entry-while-published",
            Some(spec("Published")),
            edit(spec("Published"), |s| {
                s["entry"]["event"]["name"] = json!("X")
            }),
        ),
        (
            "entry-with-pause",
            Some(spec("Published")),
            edit(spec("Paused"), |s| s["entry"]["event"]["name"] = json!("X")),
        ),
        (
            "two-entry-kinds",
            None,
            edit(spec("Draft"), |s| {
                s["entry"]["audience"] = json!({"condition": "true"})
            }),
        ),
        (
            "two-step-kinds",
            None,
            edit(spec("Draft"), |s| s["steps"][0]["exit"] = json!({})),
        ),
        (
            "duplicate-ids",
            None,
            edit(spec("Draft"), |s| s["steps"][1]["id"] = json!("wait")),
        ),
        (
            "dangling-next",
            None,
            edit(spec("Draft"), |s| s["steps"][0]["next"] = json!("nowhere")),
        ),
        (
            "bad-duration",
            None,
            edit(spec("Draft"), |s| {
                s["steps"][0]["wait"]["duration"] = json!("5 minutes")
            }),
        ),
        (
            "zero-duration",
            None,
            edit(spec("Draft"), |s| {
                s["steps"][0]["wait"]["duration"] = json!("0s")
            }),
        ),
        (
            "long-pause",
            None,
            edit(spec("Paused"), |s| {
                s["pause"] = json!({"maxDuration": "337h"})
            }),
        ),
        (
            "end-before-start",
            None,
            edit(
                spec("Draft"),
                |s| {
                    s["schedule"] =
                        json!({"startAt": "2027-01-02T00:00:00Z", "endAt": "2027-01-01T00:00:00Z"})
                },
            ),
        ),
        (
            "unknown-state",
            None,
            edit(spec("Draft"), |s| s["state"] = json!("Running")),
        ),
        (
            "steps-edit-while-published",
            Some(spec("Published")),
            edit(spec("Published"), |s| {
                s["steps"][0]["wait"]["duration"] = json!("2h")
            }),
        ),
    ];
    let mut disagreements = Vec::new();
    for (name, before, after) in cases {
        let object = |s: &Value| -> Value {
            let mut v: Value = serde_yaml::from_str(&manifest(name, s.clone())).expect("yaml");
            v["metadata"]["namespace"] = json!(ns);
            v
        };
        let mut base = Vec::new();
        if let Some(before) = &before {
            let out = kubectl(
                &["apply", "-n", &ns, "-f", "-"],
                Some(&manifest(name, before.clone())),
            );
            assert!(
                out.success,
                "{name}: the starting point must apply: {out:?}"
            );
            let stored = kubectl(&["get", "journey", name, "-n", &ns, "-o", "json"], None);
            base.push((
                format!("{ns}/{name}"),
                serde_json::from_str::<Value>(&stored.stdout).expect("json"),
            ));
        }
        let head = vec![(format!("{ns}/{name}"), object(&after))];
        let offline = plan(&base, &head, &Default::default());
        let offline_rejects = offline.changes.iter().any(|c| !c.rejections.is_empty());
        let dry_run = kubectl(
            &["apply", "--dry-run=server", "-n", &ns, "-f", "-"],
            Some(&manifest(name, after)),
        );
        if offline_rejects == dry_run.success {
            disagreements.push(format!(
                "{name}: plan says {}, the apiserver says {}: {:?} / {}",
                if offline_rejects {
                    "rejected"
                } else {
                    "admissible"
                },
                if dry_run.success {
                    "admissible"
                } else {
                    "rejected"
                },
                offline.changes.first().map(|c| &c.rejections),
                dry_run.stderr
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// `plan --cluster` reads live impact from the Journey status the controller writes, and with
/// `--data-plane` asks the operator's engine how many in-flight profiles a new global filter
/// matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_with_cluster_reports_who_a_pause_will_hold_and_a_filter_will_exclude() {
    use journey_operator::api::Phase;
    use journey_operator::dataplane::{DataPlaneConfig, DataPlaneServer};
    use journey_operator::engine::DataPlane;

    use crate::controller_support::{apply, in_phase, setup, wait_for};

    let (ns, api, controller) = setup("plan-live").await;
    apply(&ns, "cart", spec("Published"));
    wait_for(
        &api,
        "cart",
        "Live",
        std::time::Duration::from_secs(60),
        in_phase(Phase::Live),
    )
    .await;
    for i in 0..5 {
        let country = if i < 2 { "FR" } else { "DE" };
        controller
            .engine
            .upsert_profile(&format!("p{i}"), json!({ "country": country }))
            .await
            .expect("profile");
        controller
            .engine
            .ingest_event(&format!("p{i}"), "AddToCart", json!({}))
            .await
            .expect("ingest");
    }
    let inside = |j: Option<&journey_operator::api::Journey>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.profiles.as_ref())
            .is_some_and(|p| p.active + p.waiting == 5)
    };
    wait_for(
        &api,
        "cart",
        "five inside",
        std::time::Duration::from_secs(60),
        inside,
    )
    .await;

    // The operator's data plane over the controller's engine, as `journey-operator run` serves it.
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "plan-token\n").expect("token");
    let (_serving, serving) = tokio::sync::watch::channel(true);
    let server = DataPlaneServer::bind(
        &DataPlaneConfig::new("127.0.0.1:0".parse().expect("addr"), &token_file),
        std::sync::Arc::new(controller.engine.clone()),
        serving,
    )
    .await
    .expect("data plane");
    let data_plane = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));

    let write = |sub: &str, spec: Value| {
        let path = dir.path().join(sub);
        std::fs::create_dir_all(&path).expect("dir");
        let mut object: Value = serde_yaml::from_str(&manifest("cart", spec)).expect("yaml");
        object["metadata"]["namespace"] = json!(ns);
        std::fs::write(
            path.join("cart.yaml"),
            serde_yaml::to_string(&object).expect("yaml"),
        )
        .expect("write");
        path
    };
    let paused_with_filter = edit(spec("Paused"), |s| {
        s["globalFilter"] = json!("profile.country == 'FR'");
    });
    let (base, head) = (
        write("base", spec("Published")),
        write("head", paused_with_filter),
    );
    let plan = |extra: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_journey-operator"));
        command
            .args(["plan", "--cluster", "--base"])
            .arg(&base)
            .arg("--head")
            .arg(&head)
            .args(extra)
            .env("KUBECONFIG", support::kubeconfig())
            .env_remove("JOURNEY_DATA_PLANE_TOKEN_FILE");
        let out = command.output().expect("plan");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let with_data_plane = [
        "--data-plane",
        data_plane.as_str(),
        "--data-plane-token-file",
        token_file.to_str().expect("utf-8 path"),
    ];
    let text = tokio::task::block_in_place(|| plan(&with_data_plane));
    assert!(
        text.contains("Published → Paused (Hold, entries Discard)"),
        "{text}"
    );
    assert!(
        text.contains("5 profiles inside (Live); 5 will be held at their next action"),
        "{text}"
    );
    assert!(
        text.contains("matches 2 of 5 in-flight profiles now"),
        "{text}"
    );
    let json_out = tokio::task::block_in_place(|| {
        let mut args = with_data_plane.to_vec();
        args.extend(["--format", "json"]);
        plan(&args)
    });
    let parsed: Value = serde_json::from_str(&json_out).expect("json plan");
    assert_eq!(
        parsed["changes"][0]["live"]["globalFilter"],
        json!({"result": "evaluated", "filter": "profile.country == 'FR'",
               "inFlight": 5, "matching": 2, "evaluationErrors": 0}),
        "{json_out}"
    );

    // Without the data plane the plan says what it could not count, and why.
    let text = tokio::task::block_in_place(|| plan(&[]));
    assert!(text.contains("not counted (pass --data-plane"), "{text}");
    // A wrong token is reported for that journey, not as a failed plan. (A file of its own:
    // the data plane re-reads its token file when it changes, so rewriting the shared one
    // would change what it accepts too.)
    let wrong_file = dir.path().join("wrong-token");
    std::fs::write(&wrong_file, "wrong\n").expect("token");
    let with_wrong_token = [
        "--data-plane",
        data_plane.as_str(),
        "--data-plane-token-file",
        wrong_file.to_str().expect("utf-8 path"),
    ];
    let text = tokio::task::block_in_place(|| plan(&with_wrong_token));
    assert!(text.contains("the data plane answered 401"), "{text}");

    let _ = stop.send(());
    let _ = served.await;
    controller.stop().await;
}

//! `kubectl journey`: the real kubectl finds the operator binary under the plugin name
//! `kubectl-journey` on PATH, and the plugin drives journeys and holds on the real apiserver
//! while an in-process controller acts on them.

use std::process::{Command, Stdio};

use journey_operator::api::{Journey, Phase};
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::builders::Spec;
use crate::controller_support::{and, has_condition, in_phase, setup, wait_for};
use crate::support::{self, KubectlOutput, WAIT, kubectl};

/// A directory holding `kubectl-journey` → the built binary, to put first on PATH.
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_journey-operator"),
        dir.path().join("kubectl-journey"),
    )
    .expect("symlink kubectl-journey");
    dir
}

/// `kubectl journey <args>`, as a user types it, with the plugin directory first on PATH.
async fn journey_cmd(dir: &std::path::Path, args: &[&str]) -> KubectlOutput {
    let mut path = vec![dir.to_path_buf()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(path).expect("PATH");
    let mut full = vec!["journey".to_string()];
    full.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let program = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let out = Command::new(program)
            .args(&full)
            .env("PATH", path)
            .env("KUBECONFIG", support::kubeconfig())
            .stdin(Stdio::null())
            .output()
            .expect("running kubectl journey");
        KubectlOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("kubectl task")
}

fn spec() -> Value {
    Spec::on_event("Go")
        .state("Published")
        .wait("wait", "1h")
        .action("send", "record", None)
        .build()
}

fn apply_journey(ns: &str, metadata: Value) {
    let yaml = serde_yaml::to_string(&json!({
        "apiVersion": "journey.dev/v1alpha1",
        "kind": "Journey",
        "metadata": metadata,
        "spec": spec(),
    }))
    .expect("yaml");
    let out = kubectl(&["apply", "-n", ns, "-f", "-"], Some(&yaml));
    assert!(out.success, "kubectl apply: {out:?}");
}

fn ok(out: &KubectlOutput, what: &str) {
    assert!(out.success, "kubectl journey {what} failed: {out:?}");
}

/// The data row of `name` in a table.
fn row<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_journey_gets_describes_pauses_holds_and_stops() {
    let (ns, api, controller) = setup("plugin").await;
    let dir = plugin_dir();
    let dir = dir.path();
    apply_journey(
        &ns,
        json!({"name": "welcome", "labels": {"team": "growth"}}),
    );
    wait_for(&api, "welcome", "Live", WAIT, in_phase(Phase::Live)).await;

    let out = journey_cmd(dir, &["get", "-n", &ns]).await;
    ok(&out, "get");
    assert!(out.stdout.starts_with("NAME"), "{out:?}");
    assert!(row(&out.stdout, "welcome").contains("Live"), "{out:?}");
    let out = journey_cmd(dir, &["get", "-n", &ns, "-l", "team=billing"]).await;
    ok(&out, "get -l");
    assert!(!out.stdout.contains("welcome"), "{out:?}");

    let out = journey_cmd(dir, &["describe", "welcome", "-n", &ns]).await;
    ok(&out, "describe");
    for part in [
        "Name:        welcome",
        "Conditions:",
        "Ready",
        "Timeline:",
        "Live",
        "Events:",
    ] {
        assert!(out.stdout.contains(part), "{part} missing:\n{}", out.stdout);
    }

    // Pause and resume through the spec.
    let out = journey_cmd(
        dir,
        &[
            "pause",
            "welcome",
            "-n",
            &ns,
            "--mode",
            "Hold",
            "--reason",
            "coupon typo",
            "--change-ref",
            "https://git.example/pr/7",
        ],
    )
    .await;
    ok(&out, "pause");
    assert!(
        !out.stderr.contains("warning"),
        "not GitOps-managed: {out:?}"
    );
    let j = wait_for(&api, "welcome", "Paused", WAIT, in_phase(Phase::Paused)).await;
    assert_eq!(
        j.annotations()
            .get("journey.dev/change-ref")
            .map(String::as_str),
        Some("https://git.example/pr/7")
    );
    let out = journey_cmd(dir, &["get", "welcome", "-n", &ns]).await;
    ok(&out, "get paused");
    let line = row(&out.stdout, "welcome");
    assert!(
        line.contains("Paused") && line.contains("coupon typo"),
        "{out:?}"
    );
    let out = journey_cmd(dir, &["resume", "-l", "team=growth", "-n", &ns]).await;
    ok(&out, "resume -l");
    wait_for(&api, "welcome", "Live again", WAIT, in_phase(Phase::Live)).await;

    // An emergency hold over the label.
    let out = journey_cmd(
        dir,
        &[
            "hold",
            "create",
            "incident",
            "-n",
            &ns,
            "-l",
            "team=growth",
            "--reason",
            "incident 4711",
            "--duration",
            "2h",
        ],
    )
    .await;
    ok(&out, "hold create");
    wait_for(
        &api,
        "welcome",
        "Held",
        WAIT,
        and(has_condition("Held", "True"), in_phase(Phase::Paused)),
    )
    .await;
    let out = journey_cmd(dir, &["get", "-n", &ns]).await;
    ok(&out, "get held");
    assert!(
        row(&out.stdout, "welcome").contains(&format!("JourneyHold {ns}/incident")),
        "{out:?}"
    );
    let mut listed = String::new();
    support::eventually("the hold listed as Active with one journey", async || {
        let out = journey_cmd(dir, &["hold", "list", "-n", &ns]).await;
        listed = format!("{out:?}");
        out.success && {
            let line = row(&out.stdout, "incident");
            ["Active", "Hold", "1", "incident 4711"]
                .iter()
                .all(|w| line.contains(w))
        }
    })
    .await;
    eprintln!("{listed}");
    let out = journey_cmd(dir, &["hold", "release", "incident", "-n", &ns]).await;
    ok(&out, "hold release");
    wait_for(
        &api,
        "welcome",
        "released",
        WAIT,
        and(has_condition("Held", "False"), in_phase(Phase::Live)),
    )
    .await;

    // Bad input is a one-line error and exit 1, not a panic.
    for (args, needle) in [
        (
            vec![
                "hold",
                "create",
                "h",
                "-l",
                "team in (a",
                "--reason",
                "r",
                "--duration",
                "2h",
            ],
            "-l",
        ),
        (
            vec![
                "hold",
                "create",
                "h",
                "-l",
                "team=a",
                "--reason",
                "r",
                "--duration",
                "soon",
            ],
            "--duration",
        ),
        (vec!["describe", "missing"], "missing"),
    ] {
        let mut args = args;
        args.extend(["-n", ns.as_str()]);
        let out = journey_cmd(dir, &args).await;
        assert!(
            !out.success && out.stderr.contains(needle),
            "{args:?}: {out:?}"
        );
        assert!(!out.stderr.contains("panicked"), "{out:?}");
    }
    // The apiserver's admission error comes through: a hold longer than 14 days.
    let out = journey_cmd(
        dir,
        &[
            "hold",
            "create",
            "long",
            "-n",
            &ns,
            "-l",
            "team=growth",
            "--reason",
            "r",
            "--duration",
            "400h",
        ],
    )
    .await;
    assert!(!out.success && out.stderr.contains("336h"), "{out:?}");

    // Requests: restart and run set fresh tokens the controller handles.
    let out = journey_cmd(dir, &["restart", "welcome", "-n", &ns]).await;
    ok(&out, "restart");
    let j = api.get("welcome").await.expect("journey");
    let token = j.annotations()["journey.dev/restart-requested-at"].clone();
    wait_for(
        &api,
        "welcome",
        "restart handled",
        WAIT,
        |j: Option<&Journey>| {
            j.and_then(|j| j.status.as_ref())
                .is_some_and(|s| s.last_handled_restart_request.as_deref() == Some(token.as_str()))
        },
    )
    .await;
    let out = journey_cmd(dir, &["run", "welcome", "--full", "-n", &ns]).await;
    ok(&out, "run --full");
    let j = api.get("welcome").await.expect("journey");
    assert!(
        j.annotations()
            .contains_key("journey.dev/full-run-requested-at"),
        "{j:?}"
    );
    let out = journey_cmd(dir, &["run", "welcome", "-n", &ns]).await;
    ok(&out, "run");
    let j = api.get("welcome").await.expect("journey");
    assert!(
        j.annotations().contains_key("journey.dev/run-requested-at"),
        "{j:?}"
    );

    // Stop asks for the name; without a terminal it needs --yes.
    let out = journey_cmd(dir, &["stop", "welcome", "-n", &ns]).await;
    assert!(!out.success && out.stderr.contains("--yes"), "{out:?}");
    assert_eq!(
        api.get("welcome").await.expect("journey").spec.state,
        journey_operator::api::JourneyState::Published
    );
    let out = journey_cmd(dir, &["stop", "welcome", "--yes", "-n", &ns]).await;
    ok(&out, "stop --yes");
    wait_for(&api, "welcome", "Stopped", WAIT, in_phase(Phase::Stopped)).await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_journey_warns_that_git_reverts_a_pause_of_an_argocd_journey() {
    let (ns, api, controller) = setup("plugin-argo").await;
    let dir = plugin_dir();
    apply_journey(
        &ns,
        json!({
            "name": "checkout",
            "labels": {"argocd.argoproj.io/instance": "shop", "team": "shop"},
            "annotations": {
                "argocd.argoproj.io/tracking-id": format!("shop:journey.dev/Journey:{ns}/checkout")
            }
        }),
    );
    wait_for(&api, "checkout", "Live", WAIT, in_phase(Phase::Live)).await;
    let out = journey_cmd(
        dir.path(),
        &["pause", "checkout", "-n", &ns, "--reason", "wrong price"],
    )
    .await;
    ok(&out, "pause");
    assert!(
        out.stderr.contains(&format!(
            "warning: {ns}/checkout is managed by Argo CD; Git will revert this change"
        )),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("kubectl journey hold create checkout-hold")
            && out.stderr.contains("-l team=shop"),
        "{out:?}"
    );
    // The change is made all the same.
    wait_for(&api, "checkout", "Paused", WAIT, in_phase(Phase::Paused)).await;
    let out = journey_cmd(dir.path(), &["describe", "checkout", "-n", &ns]).await;
    ok(&out, "describe");
    assert!(out.stdout.contains("Managed by:  Argo CD"), "{out:?}");
    controller.stop().await;
}

//! User expressions that would overflow the CEL parser's stack (the generated worst case of
//! every shape at the schema's maximum length): through a Journey applied to the real
//! apiserver with the real `journey-operator run` process, and to that process's data plane
//! over HTTP. The process stays up, each case gets its verdict, and a valid journey still goes
//! Draft → Live afterwards.

use journey_model::expr::MAX_DEPTH;
use journey_model::expr::worst_cases::{self, Verdict};
use journey_operator::api::{Journey, Phase};
use journey_operator::dataplane::MAX_FILTER_BYTES;
use kube::Api;
use serde_json::{Value, json};

use crate::controller_support::{and, apply, condition, has_condition, in_phase, wait_for};
use crate::operator_process::{Operator, WAIT, eventually};
use crate::support;

fn limit_text() -> String {
    format!("the limit is {MAX_DEPTH} levels")
}

fn stalled_message(journey: &Journey) -> String {
    condition(journey, "Stalled")
        .map(|c| format!("{} {}", c.reason, c.message))
        .unwrap_or_default()
}

async fn still_up(operator: &mut Operator, after: &str) {
    assert!(
        operator.running(),
        "the operator died after {after}:\n{}",
        operator.log()
    );
    let (status, _) = operator.get("/healthz").await;
    assert_eq!(status, 200, "/healthz after {after}:\n{}", operator.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worst_case_expressions_never_take_the_operator_down() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "cel-limits").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut operator = Operator::start(&ns, "limits", &dir.path().join("data"), false);
    eventually("ready", async || operator.get("/readyz").await.0 == 200).await;

    // (b) Each worst case as the global filter of a paused journey, and as a branch condition
    // of a published one: Stalled InvalidDefinition naming the field and the limit, or (for
    // the valid ones) reconciled like any journey.
    let cases = worst_cases::at_length(journey_operator::api::journey::MAX_EXPRESSION_LENGTH);
    for (i, case) in cases.iter().enumerate() {
        let paused = format!("filter-{i}");
        apply(
            &ns,
            &paused,
            json!({
                "state": "Paused",
                "globalFilter": case.source,
                "entry": {"event": {"name": "Go"}},
                "steps": [{"id": "done", "exit": {}}]
            }),
        );
        let branch = format!("branch-{i}");
        apply(
            &ns,
            &branch,
            json!({
                "state": "Published",
                "entry": {"event": {"name": "Go"}},
                "steps": [
                    {"id": "pick", "condition": {
                        "branches": [{"when": case.source, "next": "done"}],
                        "otherwise": "done"}},
                    {"id": "done", "exit": {}}
                ]
            }),
        );
        for (name, field) in [
            (&paused, "spec.globalFilter"),
            (&branch, "spec.steps[0].condition.branches[0].when"),
        ] {
            match case.verdict {
                Verdict::TooDeep | Verdict::SyntaxError => {
                    let j = wait_for(
                        &api,
                        name,
                        "Stalled",
                        WAIT,
                        has_condition("Stalled", "True"),
                    )
                    .await;
                    let message = stalled_message(&j);
                    assert!(
                        message.starts_with("InvalidDefinition") && message.contains(field),
                        "{}: {message}",
                        case.name
                    );
                    if case.verdict == Verdict::TooDeep {
                        assert!(message.contains(&limit_text()), "{}: {message}", case.name);
                    }
                    assert!(message.len() < 2000, "{}: no 4 KB echo", case.name);
                }
                Verdict::Accepted => {
                    wait_for(&api, name, "Ready", WAIT, has_condition("Ready", "True")).await;
                }
            }
        }
        still_up(&mut operator, case.name).await;
    }

    // A second, valid journey in the same namespace goes Draft → Live.
    let valid = |state: &str| {
        json!({
            "state": state,
            "entry": {"event": {"name": "Go", "condition": "has(profile.vip) && profile.vip"}},
            "steps": [{"id": "done", "exit": {}}]
        })
    };
    apply(&ns, "valid", valid("Draft"));
    wait_for(&api, "valid", "Draft", WAIT, in_phase(Phase::Draft)).await;
    apply(&ns, "valid", valid("Published"));
    wait_for(
        &api,
        "valid",
        "Live",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Ready", "True")),
    )
    .await;

    // (c) The same worst cases, at the data plane's own limit, as candidate filters.
    let path = format!("/v1/journeys/{ns}/valid/filter-matches");
    for case in worst_cases::at_length(MAX_FILTER_BYTES) {
        let (status, body) = operator
            .post_json(&path, &json!({"filter": case.source}))
            .await;
        match case.verdict {
            Verdict::TooDeep | Verdict::SyntaxError => {
                assert_eq!(status, 400, "{}: {body}", case.name);
                assert_eq!(body["field"], "filter", "{}: {body}", case.name);
                if case.verdict == Verdict::TooDeep {
                    let error = body["error"].as_str().unwrap_or_default();
                    assert!(error.contains(&limit_text()), "{}: {error}", case.name);
                }
            }
            Verdict::Accepted => assert_eq!(status, 200, "{}: {body}", case.name),
        }
        still_up(&mut operator, case.name).await;
    }

    // A filter that is never a boolean is refused like one that does not compile.
    let (status, body) = operator.post_json(&path, &json!({"filter": "1 + 2"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "filter");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not a boolean"),
        "{body}"
    );
    let (status, body): (u16, Value) = operator
        .post_json(&path, &json!({"filter": "has(profile.vip)"}))
        .await;
    assert_eq!(status, 200, "{body}");
    still_up(&mut operator, "the data-plane cases").await;
}

/// `plan` reports the problem the controller would stall on, with the same field and limit.
#[test]
fn plan_reports_a_too_deep_expression_before_merge() {
    let deep = worst_cases::at_length(journey_operator::api::journey::MAX_EXPRESSION_LENGTH)
        .into_iter()
        .find(|c| c.verdict == Verdict::TooDeep)
        .expect("a too-deep case");
    let journey = json!({
        "apiVersion": "journey.dev/v1alpha1", "kind": "Journey",
        "metadata": {"name": "deep", "namespace": "shop"},
        "spec": {
            "state": "Published",
            "entry": {"event": {"name": "Go", "condition": deep.source}},
            "steps": [{"id": "done", "exit": {}}]
        }
    });
    let result = journey_operator::plan::plan(
        &[],
        &[("shop/deep".to_string(), journey)],
        &Default::default(),
    );
    let problems: Vec<String> = result
        .changes
        .iter()
        .flat_map(|c| c.problems.iter().map(ToString::to_string))
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("spec.entry.event.condition: "),
        "{}",
        problems[0]
    );
    assert!(problems[0].contains(&limit_text()), "{}", problems[0]);
}

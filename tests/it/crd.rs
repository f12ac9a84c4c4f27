//! The checked-in CRDs are exactly what the code generates, and the apiserver accepts them.

use crate::support::kubectl;

const CHECKED_IN: &str = include_str!("../../crds/journey.dev.yaml");

#[test]
fn crds_directory_matches_the_generated_crds() {
    let generated = journey_operator::api::crd::to_yaml().expect("render");
    assert!(
        generated == CHECKED_IN,
        "crds/ is stale: run `cargo run -- crd > crds/journey.dev.yaml`"
    );
}

#[test]
fn crd_command_output_passes_a_server_side_dry_run() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_journey-operator"))
        .arg("crd")
        .output()
        .expect("journey-operator crd");
    assert!(out.status.success());
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    let applied = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&yaml));
    assert!(applied.success, "{applied:?}");
    assert!(
        applied.stdout.contains("journeys.journey.dev")
            && applied.stdout.contains("(server dry run)"),
        "{}",
        applied.stdout
    );
}

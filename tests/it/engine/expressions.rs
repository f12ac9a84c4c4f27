//! User expressions at the engine's edge: what the expression limits refuse never reaches
//! the parser, and a refused command changes nothing.

use serde_json::json;

use super::common::*;

/// (a) The generated worst cases straight into the engine: a definition or a global filter over
/// the limits is refused with the limit, and the journey in the engine is left as it was.
#[test]
fn the_engine_refuses_worst_case_expressions_and_changes_nothing() {
    use journey_model::expr::worst_cases::{Verdict, at_length};
    use journey_operator::engine::{DesiredLifecycle, EngineError, PauseOptions};
    let h = Harness::new();
    h.apply("ns/j", action_first());
    h.publish("ns/j");
    for case in at_length(journey_model::expr::MAX_BYTES) {
        let before = h.status("ns/j");
        let mut spec = action_first();
        spec["entry"]["event"]["condition"] = json!(case.source);
        let def = definition(spec);
        let applied = h.engine.apply_definition_blocking("ns/j", &def);
        let paused = h.engine.set_lifecycle_blocking(
            "ns/j",
            DesiredLifecycle::Paused(PauseOptions {
                global_filter: Some(case.source.clone()),
                ..PauseOptions::default()
            }),
        );
        let candidate = h.engine.filter_matches_blocking("ns/j", &case.source);
        match case.verdict {
            Verdict::Accepted => {
                applied.expect(case.name);
                paused.expect(case.name);
                candidate.expect(case.name);
                h.publish("ns/j");
                h.run();
            }
            Verdict::TooDeep | Verdict::SyntaxError => {
                for (what, error) in [
                    ("definition", applied.err()),
                    ("global filter", paused.err()),
                    ("candidate filter", candidate.err()),
                ] {
                    let message = match &error {
                        Some(EngineError::InvalidDefinition(m)) => m.clone(),
                        Some(e @ EngineError::CelCompile { .. }) => e.to_string(),
                        other => panic!("{} as {what}: {other:?}", case.name),
                    };
                    if case.verdict == Verdict::TooDeep {
                        assert!(message.contains("the limit is 32 levels"), "{message}");
                    }
                }
                let now = h.status("ns/j");
                assert_eq!(now.phase, before.phase, "{}", case.name);
                assert_eq!(now.desired, before.desired, "{}", case.name);
                assert_eq!(now.version, before.version, "{}", case.name);
            }
        }
    }
}

//! The scheduler across journeys: one journey that cannot be visited never holds up the
//! others.

use serde_json::json;

use super::common::*;

/// A stored version that no longer compiles (here: an expression deeper than the expression
/// limits, as an engine from before them could have stored) fails that journey's visits only:
/// after a restart, the journeys listed after it still advance on time.
#[test]
fn a_journey_that_cannot_be_visited_does_not_starve_the_others() {
    let h = Harness::new();
    // Created first, so a tick visits it first.
    h.apply("ns/broken", action_first());
    h.publish("ns/broken");
    h.apply("ns/ok", action_first());
    h.publish("ns/ok");
    h.event("p1", "Go", json!({}));
    assert_eq!(h.deliveries("ns/ok").len(), 1, "hello sent");
    assert_eq!(h.deliveries("ns/broken").len(), 1, "hello sent");

    let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
    let db = rusqlite::Connection::open(h.db()).expect("open");
    let changed = db
        .execute(
            "UPDATE versions SET definition = json_set(definition, '$.entry.event.condition', ?1)
             WHERE journey_id = (SELECT id FROM journeys WHERE key = 'ns/broken')",
            [&deep],
        )
        .expect("tamper");
    assert_eq!(changed, 1);
    drop(db);

    let h = h.reopen();
    h.advance(H + M);
    let ok = steps_of(&h.deliveries("ns/ok"));
    assert_eq!(ok, vec!["hello", "followup"], "the healthy journey went on");
    assert_eq!(
        steps_of(&h.deliveries("ns/broken")),
        vec!["hello"],
        "the broken one is held where it was, nothing lost"
    );
}

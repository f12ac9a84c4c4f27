//! The change feed: every status change, in revision order, with its cause; a reader that keeps
//! its cursor misses nothing across its own restarts and the engine's; deletions stay as
//! tombstones for 24 h, and a cursor the feed no longer covers must resync.

use std::time::Duration;

use journey_operator::engine::{ChangeCause, EngineError, FeedChange};
use serde_json::json;

use super::common::*;

fn keys(changes: &[FeedChange]) -> Vec<(&str, ChangeCause, bool)> {
    changes
        .iter()
        .map(|c| (c.key.as_str(), c.cause, c.deleted))
        .collect()
}

#[test]
fn commands_and_engine_changes_arrive_in_revision_order_with_their_cause() {
    let h = Harness::new();
    let start = h.engine.feed_revision_blocking().expect("revision");
    h.apply("ns/a", action_first());
    h.publish("ns/a");
    let page = h.engine.changes_since_blocking(start).expect("feed");
    assert_eq!(
        keys(&page.changes),
        vec![("ns/a", ChangeCause::Command, false)]
    );
    let after_commands = page.revision;

    // Nothing new: an empty page that keeps the cursor.
    let page = h
        .engine
        .changes_since_blocking(after_commands)
        .expect("feed");
    assert!(page.changes.is_empty(), "{page:?}");
    assert_eq!(page.revision, after_commands);

    // An event enters a profile: the engine changed the status on its own.
    h.event("p1", "Go", json!({}));
    let page = h
        .engine
        .changes_since_blocking(after_commands)
        .expect("feed");
    assert_eq!(
        keys(&page.changes),
        vec![("ns/a", ChangeCause::Engine, false)]
    );
    assert!(page.revision > after_commands);
    assert!(
        page.changes
            .windows(2)
            .all(|w| w[0].revision < w[1].revision)
    );
}

#[test]
fn a_reader_that_keeps_its_cursor_misses_nothing_across_an_engine_restart() {
    let h = Harness::new();
    h.apply("ns/a", action_first());
    h.publish("ns/a");
    let cursor = h.engine.feed_revision_blocking().expect("revision");
    // While the reader is away: a second journey, a restart of the engine process, and an
    // event the restarted engine ingests.
    h.apply("ns/b", action_first());
    h.publish("ns/b");
    let h = h.reopen();
    h.event("p1", "Go", json!({}));
    let page = h.engine.changes_since_blocking(cursor).expect("feed");
    let mut seen: Vec<&str> = page.changes.iter().map(|c| c.key.as_str()).collect();
    seen.sort_unstable();
    assert_eq!(seen, vec!["ns/a", "ns/b"]);
    let a = page.changes.iter().find(|c| c.key == "ns/a").expect("a");
    assert_eq!(
        a.cause,
        ChangeCause::Engine,
        "its latest change was the event"
    );
}

#[test]
fn deletions_are_tombstones_for_a_day_then_older_cursors_must_resync() {
    let h = Harness::new();
    h.apply("ns/a", action_first());
    h.publish("ns/a");
    let before_delete = h.engine.feed_revision_blocking().expect("revision");
    assert!(h.engine.delete_blocking("ns/a").expect("delete"));
    let page = h
        .engine
        .changes_since_blocking(before_delete)
        .expect("feed");
    assert_eq!(
        keys(&page.changes),
        vec![("ns/a", ChangeCause::Command, true)]
    );
    let after_delete = page.revision;

    // Still there after 23 hours.
    h.advance(23 * H);
    let page = h
        .engine
        .changes_since_blocking(before_delete)
        .expect("feed");
    assert_eq!(page.changes.len(), 1);

    // Gone after 24: a cursor from before the deletion would miss it, so it must resync; a
    // cursor after it continues.
    h.advance(2 * H);
    match h.engine.changes_since_blocking(before_delete) {
        Err(EngineError::ResyncRequired { since, oldest, .. }) => {
            assert_eq!(since, before_delete);
            assert!(oldest >= after_delete);
        }
        other => panic!("expected ResyncRequired, got {other:?}"),
    }
    assert!(h.engine.changes_since_blocking(after_delete).is_ok());

    // A cursor from the future (a database restored from an older backup) resyncs too.
    assert!(matches!(
        h.engine.changes_since_blocking(after_delete + 1_000),
        Err(EngineError::ResyncRequired { .. })
    ));
}

#[test]
fn a_journey_deleted_and_created_again_is_listed_once() {
    let h = Harness::new();
    let start = h.engine.feed_revision_blocking().expect("revision");
    h.apply("ns/a", action_first());
    h.engine.delete_blocking("ns/a").expect("delete");
    h.apply("ns/a", action_first());
    let page = h.engine.changes_since_blocking(start).expect("feed");
    assert_eq!(
        keys(&page.changes),
        vec![("ns/a", ChangeCause::Command, false)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_returns_as_soon_as_something_changes() {
    let h = Harness::new();
    let cursor = h.engine.feed_revision_blocking().expect("revision");
    let engine = h.engine.clone();
    let poll = tokio::spawn(async move {
        engine
            .wait_for_changes(cursor, Duration::from_secs(60))
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!poll.is_finished(), "nothing changed yet");
    let engine = h.engine.clone();
    tokio::task::spawn_blocking(move || {
        let def = journey_operator::engine::Definition::from_json(action_first()).expect("def");
        engine.apply_definition_blocking("ns/a", &def)
    })
    .await
    .expect("join")
    .expect("apply");
    let page = tokio::time::timeout(Duration::from_secs(30), poll)
        .await
        .expect("the poll returned")
        .expect("join")
        .expect("feed");
    assert_eq!(
        keys(&page.changes),
        vec![("ns/a", ChangeCause::Command, false)]
    );
}

//! The conformance suite every store backend runs (atuin's shape): each case is written
//! against `Store`/`dyn StoreTx` only, so SQLite today and PostgreSQL next make the same
//! promises. A backend's tests call [`run_all`] on a fresh, empty store.

use journey_store::{
    Delivery, DeliveryFilter, DeliveryStatus, Enrollment, EnrollmentState, Result, Store,
    StoreError, StoreTx, step_key,
};
use serde_json::json;

/// Every case, in an order that needs no reset between them.
pub fn run_all(store: &impl Store) {
    failed_transaction_rolls_back(store);
    idempotency_key_is_unique(store);
    enrollment_roundtrip_and_release_order(store);
    feed_revisions_and_tombstones(store);
    renderings_and_events(store);
    backlogs_for_the_gauges(store);
    // Last: it leaves due enrollments of a journey no other case reads.
    restart_reenrolls_everyone_of_the_epoch(store);
}

fn delivery(entry_no: i64) -> Delivery {
    Delivery {
        journey_id: 1,
        epoch: 0,
        profile_seq: 1,
        step_key: step_key("email"),
        entry_no,
        visit: 0,
        version: 1,
        step_id: "email".into(),
        profile_id: String::new(),
        channel: "email".into(),
        destination: "record".into(),
        message: json!({"s": 1}),
        status: DeliveryStatus::Recorded,
        created_at: 0,
        event_id: None,
        rendered: None,
        attempts: 0,
        last_error: None,
        reason: None,
    }
}

/// A delivery's event and rendering round-trip; a rendering is stored once; a template
/// failure fails the delivery with its reason; counts by status.
pub fn renderings_and_events(store: &impl Store) {
    store
        .write(|tx: &mut dyn StoreTx| -> Result<()> {
            let payload = json!({"item": "tea", "n": 2});
            let event = tx.insert_event("p-render", "bought", &payload, 5)?;
            assert_eq!(tx.event_payload(event)?, Some(payload));
            assert_eq!(tx.event_payload(event + 1000)?, None);
            let recorded = Delivery {
                journey_id: 77,
                event_id: Some(event),
                rendered: Some(json!({"subject": "Hi Ann"})),
                ..delivery(1)
            };
            tx.insert_delivery(&recorded)?;
            let pending = Delivery {
                journey_id: 77,
                destination: "crm".into(),
                status: DeliveryStatus::Pending,
                ..delivery(2)
            };
            tx.insert_delivery(&pending)?;
            let failing = Delivery {
                status: DeliveryStatus::Pending,
                destination: "crm".into(),
                ..pending.clone()
            };
            let failing = Delivery {
                entry_no: 3,
                ..failing
            };
            tx.insert_delivery(&failing)?;

            tx.set_rendered(&pending, Some(&json!({"subject": "first"})), None)?;
            tx.set_rendered(&pending, Some(&json!({"subject": "second"})), None)?;
            tx.set_rendered(
                &failing,
                None,
                Some(("TemplateError", "subject: undefined value")),
            )?;
            let all = tx.list_deliveries(&DeliveryFilter {
                journey_id: Some(77),
                ..Default::default()
            })?;
            assert_eq!(all.len(), 3);
            assert_eq!(all[0].event_id, Some(event));
            assert_eq!(all[0].rendered_subject(), Some("Hi Ann"));
            assert_eq!(all[1].rendered_subject(), Some("first"), "rendered once");
            assert_eq!(all[1].status, DeliveryStatus::Pending);
            assert_eq!(all[2].status, DeliveryStatus::Failed);
            assert_eq!(all[2].reason.as_deref(), Some("TemplateError"));
            assert_eq!(
                all[2].last_error.as_deref(),
                Some("subject: undefined value")
            );
            assert_eq!(all[2].rendered, None);
            assert_eq!(
                tx.count_deliveries_by_status(77)?,
                vec![
                    (DeliveryStatus::Recorded, 1),
                    (DeliveryStatus::Pending, 1),
                    (DeliveryStatus::Failed, 1),
                ]
            );
            // Settled, so the outbox backlog cases below see only their own rows.
            tx.set_delivery_status(77, DeliveryStatus::Pending, DeliveryStatus::Cancelled)?;
            Ok(())
        })
        .expect("tx");
}

pub fn idempotency_key_is_unique(store: &impl Store) {
    store
        .write(|tx: &mut dyn StoreTx| -> Result<()> {
            assert!(tx.insert_delivery(&delivery(1))?);
            assert!(!tx.insert_delivery(&delivery(1))?, "same key ignored");
            assert!(tx.insert_delivery(&delivery(2))?, "new entry instance");
            let again = Delivery {
                visit: 3,
                ..delivery(1)
            };
            assert!(tx.insert_delivery(&again)?, "the same action passed again");
            assert!(!tx.insert_delivery(&again)?, "and that visit only once");
            assert_eq!(tx.count_deliveries(1)?, 3);
            Ok(())
        })
        .expect("tx");
}

pub fn enrollment_roundtrip_and_release_order(store: &impl Store) {
    store
        .write(|tx: &mut dyn StoreTx| -> Result<()> {
            let (p, _) = tx.upsert_profile("p", &json!({"a": 1}), 5)?;
            let (p2, old) = tx.upsert_profile("p", &json!({"a": 2}), 6)?;
            assert_eq!((p.seq, old), (p2.seq, Some(json!({"a": 1}))));
            for n in 1..=3 {
                tx.insert_enrollment(&Enrollment {
                    id: 0,
                    journey_id: 7,
                    epoch: 0,
                    version: 1,
                    profile_seq: p.seq,
                    entry_no: n,
                    step: 0,
                    state: EnrollmentState::Held,
                    due_at: None,
                    wait_event: None,
                    deadline_at: 1000,
                    entered_at: n,
                    updated_at: n,
                    reason: None,
                    hops: n,
                    event_id: None,
                })?;
            }
            assert_eq!(tx.release_held(7, 2, 50)?, 2);
            let due = tx.due_enrollments(7, 50, false, 10)?;
            assert_eq!(
                due.iter().map(|(e, _)| e.entry_no).collect::<Vec<_>>(),
                vec![1, 2]
            );
            assert_eq!(tx.expire_deadlines(7, 999, 1000, "Timeout")?, 3);
            assert_eq!(tx.expire_deadlines(7, 1000, 5000, "Timeout")?, 0);
            assert_eq!(tx.count_nonterminal(7)?, 0);
            Ok(())
        })
        .expect("tx");
}

/// The backlogs the engine's gauges read: enrollments due by now (with the earliest due time),
/// and unsettled webhook deliveries by destination and status.
pub fn backlogs_for_the_gauges(store: &impl Store) {
    store
        .write(|tx: &mut dyn StoreTx| -> Result<()> {
            let (p, _) = tx.upsert_profile("b", &json!({}), 1)?;
            let journey = tx.insert_journey("gauges/j", "{}")?;
            let before = tx.due_backlog(3)?.0;
            // 99,999: enrollments of no journey (a deleted one's) are no backlog.
            for (n, due, journey_id) in [
                (1, Some(1), journey),
                (2, Some(3), journey),
                (3, Some(900), journey),
                (4, None, journey),
                (5, Some(1), 99_999),
            ] {
                tx.insert_enrollment(&Enrollment {
                    id: 0,
                    journey_id,
                    epoch: 0,
                    version: 1,
                    profile_seq: p.seq,
                    entry_no: n,
                    step: 0,
                    state: EnrollmentState::Active,
                    due_at: due,
                    wait_event: None,
                    deadline_at: 10_000,
                    entered_at: n,
                    updated_at: n,
                    reason: None,
                    hops: 0,
                    event_id: None,
                })?;
            }
            let (after, earliest) = tx.due_backlog(3)?;
            assert_eq!((after - before, earliest), (2, Some(1)));
            assert_eq!(
                tx.due_backlog(0)?.0,
                0,
                "nothing due before the first due time"
            );
            for (entry_no, destination, status) in [
                (11, "crm", DeliveryStatus::Pending),
                (12, "crm", DeliveryStatus::Pending),
                (13, "crm", DeliveryStatus::Held),
                (14, "ads", DeliveryStatus::Sending),
                (15, "ads", DeliveryStatus::Sent),
                (16, "ads", DeliveryStatus::Failed),
            ] {
                tx.insert_delivery(&Delivery {
                    journey_id: 42,
                    destination: destination.into(),
                    status,
                    ..delivery(entry_no)
                })?;
            }
            assert_eq!(
                tx.outbox_backlog()?,
                vec![
                    ("ads".to_string(), DeliveryStatus::Sending, 1),
                    ("crm".to_string(), DeliveryStatus::Pending, 2),
                    ("crm".to_string(), DeliveryStatus::Held, 1),
                ]
            );
            Ok(())
        })
        .expect("tx");
}

/// A failed closure rolls the transaction back.
pub fn failed_transaction_rolls_back(store: &impl Store) {
    let r: Result<()> = store.write(|tx: &mut dyn StoreTx| -> Result<()> {
        tx.insert_delivery(&delivery(9))?;
        Err(StoreError::Unavailable("boom".into()))
    });
    assert!(r.is_err());
    let n = store.read(|tx| tx.count_deliveries(1)).expect("read");
    assert_eq!(n, 0);
}

/// The change feed: revisions grow with each recorded change, a journey is listed once at its
/// latest change, tombstones list deletions, and purging them raises the oldest cursor allowed.
pub fn feed_revisions_and_tombstones(store: &impl Store) {
    use journey_store::ChangeCause::{Command, Engine};
    let (floor, start) = store.read(|tx| tx.feed_bounds()).expect("bounds");
    let (r1, r2, r3) = store
        .write(|tx: &mut dyn StoreTx| -> Result<(i64, i64, i64)> {
            tx.insert_journey("feed/a", "{}")?;
            tx.insert_journey("feed/b", "{}")?;
            let r1 = tx.record_change("feed/a", Command)?;
            let r2 = tx.record_change("feed/b", Engine)?;
            let r3 = tx.record_change("feed/a", Engine)?;
            Ok((r1, r2, r3))
        })
        .expect("write");
    assert!(start < r1 && r1 < r2 && r2 < r3, "{start} {r1} {r2} {r3}");
    let changes = store
        .read(|tx| tx.changes_since(start, 100))
        .expect("changes");
    let listed: Vec<(&str, i64)> = changes
        .iter()
        .map(|c| (c.key.as_str(), c.revision))
        .collect();
    assert_eq!(listed, vec![("feed/b", r2), ("feed/a", r3)]);
    let r4 = store
        .write(|tx: &mut dyn StoreTx| -> Result<i64> {
            let row = tx.journey_for_update("feed/b")?.expect("b exists");
            tx.delete_journey(row.id)?;
            tx.record_deletion("feed/b", Command, 1_000)
        })
        .expect("delete");
    let changes = store.read(|tx| tx.changes_since(r3, 100)).expect("changes");
    assert_eq!(changes.len(), 1);
    assert!(changes[0].deleted && changes[0].key == "feed/b" && changes[0].revision == r4);
    let purged = store
        .write(|tx: &mut dyn StoreTx| tx.purge_tombstones(2_000))
        .expect("purge");
    assert_eq!(purged, 1);
    let (new_floor, head) = store.read(|tx| tx.feed_bounds()).expect("bounds");
    assert!(new_floor >= r4 && new_floor > floor);
    assert_eq!(head, r4);
}

/// A restart of an event-triggered journey: one new entry per profile of the old epoch,
/// whatever that profile's entries became, at step 0 in the new epoch.
pub fn restart_reenrolls_everyone_of_the_epoch(store: &impl Store) {
    const J: i64 = 11;
    store
        .write(|tx: &mut dyn StoreTx| -> Result<()> {
            let entries = [
                (1, 1, EnrollmentState::Completed),
                (1, 2, EnrollmentState::Waiting),
                (2, 1, EnrollmentState::Exited),
            ];
            for (profile_seq, entry_no, state) in entries {
                tx.insert_enrollment(&Enrollment {
                    id: 0,
                    journey_id: J,
                    epoch: 0,
                    version: 1,
                    profile_seq,
                    entry_no,
                    step: 2,
                    state,
                    due_at: None,
                    wait_event: None,
                    deadline_at: 500,
                    entered_at: entry_no,
                    updated_at: entry_no,
                    reason: None,
                    hops: 2,
                    event_id: None,
                })?;
            }
            let n = tx.reenroll_epoch(J, 0, 1, 2, EnrollmentState::Active, 100, 1000)?;
            assert_eq!(n, 2, "one entry per profile");
            assert_eq!(tx.count_states(J, 1)?, vec![(EnrollmentState::Active, 2)]);
            let due = tx.due_enrollments(J, 100, true, 10)?;
            let got: Vec<_> = due
                .iter()
                .map(|(e, _)| {
                    (
                        e.profile_seq,
                        e.epoch,
                        e.version,
                        e.entry_no,
                        e.step,
                        e.hops,
                    )
                })
                .collect();
            assert_eq!(got, vec![(1, 1, 2, 1, 0, 0), (2, 1, 2, 1, 0, 0)]);
            assert!(
                due.iter()
                    .all(|(e, _)| e.deadline_at == 1100 && e.entered_at == 100)
            );
            let queued = tx.reenroll_epoch(J, 1, 2, 2, EnrollmentState::Queued, 200, 1000)?;
            assert_eq!(queued, 2);
            assert_eq!(tx.count_states(J, 2)?, vec![(EnrollmentState::Queued, 2)]);
            assert_eq!(
                tx.next_due(J, false)?,
                Some(100),
                "queued entries are not due"
            );
            Ok(())
        })
        .expect("tx");
}

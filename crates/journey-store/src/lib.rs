//! The store contract of journey-operator's engine: the rows it keeps (journeys, versions,
//! profiles, enrollments, deliveries, runs, the change feed) and the transactional interface
//! every backend implements. The engine's logic runs inside [`Store::write`] transactions
//! against the object-safe [`StoreTx`]; each backend owns its transactions (SQLite takes
//! `BEGIN IMMEDIATE`, one writer, and runs its blocking work on the caller's thread; a
//! PostgreSQL backend opens a `SERIALIZABLE` transaction and locks the journey row in
//! [`StoreTx::journey_for_update`]). Every backend runs `journey-store-conformance`.
//!
//! The interface is synchronous and fine-grained on purpose: one engine step reads and
//! writes a journey's rows in one transaction, so the engine's rules live once, in the
//! engine, instead of once per backend. The async engine API calls it from `spawn_blocking`.
//!
//! No Kubernetes, no engine: only the model of what is stored.

mod error;
pub mod feed;

use serde::{Deserialize, Serialize};

pub use error::{Result, StoreError};
pub use feed::{ChangeCause, FeedChange};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// State of an enrollment (a profile's passage through a journey).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema, Deserialize)]
#[repr(i64)]
pub enum EnrollmentState {
    /// Due to execute its current step at `due_at`.
    Active = 0,
    /// In a wait / waitForEvent until `due_at` (or the event).
    Waiting = 1,
    /// Held at an action step by a `Hold` pause.
    Held = 2,
    /// Entrance queued during a pause with `entries: Queue`.
    Queued = 3,
    Discarded = 4,
    Excluded = 5,
    Exited = 6,
    Completed = 7,
}

impl EnrollmentState {
    pub const ALL: [EnrollmentState; 8] = [
        Self::Active,
        Self::Waiting,
        Self::Held,
        Self::Queued,
        Self::Discarded,
        Self::Excluded,
        Self::Exited,
        Self::Completed,
    ];
    pub fn from_i64(v: i64) -> Option<Self> {
        Self::ALL.get(usize::try_from(v).ok()?).copied()
    }
    pub fn is_terminal(self) -> bool {
        (self as i64) >= 4
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Waiting => "waiting",
            Self::Held => "held",
            Self::Queued => "queued",
            Self::Discarded => "discarded",
            Self::Excluded => "excluded",
            Self::Exited => "exited",
            Self::Completed => "completed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JourneyRow {
    pub id: i64,
    pub key: String,
    /// Engine runtime state (lifecycle, phase, pause, resume, reads...), JSON.
    pub runtime: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    pub id: i64,
    pub journey_id: i64,
    pub epoch: i64,
    pub version: i64,
    pub profile_seq: i64,
    /// Per (journey, epoch, profile) entry number, starting at 1.
    pub entry_no: i64,
    /// Index of the current step in `version`'s step list.
    pub step: i64,
    pub state: EnrollmentState,
    pub due_at: Option<Millis>,
    pub wait_event: Option<String>,
    pub deadline_at: Millis,
    pub entered_at: Millis,
    pub updated_at: Millis,
    pub reason: Option<String>,
    /// Steps this entry has taken (0 at entrance): an action's delivery carries it as its
    /// visit, so passing the same action again in one entry is a new delivery.
    pub hops: i64,
    /// The event that enrolled the profile or last resumed its waitForEvent (what message
    /// templates read as `event`); `None` for audience entries and before store migration 7.
    pub event_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Profile {
    pub seq: i64,
    pub id: String,
    pub attrs: serde_json::Value,
}

/// Outbox status of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[repr(i64)]
pub enum DeliveryStatus {
    /// Delivered to the `record` destination (stored, queryable).
    Recorded = 0,
    /// Waiting for the webhook sender.
    Pending = 1,
    /// Pending but held by a pause (not handed to the sender).
    Held = 2,
    Sent = 3,
    Cancelled = 4,
    /// Claimed by the webhook sender (handed to the endpoint). Reset to Pending
    /// at startup: a crash mid-send re-sends under the same idempotency key.
    Sending = 5,
    /// Gave up after the maximum number of attempts or a permanent error.
    Failed = 6,
}

impl DeliveryStatus {
    pub fn from_i64(v: i64) -> Option<Self> {
        [
            Self::Recorded,
            Self::Pending,
            Self::Held,
            Self::Sent,
            Self::Cancelled,
            Self::Sending,
            Self::Failed,
        ]
        .get(usize::try_from(v).ok()?)
        .copied()
    }
}

/// A delivery; `(journey_id, epoch, profile_seq, step_key, entry_no, visit)` is its
/// idempotency key, unique in the store.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Delivery {
    pub journey_id: i64,
    pub epoch: i64,
    pub profile_seq: i64,
    pub step_key: i64,
    pub entry_no: i64,
    /// The entry's step count when it reached the action (0 for every delivery recorded
    /// before store migration 5).
    pub visit: i64,
    pub version: i64,
    pub step_id: String,
    pub profile_id: String,
    pub channel: String,
    pub destination: String,
    pub message: serde_json::Value,
    pub status: DeliveryStatus,
    pub created_at: Millis,
    /// The enrollment's event when the delivery was created (templates read it as `event`).
    #[serde(default)]
    pub event_id: Option<i64>,
    /// The message with its templates rendered, once: at creation for `record`, at the first
    /// claim for senders. A re-send sends these same bytes.
    #[serde(default)]
    pub rendered: Option<serde_json::Value>,
    /// Attempts made to send it.
    #[serde(default)]
    pub attempts: i64,
    /// The last attempt's error, or why it was not sent.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Why it ended as it did, when it did not end as sent or recorded (`TemplateError`).
    #[serde(default)]
    pub reason: Option<String>,
}

impl Delivery {
    /// The rendered subject, when the rendered message has one.
    pub fn rendered_subject(&self) -> Option<&str> {
        self.rendered.as_ref()?.get("subject")?.as_str()
    }

    /// The textual idempotency key (sent as `Idempotency-Key` by webhooks). Visit 0 keeps
    /// the form keys had before visits existed, so no key of a delivery in flight changes.
    pub fn idempotency_key(&self) -> String {
        let key = format!(
            "{}-{}-{}-{:016x}-{}",
            self.journey_id, self.epoch, self.profile_seq, self.step_key, self.entry_no
        );
        match self.visit {
            0 => key,
            visit => format!("{key}-{visit}"),
        }
    }
}

/// Stable 63-bit FNV-1a hash of a step id: the step part of the idempotency key
/// (stable across versions, so a migrated profile keeps its keys).
pub fn step_key(step_id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in step_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 1) as i64
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub run_id: i64,
    pub kind: String,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    pub entered: i64,
    pub outcome: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub journey_id: Option<i64>,
    pub profile_id: Option<String>,
    pub limit: Option<i64>,
}

/// The change feed's side of a transaction (`crate::feed`).
pub trait FeedTx {
    /// Advances the engine-wide revision and records it as the journey's latest change.
    fn record_change(&mut self, key: &str, cause: ChangeCause) -> Result<i64>;
    /// Advances the revision and keeps a tombstone for a deleted journey.
    fn record_deletion(&mut self, key: &str, cause: ChangeCause, at: Millis) -> Result<i64>;
    /// Journeys and tombstones changed after `since`, oldest first.
    fn changes_since(&mut self, since: i64, limit: i64) -> Result<Vec<FeedChange>>;
    /// The revision of the journey's latest change.
    fn journey_revision(&mut self, key: &str) -> Result<Option<i64>>;
    /// (oldest revision a cursor may hold, current revision).
    fn feed_bounds(&mut self) -> Result<(i64, i64)>;
    /// A setting of the engine itself (`cluster_id`).
    fn engine_meta(&mut self, key: &str) -> Result<Option<String>>;
    fn set_engine_meta(&mut self, key: &str, value: &str) -> Result<()>;
    /// Drops tombstones of deletions before `before`; a cursor older than the newest dropped
    /// one must resync. Returns how many were dropped.
    fn purge_tombstones(&mut self, before: Millis) -> Result<u64>;
}

/// One write (or read) transaction. Object safe.
/// Journeys (their runtime state) and their definition versions.
pub trait JourneyTx {
    fn journey_for_update(&mut self, key: &str) -> Result<Option<JourneyRow>>;
    fn journey_by_id(&mut self, id: i64) -> Result<Option<JourneyRow>>;
    fn list_journeys(&mut self) -> Result<Vec<JourneyRow>>;
    /// Every journey's (id, key), without the runtime: what a scheduler tick iterates.
    fn list_journey_keys(&mut self) -> Result<Vec<(i64, String)>>;
    fn insert_journey(&mut self, key: &str, runtime: &str) -> Result<i64>;
    fn save_runtime(&mut self, id: i64, runtime: &str) -> Result<()>;
    /// Removes a journey with its versions, enrollments, deliveries and runs.
    fn delete_journey(&mut self, id: i64) -> Result<()>;

    fn latest_version(&mut self, journey_id: i64) -> Result<Option<(i64, String)>>;
    fn version_definition(&mut self, journey_id: i64, version: i64) -> Result<Option<String>>;
    fn insert_version(
        &mut self,
        journey_id: i64,
        version: i64,
        hash: &str,
        definition: &str,
        at: Millis,
    ) -> Result<()>;
}

/// Profiles and the events ingested about them.
pub trait ProfileTx {
    /// Inserts or replaces attributes; returns the profile and its previous attributes.
    fn upsert_profile(
        &mut self,
        id: &str,
        attrs: &serde_json::Value,
        now: Millis,
    ) -> Result<(Profile, Option<serde_json::Value>)>;
    fn profile_by_id(&mut self, id: &str) -> Result<Option<Profile>>;
    fn profile_by_seq(&mut self, seq: i64) -> Result<Option<Profile>>;
    /// Profiles with `after < seq <= upto`, ascending, at most `limit`.
    fn scan_profiles(&mut self, after: i64, upto: i64, limit: i64) -> Result<Vec<Profile>>;
    fn max_profile_seq(&mut self) -> Result<i64>;
    fn insert_event(
        &mut self,
        profile_id: &str,
        name: &str,
        payload: &serde_json::Value,
        at: Millis,
    ) -> Result<i64>;
    /// The payload of an ingested event.
    fn event_payload(&mut self, id: i64) -> Result<Option<serde_json::Value>>;
}

/// Enrollments: each profile's passage through a journey, and the set-based updates the lifecycle makes to them.
pub trait EnrollmentTx {
    fn insert_enrollment(&mut self, e: &Enrollment) -> Result<i64>;
    /// Writes an enrollment whose state was `old_state` before (the store
    /// maintains per-state counters).
    fn update_enrollment(&mut self, e: &Enrollment, old_state: EnrollmentState) -> Result<()>;
    /// Enrollments with `due_at <= now` (only `Active` ones when `active_only`),
    /// by due time then id, each with its profile's attributes as stored (JSON text, parsed
    /// only if a condition or the global filter reads them; `"null"` for a missing profile).
    /// Reading them in the same query saves a lookup per profile on the hottest path.
    fn due_enrollments(
        &mut self,
        journey_id: i64,
        now: Millis,
        active_only: bool,
        limit: i64,
    ) -> Result<Vec<(Enrollment, String)>>;
    /// The earliest `due_at` of the journey's enrollments (only `Active` ones when
    /// `active_only`): when the scheduler next has something to advance.
    fn next_due(&mut self, journey_id: i64, active_only: bool) -> Result<Option<Millis>>;
    /// Every journey's enrollments due at or before `now` (not yet advanced): how many, and
    /// the earliest due time (the scheduler's lag). One statement, no per-journey round trip:
    /// the engine's gauges read it periodically.
    fn due_backlog(&mut self, now: Millis) -> Result<(i64, Option<Millis>)>;
    /// The earliest deadline after `after` (a lower bound: terminal enrollments are included):
    /// when the global-timeout sweep next has something to do.
    fn next_deadline(&mut self, journey_id: i64, after: Millis) -> Result<Option<Millis>>;
    /// The latest entry of a profile in a journey epoch.
    fn last_entry(
        &mut self,
        journey_id: i64,
        epoch: i64,
        profile_seq: i64,
    ) -> Result<Option<Enrollment>>;
    /// Non-terminal enrollments of a profile in a journey epoch (older epochs
    /// have none: a restart exits them).
    fn live_enrollments_of(
        &mut self,
        journey_id: i64,
        epoch: i64,
        profile_seq: i64,
    ) -> Result<Vec<Enrollment>>;
    /// One page of a journey epoch's non-terminal enrollments in `state`, by id after
    /// `after_id`: (enrollment id, profile attributes). Read-only inspection (plan's filter
    /// impact); pages keep each read transaction short.
    fn inflight_attrs_page(
        &mut self,
        journey_id: i64,
        epoch: i64,
        state: EnrollmentState,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, serde_json::Value)>>;
    /// A journey's enrollments with their profile ids, by id, after enrollment id `after`, at
    /// most `limit`, only `profile`'s when given (inspection, keyset-paged).
    fn list_enrollments(
        &mut self,
        journey_id: i64,
        profile: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(Enrollment, String)>>;
    /// Counts per state for one epoch (maintained counters, O(states)).
    fn count_states(&mut self, journey_id: i64, epoch: i64) -> Result<Vec<(EnrollmentState, i64)>>;
    fn count_state_all_journeys(&mut self, state: EnrollmentState) -> Result<i64>;
    fn count_nonterminal(&mut self, journey_id: i64) -> Result<i64>;

    /// Non-terminal (except queued) enrollments whose deadline is in
    /// `(after, now]` -> exited(reason). Deadlines never move and are always in
    /// the future when set, so sweeping from the previous sweep time is exact.
    fn expire_deadlines(
        &mut self,
        journey_id: i64,
        after: Millis,
        now: Millis,
        reason: &str,
    ) -> Result<i64>;
    /// Releases up to `limit` held enrollments in entry order (-> active, due now).
    fn release_held(&mut self, journey_id: i64, limit: i64, now: Millis) -> Result<i64>;
    /// Every enrollment in `from` -> `to` with a reason, due cleared.
    fn transition_all(
        &mut self,
        journey_id: i64,
        from: &[EnrollmentState],
        to: EnrollmentState,
        reason: &str,
        now: Millis,
    ) -> Result<i64>;
    /// Queued entrances -> active at step 0, entered now.
    fn admit_queued(
        &mut self,
        journey_id: i64,
        now: Millis,
        timeout_ms: i64,
        version: i64,
    ) -> Result<i64>;
    /// A restart of an event-triggered journey: every profile with an enrollment in
    /// `from_epoch` (in flight or finished) gets one new enrollment in `to_epoch` on `version`,
    /// at step 0, entered now, in `state` (`Active` due now, or `Queued` with no due time),
    /// its deadline `timeout_ms` from now; in the order they first entered. Returns how many.
    #[allow(clippy::too_many_arguments)]
    fn reenroll_epoch(
        &mut self,
        journey_id: i64,
        from_epoch: i64,
        to_epoch: i64,
        version: i64,
        state: EnrollmentState,
        now: Millis,
        timeout_ms: i64,
    ) -> Result<i64>;
    /// Moves waiting due times out by the part of the pause each wait overlapped.
    fn extend_waits(&mut self, journey_id: i64, pause_since: Millis, now: Millis) -> Result<i64>;
    /// Version migration of one step: enrollments of `from_version` (non-terminal)
    /// on `from_step` move to `to_version`/`to_step`, or exit with `reason` when
    /// `to_step` is None.
    #[allow(clippy::too_many_arguments)]
    fn migrate_step(
        &mut self,
        journey_id: i64,
        from_version: i64,
        from_step: i64,
        to_version: i64,
        to_step: Option<i64>,
        wait_event: Option<&str>,
        reason: &str,
        now: Millis,
    ) -> Result<i64>;
    /// Distinct versions of non-terminal enrollments.
    fn live_versions(&mut self, journey_id: i64) -> Result<Vec<i64>>;
}

/// Deliveries: the exactly-once record of every message, and the webhook outbox.
pub trait DeliveryTx {
    /// Inserts unless the idempotency key exists; returns whether inserted.
    fn insert_delivery(&mut self, d: &Delivery) -> Result<bool>;
    fn set_delivery_status(
        &mut self,
        journey_id: i64,
        from: DeliveryStatus,
        to: DeliveryStatus,
    ) -> Result<i64>;
    fn list_deliveries(&mut self, filter: &DeliveryFilter) -> Result<Vec<Delivery>>;
    fn count_deliveries(&mut self, journey_id: i64) -> Result<i64>;
    /// Webhook deliveries not yet settled (Pending, Held, Sending), by destination and status.
    fn outbox_backlog(&mut self) -> Result<Vec<(String, DeliveryStatus, i64)>>;
    /// Claims up to `limit` pending webhook deliveries due for an attempt
    /// (-> Sending), oldest first.
    fn claim_webhook_deliveries(&mut self, now: Millis, limit: i64) -> Result<Vec<Delivery>>;
    /// Records the outcome of an attempt for the delivery with this key.
    fn finish_attempt(
        &mut self,
        d: &Delivery,
        status: DeliveryStatus,
        next_attempt_at: Millis,
        error: Option<&str>,
        counted: bool,
    ) -> Result<()>;
    /// Stores a claimed delivery's rendered message (once: a delivery already rendered keeps
    /// its rendering), or, with `failure`, fails it with that reason and error.
    fn set_rendered(
        &mut self,
        d: &Delivery,
        rendered: Option<&serde_json::Value>,
        failure: Option<(&str, &str)>,
    ) -> Result<()>;
    /// Deliveries of one journey by status: what its status reports.
    fn count_deliveries_by_status(&mut self, journey_id: i64)
    -> Result<Vec<(DeliveryStatus, i64)>>;
    /// Number of attempts made for a delivery.
    fn delivery_attempts(&mut self, d: &Delivery) -> Result<i64>;
    /// Sending -> Pending (startup recovery); returns the count.
    fn reset_sending(&mut self) -> Result<i64>;
}

/// Audience-read runs and the request tokens already handled.
pub trait RunTx {
    fn insert_run(&mut self, journey_id: i64, kind: &str, started_at: Millis) -> Result<i64>;
    fn update_run(
        &mut self,
        run_id: i64,
        ended_at: Option<Millis>,
        entered: i64,
        outcome: &str,
    ) -> Result<()>;
    fn list_runs(&mut self, journey_id: i64, limit: i64) -> Result<Vec<RunRecord>>;
    /// Handled request tokens survive journey deletion (keyed by journey key).
    fn handled_token(&mut self, key: &str, kind: &str) -> Result<Option<String>>;
    fn set_handled_token(&mut self, key: &str, kind: &str, token: &str) -> Result<()>;
}

/// Everything one transaction can do: the job traits together. Every backend implements the
/// job traits; this one comes with them.
pub trait StoreTx: FeedTx + JourneyTx + ProfileTx + EnrollmentTx + DeliveryTx + RunTx {}

impl<T: FeedTx + JourneyTx + ProfileTx + EnrollmentTx + DeliveryTx + RunTx> StoreTx for T {}

/// A transactional store. The caller's closure returns its own error type (the engine's), so
/// a rule it enforces inside the transaction rolls the transaction back like a store error
/// does; the store's own failures reach it through `From<StoreError>`.
pub trait Store: Send + Sync + 'static {
    /// Runs `f` in a write transaction (exclusive writer); commits when it returns Ok.
    fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn StoreTx) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E>;
    /// Runs `f` in a read-only snapshot.
    fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn StoreTx) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E>;
}

//! The data plane's wire types, the one source of its OpenAPI schemas (`schemars`, as for the
//! engine API and the CRD). Answers are serialized from these types; requests are validated
//! by `input.rs` (to name the offending field and batch item precisely), and a test keeps its
//! field lists equal to these types' properties.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::{MAX_FILTER_BYTES, MAX_ID_BYTES};
use crate::engine::store::RunRecord;
use crate::engine::{Delivery, DeliveryStatus, EnrollmentView, Millis};

/// One event for `POST /v1/events` (and an item of a batch).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// The profile the event is about; an unknown profile is created with no attributes.
    #[schemars(length(min = 1, max = MAX_ID_BYTES))]
    pub profile_id: String,
    /// The event's name, matched by entry, exit criteria and waits for events.
    #[schemars(length(min = 1, max = MAX_ID_BYTES), example = &"AddToCart")]
    pub name: String,
    /// Read by CEL conditions as `event` (default {}).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Map<String, Value>>,
}

/// `POST /v1/events/batch`: 1 to the configured maximum of events, ingested in order in one
/// transaction.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    #[schemars(length(min = 1))]
    pub events: Vec<Event>,
}

/// `PUT /v1/profiles/{profileId}`: the attributes replace the stored ones (no merge).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpsert {
    /// Read by CEL conditions as `profile`.
    pub attributes: Map<String, Value>,
}

/// `POST /v1/journeys/{namespace}/{name}/filter-matches`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterCandidate {
    /// A CEL expression over `profile`, as in spec.globalFilter. 400 with field `filter` when
    /// it is refused: nested more than 32 levels deep (each bracket, call, member access,
    /// index, unary operator, ternary and operator of a chain adds one; a chain of && or ||
    /// adds the log2 of its length), more than 3 comprehension macros nested in one another,
    /// a syntax error, a variable other than `profile`, or a result that is never a boolean
    /// (e.g. `1 + 2`).
    #[schemars(
        length(min = 1, max = MAX_FILTER_BYTES),
        example = &"has(profile.country) && profile.country == 'FR'"
    )]
    pub filter: String,
}

/// The answer to an accepted event or batch.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Accepted {
    /// Events ingested.
    pub accepted: usize,
}

/// A delivery on the wire (camelCase, stable). Times are milliseconds since the Unix epoch.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Delivery")]
pub struct DeliveryOut {
    /// Unique per delivery; sent as Idempotency-Key by webhooks.
    pub idempotency_key: String,
    /// Engine-internal journey id.
    pub journey_id: i64,
    /// The journey's restart epoch.
    pub epoch: i64,
    /// Definition version that produced it.
    pub version: i64,
    /// The profile's entry number in the journey.
    pub entry_no: i64,
    pub step_id: String,
    pub profile_id: String,
    pub channel: String,
    pub destination: String,
    /// The step's message, as defined (its templates, not their rendering: rendered bodies
    /// are never returned).
    pub message: Value,
    /// The rendered message's `subject`, once rendered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendered_subject: Option<String>,
    pub status: DeliveryStatus,
    /// Attempts made to send it.
    pub attempts: i64,
    /// The last attempt's error, or why it was not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Why it ended as it did when not sent or recorded (`TemplateError`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: Millis,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        let rendered_subject = d.rendered_subject().map(str::to_string);
        Self {
            idempotency_key: d.idempotency_key(),
            journey_id: d.journey_id,
            epoch: d.epoch,
            version: d.version,
            entry_no: d.entry_no,
            step_id: d.step_id,
            profile_id: d.profile_id,
            channel: d.channel,
            destination: d.destination,
            rendered_subject,
            message: d.message,
            status: d.status,
            attempts: d.attempts,
            last_error: d.last_error,
            reason: d.reason,
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RunList {
    pub runs: Vec<RunRecord>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentList {
    pub enrollments: Vec<EnrollmentView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
}

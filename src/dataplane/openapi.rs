//! The OpenAPI 3.0 document of the data plane, written by hand (served at `GET /openapi.json`).
//! It describes exactly [`super::routes::ROUTES`]; a test checks both directions.

use serde_json::{Value, json};

use super::config::{
    DEFAULT_DELIVERIES_LIMIT, DEFAULT_ENROLLMENTS_LIMIT, DEFAULT_RUNS_LIMIT, Limits,
    MAX_DELIVERIES_LIMIT, MAX_ENROLLMENTS_LIMIT, MAX_FILTER_BYTES, MAX_ID_BYTES, MAX_RUNS_LIMIT,
    RETRY_AFTER_SECS,
};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// The responses every authenticated data endpoint can give besides its own.
fn common_responses(extra: Value) -> Value {
    let mut r = json!({
        "400": error_response("Malformed input: bad JSON, wrong types, empty ids, unknown fields or query parameters, out-of-range limit. Nothing was changed."),
        "401": {
            "description": "Missing or wrong bearer token.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        },
        "405": error_response("Method not allowed on this path (see the Allow header)."),
        "500": error_response("Engine failure (details in the operator's log)."),
        "503": {
            "description": format!("This replica is a standby without the leader lease, or the engine's store is busy. Retry after Retry-After ({RETRY_AFTER_SECS} s)."),
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        }
    });
    if let (Some(r), Value::Object(extra)) = (r.as_object_mut(), extra) {
        r.extend(extra);
    }
    r
}

fn json_body(schema: &str) -> Value {
    json!({
        "required": true,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn ok_json(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn limit_param(default: i64, max: i64, what: &str) -> Value {
    json!({
        "name": "limit", "in": "query", "required": false,
        "description": format!("Most {what} returned."),
        "schema": {"type": "integer", "minimum": 1, "maximum": max, "default": default}
    })
}

/// The document, with the configured limits filled in.
pub fn document(limits: &Limits) -> Value {
    let max_batch = limits.max_batch_events;
    let max_body = limits.max_body_bytes;
    let too_large = error_response(&format!(
        "The request body is larger than {max_body} bytes."
    ));
    let unsupported =
        error_response("The body is not JSON (Content-Type must be application/json).");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "journey-operator data plane",
            "version": "v1",
            "description": "Feeds the journey engine with events and profiles and reads its deliveries and run history. Plain HTTP (no TLS): serve it inside the cluster network behind a Service. Only the replica holding the leader lease serves; a standby answers 503 with Retry-After. Times are milliseconds since the Unix epoch (UTC). Errors are JSON: {\"error\": message, \"field\": offending input (when there is one)}."
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/events": {
                "post": {
                    "operationId": "ingestEvent",
                    "summary": "Ingest one event",
                    "description": "Stores the event and matches it against every journey (entry, exit criteria, waits for events) at once; deliveries follow as the engine's scheduler advances. An unknown profile is created with no attributes.",
                    "requestBody": json_body("Event"),
                    "responses": common_responses(json!({
                        "202": ok_json("Ingested.", "Accepted"),
                        "413": too_large,
                        "415": unsupported
                    }))
                }
            },
            "/v1/events/batch": {
                "post": {
                    "operationId": "ingestEventBatch",
                    "summary": "Ingest a batch of events",
                    "description": format!("1 to {max_batch} events. Every item is validated before any is ingested: one malformed item rejects the batch (400 with its `index` and `field`) and nothing is written. Valid events are then ingested in order in one transaction: if the engine fails (5xx) nothing of the batch was written, and the whole batch can be sent again."),
                    "requestBody": json_body("EventBatch"),
                    "responses": common_responses(json!({
                        "202": ok_json("All events ingested.", "Accepted"),
                        "413": too_large,
                        "415": unsupported
                    }))
                }
            },
            "/v1/profiles/{profileId}": {
                "put": {
                    "operationId": "upsertProfile",
                    "summary": "Create or replace a profile's attributes",
                    "description": "The attributes replace the stored ones (no merge). Audience-qualification journeys enrol the profile when it starts matching.",
                    "parameters": [{
                        "name": "profileId", "in": "path", "required": true,
                        "description": "Profile id (percent-encode reserved characters).",
                        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_BYTES}
                    }],
                    "requestBody": json_body("ProfileUpsert"),
                    "responses": common_responses(json!({
                        "204": {"description": "Stored."},
                        "413": too_large,
                        "415": unsupported
                    }))
                }
            },
            "/v1/deliveries": {
                "get": {
                    "operationId": "listDeliveries",
                    "summary": "List deliveries, oldest first",
                    "parameters": [
                        {"name": "journey", "in": "query", "required": false,
                         "description": "Journey key namespace/name. An unknown journey has no deliveries.",
                         "schema": {"type": "string", "example": "journeys-demo/add-to-cart"}},
                        {"name": "profile", "in": "query", "required": false,
                         "description": "Profile id.", "schema": {"type": "string"}},
                        limit_param(DEFAULT_DELIVERIES_LIMIT, MAX_DELIVERIES_LIMIT, "deliveries")
                    ],
                    "responses": common_responses(json!({
                        "200": ok_json("Deliveries.", "DeliveryList")
                    }))
                }
            },
            "/v1/journeys/{namespace}/{name}/runs": {
                "get": {
                    "operationId": "runHistory",
                    "summary": "Run history of a journey, newest first",
                    "parameters": [
                        {"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}},
                        {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                        limit_param(DEFAULT_RUNS_LIMIT, MAX_RUNS_LIMIT, "runs")
                    ],
                    "responses": common_responses(json!({
                        "200": ok_json("Runs.", "RunList"),
                        "404": error_response("The engine does not know this journey.")
                    }))
                }
            },
            "/v1/journeys/{namespace}/{name}/enrollments": {
                "get": {
                    "operationId": "listEnrollments",
                    "summary": "Where profiles are in a journey: each entry's step, state and due time, oldest first",
                    "parameters": [
                        {"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}},
                        {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                        {"name": "profile", "in": "query", "required": false,
                         "description": "Only this profile's entries.", "schema": {"type": "string"}},
                        {"name": "after", "in": "query", "required": false,
                         "description": "The nextAfter of the previous page (0 or absent: the first page).",
                         "schema": {"type": "integer", "format": "int64", "minimum": 0}},
                        limit_param(DEFAULT_ENROLLMENTS_LIMIT, MAX_ENROLLMENTS_LIMIT, "enrollments")
                    ],
                    "responses": common_responses(json!({
                        "200": ok_json("Enrollments.", "EnrollmentList"),
                        "404": error_response("The engine does not know this journey.")
                    }))
                }
            },
            "/v1/journeys/{namespace}/{name}/filter-matches": {
                "post": {
                    "operationId": "filterMatches",
                    "summary": "How many in-flight profiles a candidate global filter matches now",
                    "description": "Read-only. Evaluates the CEL expression over the journey's in-flight profiles (active, waiting, held, queued in the current epoch) with their attributes as stored now: what setting it as spec.globalFilter would exclude at the next action steps. `journey-operator plan --cluster --data-plane URL` calls it for every pull request that sets a new filter. The scan reads pages of 5,000 in separate transactions, so on a busy journey the counts are a near-instant picture, not one snapshot.",
                    "parameters": [
                        {"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}},
                        {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}
                    ],
                    "requestBody": json_body("FilterCandidate"),
                    "responses": common_responses(json!({
                        "200": ok_json("Counts.", "FilterMatches"),
                        "404": error_response("The engine does not know this journey."),
                        "413": too_large,
                        "415": unsupported
                    }))
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document.", "content": {"application/json": {"schema": {"type": "object"}}}}}
                }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "The token in the operator's data-plane token file (a Secret)."}
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "field": {"type": "string", "description": "Offending input, e.g. events[3].profileId, limit, profileId."},
                        "index": {"type": "integer", "description": "Batch item at fault."}
                    }
                },
                "Event": {
                    "type": "object", "required": ["profileId", "name"], "additionalProperties": false,
                    "properties": {
                        "profileId": {"type": "string", "minLength": 1, "maxLength": MAX_ID_BYTES},
                        "name": {"type": "string", "minLength": 1, "maxLength": MAX_ID_BYTES, "example": "AddToCart"},
                        "payload": {"type": "object", "description": "Read by CEL conditions as `event` (default {}).", "additionalProperties": true}
                    }
                },
                "EventBatch": {
                    "type": "object", "required": ["events"], "additionalProperties": false,
                    "properties": {
                        "events": {"type": "array", "minItems": 1, "maxItems": max_batch, "items": {"$ref": "#/components/schemas/Event"}}
                    }
                },
                "ProfileUpsert": {
                    "type": "object", "required": ["attributes"], "additionalProperties": false,
                    "properties": {
                        "attributes": {"type": "object", "description": "Read by CEL conditions as `profile`.", "additionalProperties": true}
                    }
                },
                "Accepted": {
                    "type": "object", "required": ["accepted"],
                    "properties": {"accepted": {"type": "integer", "description": "Events ingested."}}
                },
                "Delivery": {
                    "type": "object",
                    "required": ["idempotencyKey", "journeyId", "epoch", "version", "entryNo", "stepId", "profileId", "channel", "destination", "message", "status", "createdAt"],
                    "properties": {
                        "idempotencyKey": {"type": "string", "description": "Unique per delivery; sent as Idempotency-Key by webhooks."},
                        "journeyId": {"type": "integer", "description": "Engine-internal journey id."},
                        "epoch": {"type": "integer"},
                        "version": {"type": "integer", "description": "Definition version that produced it."},
                        "entryNo": {"type": "integer", "description": "The profile's entry number in the journey."},
                        "stepId": {"type": "string"},
                        "profileId": {"type": "string"},
                        "channel": {"type": "string"},
                        "destination": {"type": "string"},
                        "message": {"description": "The step's message, as defined."},
                        "status": {"type": "string", "enum": ["Recorded", "Pending", "Held", "Sent", "Cancelled"]},
                        "createdAt": {"type": "integer", "format": "int64"}
                    }
                },
                "DeliveryList": {
                    "type": "object", "required": ["deliveries"],
                    "properties": {"deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}}}
                },
                "Run": {
                    "type": "object", "required": ["runId", "kind", "startedAt", "entered", "outcome"],
                    "properties": {
                        "runId": {"type": "integer"},
                        "kind": {"type": "string", "example": "RunNow"},
                        "startedAt": {"type": "integer", "format": "int64"},
                        "endedAt": {"type": "integer", "format": "int64", "nullable": true},
                        "entered": {"type": "integer"},
                        "outcome": {"type": "string", "example": "Succeeded"}
                    }
                },
                "FilterCandidate": {
                    "type": "object", "required": ["filter"], "additionalProperties": false,
                    "properties": {
                        "filter": {"type": "string", "minLength": 1, "maxLength": MAX_FILTER_BYTES, "description": "A CEL expression over `profile`, as in spec.globalFilter. 400 with field `filter` when it is refused: nested more than 32 levels deep (each bracket, call, member access, index, unary operator, ternary and operator of a chain adds one; a chain of && or || adds the log2 of its length), more than 3 comprehension macros nested in one another, a syntax error, a variable other than `profile`, or a result that is never a boolean (e.g. `1 + 2`).", "example": "has(profile.country) && profile.country == 'FR'"}
                    }
                },
                "FilterMatches": {
                    "type": "object", "required": ["inFlight", "matching", "evaluationErrors"],
                    "properties": {
                        "inFlight": {"type": "integer", "description": "Enrollments of the current epoch that are active, waiting, held or queued."},
                        "matching": {"type": "integer", "description": "Of those, how many the filter matches (would be excluded)."},
                        "evaluationErrors": {"type": "integer", "description": "Of those, how many the filter could not be evaluated on (e.g. a missing attribute without has()); the engine treats them as not matching."}
                    }
                },
                "Enrollment": {
                    "type": "object",
                    "required": ["id", "profileId", "epoch", "version", "entryNo", "step", "state", "enteredAt"],
                    "properties": {
                        "id": {"type": "integer", "format": "int64"},
                        "profileId": {"type": "string"},
                        "epoch": {"type": "integer", "description": "The journey's restart epoch the entry belongs to."},
                        "version": {"type": "integer", "description": "The definition version the entry runs."},
                        "entryNo": {"type": "integer", "description": "The profile's entry number in this epoch, from 1."},
                        "step": {"type": "string", "description": "The current step's id."},
                        "state": {"type": "string", "enum": ["Active", "Waiting", "Held", "Queued", "Discarded", "Excluded", "Exited", "Completed"]},
                        "dueAt": {"type": "integer", "format": "int64", "nullable": true},
                        "enteredAt": {"type": "integer", "format": "int64"},
                        "reason": {"type": "string", "nullable": true}
                    }
                },
                "EnrollmentList": {
                    "type": "object", "required": ["enrollments"],
                    "properties": {
                        "enrollments": {"type": "array", "items": {"$ref": "#/components/schemas/Enrollment"}},
                        "nextAfter": {"type": "integer", "format": "int64", "description": "Pass as `after` for the next page; absent on the last page."}
                    }
                },
                "RunList": {
                    "type": "object", "required": ["runs"],
                    "properties": {"runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}}}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::routes::ROUTES;
    use super::*;

    /// Both directions: every served route is documented, and nothing else is.
    #[test]
    fn document_lists_exactly_the_routes() {
        let doc = document(&Limits::default());
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path) in ROUTES {
            let op = &paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not documented"))[method.to_lowercase()];
            assert!(op.is_object(), "{method} {path} is not documented");
        }
        let mut documented = 0;
        for (path, ops) in paths {
            for method in ops.as_object().expect("operations").keys() {
                documented += 1;
                assert!(
                    ROUTES
                        .iter()
                        .any(|(m, p)| p == path && m.eq_ignore_ascii_case(method)),
                    "{method} {path} is documented but not served"
                );
            }
        }
        assert_eq!(documented, ROUTES.len());
        // Every $ref resolves.
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap_or_default();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling $ref {name}"
            );
        }
    }
}

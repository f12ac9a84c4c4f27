//! The OpenAPI 3.0 document of the data plane (served at `GET /openapi.json`). Every schema is
//! generated from the wire types (`super::wire`, `schemars`); the paths describe exactly
//! [`super::routes::ROUTES`] (a test checks both directions).

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::error::ErrorBody;
use super::wire::{
    Accepted, DeliveryList, EnrollmentList, Event, EventBatch, FilterCandidate, ProfileUpsert,
    RunList,
};
use crate::engine::FilterMatches;

use super::config::{
    DEFAULT_DELIVERIES_LIMIT, DEFAULT_ENROLLMENTS_LIMIT, DEFAULT_RUNS_LIMIT, Limits,
    MAX_DELIVERIES_LIMIT, MAX_ENROLLMENTS_LIMIT, MAX_ID_BYTES, MAX_RUNS_LIMIT, RETRY_AFTER_SECS,
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

/// The components' schemas, generated from the wire types; the batch's size is configured.
fn schemas(max_batch: usize) -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    fn add<T: JsonSchema>(g: &mut schemars::SchemaGenerator) {
        g.subschema_for::<T>();
    }
    add::<ErrorBody>(&mut generator);
    add::<Event>(&mut generator);
    add::<EventBatch>(&mut generator);
    add::<ProfileUpsert>(&mut generator);
    add::<Accepted>(&mut generator);
    add::<DeliveryList>(&mut generator);
    add::<RunList>(&mut generator);
    add::<EnrollmentList>(&mut generator);
    add::<FilterCandidate>(&mut generator);
    add::<FilterMatches>(&mut generator);
    let mut schemas = generator.take_definitions(true);
    if let Some(events) = schemas
        .get_mut("EventBatch")
        .and_then(|b| b.pointer_mut("/properties/events"))
    {
        events["maxItems"] = json!(max_batch);
    }
    schemas
}

/// The document, with the configured limits filled in.
pub fn document(limits: &Limits) -> Value {
    let max_batch = limits.max_batch_events;
    let schemas = schemas(max_batch);
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
            "description": "Feeds the journey engine with events and profiles and reads its deliveries, run history and where profiles are in a journey. HTTPS (the operator's TLS certificate; plain HTTP only with --insecure-plain-http, for loopback and tests). Only the replica holding the leader lease serves; a standby answers 503 with Retry-After. Times are milliseconds since the Unix epoch (UTC). Errors are JSON: {\"error\": message, \"field\": offending input (when there is one)}."
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
            "schemas": schemas
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::input::{BATCH_FIELDS, EVENT_FIELDS, FILTER_FIELDS, PROFILE_FIELDS};
    use super::super::routes::ROUTES;
    use super::*;

    /// The hand validation of request bodies (which names the offending field and item) and
    /// the generated schemas accept the same fields, and the schemas refuse any other.
    #[test]
    fn request_schemas_list_the_fields_the_validation_accepts() {
        let doc = document(&Limits::default());
        for (schema, fields) in [
            ("Event", EVENT_FIELDS),
            ("EventBatch", BATCH_FIELDS),
            ("ProfileUpsert", PROFILE_FIELDS),
            ("FilterCandidate", FILTER_FIELDS),
        ] {
            let s = &doc["components"]["schemas"][schema];
            let mut documented: Vec<&str> = s["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{schema} has properties"))
                .keys()
                .map(String::as_str)
                .collect();
            documented.sort_unstable();
            let mut accepted = fields.to_vec();
            accepted.sort_unstable();
            assert_eq!(documented, accepted, "{schema}");
            assert_eq!(s["additionalProperties"], json!(false), "{schema}");
        }
        assert_eq!(
            doc["components"]["schemas"]["EventBatch"]["properties"]["events"]["maxItems"],
            json!(Limits::default().max_batch_events)
        );
        let statuses = &doc["components"]["schemas"]["DeliveryStatus"];
        assert!(
            statuses.to_string().contains("Failed"),
            "every delivery status is documented: {statuses}"
        );
    }

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

//! The engine API's OpenAPI document: every schema is generated from the wire types by
//! `schemars` (the crate that also generates the CRD's schema), so the document cannot drift
//! from what the server reads and writes; the paths list [`crate::server::ROUTES`] (a test
//! checks both directions).

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::server::{MAX_BODY_BYTES, MAX_WAIT_SECONDS};
use crate::v1::{
    ChangesResponse, ClockAdvance, ClockNow, ErrorBody, FeedRevision, JourneyDeleteResponse,
    JourneyGetResponse, JourneyPut, JourneyPutResponse,
};

struct Schemas {
    generator: schemars::SchemaGenerator,
}

impl Schemas {
    fn reference<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn common(extra: Value) -> Value {
    let mut r = json!({
        "400": error("Malformed request (code InvalidRequest): bad JSON, a wrong type, an unknown field, a bad path or query; `field` names it. Nothing was changed."),
        "401": error("Missing or wrong engine credential (code Unauthorized)."),
        "403": error("A credential for something else, e.g. the data-plane token (code Forbidden)."),
        "500": error("Engine failure (code Internal); details in the engine's log."),
        "503": error("Standby replica, busy store or unreadable token file (code Unavailable); retry after Retry-After.")
    });
    if let (Some(r), Value::Object(extra)) = (r.as_object_mut(), extra) {
        r.extend(extra);
    }
    r
}

fn journey_params() -> Value {
    json!([
        {"name": "namespace", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9.-]{1,253}$"}},
        {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9.-]{1,253}$"}}
    ])
}

/// The document.
pub fn document() -> Value {
    let mut s = Schemas {
        generator: SchemaSettings::openapi3().into_generator(),
    };
    let put = s.reference::<JourneyPut>();
    let put_response = s.reference::<JourneyPutResponse>();
    let get_response = s.reference::<JourneyGetResponse>();
    let delete_response = s.reference::<JourneyDeleteResponse>();
    let changes = s.reference::<ChangesResponse>();
    let revision = s.reference::<FeedRevision>();
    let advance = s.reference::<ClockAdvance>();
    let now = s.reference::<ClockNow>();
    s.reference::<ErrorBody>();
    let schemas: Map<String, Value> = s.generator.take_definitions(true);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "journey-operator engine API",
            "version": "v1",
            "description": format!("Declares journeys to the engine and follows what it does. One PUT carries a journey's whole declaration (definition, lifecycle, run-request tokens); the engine enforces the lifecycle table (the same rules and messages as the Journey CRD's CEL) and answers a refused change with a stable `code`. The change feed (`/v1/changes`) lists every journey whose status changed after a revision. Bodies are JSON, at most {MAX_BODY_BYTES} bytes; unknown fields are refused. Times are milliseconds since the Unix epoch (UTC). Authentication: `Authorization: Bearer <engine token>` (the data-plane token is refused with 403).")
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/journeys/{namespace}/{name}": {
                "parameters": journey_params(),
                "put": {
                    "operationId": "putJourney",
                    "summary": "Declare a journey (create or change it, move its lifecycle, hand in request tokens)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": put}}},
                    "responses": common(json!({
                        "200": ok("The journey's status after the declaration, its revision and each token's outcome.", put_response),
                        "409": error("Refused by the lifecycle table (IllegalTransition, ChangeRequiresPause, JourneyStopped), NoDefinition, or RevisionConflict. Nothing was changed."),
                        "413": error("The body is too large (PayloadTooLarge)."),
                        "422": error("The definition does not compile (InvalidDefinition, UnknownDestination); `field` names the part when the engine can. Nothing was changed.")
                    }))
                },
                "get": {
                    "operationId": "getJourney",
                    "summary": "A journey's status",
                    "responses": common(json!({
                        "200": ok("Status and revision.", get_response),
                        "404": error("The engine does not know the journey (NotFound).")
                    }))
                },
                "delete": {
                    "operationId": "deleteJourney",
                    "summary": "Stop a journey and remove it with its data",
                    "responses": common(json!({"200": ok("Whether the engine knew it.", delete_response)}))
                }
            },
            "/v1/changes": {
                "get": {
                    "operationId": "listChanges",
                    "summary": "The journeys whose status changed after a revision (long poll)",
                    "parameters": [
                        {"name": "since", "in": "query", "required": true, "schema": {"type": "integer", "format": "int64"}, "description": "The last revision seen (the `revision` of the previous page)."},
                        {"name": "waitSeconds", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS, "default": 30}, "description": "How long to wait for a first change."}
                    ],
                    "responses": common(json!({
                        "200": ok("Changes oldest first (possibly none when the wait ended), and the revision to continue from.", changes),
                        "410": error("The feed no longer covers `since` (ResyncRequired): list every journey again, then continue from /v1/changes/revision.")
                    }))
                }
            },
            "/v1/changes/revision": {
                "get": {
                    "operationId": "feedRevision",
                    "summary": "The feed's current revision",
                    "responses": common(json!({"200": ok("The revision.", revision)}))
                }
            },
            "/v1/test/clock/advance": {
                "post": {
                    "operationId": "advanceClock",
                    "summary": "Move a virtual clock forward (only on an engine started with --virtual-clock; 404 otherwise)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": advance}}},
                    "responses": common(json!({
                        "200": ok("The engine's time now.", now),
                        "404": error("The engine runs on the system clock.")
                    }))
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document."}}
                }
            }
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ROUTES;

    #[test]
    fn the_document_describes_exactly_the_served_routes() {
        let doc = document();
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in ["get", "put", "post", "delete", "patch"] {
                if item.get(method).is_some() {
                    documented.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        served.sort();
        assert_eq!(documented, served);
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "unresolved $ref {name}");
        }
        assert!(schemas.contains_key("JourneyPut") && schemas.contains_key("StatusSnapshot"));
    }
}

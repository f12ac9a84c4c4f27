//! Parsing and validation of request input (bodies, query parameters, path segments) into
//! typed values, with errors that name the offending field. Nothing here touches the engine,
//! so a rejected request changes nothing.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};

use super::config::{MAX_FILTER_BYTES, MAX_ID_BYTES};
use super::error::ApiError;

/// One event to ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInput {
    pub profile_id: String,
    pub name: String,
    pub payload: Value,
}

/// Requires a JSON content type (`application/json` or `application/*+json`): 415 otherwise.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match ct {
        Some(m)
            if m == "application/json"
                || (m.starts_with("application/") && m.ends_with("+json")) =>
        {
            Ok(())
        }
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be JSON (Content-Type: application/json)",
        )),
    }
}

/// Parses a body as a JSON object.
pub fn json_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be a JSON object, not {}", kind(&other)),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Rejects fields outside `allowed` (typos such as `profile_id` would otherwise be ignored).
fn no_unknown_fields(
    obj: &Map<String, Value>,
    allowed: &[&str],
    prefix: &str,
) -> Result<(), ApiError> {
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_field(
            format!("{prefix}{k}"),
            format!("unknown field {k:?}; expected {}", allowed.join(", ")),
        ));
    }
    Ok(())
}

/// Checks an identifier (profile id, event name): non-blank, at most [`MAX_ID_BYTES`].
pub fn identifier(value: &str, field: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::bad_field(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(ApiError::bad_field(
            field,
            format!("{field} is longer than {MAX_ID_BYTES} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad_field(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

fn required_string(
    obj: &mut Map<String, Value>,
    name: &str,
    prefix: &str,
) -> Result<String, ApiError> {
    let field = format!("{prefix}{name}");
    match obj.remove(name) {
        Some(Value::String(s)) => {
            identifier(&s, &field)?;
            Ok(s)
        }
        None | Some(Value::Null) => Err(ApiError::bad_field(
            &field,
            format!("{field} is required (a string)"),
        )),
        Some(other) => Err(ApiError::bad_field(
            &field,
            format!("{field} must be a string, not {}", kind(&other)),
        )),
    }
}

fn object_field(
    obj: &mut Map<String, Value>,
    name: &str,
    prefix: &str,
    required: bool,
) -> Result<Value, ApiError> {
    let field = format!("{prefix}{name}");
    match (obj.remove(name), required) {
        (Some(v @ Value::Object(_)), _) => Ok(v),
        (None, false) => Ok(Value::Object(Map::new())),
        (None | Some(Value::Null), true) => Err(ApiError::bad_field(
            &field,
            format!("{field} is required (an object)"),
        )),
        (Some(other), _) => Err(ApiError::bad_field(
            &field,
            format!("{field} must be an object, not {}", kind(&other)),
        )),
    }
}

/// `{"filter": "<CEL over profile>"}`: a candidate global filter. Compiling it is the
/// engine's job (a compile error is a 400 from there); here it only has to be a non-blank
/// string of bounded size.
pub fn filter(mut obj: Map<String, Value>) -> Result<String, ApiError> {
    no_unknown_fields(&obj, FILTER_FIELDS, "")?;
    match obj.remove("filter") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= MAX_FILTER_BYTES => Ok(s),
        Some(Value::String(s)) if s.len() > MAX_FILTER_BYTES => Err(ApiError::bad_field(
            "filter",
            format!("filter is longer than {MAX_FILTER_BYTES} bytes"),
        )),
        Some(Value::String(_)) => Err(ApiError::bad_field("filter", "filter must not be empty")),
        None | Some(Value::Null) => Err(ApiError::bad_field(
            "filter",
            "filter is required (a CEL expression over profile)",
        )),
        Some(other) => Err(ApiError::bad_field(
            "filter",
            format!("filter must be a string, not {}", kind(&other)),
        )),
    }
}

/// The fields each body accepts (the OpenAPI schemas of `wire.rs` list the same: a test
/// checks).
pub(crate) const EVENT_FIELDS: &[&str] = &["profileId", "name", "payload"];
pub(crate) const BATCH_FIELDS: &[&str] = &["events"];
pub(crate) const PROFILE_FIELDS: &[&str] = &["attributes"];
pub(crate) const FILTER_FIELDS: &[&str] = &["filter"];

/// `{"profileId": "...", "name": "...", "payload": {...}}`; `payload` is optional (`{}`).
pub fn event(mut obj: Map<String, Value>, prefix: &str) -> Result<EventInput, ApiError> {
    no_unknown_fields(&obj, EVENT_FIELDS, prefix)?;
    let profile_id = required_string(&mut obj, "profileId", prefix)?;
    let name = required_string(&mut obj, "name", prefix)?;
    let payload = object_field(&mut obj, "payload", prefix, false)?;
    Ok(EventInput {
        profile_id,
        name,
        payload,
    })
}

/// `{"events": [event, ...]}` with 1 to `max` events, every one valid. The first invalid
/// item rejects the whole batch; its error carries the item's index.
pub fn batch(mut obj: Map<String, Value>, max: usize) -> Result<Vec<EventInput>, ApiError> {
    no_unknown_fields(&obj, BATCH_FIELDS, "")?;
    let items = match obj.remove("events") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => {
            return Err(ApiError::bad_field(
                "events",
                "events is required (an array)",
            ));
        }
        Some(other) => {
            return Err(ApiError::bad_field(
                "events",
                format!("events must be an array, not {}", kind(&other)),
            ));
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad_field("events", "events must not be empty"));
    }
    if items.len() > max {
        return Err(ApiError::bad_field(
            "events",
            format!(
                "a batch holds at most {max} events, this one has {}",
                items.len()
            ),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let prefix = format!("events[{i}].");
            match item {
                Value::Object(o) => event(o, &prefix),
                other => Err(ApiError::bad_field(
                    format!("events[{i}]"),
                    format!("events[{i}] must be an object, not {}", kind(&other)),
                )),
            }
            .map_err(|e| e.with_index(i))
        })
        .collect()
}

/// `{"attributes": {...}}` (the profile's complete attributes: they replace the stored ones).
pub fn profile_attributes(mut obj: Map<String, Value>) -> Result<Value, ApiError> {
    no_unknown_fields(&obj, PROFILE_FIELDS, "")?;
    object_field(&mut obj, "attributes", "", true)
}

/// A `namespace/name` journey key: two non-empty parts without further slashes.
pub fn journey_key(value: &str, field: &str) -> Result<String, ApiError> {
    let ok = value
        .split_once('/')
        .is_some_and(|(ns, name)| valid_name_part(ns) && valid_name_part(name));
    if ok {
        Ok(value.to_string())
    } else {
        Err(ApiError::bad_field(
            field,
            format!("{field} must be a journey key \"namespace/name\""),
        ))
    }
}

fn valid_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.contains('/')
        && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// A `limit` query parameter: an integer in `1..=max`, `default` when absent.
pub fn limit(value: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    let Some(v) = value else {
        return Ok(default);
    };
    match v.parse::<i64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_field(
            "limit",
            format!("limit must be an integer from 1 to {max}"),
        )),
    }
}

/// A keyset cursor (`after`): absent is 0 (the first page), else a non-negative integer.
pub fn cursor(value: Option<&str>, field: &str) -> Result<i64, ApiError> {
    let Some(v) = value else {
        return Ok(0);
    };
    match v.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(ApiError::bad_field(
            field,
            format!("{field} must be a non-negative integer (the nextAfter of the previous page)"),
        )),
    }
}

/// Query parameters, checked against the allowed names.
pub struct QueryParams<'a>(&'a [(String, String)]);

impl<'a> QueryParams<'a> {
    /// Rejects unknown and repeated parameters (which one of two would win is a guess).
    pub fn new(pairs: &'a [(String, String)], allowed: &[&str]) -> Result<Self, ApiError> {
        for (i, (k, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad_field(
                    k.clone(),
                    format!(
                        "unknown query parameter {k:?}; expected {}",
                        allowed.join(", ")
                    ),
                ));
            }
            if pairs[..i].iter().any(|(p, _)| p == k) {
                return Err(ApiError::bad_field(
                    k.clone(),
                    format!("query parameter {k:?} is given more than once"),
                ));
            }
        }
        Ok(Self(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn event_fields_are_checked() {
        let e = event(obj(json!({"profileId": "p", "name": "N"})), "").expect("valid");
        assert_eq!(e.payload, json!({}));
        let err = |v| event(obj(v), "").expect_err("invalid").body;
        assert_eq!(
            err(json!({"name": "N"})).field.as_deref(),
            Some("profileId")
        );
        assert_eq!(
            err(json!({"profileId": "", "name": "N"})).field.as_deref(),
            Some("profileId")
        );
        assert_eq!(
            err(json!({"profileId": 3, "name": "N"})).field.as_deref(),
            Some("profileId")
        );
        assert_eq!(
            err(json!({"profileId": "p", "name": "N", "payload": [1]}))
                .field
                .as_deref(),
            Some("payload")
        );
        assert_eq!(
            err(json!({"profile_id": "p", "name": "N"}))
                .field
                .as_deref(),
            Some("profile_id")
        );
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert_eq!(
            err(json!({"profileId": long, "name": "N"}))
                .field
                .as_deref(),
            Some("profileId")
        );
    }

    #[test]
    fn batch_names_the_bad_item() {
        let b = obj(json!({"events": [
            {"profileId": "a", "name": "N"},
            {"profileId": "b", "name": 7}
        ]}));
        let e = batch(b, 10).expect_err("invalid").body;
        assert_eq!(e.index, Some(1));
        assert_eq!(e.field.as_deref(), Some("events[1].name"));
        let e = batch(obj(json!({"events": [1]})), 10)
            .expect_err("invalid")
            .body;
        assert_eq!((e.index, e.field.as_deref()), (Some(0), Some("events[0]")));
        assert!(batch(obj(json!({"events": []})), 10).is_err());
        let many = obj(
            json!({"events": [{"profileId": "a", "name": "N"}, {"profileId": "a", "name": "N"}]}),
        );
        assert!(batch(many, 1).is_err());
    }

    #[test]
    fn keys_and_limits() {
        assert!(journey_key("ns/j", "journey").is_ok());
        for bad in ["", "ns", "/j", "ns/", "a/b/c", "a b/c"] {
            assert!(journey_key(bad, "journey").is_err(), "{bad}");
        }
        assert_eq!(limit(None, 5, 10).ok(), Some(5));
        assert_eq!(limit(Some("10"), 5, 10).ok(), Some(10));
        for bad in ["0", "11", "-1", "x", ""] {
            assert!(limit(Some(bad), 5, 10).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_type() {
        let mut h = HeaderMap::new();
        assert!(require_json(&h).is_err());
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().expect("hv"),
        );
        assert!(require_json(&h).is_ok());
        h.insert(
            header::CONTENT_TYPE,
            "application/merge-patch+json".parse().expect("hv"),
        );
        assert!(require_json(&h).is_ok());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().expect("hv"));
        assert!(require_json(&h).is_err());
    }
}

//! Message templates. Every string in an action's `message` is a MiniJinja template, compiled
//! once per definition version (so a syntax error or an unknown variable is a validation
//! problem with its field path, before anything runs) and rendered once per delivery, when the
//! delivery is created or first claimed for sending; the rendered message is stored with the
//! delivery, so a re-send after a crash sends the same bytes.
//!
//! The engine is sandboxed (no file system, no includes: the environment has no loader) and
//! strict: an undefined variable or attribute is an error, never an empty string. Render work
//! is bounded by MiniJinja's fuel and the output by [`MAX_OUTPUT_BYTES`]; a render that hits
//! either fails as a whole, so no half-rendered message is ever sent.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

/// The variables a template may read.
pub const VARIABLES: [&str; 4] = ["profile", "event", "journey", "delivery"];
/// Instructions one render of one message may execute (a loop over a large list, a deep
/// recursion of macros): far above any real message, far below a stuck process.
pub const FUEL: u64 = 200_000;
/// Bytes of rendered output one message may produce, all its fields together.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// Bytes of template source one action's message may hold.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;
/// Nesting of the message's JSON itself (objects and lists).
const MAX_DEPTH: usize = 16;

/// Why a render failed (the delivery fails with reason `TemplateError` and this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TemplateError {
    /// The message field whose template failed (`subject`, `body.title`).
    pub field: String,
    pub message: String,
}

/// What a template sees of the journey.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyVars<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub version: i64,
}

/// What a template sees of the delivery.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryVars<'a> {
    pub idempotency_key: &'a str,
    pub channel: &'a str,
    pub step: &'a str,
}

/// Everything a message template may read.
#[derive(Debug, Clone, Serialize)]
pub struct Context<'a> {
    pub profile: &'a serde_json::Value,
    /// The payload of the event that enrolled the profile or resumed its waitForEvent; `null`
    /// when none did (an audience entry).
    pub event: &'a serde_json::Value,
    pub journey: JourneyVars<'a>,
    pub delivery: DeliveryVars<'a>,
}

/// An action's message with its templates compiled. Cheap to clone (shared).
#[derive(Clone)]
pub struct MessageTemplate {
    shape: Arc<Shape>,
    env: Arc<Environment<'static>>,
    /// Whether any string holds template syntax; when none does the message is its own
    /// rendering and nothing is rendered per delivery.
    templated: bool,
}

impl std::fmt::Debug for MessageTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageTemplate")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

/// The message's JSON with each string replaced by the name of its template.
#[derive(Debug)]
enum Shape {
    Literal(serde_json::Value),
    Template { name: String, field: String },
    List(Vec<Shape>),
    Object(Vec<(String, Shape)>),
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(64);
    // HTML bodies escape what they interpolate (a profile attribute is never markup); every
    // other field is text.
    env.set_auto_escape_callback(|name| {
        if name.ends_with("#html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

fn has_syntax(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

impl MessageTemplate {
    /// Compiles every string of `message`. Problems name the field under `path` (the step's
    /// `…action.message`), one per bad template.
    pub fn compile(path: &str, message: &serde_json::Value) -> Result<Self, Vec<TemplateError>> {
        let mut env = environment();
        let globals: BTreeSet<String> = env.globals().map(|(n, _)| n.to_string()).collect();
        let mut problems = Vec::new();
        let mut count = 0usize;
        let mut source_bytes = 0usize;
        let shape = build(
            &mut env,
            &globals,
            path,
            "",
            message,
            0,
            &mut count,
            &mut source_bytes,
            &mut problems,
        );
        if source_bytes > MAX_SOURCE_BYTES {
            problems.push(TemplateError {
                field: path.to_string(),
                message: format!(
                    "the message's templates hold {source_bytes} bytes; the limit is {MAX_SOURCE_BYTES}"
                ),
            });
        }
        if problems.is_empty() {
            Ok(MessageTemplate {
                shape: Arc::new(shape),
                env: Arc::new(env),
                templated: count > 0,
            })
        } else {
            Err(problems)
        }
    }

    /// Whether rendering changes anything (some string holds template syntax).
    pub fn is_templated(&self) -> bool {
        self.templated
    }

    /// Renders the whole message, or fails as a whole.
    pub fn render(&self, ctx: &Context<'_>) -> Result<serde_json::Value, TemplateError> {
        let mut budget = MAX_OUTPUT_BYTES;
        render(&self.env, &self.shape, ctx, &mut budget)
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    env: &mut Environment<'static>,
    globals: &BTreeSet<String>,
    path: &str,
    field: &str,
    value: &serde_json::Value,
    depth: usize,
    count: &mut usize,
    source_bytes: &mut usize,
    problems: &mut Vec<TemplateError>,
) -> Shape {
    let at = |field: &str| {
        if field.is_empty() {
            path.to_string()
        } else {
            format!("{path}.{field}")
        }
    };
    if depth > MAX_DEPTH {
        problems.push(TemplateError {
            field: at(field),
            message: format!("the message nests more than {MAX_DEPTH} levels"),
        });
        return Shape::Literal(serde_json::Value::Null);
    }
    match value {
        serde_json::Value::String(s) if has_syntax(s) => {
            *source_bytes += s.len();
            let escape = if field == "html" || field.ends_with(".html") {
                "#html"
            } else {
                ""
            };
            let name = format!("{count}{escape}");
            *count += 1;
            if let Err(e) = env.add_template_owned(name.clone(), s.clone()) {
                problems.push(TemplateError {
                    field: at(field),
                    message: describe(&e),
                });
                return Shape::Literal(serde_json::Value::Null);
            }
            if let Ok(t) = env.get_template(&name) {
                let unknown: BTreeSet<String> = t
                    .undeclared_variables(false)
                    .into_iter()
                    .filter(|v| !VARIABLES.contains(&v.as_str()) && !globals.contains(v))
                    .collect();
                if !unknown.is_empty() {
                    let list: Vec<&str> = unknown.iter().map(String::as_str).collect();
                    problems.push(TemplateError {
                        field: at(field),
                        message: format!(
                            "unknown variable {} (a template may read {})",
                            list.join(", "),
                            VARIABLES.join(", ")
                        ),
                    });
                }
            }
            Shape::Template {
                name,
                field: field.to_string(),
            }
        }
        serde_json::Value::Array(items) => Shape::List(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    build(
                        env,
                        globals,
                        path,
                        &format!("{field}[{i}]"),
                        v,
                        depth + 1,
                        count,
                        source_bytes,
                        problems,
                    )
                })
                .collect(),
        ),
        serde_json::Value::Object(map) => Shape::Object(
            map.iter()
                .map(|(k, v)| {
                    let f = if field.is_empty() {
                        k.clone()
                    } else {
                        format!("{field}.{k}")
                    };
                    (
                        k.clone(),
                        build(
                            env,
                            globals,
                            path,
                            &f,
                            v,
                            depth + 1,
                            count,
                            source_bytes,
                            problems,
                        ),
                    )
                })
                .collect(),
        ),
        other => Shape::Literal(other.clone()),
    }
}

/// A MiniJinja error in one line, with its line number when it has one.
fn describe(e: &minijinja::Error) -> String {
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    let line = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
    let what = match e.kind() {
        ErrorKind::SyntaxError => "template syntax error",
        ErrorKind::UndefinedError => "undefined value",
        ErrorKind::OutOfFuel => "the template did too much work",
        ErrorKind::WriteFailure => "the rendered message is too large",
        _ => "template error",
    };
    let mut s = format!("{what}{detail}{line}");
    if matches!(e.kind(), ErrorKind::WriteFailure) {
        s = format!("{s}; the limit is {MAX_OUTPUT_BYTES} bytes");
    }
    s
}

/// Writes into a `String` until the message's output budget is spent.
struct Bounded<'a> {
    out: Vec<u8>,
    budget: &'a mut usize,
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > *self.budget {
            *self.budget = 0;
            return Err(std::io::Error::other("output limit"));
        }
        *self.budget -= buf.len();
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn render(
    env: &Environment<'static>,
    shape: &Shape,
    ctx: &Context<'_>,
    budget: &mut usize,
) -> Result<serde_json::Value, TemplateError> {
    Ok(match shape {
        Shape::Literal(v) => v.clone(),
        Shape::Template { name, field } => {
            let fail = |message: String| TemplateError {
                field: field.clone(),
                message,
            };
            let t = env.get_template(name).map_err(|e| fail(describe(&e)))?;
            let mut w = Bounded {
                out: Vec::new(),
                budget,
            };
            t.render_captured_to(ctx, &mut w)
                .map_err(|e| fail(describe(&e)))?;
            let text =
                String::from_utf8(w.out).map_err(|_| fail("rendered text is not UTF-8".into()))?;
            serde_json::Value::String(text)
        }
        Shape::List(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|s| render(env, s, ctx, budget))
                .collect::<Result<_, _>>()?,
        ),
        Shape::Object(fields) => {
            let mut map = serde_json::Map::with_capacity(fields.len());
            for (k, s) in fields {
                map.insert(k.clone(), render(env, s, ctx, budget)?);
            }
            serde_json::Value::Object(map)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx<'a>(profile: &'a serde_json::Value, event: &'a serde_json::Value) -> Context<'a> {
        Context {
            profile,
            event,
            journey: JourneyVars {
                namespace: "shop",
                name: "welcome",
                version: 3,
            },
            delivery: DeliveryVars {
                idempotency_key: "1-1-7-00ab-1",
                channel: "email",
                step: "send",
            },
        }
    }

    #[test]
    fn renders_every_string_and_keeps_the_rest() {
        let t = MessageTemplate::compile(
            "steps[0].action.message",
            &json!({
                "subject": "Hi {{ profile.first_name }}",
                "html": "<p>{{ profile.first_name }} bought {{ event.item }}</p>",
                "lines": ["{{ journey.namespace }}/{{ journey.name }} v{{ journey.version }}", 7],
                "key": "{{ delivery.idempotencyKey }}",
                "plain": "no templates here",
            }),
        )
        .expect("compiles");
        assert!(t.is_templated());
        let profile = json!({"first_name": "<Ann>"});
        let event = json!({"item": "tea"});
        let out = t.render(&ctx(&profile, &event)).expect("renders");
        assert_eq!(out["subject"], "Hi <Ann>");
        assert_eq!(out["html"], "<p>&lt;Ann&gt; bought tea</p>");
        assert_eq!(out["lines"], json!(["shop/welcome v3", 7]));
        assert_eq!(out["key"], "1-1-7-00ab-1");
        assert_eq!(out["plain"], "no templates here");
    }

    #[test]
    fn syntax_errors_and_unknown_variables_name_the_field() {
        let problems = MessageTemplate::compile(
            "steps[2].action.message",
            &json!({"subject": "Hi {{ profile.name", "body": {"text": "{{ user.name }} {{ range(3) | length }}"}}),
        )
        .expect_err("bad templates");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].field, "steps[2].action.message.body.text");
        assert!(
            problems[0].message.starts_with("unknown variable user"),
            "{problems:?}"
        );
        assert_eq!(problems[1].field, "steps[2].action.message.subject");
        assert!(
            problems[1].message.starts_with("template syntax error"),
            "{problems:?}"
        );
    }

    #[test]
    fn strict_undefined_fuel_and_output_limits_fail_the_whole_render() {
        let t = MessageTemplate::compile("m", &json!({"a": "fine", "b": "{{ profile.missing }}"}))
            .expect("compiles");
        let profile = json!({});
        let err = t
            .render(&ctx(&profile, &json!(null)))
            .expect_err("undefined");
        assert_eq!(err.field, "b");
        assert!(err.message.starts_with("undefined value"), "{err}");

        let t = MessageTemplate::compile(
            "m",
            &json!({"a": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"}),
        )
        .expect("compiles");
        let err = t.render(&ctx(&profile, &json!(null))).expect_err("fuel");
        assert!(
            err.message.contains("too much work") || err.message.contains("too large"),
            "{err}"
        );

        let big = json!({"blob": "y".repeat(MAX_OUTPUT_BYTES / 2 + 10)});
        let t = MessageTemplate::compile(
            "m",
            &json!({"a": "{{ profile.blob }}", "b": "{{ profile.blob }}"}),
        )
        .expect("compiles");
        let err = t.render(&ctx(&big, &json!(null))).expect_err("too large");
        assert_eq!(err.field, "b");
        assert!(err.message.contains("too large"), "{err}");
    }

    #[test]
    fn optional_attributes_are_guarded_as_the_readme_says() {
        let t = MessageTemplate::compile(
            "m",
            &json!({"a": "Hi {{ profile.nickname | default('there') }}",
                    "b": "{% if profile.nickname is defined %}{{ profile.nickname }}{% else %}-{% endif %}"}),
        )
        .expect("compiles");
        let out = t.render(&ctx(&json!({}), &json!(null))).expect("renders");
        assert_eq!(out, json!({"a": "Hi there", "b": "-"}));
    }

    #[test]
    fn untemplated_messages_render_to_themselves() {
        let m = json!({"subject": "s", "n": 1});
        let t = MessageTemplate::compile("m", &m).expect("compiles");
        assert!(!t.is_templated());
        assert_eq!(
            t.render(&ctx(&json!({}), &json!(null))).expect("renders"),
            m
        );
    }
}

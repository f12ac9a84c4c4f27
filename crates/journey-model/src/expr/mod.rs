//! The CEL expressions journeys carry (entry, branch, waitForEvent, exit and audience
//! conditions, the global filter, the data plane's candidate filters): bounded, compiled once
//! per version, evaluated with a fresh `Context` per call.
//!
//! Safety does not rest on the frame sizes of one build: [`limits::check`] refuses, without
//! recursing, anything deeper than [`limits::MAX_DEPTH`] before the (recursive) parser sees it;
//! parsing and evaluation then run with at least [`PARSE_STACK_BYTES`] and [`EVAL_STACK_BYTES`] of
//! stack ([`on_bounded_stack`]),
//! which the worst cases at the limits are tested to fit in debug and release builds. A panic
//! inside the CEL crate becomes an error for that expression.
//!
//! JSON values are converted to CEL values with every integer bound as a signed `Int` (so
//! `profile.age + 1` works). A missing attribute is an evaluation error; authors guard with
//! `has(profile.x)`.

pub mod limits;
#[cfg(feature = "worst-cases")]
pub mod worst_cases;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use cel::common::ast::{Expr as Node, IdedExpr, LiteralValue};
use cel::{Context, Env, Program, Value};

pub use limits::{LimitError, MAX_BYTES, MAX_COMPREHENSION_NESTING, MAX_DEPTH, Shape};

/// The stack every parse is guaranteed: a thread with less left gets a fresh segment of this
/// size for the call (parsing is rare: once per definition version and per validation). The
/// deepest expressions the limits allow need at most a quarter of it, in debug and release
/// builds (`limits_fit_in_a_quarter_of_the_stack`; `examples/stack_use.rs` measures it).
pub const PARSE_STACK_BYTES: usize = 2 * 1024 * 1024;

/// The stack every evaluation is guaranteed, likewise with four times what the worst case
/// needs. Small enough that an ordinary 2 MiB thread (tokio's default) evaluates in place: the
/// hot path never switches stacks.
pub const EVAL_STACK_BYTES: usize = 1024 * 1024;

/// Why an expression was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("{0}")]
    Syntax(String),
    #[error("unknown variable {name:?}; only {allowed} may be used here")]
    UnknownVariable { name: String, allowed: &'static str },
    #[error("{what}, not a boolean: a condition must yield true or false")]
    NotBoolean { what: String },
    #[error("{0}")]
    Evaluation(String),
    /// The CEL library panicked on this expression (a bug there, reported, never fatal).
    #[error("the CEL library failed on this expression: {0}")]
    Internal(String),
}

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

/// Runs `f` with at least `bytes` of stack left, on this thread, and turns a panic into an
/// error. The check costs a comparison when the thread has room; otherwise `stacker` switches
/// to a new segment of that size for the call.
pub fn on_bounded_stack<T>(
    bytes: usize,
    f: impl FnOnce() -> Result<T, ExprError>,
) -> Result<T, ExprError> {
    stacker::maybe_grow(bytes, bytes, || {
        catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(ExprError::Internal(message))
        })
    })
}

/// Compiles `source` on the current stack, whatever is left of it: for the command that
/// measures how much stack the limits need (`examples/stack_use.rs`).
#[doc(hidden)]
pub fn compile_on_this_stack(source: &str) -> Option<Expr> {
    Expr::compile_here(source, Vars::Profile).ok()
}

/// Evaluates on the current stack, whatever is left of it (see [`compile_on_this_stack`]).
#[doc(hidden)]
pub fn eval_on_this_stack(expr: &Expr, profile: &serde_json::Value) {
    let _ = expr.eval_here(profile, None);
}

/// A compiled boolean CEL expression.
#[derive(Clone)]
pub struct Expr {
    source: String,
    program: Arc<Program>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", excerpt(&self.source))
    }
}

/// Variables an expression may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vars {
    /// `profile` only.
    Profile,
    /// `profile` and `event`.
    ProfileAndEvent,
}

impl Vars {
    fn allows(self, name: &str) -> bool {
        name == "profile" || (self == Vars::ProfileAndEvent && name == "event")
    }

    fn describe(self) -> &'static str {
        match self {
            Vars::Profile => "profile",
            Vars::ProfileAndEvent => "profile and event",
        }
    }
}

impl Expr {
    /// Checks the limits, compiles `source`, checks that it reads only the allowed variables
    /// and that its result can be a boolean.
    pub fn compile(source: &str, vars: Vars) -> Result<Self, ExprError> {
        limits::check(source)?;
        Self::compile_within_limits(source, vars)
    }

    /// [`Expr::compile`] without the limits check: only for sources that passed it.
    fn compile_within_limits(source: &str, vars: Vars) -> Result<Self, ExprError> {
        on_bounded_stack(PARSE_STACK_BYTES, || Self::compile_here(source, vars))
    }

    /// Parses on the current stack, whatever is left of it: only behind
    /// [`on_bounded_stack`] (and in the test that measures what the limits need).
    fn compile_here(source: &str, vars: Vars) -> Result<Self, ExprError> {
        let program = {
            let program = env()
                .compile(source)
                .map_err(|e| ExprError::Syntax(syntax_message(&e)))?;
            let bound = comprehension_variables(program.expression());
            for name in program.references().variables() {
                if !vars.allows(name) && !bound.contains(name) {
                    return Err(ExprError::UnknownVariable {
                        name: name.to_string(),
                        allowed: vars.describe(),
                    });
                }
            }
            if let Some(what) = never_boolean(program.expression()) {
                return Err(ExprError::NotBoolean { what });
            }
            program
        };
        Ok(Self {
            source: source.to_string(),
            program: Arc::new(program),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a boolean with `profile` (and optionally `event`) bound.
    pub fn eval_bool(
        &self,
        profile: &serde_json::Value,
        event: Option<&serde_json::Value>,
    ) -> Result<bool, ExprError> {
        on_bounded_stack(EVAL_STACK_BYTES, || self.eval_here(profile, event))
    }

    /// Evaluates on the current stack: only behind [`on_bounded_stack`] (and in the test).
    fn eval_here(
        &self,
        profile: &serde_json::Value,
        event: Option<&serde_json::Value>,
    ) -> Result<bool, ExprError> {
        let mut ctx = Context::with_env(env());
        ctx.add_variable_from_value("profile", json_to_cel(profile));
        if let Some(ev) = event {
            ctx.add_variable_from_value("event", json_to_cel(ev));
        }
        match self.program.execute(&ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(ExprError::Evaluation(format!(
                "expected bool, got {:?}",
                other.type_of()
            ))),
            Err(e) => Err(ExprError::Evaluation(e.to_string())),
        }
    }
}

/// The first syntax error, where it is and how many more there are: the CEL library's own
/// text repeats the whole source line under every error, which for a 4 KB line of bad escapes
/// is megabytes (more than a status write may carry).
fn syntax_message(errors: &cel::ParseErrors) -> String {
    let Some(first) = errors.errors.first() else {
        return "syntax error".to_string();
    };
    let mut message = format!(
        "syntax error at line {}, column {}: {}",
        first.pos.0,
        first.pos.1 + 1,
        excerpt(&first.msg)
    );
    if errors.errors.len() > 1 {
        message.push_str(&format!(" (and {} more)", errors.errors.len() - 1));
    }
    message
}

/// The start of a long expression, for messages (a Stalled condition must not repeat 4 KB).
pub fn excerpt(source: &str) -> String {
    const SHOWN: usize = 60;
    if source.len() <= SHOWN {
        return source.to_string();
    }
    let mut end = SHOWN;
    while !source.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &source[..end], source.len())
}

/// The names comprehension macros bind (`t` in `profile.tags.exists(t, t == 'x')`, and the
/// accumulator the macro expansion introduces), collected with an explicit stack.
fn comprehension_variables(root: &IdedExpr) -> std::collections::HashSet<&str> {
    use cel::common::ast::EntryExpr;
    let mut bound = std::collections::HashSet::new();
    let mut pending = vec![root];
    while let Some(node) = pending.pop() {
        match &node.expr {
            Node::Comprehension(c) => {
                bound.insert(c.iter_var.as_str());
                bound.insert(c.accu_var.as_str());
                if let Some(second) = &c.iter_var2 {
                    bound.insert(second.as_str());
                }
                pending.extend([
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ]);
            }
            Node::Call(call) => {
                pending.extend(call.target.as_deref());
                pending.extend(&call.args);
            }
            Node::List(list) => pending.extend(&list.elements),
            Node::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(e) = &entry.expr {
                        pending.extend([&e.key, &e.value]);
                    }
                }
            }
            Node::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        pending.push(&f.value);
                    }
                }
            }
            Node::Select(select) => pending.push(&select.operand),
            _ => {}
        }
    }
    bound
}

/// What the expression certainly yields when that is not a boolean (CEL here has no type
/// checker; this catches `1 + 2`, `size(x)`, `'yes'`, `[true]` and ternaries with such a
/// branch). Walks ternaries with an explicit stack.
fn never_boolean(root: &IdedExpr) -> Option<String> {
    let mut pending = vec![root];
    while let Some(node) = pending.pop() {
        let what = match &node.expr {
            Node::Literal(literal) => match literal {
                LiteralValue::Boolean(_) => None,
                LiteralValue::Bytes(_) => Some("a bytes literal"),
                LiteralValue::Double(_) => Some("a double literal"),
                LiteralValue::Int(_) => Some("an int literal"),
                LiteralValue::Null => Some("null"),
                LiteralValue::String(_) => Some("a string literal"),
                LiteralValue::UInt(_) => Some("a uint literal"),
            }
            .map(str::to_string),
            Node::List(_) => Some("a list".to_string()),
            Node::Map(_) => Some("a map".to_string()),
            Node::Struct(_) => Some("a message".to_string()),
            Node::Call(call) => match call.func_name.as_str() {
                "_?_:_" => {
                    pending.extend(call.args.iter().skip(1));
                    None
                }
                op @ ("_+_" | "_-_" | "_*_" | "_/_" | "_%_") => Some(format!(
                    "the result of `{}` (a number, string or list)",
                    op.trim_matches('_')
                )),
                "-_" => Some("a negated number".to_string()),
                f @ ("size" | "int" | "uint" | "double" | "string" | "bytes" | "timestamp"
                | "duration" | "type") => {
                    let yields = match f {
                        "size" | "int" => "an int",
                        "uint" => "a uint",
                        "double" => "a double",
                        "string" => "a string",
                        "bytes" => "bytes",
                        "timestamp" => "a timestamp",
                        "duration" => "a duration",
                        _ => "a type",
                    };
                    Some(format!("`{f}(…)` yields {yields}"))
                }
                _ => None,
            },
            _ => None,
        };
        if what.is_some() {
            return what;
        }
    }
    None
}

/// Converts JSON to CEL; integers become signed `Int` (unsigned only above i64::MAX).
pub fn json_to_cel(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::String(Arc::new(s.clone())),
        J::Array(a) => Value::List(Arc::new(a.iter().map(json_to_cel).collect())),
        J::Object(o) => {
            let m: HashMap<String, Value> =
                o.iter().map(|(k, v)| (k.clone(), json_to_cel(v))).collect();
            Value::from(m)
        }
    }
}

#[cfg(test)]
mod tests;

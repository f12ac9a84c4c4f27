//! CEL helper: compile once per version, evaluate with a fresh `Context` per call.
//!
//! JSON values are converted to CEL values with every integer bound as a signed
//! `Int` (so `profile.age + 1` works). A missing attribute is an evaluation
//! error; authors guard with `has(profile.x)`. A condition that errors is
//! treated as false by the scheduler and logged.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::{Context, Env, Program, Value};

use super::error::{EngineError, Result};

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

/// A compiled boolean CEL expression.
#[derive(Clone)]
pub struct Expr {
    source: String,
    program: Arc<Program>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
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

impl Expr {
    /// Compiles `source` and checks that it references only the allowed variables.
    pub fn compile(source: &str, vars: Vars) -> Result<Self> {
        let program = env().compile(source).map_err(|e| EngineError::CelCompile {
            expr: source.to_string(),
            message: e.to_string(),
        })?;
        let refs = program.references();
        for v in refs.variables() {
            let ok = v == "profile" || (vars == Vars::ProfileAndEvent && v == "event");
            if !ok {
                return Err(EngineError::CelCompile {
                    expr: source.to_string(),
                    message: format!("unknown variable {v:?}"),
                });
            }
        }
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
    ) -> Result<bool> {
        let mut ctx = Context::with_env(env());
        ctx.add_variable_from_value("profile", json_to_cel(profile));
        if let Some(ev) = event {
            ctx.add_variable_from_value("event", json_to_cel(ev));
        }
        match self.program.execute(&ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(EngineError::CelEval {
                expr: self.source.clone(),
                message: format!("expected bool, got {:?}", other.type_of()),
            }),
            Err(e) => Err(EngineError::CelEval {
                expr: self.source.clone(),
                message: e.to_string(),
            }),
        }
    }
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
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integer_arithmetic_on_json_works() {
        let e = Expr::compile("profile.age + 1 > 30", Vars::Profile).expect("compile");
        assert!(e.eval_bool(&json!({"age": 30}), None).expect("eval"));
        assert!(!e.eval_bool(&json!({"age": 29}), None).expect("eval"));
    }

    #[test]
    fn missing_attribute_is_an_error_and_has_guards() {
        let e = Expr::compile("profile.country == 'FR'", Vars::Profile).expect("compile");
        assert!(e.eval_bool(&json!({}), None).is_err());
        let g = Expr::compile(
            "has(profile.country) && profile.country == 'FR'",
            Vars::Profile,
        )
        .expect("compile");
        assert!(!g.eval_bool(&json!({}), None).expect("eval"));
    }

    #[test]
    fn event_variable_only_where_allowed() {
        assert!(Expr::compile("event.total > 10", Vars::Profile).is_err());
        let e = Expr::compile("event.total > 10 && profile.vip", Vars::ProfileAndEvent)
            .expect("compile");
        assert!(
            e.eval_bool(&json!({"vip": true}), Some(&json!({"total": 11})))
                .expect("eval")
        );
        assert!(Expr::compile("profile.(", Vars::Profile).is_err());
    }

    #[test]
    fn non_bool_is_an_error() {
        let e = Expr::compile("profile.age", Vars::Profile).expect("compile");
        assert!(e.eval_bool(&json!({"age": 1}), None).is_err());
    }
}

//! The engine's CEL expressions are the model's (`journey_model::expr`: bounded by a
//! non-recursive scan before parsing, parsed and evaluated on a stack of known size); this
//! adds the engine's error type.

pub use journey_model::expr::{Expr, ExprError, Vars, json_to_cel};

use super::error::{EngineError, Result};

/// Compiles a user's expression; every refusal (limits, syntax, variables, a result that is
/// never a boolean) is a [`EngineError::CelCompile`].
pub fn compile(source: &str, vars: Vars) -> Result<Expr> {
    Expr::compile(source, vars).map_err(|e| EngineError::CelCompile {
        expr: source.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_a_short_excerpt_and_the_reason() {
        let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
        let message = compile(&deep, Vars::Profile)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("nests 101 levels deep"), "{message}");
        assert!(message.contains("the limit is 32 levels"), "{message}");
        assert!(message.len() < 400, "no 4 KB echo: {message}");
        assert!(compile("profile.(", Vars::Profile).is_err());
    }
}

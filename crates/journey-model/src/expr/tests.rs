use serde_json::json;

use super::worst_cases::{self, Verdict};
use super::*;

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
    assert!(matches!(
        Expr::compile("event.total > 10", Vars::Profile),
        Err(ExprError::UnknownVariable { .. })
    ));
    let e =
        Expr::compile("event.total > 10 && profile.vip", Vars::ProfileAndEvent).expect("compile");
    assert!(
        e.eval_bool(&json!({"vip": true}), Some(&json!({"total": 11})))
            .expect("eval")
    );
}

#[test]
fn results_that_are_never_boolean_are_refused() {
    for (source, says) in [
        ("1 + 2", "the result of `+`"),
        ("profile.age * 2", "the result of `*`"),
        ("-profile.age", "a negated number"),
        ("'yes'", "a string literal"),
        ("42", "an int literal"),
        ("[true]", "a list"),
        ("{'a': true}", "a map"),
        ("size(profile.tags)", "`size(…)` yields an int"),
        ("profile.vip ? true : 'no'", "a string literal"),
        ("null", "null"),
    ] {
        match Expr::compile(source, Vars::Profile) {
            Err(ExprError::NotBoolean { what }) => assert!(what.contains(says), "{source}: {what}"),
            other => panic!("{source}: {other:?}"),
        }
    }
    for fine in [
        "profile.vip",
        "profile.orders.exists(o, o.items.all(i, i.qty > 0))",
        "profile.vip ? profile.a > 1 : false",
        "profile.tags.exists(t, t == 'x')",
        "profile.name.startsWith('a')",
    ] {
        Expr::compile(fine, Vars::Profile).unwrap_or_else(|e| panic!("{fine}: {e}"));
    }
}

#[test]
fn long_expressions_are_shown_as_an_excerpt() {
    let long = "a".repeat(200);
    let shown = excerpt(&long);
    assert!(shown.len() < 80, "{shown}");
    assert!(shown.ends_with("(200 bytes)"));
    assert_eq!(excerpt("short"), "short");
    // Never cut inside a character.
    let accents = "é".repeat(100);
    assert!(excerpt(&accents).starts_with("éé"));
}

/// Every generated worst case at the maximum length gets its verdict, and one that is refused
/// says why with the limit.
#[test]
fn worst_cases_at_the_maximum_length_get_their_verdict() {
    let cases = worst_cases::at_length(MAX_BYTES);
    assert!(cases.len() >= 20);
    for case in cases {
        assert!(
            case.source.len() > MAX_BYTES - 20,
            "{}: {}",
            case.name,
            case.source.len()
        );
        let result = Expr::compile(&case.source, Vars::Profile);
        match (case.verdict, &result) {
            (Verdict::TooDeep, Err(ExprError::Limit(LimitError::TooDeep { depth }))) => {
                assert!(*depth > MAX_DEPTH, "{}", case.name);
                let message = result
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let limit = format!("the limit is {MAX_DEPTH} levels");
                assert!(message.contains(&limit), "{message}");
            }
            (Verdict::Accepted, Ok(expr)) => {
                assert!(
                    expr.eval_bool(&json!({}), None).expect(case.name),
                    "{}",
                    case.name
                );
            }
            (Verdict::SyntaxError, Err(ExprError::Syntax(message))) => {
                assert!(message.len() < 300, "{}: {message}", case.name);
            }
            (verdict, other) => panic!("{}: expected {verdict:?}, got {other:?}", case.name),
        }
    }
}

#[test]
fn too_large_expressions_are_refused_before_parsing() {
    let source = format!("true && {}", "true && ".repeat(600)) + "true";
    assert!(matches!(
        Expr::compile(&source, Vars::Profile),
        Err(ExprError::Limit(LimitError::TooLarge { .. }))
    ));
}

/// Runs `f` on a thread with `bytes` of stack (a stack overflow aborts the test binary: the
/// failure is loud).
fn on_thread_with<T: Send + 'static>(bytes: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .name(format!("stack-{}k", bytes / 1024))
        .stack_size(bytes)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

/// The proof that the guaranteed stacks hold anything the limits allow, on this build's frame
/// sizes: the deepest allowed expression of every shape is parsed on a thread with a quarter
/// of [`PARSE_STACK_BYTES`] and evaluated on one with a quarter of [`EVAL_STACK_BYTES`],
/// bypassing [`on_bounded_stack`]. CI runs this in debug and in release.
#[test]
fn limits_fit_in_a_quarter_of_the_stack() {
    let cases = worst_cases::at_depth_limit();
    assert!(cases.len() >= 14, "{}", cases.len());
    let mut compiled = Vec::new();
    for (name, source) in cases {
        let depth = limits::check(&source).expect("within the limits").depth;
        assert!(depth >= MAX_DEPTH - 2, "{name} reaches only {depth}");
        let parsed = on_thread_with(PARSE_STACK_BYTES / 4, move || {
            Expr::compile_here(&source, Vars::Profile)
        });
        match parsed {
            Ok(expr) => compiled.push((name, expr)),
            Err(e) => panic!("{name} is valid CEL: {e}"),
        }
    }
    let profile = worst_cases::deep_profile();
    let evaluated = on_thread_with(EVAL_STACK_BYTES / 4, move || {
        // An evaluation error (a type mismatch of the generated shape) is fine; running out
        // of stack is not.
        compiled
            .iter()
            .filter(|(_, expr)| expr.eval_here(&profile, None).is_ok())
            .count()
    });
    assert!(evaluated >= 8, "{evaluated} evaluated to a boolean");
}

#[test]
fn a_thread_with_a_small_stack_still_parses_what_the_limits_allow() {
    // on_bounded_stack moves the work to a fresh segment when the thread has too little left.
    let (_, deepest) = worst_cases::at_depth_limit()
        .into_iter()
        .find(|(name, _)| *name == "parentheses")
        .expect("parentheses");
    let ok = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            Expr::compile(&deepest, Vars::Profile)
                .and_then(|e| e.eval_bool(&json!({}), None))
                .is_ok()
        })
        .expect("spawn")
        .join()
        .expect("no overflow");
    assert!(ok);
}

#[test]
fn syntax_errors_say_where_and_stay_short() {
    let message = Expr::compile("profile.a == 'x\\q' &&", Vars::Profile)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        message.starts_with("syntax error at line 1, column "),
        "{message}"
    );
    assert!(message.contains("more"), "{message}");
}

//! Generated worst cases, for the tests of every layer that takes an expression from a user
//! (compilation, `api::validate`, the controller through the apiserver, the data plane over
//! HTTP): each shape that makes CEL's recursive code go deep, at the longest length an
//! expression may have, and each shape at the deepest the limits allow.

use super::limits::{self, MAX_BYTES, MAX_DEPTH};

/// What must happen to a worst case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Refused by the limits: too deep (or too many nested comprehensions).
    TooDeep,
    /// A valid expression that is not deep (a flat `&&`/`||` chain is balanced by the parser,
    /// a long string is one node): compiles and evaluates to a boolean.
    Accepted,
    /// Refused by the parser with its syntax error.
    SyntaxError,
}

#[derive(Debug, Clone)]
pub struct WorstCase {
    pub name: &'static str,
    pub source: String,
    pub verdict: Verdict,
}

/// `open` repeated, `middle`, `close` repeated: as many levels as fit in `max` bytes.
fn nested(open: &str, middle: &str, close: &str, max: usize) -> String {
    let levels = (max - middle.len()) / (open.len() + close.len());
    format!("{}{middle}{}", open.repeat(levels), close.repeat(levels))
}

/// `first`, then `step` repeated as often as fits in `max` bytes with `last` at the end.
fn chain(first: &str, step: &str, last: &str, max: usize) -> String {
    let steps = (max - first.len() - last.len()) / step.len();
    format!("{first}{}{last}", step.repeat(steps))
}

/// Every shape at `max` bytes (use [`MAX_BYTES`], the CRD's `maxLength`, or a transport's own
/// limit).
pub fn at_length(max: usize) -> Vec<WorstCase> {
    use Verdict::*;
    let case = |name, source: String, verdict| WorstCase {
        name,
        source,
        verdict,
    };
    let mut cases = vec![
        case("nested parentheses", nested("(", "true", ")", max), TooDeep),
        case("nested lists", nested("[", "true", "]", max), TooDeep),
        case("nested maps", nested("{1:", "true", "}", max), TooDeep),
        case("nested calls", nested("f(", "true", ")", max), TooDeep),
        case("member chain", chain("profile", ".a", "", max), TooDeep),
        case("index chain", chain("profile", "[0]", "", max), TooDeep),
        case("unary not", chain("", "!", "true", max), TooDeep),
        case("unary minus", chain("", "-", "1 > 0", max), TooDeep),
        case(
            "ternary chain",
            chain("", "true?true:", "true", max),
            TooDeep,
        ),
        case("unclosed parentheses", "(".repeat(max), TooDeep),
        case(
            "long string with escapes",
            {
                let unit = "\\n\\t\\\\\\'\\u00e9";
                format!("'{}' != ''", unit.repeat((max - 8) / unit.len()))
            },
            Accepted,
        ),
        case(
            "long string with bad escapes",
            format!("'{}' != ''", "\\q".repeat((max - 8) / 2)),
            SyntaxError,
        ),
        case("flat && chain", chain("true", "&&true", "", max), Accepted),
        case("flat || chain", chain("true", "||true", "", max), Accepted),
    ];
    for (name, op) in [
        ("+ chain", "+"),
        ("- chain", "-"),
        ("* chain", "*"),
        ("/ chain", "/"),
        ("% chain", "%"),
        ("== chain", "=="),
        ("< chain", "<"),
        ("in chain", " in "),
    ] {
        let step = format!("{op}1");
        cases.push(case(name, chain("1", &step, " > 0", max), TooDeep));
    }
    for c in &cases {
        debug_assert!(
            c.source.len() <= max,
            "{} is {} bytes",
            c.name,
            c.source.len()
        );
    }
    cases
}

/// Builds a shape `n` levels deep.
type Build = Box<dyn Fn(usize) -> String>;

/// The deepest expression of each shape that the limits still allow (evaluate them on
/// [`deep_profile`]): what the guaranteed stacks must hold.
pub fn at_depth_limit() -> Vec<(&'static str, String)> {
    let shapes: Vec<(&'static str, Build)> = vec![
        (
            "parentheses",
            Box::new(|n| nested("(", "true", ")", 4 + 2 * n)),
        ),
        (
            "lists",
            Box::new(|n| format!("{} == []", nested("[", "", "]", 2 * n))),
        ),
        (
            "maps",
            Box::new(|n| format!("size({}) > 0", nested("{1:", "1", "}", 1 + 4 * n))),
        ),
        (
            "calls",
            Box::new(|n| format!("{} > 0", nested("size(", "'a'", ")", 3 + 6 * n))),
        ),
        (
            "member chain",
            Box::new(|n| format!("has(profile{})", ".a".repeat(n))),
        ),
        (
            "index chain",
            Box::new(|n| format!("profile.l{} == 1", "[0]".repeat(n))),
        ),
        ("unary not", Box::new(|n| format!("{}true", "!".repeat(n)))),
        (
            "unary minus",
            Box::new(|n| format!("{}1 > 0", "-".repeat(n))),
        ),
        ("+ chain", Box::new(|n| format!("1{} > 0", "+1".repeat(n)))),
        (
            "== chain",
            Box::new(|n| format!("true{}", "==true".repeat(n))),
        ),
        (
            "in chain",
            Box::new(|n| format!("1{}", " in [1]".repeat(n))),
        ),
        (
            "ternary chain",
            Box::new(|n| format!("{}true", "false?false:".repeat(n))),
        ),
        (
            "comprehensions",
            Box::new(|n| {
                format!(
                    "[[[1]]].all(a, a.all(b, b.all(c, {}c == 1{})))",
                    "(".repeat(n),
                    ")".repeat(n)
                )
            }),
        ),
        (
            "mixed",
            Box::new(|n| {
                let inner: String = (0..n).map(|i| ["(", "[", "!", "size("][i % 4]).collect();
                let closes: String = (0..n)
                    .rev()
                    .map(|i| [")", "][0]", "", ") > 0"][i % 4])
                    .collect();
                format!("{inner}true{closes}")
            }),
        ),
    ];
    let mut out = Vec::new();
    for (name, build) in shapes {
        let mut deepest = None;
        for n in 0..MAX_BYTES {
            let source = build(n);
            let fits = source.len() <= MAX_BYTES && limits::check(&source).is_ok();
            if !fits && deepest.is_some() {
                break;
            }
            if fits {
                deepest = Some(source);
            }
        }
        if let Some(source) = deepest {
            out.push((name, source));
        }
    }
    out
}

/// A profile whose `a` is a map nested deeper than any member chain may reach, and whose `l` is
/// a list nested as deep, so the chains of [`at_depth_limit`] evaluate all the way down.
pub fn deep_profile() -> serde_json::Value {
    let levels = MAX_DEPTH as usize + 2;
    let mut map = serde_json::json!(true);
    let mut list = serde_json::json!(1);
    for _ in 0..levels {
        map = serde_json::json!({ "a": map });
        list = serde_json::json!([list]);
    }
    serde_json::json!({ "a": map, "l": list })
}

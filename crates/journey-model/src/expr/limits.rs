//! The bounds every user-written expression must pass before the CEL parser sees it.
//!
//! CEL's parser (ANTLR-generated), its tree visitor, the interpreter and the drop of the parse
//! tree each recurse once per level of the expression tree, so an expression nested a few
//! thousand levels deep — `((((…))))`, `1+1+…+1`, `a.b.c…` — overflows any thread's stack, and a
//! stack overflow aborts the whole process: it cannot be caught. [`check`] walks the source once
//! with explicit stacks (it never recurses), estimates the depth of the tree the parser would
//! build, and refuses what is deeper than [`MAX_DEPTH`] before any recursive code runs. What
//! passes is parsed and evaluated on a stack sized for the worst that [`MAX_DEPTH`] allows
//! (`super::PARSE_STACK_BYTES`, `super::EVAL_STACK_BYTES`).
//!
//! How depth is counted (an upper bound of the parse tree's and the AST's depth):
//! - a literal or a name is one level;
//! - each bracket pair — `( )`, a list `[ ]`, a map `{ }`, a call's `( )`, an index `[ ]` —
//!   adds one level to the deepest thing inside it;
//! - each member access `.f`, each unary `!` or `-`, each ternary `?:` and each binary operator
//!   of a chain (`+ - * / % == != < <= > >= in`: the parser builds these chains left-deep) adds
//!   one level;
//! - a chain of `&&` or of `||` adds the base-2 logarithm of its length (the parser builds a
//!   balanced tree of it), so long flat conjunctions stay cheap.

/// The longest expression accepted, in bytes (the CRD's `maxLength` for every expression).
pub const MAX_BYTES: usize = 4096;

/// The deepest expression accepted, in levels as counted above. Real conditions are a handful
/// of levels deep (`has(profile.plan) && profile.plan in ['pro', 'team']` is 4); 32 is far
/// above that and keeps the stack the worst case needs small (`super::PARSE_STACK_BYTES`).
pub const MAX_DEPTH: u32 = 32;

/// Comprehension macros (`all`, `exists`, `exists_one`, `map`, `filter`) nested in one another.
/// Their work multiplies (`n` elements nested `k` deep is `n^k` evaluations), so this bounds the
/// evaluation work, not the stack. Real conditions nest one or two.
pub const MAX_COMPREHENSION_NESTING: u32 = 3;

const COMPREHENSIONS: [&str; 5] = ["all", "exists", "exists_one", "map", "filter"];

/// Why an expression was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the expression is {bytes} bytes long; the limit is {MAX_BYTES} bytes")]
    TooLarge { bytes: usize },
    #[error(
        "the expression nests {depth} levels deep; the limit is {MAX_DEPTH} levels (each \
         bracket, call, member access, index, unary operator, ternary and operator of a chain \
         adds one; a chain of && or || adds the log2 of its length): split it or flatten it"
    )]
    TooDeep { depth: u32 },
    #[error(
        "the expression nests {nesting} comprehension macros (all, exists, exists_one, map, \
         filter) in one another; the limit is {MAX_COMPREHENSION_NESTING}"
    )]
    TooManyComprehensions { nesting: u32 },
}

/// What [`check`] measured of an expression that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub depth: u32,
    pub comprehension_nesting: u32,
}

/// Checks `source` against [`MAX_BYTES`], [`MAX_DEPTH`] and [`MAX_COMPREHENSION_NESTING`]
/// without recursion: time and memory are linear in its length whatever it contains.
pub fn check(source: &str) -> Result<Shape, LimitError> {
    if source.len() > MAX_BYTES {
        return Err(LimitError::TooLarge {
            bytes: source.len(),
        });
    }
    let shape = measure(source);
    if shape.depth > MAX_DEPTH {
        return Err(LimitError::TooDeep { depth: shape.depth });
    }
    if shape.comprehension_nesting > MAX_COMPREHENSION_NESTING {
        return Err(LimitError::TooManyComprehensions {
            nesting: shape.comprehension_nesting,
        });
    }
    Ok(shape)
}

/// Measures any text, well-formed CEL or not (what the parser would reject is measured as if
/// it were accepted: the parser's error recovery recurses no deeper than its parsing).
pub fn measure(source: &str) -> Shape {
    let mut scan = Scan::default();
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => i += 1,
            b'/' if next == Some(b'/') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p);
            }
            b'"' | b'\'' => {
                i = skip_string(bytes, i, false);
                scan.operand();
            }
            b'`' => {
                // A quoted identifier (`a.`b-c``).
                i = bytes[i + 1..]
                    .iter()
                    .position(|&b| b == b'`')
                    .map_or(bytes.len(), |p| i + p + 2);
                scan.operand();
            }
            b'0'..=b'9' => {
                i = skip_number(bytes, i);
                scan.operand();
            }
            b'.' if scan.expects_operand() && next.is_some_and(|d| d.is_ascii_digit()) => {
                i = skip_number(bytes, i);
                scan.operand();
            }
            b'.' => {
                i += 1;
                if bytes.get(i) == Some(&b'?') {
                    i += 1; // optional select `.?f`
                }
                while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
                    i += 1;
                }
                let start = i;
                while bytes
                    .get(i)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'`') && start == i {
                    i = bytes[i + 1..]
                        .iter()
                        .position(|&b| b == b'`')
                        .map_or(bytes.len(), |p| i + p + 2);
                }
                scan.select(&source[start..i.min(source.len())]);
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while bytes
                    .get(i)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    i += 1;
                }
                let word = &source[start..i];
                let prefix = matches!(
                    word,
                    "r" | "R" | "b" | "B" | "rb" | "rB" | "Rb" | "RB" | "br" | "bR" | "Br" | "BR"
                );
                if prefix && matches!(bytes.get(i), Some(b'"' | b'\'')) {
                    let raw = word.contains(['r', 'R']);
                    i = skip_string(bytes, i, raw);
                    scan.operand();
                } else if word == "in" {
                    scan.binary(Op::Relation);
                } else {
                    scan.operand();
                }
            }
            _ => {
                let two = next.map(|n| [c, n]);
                let op = match two.as_ref().map(|t| &t[..]) {
                    Some(b"&&") => Some(Op::And),
                    Some(b"||") => Some(Op::Or),
                    Some(b"==" | b"!=" | b"<=" | b">=") => Some(Op::Relation),
                    _ => None,
                };
                if let Some(op) = op {
                    scan.binary(op);
                    i += 2;
                    continue;
                }
                i += 1;
                match c {
                    b'<' | b'>' => scan.binary(Op::Relation),
                    b'+' => scan.binary(Op::Add),
                    b'*' | b'/' | b'%' => scan.binary(Op::Multiply),
                    b'-' if scan.expects_operand() => scan.unary(),
                    b'-' => scan.binary(Op::Add),
                    b'!' => scan.unary(),
                    b'?' => scan.question(),
                    b':' => scan.colon(),
                    b',' => scan.comma(),
                    b'(' => scan.open(Bracket::Paren),
                    b'[' => scan.open(Bracket::Square),
                    b'{' => scan.open(Bracket::Brace),
                    b')' | b']' | b'}' => scan.close(),
                    // Anything else is a syntax error the parser reports.
                    _ => {}
                }
            }
        }
    }
    scan.finish()
}

/// The index just past the string literal that starts at `i` (its opening quote).
fn skip_string(bytes: &[u8], i: usize, raw: bool) -> usize {
    let quote = bytes[i];
    let triple = bytes.get(i + 1) == Some(&quote) && bytes.get(i + 2) == Some(&quote);
    let mut j = if triple { i + 3 } else { i + 1 };
    while j < bytes.len() {
        let b = bytes[j];
        if b == b'\\' && !raw {
            j += 2;
            continue;
        }
        if b == quote {
            if !triple {
                return j + 1;
            }
            if bytes.get(j + 1) == Some(&quote) && bytes.get(j + 2) == Some(&quote) {
                return j + 3;
            }
        }
        if b == b'\n' && !triple {
            return j; // unterminated: the parser reports it
        }
        j += 1;
    }
    bytes.len()
}

/// The index just past the number literal at `i` (decimal, hex, float, unsigned).
fn skip_number(bytes: &[u8], i: usize) -> usize {
    let mut j = i;
    let digits = |j: &mut usize, hex: bool| {
        while bytes
            .get(*j)
            .is_some_and(|b| b.is_ascii_digit() || (hex && b.is_ascii_hexdigit()))
        {
            *j += 1;
        }
    };
    if bytes.get(j) == Some(&b'0') && matches!(bytes.get(j + 1), Some(b'x' | b'X')) {
        j += 2;
        digits(&mut j, true);
    } else {
        digits(&mut j, false);
        if bytes.get(j) == Some(&b'.') && bytes.get(j + 1).is_some_and(u8::is_ascii_digit) {
            j += 1;
            digits(&mut j, false);
        }
        if matches!(bytes.get(j), Some(b'e' | b'E')) {
            let mut k = j + 1;
            if matches!(bytes.get(k), Some(b'+' | b'-')) {
                k += 1;
            }
            if bytes.get(k).is_some_and(u8::is_ascii_digit) {
                j = k;
                digits(&mut j, false);
            }
        }
    }
    if matches!(bytes.get(j), Some(b'u' | b'U')) {
        j += 1;
    }
    j
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Or,
    And,
    Relation,
    Add,
    Multiply,
    /// Prefix `!` or `-`.
    Unary,
    /// A ternary's `?` whose `:` has not come yet.
    Question,
    /// A ternary after its `:`: three operands.
    Colon,
}

impl Op {
    fn precedence(self) -> u8 {
        match self {
            Op::Question | Op::Colon => 0,
            Op::Or => 1,
            Op::And => 2,
            Op::Relation => 3,
            Op::Add => 4,
            Op::Multiply => 5,
            Op::Unary => 6,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bracket {
    Paren,
    Square,
    Brace,
}

/// One operand on the stack: its depth, and for a chain of `&&` or `||` its operator, length
/// and deepest term (the parser balances such chains).
#[derive(Debug, Clone, Copy, Default)]
struct Operand {
    depth: u32,
    chain: Option<(Op, u32, u32)>,
}

impl Operand {
    fn leaf(depth: u32) -> Self {
        Operand { depth, chain: None }
    }
}

/// One open bracket (or the whole expression): a shunting-yard of its own.
#[derive(Debug, Default)]
struct Frame {
    /// What the bracket adds to: the target of an index, the receiver of a call.
    base: u32,
    operands: Vec<Operand>,
    ops: Vec<Op>,
    /// `?` seen whose `:` has not come yet.
    questions: u32,
    /// The deepest element (argument, list item, map key or value) closed so far.
    widest: u32,
    comprehension: bool,
    expects_operand: bool,
}

impl Frame {
    fn new(base: u32, comprehension: bool) -> Self {
        Frame {
            base,
            comprehension,
            expects_operand: true,
            ..Frame::default()
        }
    }

    fn pop(&mut self) -> Operand {
        self.operands.pop().unwrap_or_default()
    }

    fn apply(&mut self, op: Op) {
        let result = match op {
            Op::Unary => Operand::leaf(self.pop().depth.saturating_add(1)),
            Op::Colon => {
                let (c, b, a) = (self.pop(), self.pop(), self.pop());
                Operand::leaf(a.depth.max(b.depth).max(c.depth).saturating_add(1))
            }
            Op::And | Op::Or => {
                let (right, left) = (self.pop(), self.pop());
                let (terms, deepest) = match left.chain {
                    Some((kind, terms, deepest)) if kind == op => {
                        (terms + 1, deepest.max(right.depth))
                    }
                    _ => (2, left.depth.max(right.depth)),
                };
                Operand {
                    depth: deepest.saturating_add(ceil_log2(terms)),
                    chain: Some((op, terms, deepest)),
                }
            }
            Op::Relation | Op::Add | Op::Multiply | Op::Question => {
                let (right, left) = (self.pop(), self.pop());
                Operand::leaf(left.depth.max(right.depth).saturating_add(1))
            }
        };
        self.operands.push(result);
    }

    /// Applies the operators on top whose precedence is at least `min` (never a `?`).
    fn reduce(&mut self, min: u8) {
        while let Some(&op) = self.ops.last() {
            if op == Op::Question || op.precedence() < min {
                break;
            }
            self.ops.pop();
            self.apply(op);
        }
    }

    /// Ends the element under way (at `,`, a map's `:` or the closing bracket).
    fn end_element(&mut self) {
        while let Some(op) = self.ops.pop() {
            self.apply(op);
        }
        self.questions = 0;
        for operand in self.operands.drain(..) {
            self.widest = self.widest.max(operand.depth);
        }
        self.expects_operand = true;
    }
}

fn ceil_log2(n: u32) -> u32 {
    u32::BITS - n.saturating_sub(1).leading_zeros()
}

struct Scan {
    frames: Vec<Frame>,
    /// The field name just selected (`x.name`), if the last token was one: `x.name(` is a
    /// receiver call, and a comprehension when the name is a macro's.
    selected: Option<bool>,
    comprehensions: u32,
    deepest_comprehension: u32,
}

impl Default for Scan {
    fn default() -> Self {
        Scan {
            frames: vec![Frame::new(0, false)],
            selected: None,
            comprehensions: 0,
            deepest_comprehension: 0,
        }
    }
}

impl Scan {
    fn top(&mut self) -> &mut Frame {
        // The outermost frame is never popped.
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    fn expects_operand(&self) -> bool {
        self.frames.last().is_none_or(|f| f.expects_operand)
    }

    fn operand(&mut self) {
        self.selected = None;
        let top = self.top();
        top.operands.push(Operand::leaf(1));
        top.expects_operand = false;
    }

    fn select(&mut self, field: &str) {
        let top = self.top();
        let target = top.pop();
        top.operands
            .push(Operand::leaf(target.depth.saturating_add(1)));
        top.expects_operand = false;
        self.selected = Some(COMPREHENSIONS.contains(&field));
    }

    fn binary(&mut self, op: Op) {
        self.selected = None;
        let top = self.top();
        top.reduce(op.precedence());
        top.ops.push(op);
        top.expects_operand = true;
    }

    fn unary(&mut self) {
        self.selected = None;
        let top = self.top();
        top.ops.push(Op::Unary);
        top.expects_operand = true;
    }

    fn question(&mut self) {
        self.selected = None;
        let top = self.top();
        top.reduce(1);
        top.ops.push(Op::Question);
        top.questions += 1;
        top.expects_operand = true;
    }

    fn colon(&mut self) {
        self.selected = None;
        let top = self.top();
        if top.questions > 0 {
            // Everything since the nearest open `?` is its middle operand (an inner ternary
            // included).
            while let Some(&op) = top.ops.last() {
                top.ops.pop();
                if op == Op::Question {
                    break;
                }
                top.apply(op);
            }
            top.questions -= 1;
            top.ops.push(Op::Colon);
            top.expects_operand = true;
        } else {
            // A map entry's `key: value`.
            top.end_element();
        }
    }

    fn comma(&mut self) {
        self.selected = None;
        self.top().end_element();
    }

    fn open(&mut self, bracket: Bracket) {
        let comprehension = self.selected.take() == Some(true) && bracket == Bracket::Paren;
        let top = self.top();
        // After an operand a bracket applies to it: `f(…)`, `x.f(…)`, `x[…]`, `T{…}`.
        let base = if top.expects_operand {
            0
        } else {
            top.pop().depth
        };
        top.expects_operand = false;
        if comprehension {
            self.comprehensions += 1;
            self.deepest_comprehension = self.deepest_comprehension.max(self.comprehensions);
        }
        self.frames.push(Frame::new(base, comprehension));
    }

    fn close(&mut self) {
        self.selected = None;
        if self.frames.len() == 1 {
            return; // unbalanced: the parser reports it
        }
        let mut frame = self.frames.pop().unwrap_or_default();
        frame.end_element();
        if frame.comprehension {
            self.comprehensions = self.comprehensions.saturating_sub(1);
        }
        let depth = frame.base.max(frame.widest).saturating_add(1);
        let top = self.top();
        top.operands.push(Operand::leaf(depth));
        top.expects_operand = false;
    }

    fn finish(mut self) -> Shape {
        while self.frames.len() > 1 {
            self.close(); // unclosed brackets still count
        }
        let top = self.top();
        top.end_element();
        Shape {
            depth: top.widest,
            comprehension_nesting: self.deepest_comprehension,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(s: &str) -> u32 {
        measure(s).depth
    }

    #[test]
    fn real_conditions_are_shallow() {
        assert_eq!(depth("true"), 1);
        assert_eq!(depth("profile.vip"), 2);
        assert_eq!(depth("profile.age + 1 > 30"), 4);
        assert_eq!(
            depth("has(profile.plan) && profile.plan in ['pro', 'team']"),
            4
        );
        assert_eq!(depth("profile.tags.exists(t, t == 'vip')"), 4);
        assert_eq!(depth("event.total > 10 ? profile.vip : !profile.vip"), 4);
    }

    #[test]
    fn every_level_counts() {
        assert_eq!(depth("(((true)))"), 4);
        assert_eq!(depth("[[[1]]]"), 4);
        assert_eq!(depth("{1: {2: 3}}"), 3);
        assert_eq!(depth("f(f(f(1)))"), 4);
        assert_eq!(depth("a.b.c.d"), 4);
        assert_eq!(depth("a[0][0][0]"), 4);
        assert_eq!(depth("!!!a"), 4);
        assert_eq!(depth("- - -1"), 4);
        assert_eq!(depth("1 + 1 + 1 + 1"), 4);
        assert_eq!(depth("1 - 2 * 3 / 4 % 5"), 5);
        assert_eq!(depth("a == b == c"), 3);
        assert_eq!(depth("a in b in c"), 3);
        assert_eq!(depth("a ? 1 : b ? 2 : c ? 3 : 4"), 4);
    }

    #[test]
    fn flat_logical_chains_count_their_log() {
        assert_eq!(depth("a && b"), 2);
        assert_eq!(depth("a && b && c && d"), 3);
        assert_eq!(depth("a || b || c || d || e"), 4);
        // Mixed: && binds tighter, each && chain is one term of the ||.
        assert_eq!(depth("a && b || c && d"), 3);
    }

    #[test]
    fn literals_hide_their_punctuation() {
        assert_eq!(depth("'(((' + \"[[[\" + '''a)'b''' + r'\\'"), 4);
        assert_eq!(depth("'\\'((('"), 1);
        assert_eq!(depth("1.5e3 + .5 + 0x1Fu + 3u"), 4);
        assert_eq!(depth("a // ((((\n"), 1);
    }

    #[test]
    fn malformed_text_is_measured_too() {
        assert_eq!(depth("(((((("), 6);
        assert_eq!(depth(")))"), 0);
        assert_eq!(depth("a b c"), 1);
        assert_eq!(depth("&& || +"), 3);
    }

    #[test]
    fn comprehensions_nest() {
        let s = measure("a.all(x, x.exists(y, y.map(z, z).size() > 0))");
        assert_eq!(s.comprehension_nesting, 3);
        assert_eq!(
            measure("a.all(x, x) && b.exists(y, y)").comprehension_nesting,
            1
        );
        assert!(matches!(
            check("a.all(x, x.all(y, y.all(z, z.all(w, w))))"),
            Err(LimitError::TooManyComprehensions { nesting: 4 })
        ));
    }

    #[test]
    fn the_limits_are_enforced() {
        let deep = format!("{}true{}", "(".repeat(32), ")".repeat(32));
        assert_eq!(check(&deep), Err(LimitError::TooDeep { depth: 33 }));
        let ok = format!("{}true{}", "(".repeat(31), ")".repeat(31));
        assert_eq!(check(&ok).map(|s| s.depth), Ok(32));
        let long = "a".repeat(MAX_BYTES + 1);
        assert_eq!(
            check(&long),
            Err(LimitError::TooLarge {
                bytes: MAX_BYTES + 1
            })
        );
    }
}

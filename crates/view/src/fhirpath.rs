//! FHIRPath: parsed once into a plan ([`Expr`]) with functions, constants and type names resolved.
//!
//! The grammar is FHIRPath N1's: literals (`'text'`, `12`, `1.50`, `true`, `@2024-01-01`,
//! `@T10:00`, `{}`), member paths, indexers, function calls, `$this`/`$index`, `%constants`, and the
//! operators by precedence (`.`/`[]`, unary `-`, `* / div mod`, `+ - &`, `is as`, `|`,
//! `< > <= >=`, `= ~ != !~`, `in contains`, `and`, `or xor`, `implies`).

use std::sync::Arc;

use claimline_ndjson::{Need, Needs};

use crate::decimal::Decimal;

/// Where and why a FHIRPath expression did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based character position in the expression.
    pub position: usize,
    /// What the parser expected there.
    pub expected: String,
    /// What it found instead.
    pub found: String,
}

/// A literal value in an expression or a view's `constant`.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `true` / `false`
    Bool(bool),
    /// `12`
    Integer(i64),
    /// `1.50`
    Decimal(Decimal),
    /// `'text'`
    String(String),
    /// `@2024-01-01` (the text after `@`)
    Date(String),
    /// `@2024-01-01T10:00:00Z`
    DateTime(String),
    /// `@T10:00` (the text after `@T`)
    Time(String),
}

/// An environment variable, resolved at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variable {
    /// `%resource`, `%context`: the resource the view runs on.
    Resource,
    /// `%rootResource`: the same resource (views do not descend into contained resources).
    RootResource,
    /// `%rowIndex`: index of the current element of the nearest `forEach`/`repeat`.
    RowIndex,
    /// A view `constant`, by index.
    Constant(usize),
}

/// A function, resolved at compile time; arity is checked there too.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    missing_docs,
    reason = "each variant is the FHIRPath function of the same name"
)]
pub enum Function {
    Where,
    Select,
    Exists,
    All,
    Empty,
    Count,
    First,
    Last,
    Single,
    Tail,
    Skip,
    Take,
    Distinct,
    Union,
    Combine,
    Not,
    AllTrue,
    AnyTrue,
    HasValue,
    OfType(String),
    Is(String),
    As(String),
    Extension,
    Join,
    LowBoundary,
    HighBoundary,
    GetResourceKey,
    /// `resolve()` of a contained reference (`#id`): the resource's `contained` entry with
    /// that id. Other references resolve to nothing (there is no server to ask).
    Resolve,
    GetReferenceKey(Option<String>),
    Iif,
    StartsWith,
    EndsWith,
    Contains,
    Substring,
    Replace,
    Upper,
    Lower,
    Length,
    Trim,
    IndexOf,
    ToString,
    ToInteger,
    ToDecimal,
    ToBoolean,
    ConvertsToInteger,
    ConvertsToDecimal,
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    missing_docs,
    reason = "each variant is the FHIRPath operator of the same name"
)]
pub enum BinaryOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

/// A member name and its primitive-extension twin (`_name`), both kept so evaluation never
/// allocates.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// `birthDate`
    pub name: Box<str>,
    /// `_birthDate`
    pub underscored: Box<str>,
}

/// A compiled FHIRPath expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `{}`
    Empty,
    /// A literal.
    Literal(Literal),
    /// `$this` (and an expression's starting focus).
    This,
    /// `$index` inside a lambda.
    Index,
    /// `%name`.
    Variable(Variable),
    /// `input.a.b.c`: a chain of member names (input `None`: the focus), walked without building
    /// the intermediate collections.
    Member(Option<Box<Expr>>, Vec<Key>),
    /// `input.function(args…)`.
    Call(Option<Box<Expr>>, Function, Vec<Expr>),
    /// `input[index]`.
    Indexer(Box<Expr>, Box<Expr>),
    /// `-x`.
    Negate(Box<Expr>),
    /// `a op b`.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// An expression whose value is the same everywhere within one row of a view (it reads
    /// only `%resource`, constants and `%rowIndex`), inside a lambda argument: evaluated once
    /// per row instead of once per element the lambda visits. Made by [`hoist_row_constants`];
    /// the parser never produces it. Shared ([`share_row_constants`]): equal row constants of
    /// one view are one expression, so a row evaluates each once however many columns use it.
    RowConst(Arc<Expr>),
}

/// Functions whose arguments are evaluated once per item of their input, with that item as
/// the focus.
fn is_lambda(f: &Function) -> bool {
    matches!(
        f,
        Function::Where | Function::Select | Function::Exists | Function::All
    )
}

/// Does `e` read nothing of its focus (only `%resource`, `%rootResource`, constants,
/// `%rowIndex` and literals)?
fn focus_free(e: &Expr) -> bool {
    match e {
        Expr::Empty | Expr::Literal(_) | Expr::Variable(_) | Expr::RowConst(_) => true,
        Expr::This | Expr::Index | Expr::Member(None, _) | Expr::Call(None, _, _) => false,
        Expr::Member(Some(input), _) => focus_free(input),
        // A lambda's arguments see their own items; other arguments see the focus.
        Expr::Call(Some(input), f, args) => {
            focus_free(input) && (is_lambda(f) || args.iter().all(focus_free))
        }
        Expr::Indexer(a, b) | Expr::Binary(_, a, b) => focus_free(a) && focus_free(b),
        Expr::Negate(x) => focus_free(x),
    }
}

/// Wraps in [`Expr::RowConst`] the largest subexpressions of lambda arguments that read
/// nothing of their focus (`careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence)`
/// reads the current line once per row, not once per care team member). Values do not change:
/// the wrapped expression is evaluated, on first use in a row, exactly as before.
pub fn hoist_row_constants(e: Expr) -> Expr {
    hoist(e, false)
}

fn hoist(e: Expr, in_lambda: bool) -> Expr {
    let trivial = matches!(
        e,
        Expr::Empty | Expr::Literal(_) | Expr::Variable(_) | Expr::RowConst(_)
    );
    if in_lambda && !trivial && focus_free(&e) {
        return Expr::RowConst(Arc::new(e));
    }
    let sub = |x: Box<Expr>| Box::new(hoist(*x, in_lambda));
    match e {
        Expr::Member(input, keys) => Expr::Member(input.map(sub), keys),
        Expr::Call(input, f, args) => {
            let lambda = in_lambda || is_lambda(&f);
            let args = args.into_iter().map(|a| hoist(a, lambda)).collect();
            Expr::Call(input.map(sub), f, args)
        }
        Expr::Indexer(a, b) => Expr::Indexer(sub(a), sub(b)),
        Expr::Binary(op, a, b) => Expr::Binary(op, sub(a), sub(b)),
        Expr::Negate(x) => Expr::Negate(sub(x)),
        other => other,
    }
}

/// How an expression (or a constant, or a list of them) is written: what tells apart
/// expressions one evaluation may not serve, where `==` is not enough. `Expr`'s and
/// [`Literal`]'s equality compares decimals by value (`1.0 == 1.00`), and `1.0 + 0` and
/// `1.00 + 0` give different values (scale); the derived `Debug` text shows every literal
/// exactly (a decimal's mantissa and scale).
pub(crate) fn written<T: std::fmt::Debug + ?Sized>(x: &T) -> String {
    format!("{x:?}")
}

/// Whether `a` and `b` are [`written`] alike.
pub(crate) fn written_alike<T: std::fmt::Debug + ?Sized>(a: &T, b: &T) -> bool {
    written(a) == written(b)
}

/// Makes identical [`Expr::RowConst`]s of `e` and of the expressions seen before (`seen`, one
/// list per view) the same shared expression. A row's memo is keyed by the expression's address,
/// so `careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence)` in four columns
/// reads the line's care team sequences once per row, not four times.
///
/// Identical means written alike, not `==`: `Expr`'s equality compares decimal literals by
/// value (`1.0 == 1.00`), and `1.0 + 0` and `1.00 + 0` give different values (scale).
pub fn share_row_constants(e: &mut Expr, seen: &mut Vec<Arc<Expr>>) {
    match e {
        Expr::RowConst(inner) => match seen.iter().find(|s| written_alike(&***s, &**inner)) {
            Some(s) => *inner = Arc::clone(s),
            None => seen.push(Arc::clone(inner)),
        },
        Expr::Member(input, _) => {
            if let Some(x) = input {
                share_row_constants(x, seen);
            }
        }
        Expr::Call(input, _, args) => {
            if let Some(x) = input {
                share_row_constants(x, seen);
            }
            args.iter_mut().for_each(|a| share_row_constants(a, seen));
        }
        Expr::Indexer(a, b) | Expr::Binary(_, a, b) => {
            share_row_constants(a, seen);
            share_row_constants(b, seen);
        }
        Expr::Negate(x) => share_row_constants(x, seen),
        Expr::Empty | Expr::Literal(_) | Expr::This | Expr::Index | Expr::Variable(_) => {}
    }
}

/// Functions whose value is some of their input's items, chosen without reading them (or by
/// their type alone: `ofType`, `as`): the root in, the root may come out, nothing of it read.
fn picks_from_input(f: &Function) -> bool {
    use Function as F;
    matches!(
        f,
        F::Where
            | F::First
            | F::Last
            | F::Single
            | F::Tail
            | F::Skip
            | F::Take
            | F::OfType(_)
            | F::As(_)
    )
}

/// What paths read of the resource's root object, found from the paths alone before any
/// resource is seen: the root members they look up and how much of each ([`Needs`]), or that
/// they may read any member (`all`: the root object itself is used as a value, compared,
/// emitted, or handed to a function that reads it whole). A load parses only the members its
/// views read ([`claimline_ndjson::prune`]); every rule here errs towards reading more.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RootReads {
    /// Some path may read any member of the root.
    pub all: bool,
    /// The root members the paths read.
    pub needs: Needs,
}

impl RootReads {
    /// Adds what `e` reads, evaluated with a focus that may be the root object (`root`) or is
    /// not; returns whether `e`'s value may hold the root object.
    pub fn expr(&mut self, e: &Expr, root: bool) -> bool {
        use Function as F;
        match e {
            Expr::Empty | Expr::Literal(_) | Expr::Index => false,
            Expr::Variable(Variable::Resource | Variable::RootResource) => true,
            Expr::Variable(_) => false,
            Expr::This => root,
            Expr::RowConst(x) => self.expr(x, root),
            Expr::Member(input, keys) => {
                let base = match input {
                    Some(i) => self.expr(i, root),
                    None => root,
                };
                match keys.as_slice() {
                    [] => return base,
                    [first, rest @ ..] if base => {
                        self.needs.add(&first.name, Need::Whole);
                        // `Patient.name`: a leading type name selects the resource itself
                        // (`eval`'s member walk), and the next name is the member read.
                        if input.is_none()
                            && first.name.starts_with(|c: char| c.is_ascii_uppercase())
                        {
                            match rest.first() {
                                Some(next) => self.needs.add(&next.name, Need::Whole),
                                None => return true,
                            }
                        }
                    }
                    _ => {}
                }
                false
            }
            Expr::Indexer(a, b) => {
                let v = self.expr(a, root);
                self.expr(b, root);
                v
            }
            Expr::Negate(x) => {
                self.all |= self.expr(x, root);
                false
            }
            Expr::Binary(op, a, b) => {
                let (va, vb) = (self.expr(a, root), self.expr(b, root));
                // Every operator reads its operands' values (`|` compares them to drop
                // duplicates).
                self.all |= va || vb;
                *op == BinaryOp::Union && (va || vb)
            }
            Expr::Call(input, f, args) => {
                // `name.count()`, `name.exists()`, `name.empty()` of a root member: only its
                // length is read.
                if let Some(inner) = input
                    && let Expr::Member(base, keys) = &**inner
                    && let [key] = keys.as_slice()
                    && args.is_empty()
                    && matches!(f, F::Count | F::Exists | F::Empty)
                {
                    let base = match base {
                        Some(b) => self.expr(b, root),
                        None => root,
                    };
                    if base {
                        self.needs.add(&key.name, Need::Count);
                    }
                    return false;
                }
                let input = match input {
                    Some(i) => self.expr(i, root),
                    None => root,
                };
                // Lambda arguments (and `iif`'s) see the input's items, the others the
                // enclosing focus (as `eval::call` evaluates them).
                let arg_focus = if is_lambda(f) || *f == F::Iif {
                    input
                } else {
                    root
                };
                let mut from_args = false;
                for a in args {
                    from_args |= self.expr(a, arg_focus);
                }
                if *f == F::Resolve {
                    self.needs.add("contained", Need::Whole);
                }
                if input {
                    match f {
                        _ if picks_from_input(f) => {}
                        F::Select
                        | F::Exists
                        | F::All
                        | F::Empty
                        | F::Count
                        | F::Combine
                        | F::Iif
                        | F::Is(_)
                        | F::HasValue => {}
                        F::GetResourceKey => self.needs.add("id", Need::Whole),
                        F::Extension => self.needs.add("extension", Need::Whole),
                        F::Resolve | F::GetReferenceKey(_) => {
                            self.needs.add("reference", Need::Whole);
                        }
                        _ => self.all = true,
                    }
                }
                if from_args && !matches!(f, F::Select | F::Iif | F::Combine) {
                    self.all = true;
                }
                match f {
                    _ if picks_from_input(f) => input,
                    // Reads the root whole when it is in the input (above); gives it back.
                    F::Distinct => input,
                    F::Select | F::Iif => from_args,
                    F::Combine | F::Union => input || from_args,
                    _ => false,
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A backtick-quoted identifier: never a keyword.
    Quoted(String),
    Str(String),
    Num(String),
    DateLit(String),
    TimeLit(String),
    Percent(String),
    Dollar(String),
    Sym(&'static str),
    End,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) | Tok::Quoted(s) => format!("identifier `{s}`"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Num(s) => format!("number {s}"),
        Tok::DateLit(s) => format!("date @{s}"),
        Tok::TimeLit(s) => format!("time @T{s}"),
        Tok::Percent(s) => format!("%{s}"),
        Tok::Dollar(s) => format!("${s}"),
        Tok::Sym(s) => format!("`{s}`"),
        Tok::End => "end of expression".to_owned(),
    }
}

const SYMBOLS: [&str; 20] = [
    "<=", ">=", "!=", "!~", "{}", ".", "(", ")", "[", "]", ",", "+", "-", "*", "/", "&", "|", "=",
    "~", "<",
];

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, SyntaxError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, expected: &str, found: String| SyntaxError {
        position: src[..at].chars().count() + 1,
        expected: expected.to_owned(),
        found,
    };
    let ident_end = |mut j: usize| {
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
            j += 1;
        }
        j
    };
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if src[i..].starts_with("//") {
            i = src[i..].find('\n').map_or(bytes.len(), |n| i + n);
            continue;
        }
        if src[i..].starts_with("/*") {
            i = src[i + 2..]
                .find("*/")
                .map(|n| i + 2 + n + 2)
                .ok_or_else(|| err(i, "`*/`", "end of expression".into()))?;
            continue;
        }
        let tok = if c.is_ascii_alphabetic() || c == b'_' {
            i = ident_end(i);
            Tok::Ident(src[start..i].to_owned())
        } else if c.is_ascii_digit() {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            Tok::Num(src[start..i].to_owned())
        } else if c == b'\'' || c == b'`' {
            let (text, end) = quoted(src, i)
                .ok_or_else(|| err(i, "a closing quote", "end of expression".into()))?;
            i = end;
            if c == b'`' {
                Tok::Quoted(text)
            } else {
                Tok::Str(text)
            }
        } else if c == b'%' {
            i += 1;
            match bytes.get(i) {
                Some(b'`') | Some(b'\'') => {
                    let (text, end) = quoted(src, i)
                        .ok_or_else(|| err(i, "a closing quote", "end of expression".into()))?;
                    i = end;
                    Tok::Percent(text)
                }
                Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {
                    i = ident_end(i);
                    Tok::Percent(src[start + 1..i].to_owned())
                }
                _ => return Err(err(i, "a constant name after `%`", rest_desc(src, i))),
            }
        } else if c == b'$' {
            i = ident_end(i + 1);
            Tok::Dollar(src[start + 1..i].to_owned())
        } else if c == b'@' {
            i += 1;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || matches!(bytes[i], b'-' | b':' | b'.' | b'+'))
            {
                i += 1;
            }
            let text = &src[start + 1..i];
            if let Some(t) = text.strip_prefix('T') {
                Tok::TimeLit(t.to_owned())
            } else if text.is_empty() {
                return Err(err(start, "a date or time after `@`", rest_desc(src, i)));
            } else {
                Tok::DateLit(text.to_owned())
            }
        } else if let Some(sym) = SYMBOLS.iter().find(|s| src[i..].starts_with(**s)) {
            i += sym.len();
            Tok::Sym(sym)
        } else if c == b'>' {
            i += 1;
            Tok::Sym(">")
        } else {
            return Err(err(i, "an expression", rest_desc(src, i)));
        };
        out.push((tok, start));
    }
    out.push((Tok::End, src.len()));
    Ok(out)
}

fn rest_desc(src: &str, at: usize) -> String {
    src.get(at..)
        .and_then(|s| s.chars().next())
        .map_or_else(|| "end of expression".to_owned(), |c| format!("`{c}`"))
}

/// Reads a quoted string starting at `start` (the quote); returns its unescaped text and the
/// offset after the closing quote.
fn quoted(src: &str, start: usize) -> Option<(String, usize)> {
    let quote = src[start..].chars().next()?;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((k, ch)) = chars.next() {
        if ch == quote {
            return Some((out, start + 1 + k + 1));
        }
        if ch == '\\' {
            let (_, e) = chars.next()?;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = (0..4)
                        .filter_map(|_| chars.next().map(|(_, c)| c))
                        .collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            }
        } else {
            out.push(ch);
        }
    }
    None
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    constants: &'s [String],
    depth: usize,
}

/// Deepest nesting of parentheses, arguments and indexers the parser accepts (it recurses).
const MAX_DEPTH: usize = 128;

/// Parses `src` into a plan; `%name` resolves against `constants` (the view's constant names,
/// in order) and the built-in variables.
///
/// # Errors
/// A [`SyntaxError`] with the character position and what was expected there.
pub fn compile(src: &str, constants: &[String]) -> Result<Expr, SyntaxError> {
    let toks = lex(src)?;
    if let Some((_, at)) = toks.get(MAX_TOKENS) {
        return Err(SyntaxError {
            position: src[..*at].chars().count() + 1,
            expected: format!("an expression of at most {MAX_TOKENS} tokens"),
            found: "more".to_owned(),
        });
    }
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        constants,
        depth: 0,
    };
    let e = p.expr(0)?;
    if p.peek() != &Tok::End {
        return Err(p.error("an operator or end of expression"));
    }
    if tree_depth(&e) > MAX_DEPTH {
        return Err(SyntaxError {
            position: 1,
            expected: format!("an expression nested at most {MAX_DEPTH} deep"),
            found: "a deeper one".to_owned(),
        });
    }
    Ok(e)
}

/// Longest operator/function chain in the plan: evaluation recurses that deep.
fn tree_depth(e: &Expr) -> usize {
    1 + match e {
        Expr::Empty | Expr::Literal(_) | Expr::This | Expr::Index | Expr::Variable(_) => 0,
        Expr::Member(input, _) => input.as_deref().map_or(0, tree_depth),
        Expr::Call(input, _, args) => args
            .iter()
            .map(tree_depth)
            .chain(input.as_deref().map(tree_depth))
            .max()
            .unwrap_or(0),
        Expr::Indexer(a, b) | Expr::Binary(_, a, b) => tree_depth(a).max(tree_depth(b)),
        Expr::Negate(a) => tree_depth(a),
        Expr::RowConst(a) => tree_depth(a),
    }
}

/// Longest expression accepted, in tokens (bounds the parser's and evaluator's recursion).
const MAX_TOKENS: usize = 1000;

fn binary_op(t: &Tok) -> Option<(BinaryOp, u8)> {
    use BinaryOp::*;
    let op = match t {
        Tok::Sym(s) => match *s {
            "*" => (Mul, 10),
            "/" => (Div, 10),
            "+" => (Add, 9),
            "-" => (Sub, 9),
            "&" => (Concat, 9),
            "|" => (Union, 7),
            "<" => (Lt, 6),
            ">" => (Gt, 6),
            "<=" => (Le, 6),
            ">=" => (Ge, 6),
            "=" => (Eq, 5),
            "!=" => (Ne, 5),
            "~" => (Equiv, 5),
            "!~" => (NotEquiv, 5),
            _ => return None,
        },
        Tok::Ident(s) => match s.as_str() {
            "div" => (IntDiv, 10),
            "mod" => (Mod, 10),
            "in" => (In, 4),
            "contains" => (Contains, 4),
            "and" => (And, 3),
            "or" => (Or, 2),
            "xor" => (Xor, 2),
            "implies" => (Implies, 1),
            _ => return None,
        },
        _ => return None,
    };
    Some(op)
}

/// Precedence of `is` / `as` (between `+` and `|`).
const TYPE_OP_PREC: u8 = 8;

/// Above every binary operator: the operand of unary `-`/`+` is a single postfix term.
const UNARY_PREC: u8 = 11;

fn key(name: &str) -> Key {
    Key {
        name: name.into(),
        underscored: format!("_{name}").into(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::End, |(t, _)| t)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn error_at(&self, tok_index: usize, expected: &str) -> SyntaxError {
        let (tok, at) = self
            .toks
            .get(tok_index)
            .map_or((&Tok::End, self.src.len()), |(t, a)| (t, *a));
        SyntaxError {
            position: self.src[..at.min(self.src.len())].chars().count() + 1,
            expected: expected.to_owned(),
            found: describe(tok),
        }
    }

    fn error(&self, expected: &str) -> SyntaxError {
        self.error_at(self.pos, expected)
    }

    fn expect(&mut self, sym: &'static str) -> Result<(), SyntaxError> {
        if self.peek() == &Tok::Sym(sym) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("`{sym}`")))
        }
    }

    fn expr(&mut self, min_prec: u8) -> Result<Expr, SyntaxError> {
        self.depth += 1;
        let r = if self.depth > MAX_DEPTH {
            Err(self.error("less deeply nested expressions"))
        } else {
            self.binary_expr(min_prec)
        };
        self.depth -= 1;
        r
    }

    fn binary_expr(&mut self, min_prec: u8) -> Result<Expr, SyntaxError> {
        let mut lhs = self.unary()?;
        loop {
            let t = self.peek().clone();
            if let Tok::Ident(word) = &t
                && (word == "is" || word == "as")
                && TYPE_OP_PREC >= min_prec
            {
                self.pos += 1;
                let ty = self.type_specifier()?;
                let f = if word == "is" {
                    Function::Is(ty)
                } else {
                    Function::As(ty)
                };
                lhs = Expr::Call(Some(Box::new(lhs)), f, Vec::new());
                continue;
            }
            let Some((op, prec)) = binary_op(&t) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            let rhs = self.expr(prec + 1)?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        match self.peek() {
            Tok::Sym("-") => {
                self.pos += 1;
                let e = self.expr(UNARY_PREC)?;
                Ok(match e {
                    Expr::Literal(Literal::Integer(i)) => Expr::Literal(Literal::Integer(-i)),
                    Expr::Literal(Literal::Decimal(d)) => {
                        Expr::Literal(Literal::Decimal(Decimal::new(-d.mantissa(), d.scale())))
                    }
                    e => Expr::Negate(Box::new(e)),
                })
            }
            Tok::Sym("+") => {
                self.pos += 1;
                self.expr(UNARY_PREC)
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Result<Expr, SyntaxError> {
        let mut e = self.term()?;
        loop {
            match self.peek() {
                Tok::Sym(".") => {
                    self.pos += 1;
                    e = self.invocation(Some(e))?;
                }
                Tok::Sym("[") => {
                    self.pos += 1;
                    let index = self.expr(0)?;
                    self.expect("]")?;
                    e = Expr::Indexer(Box::new(e), Box::new(index));
                }
                _ => return Ok(e),
            }
        }
    }

    fn term(&mut self) -> Result<Expr, SyntaxError> {
        let at = self.pos;
        match self.next() {
            Tok::Str(s) => Ok(Expr::Literal(Literal::String(s))),
            Tok::Num(n) => {
                if n.contains('.') {
                    Decimal::parse(&n)
                        .map(|d| Expr::Literal(Literal::Decimal(d)))
                        .ok_or_else(|| self.error_at(at, "a decimal that fits 38 digits"))
                } else {
                    n.parse::<i64>()
                        .map(|i| Expr::Literal(Literal::Integer(i)))
                        .or_else(|_| {
                            Decimal::parse(&n)
                                .map(|d| Expr::Literal(Literal::Decimal(d)))
                                .ok_or_else(|| self.error_at(at, "a number that fits"))
                        })
                }
            }
            Tok::DateLit(d) => {
                if crate::temporal::parse_date_time(&d).is_none() {
                    return Err(self.error_at(at, "a valid date or dateTime literal"));
                }
                Ok(Expr::Literal(if d.contains('T') {
                    Literal::DateTime(d)
                } else {
                    Literal::Date(d)
                }))
            }
            Tok::TimeLit(t) => {
                if crate::temporal::parse_time(&t).is_none() {
                    return Err(self.error_at(at, "a valid time literal"));
                }
                Ok(Expr::Literal(Literal::Time(t)))
            }
            Tok::Sym("{}") => Ok(Expr::Empty),
            Tok::Sym("(") => {
                let e = self.expr(0)?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Percent(name) => self.variable(&name, at),
            Tok::Dollar(name) => match name.as_str() {
                "this" => Ok(Expr::This),
                "index" => Ok(Expr::Index),
                _ => Err(self.error_at(at, "`$this` or `$index`")),
            },
            Tok::Ident(w) if w == "true" || w == "false" => {
                Ok(Expr::Literal(Literal::Bool(w == "true")))
            }
            Tok::Ident(_) | Tok::Quoted(_) => {
                self.pos = at;
                self.invocation(None)
            }
            _ => Err(self.error_at(at, "an expression")),
        }
    }

    fn variable(&self, name: &str, at: usize) -> Result<Expr, SyntaxError> {
        let v = match name {
            "resource" | "context" => Variable::Resource,
            "rootResource" => Variable::RootResource,
            "rowIndex" => Variable::RowIndex,
            _ => match self.constants.iter().position(|c| c == name) {
                Some(i) => Variable::Constant(i),
                None => {
                    return Err(self.error_at(
                        at,
                        "a defined constant (%resource, %rootResource, %rowIndex or a view constant)",
                    ));
                }
            },
        };
        Ok(Expr::Variable(v))
    }

    fn type_specifier(&mut self) -> Result<String, SyntaxError> {
        let mut name = match self.next() {
            Tok::Ident(s) | Tok::Quoted(s) => s,
            _ => return Err(self.error_at(self.pos - 1, "a type name")),
        };
        // `FHIR.string`, `System.String`: keep the last part.
        while self.peek() == &Tok::Sym(".") {
            if let Some((Tok::Ident(s) | Tok::Quoted(s), _)) = self.toks.get(self.pos + 1) {
                name = s.clone();
                self.pos += 2;
            } else {
                break;
            }
        }
        Ok(name)
    }

    fn invocation(&mut self, input: Option<Expr>) -> Result<Expr, SyntaxError> {
        let at = self.pos;
        let name = match self.next() {
            Tok::Ident(s) | Tok::Quoted(s) => s,
            Tok::Dollar(s) if s == "this" && input.is_none() => return Ok(Expr::This),
            _ => return Err(self.error_at(at, "a member or function name")),
        };
        if self.peek() != &Tok::Sym("(") {
            return Ok(match input {
                Some(Expr::Member(base, mut keys)) => {
                    keys.push(key(&name));
                    Expr::Member(base, keys)
                }
                input => Expr::Member(input.map(Box::new), vec![key(&name)]),
            });
        }
        let input = input.map(Box::new);
        self.pos += 1;
        let takes_type = matches!(name.as_str(), "ofType" | "is" | "as" | "getReferenceKey");
        let mut args = Vec::new();
        let mut type_arg = None;
        if self.peek() != &Tok::Sym(")") {
            loop {
                if takes_type {
                    type_arg = Some(self.type_specifier()?);
                } else {
                    args.push(self.expr(0)?);
                }
                if self.peek() == &Tok::Sym(",") {
                    self.pos += 1;
                    continue;
                }
                break;
            }
        }
        self.expect(")")?;
        let n = args.len();
        let arity = |lo: usize, hi: usize| -> Result<(), SyntaxError> {
            if (lo..=hi).contains(&n) {
                Ok(())
            } else {
                let expected = if lo == hi {
                    format!("{lo} argument(s) to {name}()")
                } else {
                    format!("{lo} to {hi} arguments to {name}()")
                };
                Err(self.error_at(at, &expected))
            }
        };
        use Function as F;
        let f = match name.as_str() {
            "where" => (arity(1, 1)?, F::Where).1,
            "select" => (arity(1, 1)?, F::Select).1,
            "exists" => (arity(0, 1)?, F::Exists).1,
            "all" => (arity(1, 1)?, F::All).1,
            "empty" => (arity(0, 0)?, F::Empty).1,
            "count" => (arity(0, 0)?, F::Count).1,
            "first" => (arity(0, 0)?, F::First).1,
            "last" => (arity(0, 0)?, F::Last).1,
            "single" => (arity(0, 0)?, F::Single).1,
            "tail" => (arity(0, 0)?, F::Tail).1,
            "skip" => (arity(1, 1)?, F::Skip).1,
            "take" => (arity(1, 1)?, F::Take).1,
            "distinct" => (arity(0, 0)?, F::Distinct).1,
            "union" => (arity(1, 1)?, F::Union).1,
            "combine" => (arity(1, 1)?, F::Combine).1,
            "not" => (arity(0, 0)?, F::Not).1,
            "allTrue" => (arity(0, 0)?, F::AllTrue).1,
            "anyTrue" => (arity(0, 0)?, F::AnyTrue).1,
            "hasValue" => (arity(0, 0)?, F::HasValue).1,
            "ofType" | "is" | "as" => {
                let ty = type_arg.ok_or_else(|| self.error_at(at, "a type name argument"))?;
                match name.as_str() {
                    "ofType" => F::OfType(ty),
                    "is" => F::Is(ty),
                    _ => F::As(ty),
                }
            }
            "getReferenceKey" => F::GetReferenceKey(type_arg),
            "extension" => (arity(1, 1)?, F::Extension).1,
            "join" => (arity(0, 1)?, F::Join).1,
            "lowBoundary" => (arity(0, 1)?, F::LowBoundary).1,
            "highBoundary" => (arity(0, 1)?, F::HighBoundary).1,
            "getResourceKey" => (arity(0, 0)?, F::GetResourceKey).1,
            "resolve" => (arity(0, 0)?, F::Resolve).1,
            "iif" => (arity(2, 3)?, F::Iif).1,
            "startsWith" => (arity(1, 1)?, F::StartsWith).1,
            "endsWith" => (arity(1, 1)?, F::EndsWith).1,
            "contains" => (arity(1, 1)?, F::Contains).1,
            "substring" => (arity(1, 2)?, F::Substring).1,
            "replace" => (arity(2, 2)?, F::Replace).1,
            "upper" => (arity(0, 0)?, F::Upper).1,
            "lower" => (arity(0, 0)?, F::Lower).1,
            "length" => (arity(0, 0)?, F::Length).1,
            "trim" => (arity(0, 0)?, F::Trim).1,
            "indexOf" => (arity(1, 1)?, F::IndexOf).1,
            "toString" => (arity(0, 0)?, F::ToString).1,
            "toInteger" => (arity(0, 0)?, F::ToInteger).1,
            "toDecimal" => (arity(0, 0)?, F::ToDecimal).1,
            "toBoolean" => (arity(0, 0)?, F::ToBoolean).1,
            "convertsToInteger" => (arity(0, 0)?, F::ConvertsToInteger).1,
            "convertsToDecimal" => (arity(0, 0)?, F::ConvertsToDecimal).1,
            _ => return Err(self.error_at(at, "a supported function")),
        };
        Ok(Expr::Call(input, f, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What paths read of the root: the members they name, only the length of those they
    /// count, and everything when the root itself is used as a value.
    #[test]
    fn root_reads_name_the_members_paths_read() {
        let reads = |src: &str| {
            let mut r = RootReads::default();
            let root = r.expr(&compile(src, &["c".to_owned()]).expect(src), true);
            let mut names: Vec<String> =
                r.needs.iter().map(|(k, n)| format!("{k}:{n:?}")).collect();
            names.sort();
            (r.all || root, names.join(","))
        };
        let cases: [(&str, bool, &str); 25] = [
            ("id", false, "id:Whole"),
            ("_birthDate.extension", false, "_birthDate:Whole"),
            ("item.count()", false, "item:Count"),
            (
                "item.exists() and careTeam.empty()",
                false,
                "careTeam:Count,item:Count",
            ),
            ("item.sequence.count()", false, "item:Whole"),
            ("item.where(sequence = 1).count()", false, "item:Whole"),
            ("item.exists(sequence = 1)", false, "item:Whole"),
            // Arguments of lambdas see the input's items; the others the enclosing focus.
            (
                "identifier.where(system = 'x').value",
                false,
                "identifier:Whole",
            ),
            (
                "identifier.select(value.substring(length() - 1))",
                false,
                "identifier:Whole",
            ),
            (
                "contained.where(id = %resource.provider.reference)",
                false,
                "contained:Whole,provider:Whole",
            ),
            (
                "careTeam.provider.resolve().name",
                false,
                "careTeam:Whole,contained:Whole",
            ),
            ("getResourceKey()", false, "id:Whole"),
            ("extension('u').value", false, "extension:Whole"),
            (
                "%resource.patient.getReferenceKey(Patient)",
                false,
                "patient:Whole",
            ),
            (
                "iif(status = 'active', billablePeriod.start, {})",
                false,
                "billablePeriod:Whole,status:Whole",
            ),
            (
                "where(status = 'active').first().payment",
                false,
                "payment:Whole,status:Whole",
            ),
            ("%c", false, ""),
            // A leading type name selects the resource: the next name is what is read.
            ("Patient.name.family", false, "Patient:Whole,name:Whole"),
            ("Patient.name.count()", false, "Patient:Whole,name:Whole"),
            ("Patient", true, "Patient:Whole"),
            // The root used as a value: anything may be read.
            ("$this", true, ""),
            ("%resource = %resource", true, ""),
            ("%resource.distinct()", true, ""),
            ("id | %resource", true, "id:Whole"),
            ("%resource.toString()", true, ""),
        ];
        for (src, all, names) in cases {
            assert_eq!(reads(src), (all, names.to_owned()), "{src}");
        }
        // With a focus that is not the root, only `%resource` reaches it.
        let mut r = RootReads::default();
        let e = compile("value | %resource.id", &[]).expect("path");
        assert!(!r.expr(&e, false) && !r.all);
        assert_eq!(r.needs.need("id"), Some(Need::Whole));
        assert_eq!(r.needs.need("value"), None);
    }

    /// Only focus-free parts of lambda arguments are hoisted, the largest ones.
    #[test]
    fn row_constants_are_the_focus_free_parts_of_lambdas() {
        let hoisted = |src: &str| {
            let e = hoist_row_constants(compile(src, &[]).expect("compiles"));
            format!("{e:?}").matches("RowConst").count()
        };
        assert_eq!(
            hoisted("careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence)"),
            1
        );
        assert_eq!(hoisted("%resource.item[%rowIndex].careTeamSequence"), 0);
        assert_eq!(hoisted("item.where(sequence = $this.sequence)"), 0);
        assert_eq!(hoisted("item.where(sequence = %rowIndex)"), 0);
        assert_eq!(
            hoisted("a.where(b.exists(c = %resource.d.where(e = 1).f) and g = %resource.h)"),
            2
        );
    }

    /// Every prefix and every byte-mangled variant of real expressions either compiles or gives
    /// a located error: the parser never panics on input.
    #[test]
    fn never_panics_on_truncated_or_mangled_input() {
        let samples = [
            "extension('http://x').value.ofType(Coding).code.first()",
            "name.where(use = %c and given.exists()).family | 'é' & `weird name`",
            "iif(a > 1.50, @2020-01-02T10:00:00+02:00, @T10:00) implies {} ~ -3 div 2 mod 1",
            "'esc\\'aped\\u00e9' /* comment */ // line",
        ];
        for s in samples {
            for (i, _) in s.char_indices() {
                let _ = compile(&s[..i], &["c".to_owned()]);
                let mangled: String = s
                    .chars()
                    .enumerate()
                    .map(|(k, ch)| if k == i { '(' } else { ch })
                    .collect();
                let _ = compile(&mangled, &[]);
            }
        }
    }

    #[test]
    fn equal_row_constants_are_shared() {
        fn row_consts(e: &Expr, out: &mut Vec<Arc<Expr>>) {
            match e {
                Expr::RowConst(x) => out.push(Arc::clone(x)),
                Expr::Member(Some(x), _) | Expr::Negate(x) => row_consts(x, out),
                Expr::Call(input, _, args) => {
                    input.iter().for_each(|x| row_consts(x, out));
                    args.iter().for_each(|a| row_consts(a, out));
                }
                Expr::Indexer(a, b) | Expr::Binary(_, a, b) => {
                    row_consts(a, out);
                    row_consts(b, out);
                }
                _ => {}
            }
        }
        let mut seen = Vec::new();
        let mut shared = |src: &str| {
            let mut e = hoist_row_constants(compile(src, &[]).expect("compiles"));
            share_row_constants(&mut e, &mut seen);
            let mut found = Vec::new();
            row_consts(&e, &mut found);
            found
        };
        let a = shared("careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence).x");
        let b = shared("careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence).y");
        let c = shared("diagnosis.where(sequence in %resource.item[%rowIndex].diagnosisSequence)");
        assert_eq!((a.len(), b.len(), c.len()), (1, 1, 1));
        assert!(
            Arc::ptr_eq(&a[0], &b[0]),
            "equal row constants are one expression"
        );
        assert!(!Arc::ptr_eq(&a[0], &c[0]), "different ones stay apart");
        // Equal by value but written differently: `1.0 + 0` is 1.0, `1.00 + 0` is 1.00.
        let d = shared("name.select(1.0 + 0)");
        let e = shared("name.select(1.00 + 0)");
        let f = shared("name.select(1.0 + 0)");
        assert_eq!((d.len(), e.len(), f.len()), (1, 1, 1));
        assert!(
            !Arc::ptr_eq(&d[0], &e[0]),
            "decimals of another scale stay apart"
        );
        assert!(Arc::ptr_eq(&d[0], &f[0]));
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn precedence_and_errors() {
        let e = compile("a = 1 or b and c", &[]).expect("parses");
        assert!(matches!(e, Expr::Binary(BinaryOp::Or, _, _)));
        let e = compile("1 + 2 * 3", &[]).expect("parses");
        assert!(matches!(e, Expr::Binary(BinaryOp::Add, _, _)));
        let err = compile("name.where(use = ", &[]).expect_err("incomplete");
        assert_eq!(err.position, 18);
        assert_eq!(err.found, "end of expression");
        let err = compile("@@", &[]).expect_err("bad");
        assert_eq!(err.position, 1);
        let err = compile("name.frobnicate()", &[]).expect_err("unknown fn");
        assert_eq!(
            (err.position, err.expected.as_str()),
            (6, "a supported function")
        );
        assert!(compile("%nope", &[]).is_err());
        assert!(compile("%x.y", &["x".to_owned()]).is_ok());
        assert!(compile("first(1)", &[]).is_err());
        let deep = format!("{}1{}", "(".repeat(300), ")".repeat(300));
        assert_eq!(
            compile(&deep, &[]).expect_err("too deep").expected,
            "less deeply nested expressions"
        );
        assert!(compile(&"-".repeat(10_000), &[]).is_err());
        assert!(compile(&vec!["1"; 400].join(" + "), &[]).is_err());
        assert!(compile(&format!("a{}", ".first()".repeat(200)), &[]).is_err());
        assert!(compile(&vec!["1"; 100].join(" + "), &[]).is_ok());
        assert_eq!(compile("-2 * 3", &[]), compile("(-2) * 3", &[]));
    }
}

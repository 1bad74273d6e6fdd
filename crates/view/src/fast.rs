//! Compiled paths: the commonest shapes of column, `where` and `forEach` expressions, walked on
//! the resource directly.
//!
//! The general evaluator ([`crate::eval`]) interprets an [`Expr`] tree: every member step,
//! `where` and criterion goes through a dispatch on the expression, a callback and an 80-byte
//! [`Item`]. Most paths in real views are much simpler than what it covers: member chains,
//! `where` with `member = 'literal'` criteria joined by `and`/`or`, `exists()`, `first()`,
//! `extension('url')`, an index, `sequence in %resource.item[%rowIndex].careTeamSequence`, and
//! `getReferenceKey([Type])` (the beneficiary columns, `[%resource.]patient.getReferenceKey(Patient)`
//! and Coverage's `beneficiary.getReferenceKey(Patient)`).
//! [`Fast::compile`] turns such an expression into a flat list of [`Step`]s once, when the view
//! loads; [`Fast::eval`] walks them with plain loops over the document's nodes and builds items
//! only for the values it returns. Its one state is the row's: `extension('url')` looks an
//! object's extensions up through the row's list of them ([`Env::ext_index`]), which a walk
//! that bails leaves for the general evaluator's lookups in the same row.
//!
//! A column that holds one value takes its cell from [`Fast::cell`]: a path's walk keeps the
//! first node it reaches (no collection of items) and, once the walk is over and no second
//! node came, converts that node to the column's type; the other plans give their collection
//! and its one value is converted. A second value gives the column back to the collection's
//! way ([`Fast::eval`], then the view's conversion), which decides what several values make.
//!
//! The answer is always the general evaluator's. Where a document leaves the simple shape (a
//! missing member with a choice-type or `_name` twin, a `null` inside an array, a member of a
//! primitive, a criterion comparing anything but one string or integer with a literal),
//! [`Fast::eval`] and [`Fast::cell`] return `None` and the caller evaluates the expression the
//! general way. A compiled path never reports an error of its own; [`Fast::cell`]'s are the
//! conversion's, the same the view's conversion of a collection reports.

use crate::cell::{Cell as CellValue, ColumnType, prim_to_cell, to_cell};
use crate::eval::{
    Coll, Env, Ext, ExtIndex, Item, NO_INDEX, NodeItem, left_decides, literal, node_prim,
    reference_key, replace, three_valued, variant,
};
use crate::fhirpath::{BinaryOp, Expr, Function, Key, Literal, Variable};
use crate::node::{Node, NodeKind};
use claimline_model::same_text;
use std::cell::{Cell, RefCell};

/// Longest compiled step list (their counters live in a fixed array).
const MAX_STEPS: usize = 16;
/// Most values of `%resource.item[%rowIndex].careTeamSequence` held for an `in` criterion.
const MAX_HAY: usize = 8;

/// Where a compiled path starts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Src {
    /// The focus (`$this`; a member path without input).
    Focus,
    /// `%resource` / `%rootResource`.
    Resource,
}

/// Which item of its input an indexer takes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum At {
    Literal(i64),
    RowIndex,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `.name`, arrays flattened.
    Member(Key),
    /// `.where(criterion)`.
    Where(Crit),
    /// `.extension('url')`.
    Extension(Box<str>),
    /// `.first()`.
    First,
    /// `[i]`.
    Index(At),
}

/// A compiled path: a start and its steps.
#[derive(Debug, Clone, PartialEq)]
struct Path {
    src: Src,
    steps: Vec<Step>,
}

/// A string or integer literal a member is compared with.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(Box<str>),
    Int(i64),
}

/// A `where` criterion, with FHIRPath's three-valued answer.
#[derive(Debug, Clone, PartialEq)]
enum Crit {
    /// `name = literal` (`ne`: `!=`) on a member of the item whose name does not start with a
    /// capital (which would be a type name).
    Cmp { key: Key, lit: Lit, ne: bool },
    /// `path = 'literal'` (`ne`: `!=`) for any other path.
    PathEq { path: Path, lit: Box<str>, ne: bool },
    /// `and`, `or`, `xor`, `implies`.
    Logic(BinaryOp, Box<Crit>, Box<Crit>),
    /// `path.exists()` (`want`: true) or `path.empty()` (false), the path starting at the item.
    Exists(Path, bool),
    /// `name in <row constant>`: an integer member of the item among the integers the path gives.
    In { key: Key, hay: Path },
}

/// A compiled expression: what [`Fast::compile`] accepts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fast(Plan);

#[derive(Debug, Clone, PartialEq)]
enum Plan {
    /// The items of a path.
    Items(Path),
    /// `path.exists()` (true) / `path.empty()` (false): one boolean.
    Exists(Path, bool),
    /// A literal.
    Lit(Literal),
    /// `(plan).first()` on what is not a path (a path takes `first()` as a step).
    First(Box<Plan>),
    /// `iif(criterion, then, otherwise)` on the focus (no `otherwise`: empty).
    Iif(Crit, Box<Plan>, Option<Box<Plan>>),
    /// `(plan).replace('pattern', 'substitution')`.
    Replace(Box<Plan>, Box<str>, Box<str>),
    /// `path.getReferenceKey(Type)` (no type: any): the key of each reference the path reaches.
    RefKey(Path, Option<Box<str>>),
}

/// What a step's consumer says.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ctl {
    /// More items, please.
    Go,
    /// No more items of this walk.
    Stop,
    /// The document left the compiled shape: evaluate the general way.
    Bail,
}

/// A node reached by a walk. A primitive reached as `parent[key]` (element `index`) carries
/// where its `_key` twin would be, as the general evaluator's items do.
#[derive(Clone, Copy)]
struct Pos<'a, N> {
    node: N,
    from: Option<(N, &'a str, u32)>,
}

impl<'a, N: Node<'a>> Pos<'a, N> {
    fn plain(node: N) -> Self {
        Pos { node, from: None }
    }

    /// The item the general evaluator would have produced for this node.
    fn item(self) -> Item<'a, N> {
        match (self.from, self.node.kind()) {
            (Some((parent, key, index)), kind)
                if !matches!(kind, NodeKind::Object | NodeKind::Array) =>
            {
                Item::Node(NodeItem {
                    node: self.node,
                    tag: "",
                    ext: Ext::Sibling { parent, key, index },
                })
            }
            _ => Item::node(self.node),
        }
    }
}

fn lower_key(k: &Key) -> bool {
    !k.name.starts_with(|c: char| c.is_ascii_uppercase())
}

impl Path {
    /// The path `e` is, if it is one of the compiled shapes.
    fn compile(e: &Expr) -> Option<Path> {
        let mut p = match e {
            Expr::This => Path {
                src: Src::Focus,
                steps: Vec::new(),
            },
            Expr::Variable(Variable::Resource | Variable::RootResource) => Path {
                src: Src::Resource,
                steps: Vec::new(),
            },
            // `Patient.name`: a leading type name is a check the general path makes.
            Expr::Member(None, keys) if keys.first().is_some_and(lower_key) => Path {
                src: Src::Focus,
                steps: keys.iter().cloned().map(Step::Member).collect(),
            },
            Expr::Member(Some(input), keys) => {
                let mut p = Path::compile(input)?;
                p.steps.extend(keys.iter().cloned().map(Step::Member));
                p
            }
            Expr::Call(input, f, args) => {
                let mut p = match input {
                    Some(i) => Path::compile(i)?,
                    None => Path {
                        src: Src::Focus,
                        steps: Vec::new(),
                    },
                };
                let step = match (f, args.as_slice()) {
                    (Function::Where, [crit]) => Step::Where(Crit::compile(crit)?),
                    (Function::First, []) => Step::First,
                    (Function::Extension, [Expr::Literal(Literal::String(url))]) => {
                        Step::Extension(url.as_str().into())
                    }
                    _ => return None,
                };
                p.steps.push(step);
                p
            }
            Expr::Indexer(input, idx) => {
                let at = match &**idx {
                    Expr::Literal(Literal::Integer(i)) => At::Literal(*i),
                    Expr::Variable(Variable::RowIndex) => At::RowIndex,
                    _ => return None,
                };
                let mut p = Path::compile(input)?;
                p.steps.push(Step::Index(at));
                p
            }
            // A row constant compiles to its path, walked where it is used (an `in` haystack
            // once per evaluation, see `Cx::hay`): the same value as the general evaluator's.
            Expr::RowConst(inner) => Path::compile(inner)?,
            _ => return None,
        };
        (p.steps.len() <= MAX_STEPS).then(|| {
            p.steps.shrink_to_fit();
            p
        })
    }

    /// The path of `input.exists(args)` / `input.empty(args)`: the input, then a `where` for
    /// the criterion if there is one.
    fn tested(input: &Expr, args: &[Expr]) -> Option<Path> {
        let mut p = Path::compile(input)?;
        match args {
            [] => {}
            [crit] => p.steps.push(Step::Where(Crit::compile(crit)?)),
            _ => return None,
        }
        (p.steps.len() <= MAX_STEPS).then_some(p)
    }
}

impl Crit {
    fn compile(e: &Expr) -> Option<Crit> {
        Some(match e {
            Expr::Binary(op @ (BinaryOp::Eq | BinaryOp::Ne), a, b) => {
                let key = match &**a {
                    Expr::Member(None, keys) if keys.len() == 1 => &keys[0],
                    _ => {
                        let Expr::Literal(Literal::String(lit)) = &**b else {
                            return None;
                        };
                        return Some(Crit::PathEq {
                            path: Path::compile(a)?,
                            lit: lit.as_str().into(),
                            ne: *op == BinaryOp::Ne,
                        });
                    }
                };
                if !lower_key(key) {
                    return None;
                }
                let lit = match &**b {
                    Expr::Literal(Literal::String(s)) => Lit::Str(s.as_str().into()),
                    Expr::Literal(Literal::Integer(i)) => Lit::Int(*i),
                    _ => return None,
                };
                Crit::Cmp {
                    key: key.clone(),
                    lit,
                    ne: *op == BinaryOp::Ne,
                }
            }
            Expr::Binary(
                op @ (BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Implies),
                a,
                b,
            ) => Crit::Logic(
                *op,
                Box::new(Crit::compile(a)?),
                Box::new(Crit::compile(b)?),
            ),
            Expr::Binary(BinaryOp::In, a, b) => {
                let (Expr::Member(None, keys), Expr::RowConst(hay)) = (&**a, &**b) else {
                    return None;
                };
                let [key] = keys.as_slice() else {
                    return None;
                };
                let hay = Path::compile(hay)?;
                if !lower_key(key) || hay.src != Src::Resource {
                    return None;
                }
                Crit::In {
                    key: key.clone(),
                    hay,
                }
            }
            Expr::Call(Some(input), f @ (Function::Exists | Function::Empty), args) => {
                Crit::Exists(Path::tested(input, args)?, *f == Function::Exists)
            }
            _ => return None,
        })
    }
}

impl Plan {
    fn compile(e: &Expr) -> Option<Plan> {
        if let Some(p) = Path::compile(e) {
            return Some(Plan::Items(p));
        }
        Some(match e {
            Expr::Call(Some(input), f @ (Function::Exists | Function::Empty), args) => {
                Plan::Exists(Path::tested(input, args)?, *f == Function::Exists)
            }
            Expr::Literal(l @ (Literal::String(_) | Literal::Integer(_) | Literal::Bool(_))) => {
                Plan::Lit(l.clone())
            }
            Expr::Call(Some(input), Function::First, args) if args.is_empty() => {
                Plan::First(Box::new(Plan::compile(input)?))
            }
            // `iif` on the focus: its arguments see the focus.
            Expr::Call(None, Function::Iif, args) => match args.as_slice() {
                [c, t] => Plan::Iif(Crit::compile(c)?, Box::new(Plan::compile(t)?), None),
                [c, t, o] => Plan::Iif(
                    Crit::compile(c)?,
                    Box::new(Plan::compile(t)?),
                    Some(Box::new(Plan::compile(o)?)),
                ),
                _ => return None,
            },
            Expr::Call(Some(input), Function::GetReferenceKey(ty), args) if args.is_empty() => {
                Plan::RefKey(Path::compile(input)?, ty.as_deref().map(Into::into))
            }
            Expr::Call(Some(input), Function::Replace, args) => match args.as_slice() {
                [
                    Expr::Literal(Literal::String(pat)),
                    Expr::Literal(Literal::String(sub)),
                ] => Plan::Replace(
                    Box::new(Plan::compile(input)?),
                    pat.as_str().into(),
                    sub.as_str().into(),
                ),
                _ => return None,
            },
            _ => return None,
        })
    }
}

impl Fast {
    /// The compiled form of `e`, if it has one of the shapes this module covers.
    pub(crate) fn compile(e: &Expr) -> Option<Fast> {
        Plan::compile(e).map(Fast)
    }

    /// The value of the expression with `focus` as `$this`, or `None` when the document calls
    /// for the general evaluator (which then gives the answer, or the error).
    pub(crate) fn eval<'a, N: Node<'a>>(
        &'a self,
        focus: &[Item<'a, N>],
        env: &Env<'a, N>,
    ) -> Option<Coll<'a, N>> {
        let (cx, focus) = Cx::at(focus, env)?;
        cx.plan(&self.0, focus)
    }

    /// The cell of a column that holds one value (not `collection`), with `focus` as `$this`:
    /// NULL when the expression gives nothing, the value converted to `ty` when it gives one
    /// (`Err`: the reason it does not convert, a row error). `None` when the expression gives
    /// more than one value or the document calls for the general evaluator: the caller then
    /// takes the collection's way, which decides (one value repeated, an error, …).
    pub(crate) fn cell<'a, N: Node<'a>>(
        &'a self,
        focus: &Item<'a, N>,
        env: &Env<'a, N>,
        ty: ColumnType,
    ) -> Option<Result<CellValue, String>> {
        let (cx, focus) = Cx::at(std::slice::from_ref(focus), env)?;
        match &self.0 {
            Plan::Items(p) => {
                let mut first = None;
                let mut many = false;
                let r = cx.walk(p, focus, &mut |pos| {
                    if first.is_some() {
                        many = true;
                        return Ctl::Stop;
                    }
                    first = Some(pos);
                    Ctl::Go
                });
                if r == Ctl::Bail || many {
                    return None;
                }
                // A node reached by a walk is a value, not a value-less primitive's twin (the
                // walk bails on those): its primitive is the item's the general way makes.
                Some(first.map_or(Ok(CellValue::Null), |pos| {
                    prim_to_cell(node_prim(pos.node, ""), ty)
                }))
            }
            plan => match cx.plan(plan, focus)?.as_slice() {
                [] => Some(Ok(CellValue::Null)),
                [one] => Some(to_cell(one, ty)),
                _ => None,
            },
        }
    }
}

/// What a walk can see besides its start.
struct Cx<'e, 'a, N> {
    resource: N,
    row_index: i64,
    /// The integers of the last `in` haystack walked: a haystack starts at `%resource` and may
    /// read `%rowIndex`, both fixed for one evaluation, so `sequence in %resource.item[%rowIndex]
    /// .careTeamSequence` walks it once, not once per `careTeam` element (a criterion with two
    /// haystacks walks them again when they alternate).
    hay: Cell<Option<Hay>>,
    /// The row's extensions by url, per object ([`Env::ext_index`]).
    exts: &'e RefCell<Vec<ExtIndex<'a, N>>>,
}

/// A walked `in` haystack: which path (its address), and its integers.
#[derive(Clone, Copy)]
struct Hay {
    path: *const Path,
    len: usize,
    values: [i64; MAX_HAY],
}

impl<'e, 'a, N: Node<'a>> Cx<'e, 'a, N> {
    /// A walk's context in `env`'s row, and its start: `focus` when it is one plain node (a
    /// resource or an element of one); `None` otherwise (the general evaluator's business).
    fn at(focus: &[Item<'a, N>], env: &'e Env<'a, N>) -> Option<(Self, N)> {
        let node = match focus {
            [Item::Node(n)] if matches!(n.ext, Ext::None) && n.tag.is_empty() => n.node,
            _ => return None,
        };
        let cx = Cx {
            resource: env.resource,
            row_index: env.row_index,
            hay: Cell::new(None),
            exts: &env.ext_index,
        };
        Some((cx, node))
    }
}

impl<'a, N: Node<'a>> Cx<'_, 'a, N> {
    /// The value of `plan` with `focus` as `$this`; `None`: bail.
    fn plan(&self, plan: &'a Plan, focus: N) -> Option<Coll<'a, N>> {
        match plan {
            Plan::Items(p) => {
                let mut out = Coll::Empty;
                let r = self.walk(p, focus, &mut |pos| {
                    out.push(pos.item());
                    Ctl::Go
                });
                (r != Ctl::Bail).then_some(out)
            }
            Plan::Exists(p, want) => {
                let any = self.any(p, focus)?;
                Some(Coll::one(Item::Bool(any == *want)))
            }
            Plan::Lit(l) => Some(Coll::one(literal(l))),
            Plan::First(inner) => Some(match self.plan(inner, focus)? {
                Coll::Many(v) => v.into_iter().next().map_or(Coll::Empty, Coll::one),
                one => one,
            }),
            Plan::Iif(crit, then, otherwise) => {
                if self.truth(crit, Pos::plain(focus))? == Some(true) {
                    self.plan(then, focus)
                } else {
                    match otherwise {
                        Some(o) => self.plan(o, focus),
                        None => Some(Coll::Empty),
                    }
                }
            }
            // The general path's own function: an error (many values, an object) bails.
            Plan::Replace(inner, pat, sub) => {
                replace(self.plan(inner, focus)?.as_slice(), pat, sub).ok()
            }
            // As the general evaluator: every node reached, its `reference` text if it has one
            // (an element that is no object has none).
            Plan::RefKey(p, ty) => {
                let mut out = Coll::Empty;
                let r = self.walk(p, focus, &mut |pos| {
                    let reference = pos.node.get("reference").and_then(|v| v.as_str());
                    if let Some(key) = reference.and_then(|r| reference_key(r, ty.as_deref())) {
                        out.push(Item::Str(std::borrow::Cow::Borrowed(key)));
                    }
                    Ctl::Go
                });
                (r != Ctl::Bail).then_some(out)
            }
        }
    }

    /// Hands every node `p` reaches from `focus` to `out`.
    fn walk<F: FnMut(Pos<'a, N>) -> Ctl>(&self, p: &'a Path, focus: N, out: &mut F) -> Ctl {
        let start = match p.src {
            Src::Focus => focus,
            Src::Resource => self.resource,
        };
        let mut counts = [0u32; MAX_STEPS];
        self.steps(&p.steps, 0, Pos::plain(start), &mut counts, out)
    }

    /// Whether `p` reaches anything from `focus`; `None`: bail.
    fn any(&self, p: &'a Path, focus: N) -> Option<bool> {
        let mut any = false;
        let r = self.walk(p, focus, &mut |_| {
            any = true;
            Ctl::Stop
        });
        (r != Ctl::Bail).then_some(any)
    }

    fn steps<F: FnMut(Pos<'a, N>) -> Ctl>(
        &self,
        steps: &'a [Step],
        mut i: usize,
        mut pos: Pos<'a, N>,
        counts: &mut [u32; MAX_STEPS],
        out: &mut F,
    ) -> Ctl {
        // A step with one way on (a member that is not an array, a `where` that keeps the item)
        // goes on in this loop rather than by a call: most steps of a path are such.
        loop {
            let Some(step) = steps.get(i) else {
                return out(pos);
            };
            match step {
                Step::Member(key) => {
                    let Some(obj) = object(pos) else {
                        return Ctl::Bail;
                    };
                    let Some((k, v)) = find(obj, key) else {
                        return Ctl::Bail;
                    };
                    let Some(v) = v else {
                        return Ctl::Go;
                    };
                    match v.kind() {
                        NodeKind::Array => {
                            for (index, e) in v.items().enumerate() {
                                if e.kind() == NodeKind::Null {
                                    // `[null, …]` with the value's extension in `_key[i]`.
                                    return Ctl::Bail;
                                }
                                let child = Pos {
                                    node: e,
                                    from: Some((obj, k, index as u32)),
                                };
                                match self.steps(steps, i + 1, child, counts, out) {
                                    Ctl::Go => {}
                                    stop => return stop,
                                }
                            }
                            return Ctl::Go;
                        }
                        NodeKind::Null => return Ctl::Go,
                        _ => {
                            pos = Pos {
                                node: v,
                                from: Some((obj, k, NO_INDEX)),
                            };
                            i += 1;
                        }
                    }
                }
                Step::Where(crit) => match self.truth(crit, pos) {
                    None => return Ctl::Bail,
                    Some(Some(true)) => i += 1,
                    Some(_) => return Ctl::Go,
                },
                Step::Extension(url) => {
                    let Some(obj) = object(pos) else {
                        return Ctl::Bail;
                    };
                    let stop = ExtIndex::each(self.exts, obj, url, |e| {
                        match self.steps(steps, i + 1, Pos::plain(e), counts, out) {
                            Ctl::Go => None,
                            stop => Some(stop),
                        }
                    });
                    return stop.unwrap_or(Ctl::Go);
                }
                Step::First => {
                    return match self.steps(steps, i + 1, pos, counts, out) {
                        Ctl::Bail => Ctl::Bail,
                        _ => Ctl::Stop,
                    };
                }
                Step::Index(at) => {
                    let want = match at {
                        At::Literal(n) => *n,
                        At::RowIndex => self.row_index,
                    };
                    let seen = i64::from(counts[i]);
                    counts[i] = counts[i].saturating_add(1);
                    return if seen < want {
                        Ctl::Go
                    } else if seen == want {
                        match self.steps(steps, i + 1, pos, counts, out) {
                            Ctl::Bail => Ctl::Bail,
                            _ => Ctl::Stop,
                        }
                    } else {
                        Ctl::Stop
                    };
                }
            }
        }
    }

    /// The integers `hay` gives (at most [`MAX_HAY`]); `None` (bail) for anything else.
    fn hay_values(&self, hay: &'a Path) -> Option<Hay> {
        let mut values = [0i64; MAX_HAY];
        let mut n = 0;
        let mut fits = true;
        // A haystack starts at `%resource` (see `Crit::compile`): the focus given is unused.
        let r = self.walk(hay, self.resource, &mut |p| match p.node.as_i64() {
            Some(x) if n < MAX_HAY => {
                values[n] = x;
                n += 1;
                Ctl::Go
            }
            _ => {
                fits = false;
                Ctl::Stop
            }
        });
        (r != Ctl::Bail && fits).then_some(Hay {
            path: hay,
            len: n,
            values,
        })
    }

    /// The criterion's truth on `pos` (`Some(None)`: empty, which `where` does not keep);
    /// `None`: bail.
    fn truth(&self, crit: &'a Crit, pos: Pos<'a, N>) -> Option<Option<bool>> {
        match crit {
            Crit::Cmp { key, lit, ne } => {
                let obj = object(pos)?;
                let (_, v) = find(obj, key)?;
                let Some(v) = v else {
                    return Some(None);
                };
                let eq = match (v.kind(), lit) {
                    (NodeKind::String(s), Lit::Str(l)) => same_text(s.as_bytes(), l.as_bytes()),
                    (NodeKind::Number, Lit::Int(l)) => v.as_i64()? == *l,
                    _ => return None,
                };
                Some(Some(eq != *ne))
            }
            // As the general path: no value is empty, several are unequal to one literal.
            Crit::PathEq { path, lit, ne } => {
                let start = object(pos)?;
                let (mut n, mut eq, mut other) = (0, false, false);
                let r = self.walk(path, start, &mut |p| {
                    n += 1;
                    if n > 1 {
                        return Ctl::Stop;
                    }
                    match p.node.kind() {
                        NodeKind::String(s) => eq = same_text(s.as_bytes(), lit.as_bytes()),
                        _ => other = true,
                    }
                    Ctl::Go
                });
                match (r, n) {
                    (Ctl::Bail, _) => None,
                    (_, 0) => Some(None),
                    (_, 1) if other => None,
                    (_, 1) => Some(Some(eq != *ne)),
                    _ => Some(Some(*ne)),
                }
            }
            Crit::Logic(op, a, b) => {
                let x = self.truth(a, pos)?;
                if let Some(decided) = left_decides(*op, x) {
                    return Some(decided);
                }
                let y = self.truth(b, pos)?;
                Some(three_valued(*op, x, y))
            }
            Crit::Exists(p, want) => {
                let start = object(pos)?;
                Some(Some(self.any(p, start)? == *want))
            }
            Crit::In { key, hay } => {
                let obj = object(pos)?;
                let (_, v) = find(obj, key)?;
                // An empty needle, or one that is not a single integer: the general path.
                let needle = v?.as_i64()?;
                let hay = match self.hay.get() {
                    Some(h) if std::ptr::eq(h.path, hay) => h,
                    _ => {
                        let h = self.hay_values(hay)?;
                        self.hay.set(Some(h));
                        h
                    }
                };
                Some(Some(hay.values[..hay.len].contains(&needle)))
            }
        }
    }
}

/// The object at `pos`, if it is one (a member of a primitive reads its `_name` twin: the
/// general path's business).
fn object<'a, N: Node<'a>>(pos: Pos<'a, N>) -> Option<N> {
    (pos.node.kind() == NodeKind::Object).then_some(pos.node)
}

/// Member `key` of `obj` as the general evaluator finds it: `Some((key, Some(value)))` for the
/// exact key (the first one), `Some((_, None))` when neither it nor a choice-type variant
/// (`valueQuantity` for `value`) nor a `_key` twin is there, `None` (bail) otherwise.
///
/// Inlined into every step that looks a member up: most lookups find their key, and a call
/// for each cost more than the search. The rarer miss is [`missing`], out of line.
#[inline(always)]
fn find<'a, N: Node<'a>>(obj: N, key: &Key) -> Option<(&'a str, Option<N>)> {
    match obj.get_entry(&key.name) {
        Some((k, v)) => Some((k, Some(v))),
        None => missing(obj, key),
    }
}

/// [`find`] for a key `obj` does not hold: absent, unless a variant or twin is there (bail).
#[cold]
#[inline(never)]
fn missing<'a, N: Node<'a>>(obj: N, key: &Key) -> Option<(&'a str, Option<N>)> {
    if obj.entries().any(|(k, _)| variant(k, &key.name).is_some()) {
        None
    } else {
        Some(("", None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{EXT_TRACKED, Listing, eval};
    use crate::fhirpath::{compile, hoist_row_constants};
    use crate::view::{Rows, ViewDefinition};
    use claimline_model::text_fingerprint;
    use claimline_ndjson::LineParser;

    /// `expr` on `resource` (the focus) at `%rowIndex` `row`: the compiled answer (`None`: it
    /// bailed) and the general evaluator's, as debug text.
    fn both(resource: &str, expr: &str, row: i64) -> (Option<String>, String) {
        let e = hoist_row_constants(compile(expr, &[]).expect("valid FHIRPath"));
        let fast = Fast::compile(&e).unwrap_or_else(|| panic!("`{expr}` compiles"));
        let doc: serde_json::Value = serde_json::from_str(resource).expect("test JSON");
        let env = Env::new(&doc, &[], row);
        let focus = [Item::node(&doc)];
        let general = match eval(&e, &focus, None, &env) {
            Ok(c) => format!("{:?}", c.as_slice()),
            Err(err) => format!("error: {}", err.0),
        };
        let compiled = fast
            .eval(&focus, &env)
            .map(|c| format!("{:?}", c.as_slice()));
        // The tape gives the same answers as serde's values.
        let mut parser = LineParser::new();
        parser
            .parse(resource.as_bytes(), |d| {
                let root = d.root();
                let env = Env::new(root, &[], row);
                let focus = [Item::node(root)];
                let g = eval(&e, &focus, None, &env);
                let f = fast.eval(&focus, &env);
                assert_eq!(f.is_some(), compiled.is_some(), "{expr}: bails alike");
                if let (Some(f), Ok(g)) = (f, g) {
                    assert_eq!(shapes(&f), shapes(&g), "{expr} on the tape");
                }
            })
            .expect("test JSON parses");
        (compiled, general)
    }

    /// Each item's value, choice tag and where its extensions are: what the general
    /// evaluator's items hold besides the node itself.
    fn shapes<'a, N: Node<'a>>(c: &Coll<'a, N>) -> Vec<String> {
        c.iter()
            .map(|i| match i {
                Item::Node(n) => {
                    let ext = match n.ext {
                        Ext::None => "none".to_owned(),
                        Ext::Only => "only".to_owned(),
                        Ext::Sibling { key, index, .. } => format!("{key}[{index}]"),
                    };
                    format!("{:?} {} {ext} {:?}", i.prim(), n.tag, n.node.kind())
                }
                other => format!("{:?}", other.prim()),
            })
            .collect()
    }

    const EOB: &str = r#"{"resourceType":"ExplanationOfBenefit","id":"e1",
        "identifier":[{"system":"s/clm_id","value":"9"},{"system":"s/grp","value":"7"}],
        "type":{"coding":[{"system":"t","code":"CARRIER"},{"code":"x"}]},
        "status":"active","_status":{"extension":[{"url":"u","valueString":"s"}]},
        "careTeam":[{"sequence":1,"role":{"coding":[{"code":"rendering"}]},
                     "extension":[{"url":"a","valueCoding":{"code":"A1"}}]},
                    {"sequence":2,"role":{"coding":[{"code":"referring"}]}},
                    {"sequence":3}],
        "item":[{"sequence":1,"careTeamSequence":[2,3],
                 "adjudication":[{"category":{"coding":[{"code":"a"},{"code":"b"}]},"amount":{"value":1.50}},
                                 {"category":{"coding":[{"code":"c"}]},"amount":{"value":2}}]},
                {"sequence":2,"careTeamSequence":[1]}],
        "total":[{"amount":{"value":3}}]}"#;

    #[test]
    fn compiled_paths_give_the_general_answer() {
        let cases = [
            ("identifier.where(system = 's/clm_id').value", 0),
            ("identifier.where(system != 's/clm_id').value.first()", 0),
            ("(identifier.where(system = 's/none').value).first()", 0),
            (
                "type.coding.where(system = 't' and code = 'CARRIER').exists()",
                0,
            ),
            ("type.coding.where(system = 't' or code = 'x').code", 0),
            ("type.coding.where(code = 'x' xor system = 't').code", 0),
            (
                "type.coding.where(system = 'zz' implies code = 'x').code",
                0,
            ),
            ("type.coding.where(system = 't').empty()", 0),
            ("type.coding.exists(code = 'x')", 0),
            ("status", 0),
            ("careTeam.where(sequence = 2).role.coding.code", 0),
            (
                "careTeam.where(role.coding.where(code = 'rendering').exists()).sequence",
                0,
            ),
            ("careTeam.extension('a').valueCoding.code", 0),
            (
                "careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence).sequence",
                0,
            ),
            (
                "careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence).sequence",
                1,
            ),
            (
                "careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence).sequence",
                5,
            ),
            // Two haystacks in one criterion: the cache holds the last one walked and tells them
            // apart (alternating ones are walked again); `item[0]`'s holds 2 and 3, row 1's 1.
            (
                "careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence or sequence in %resource.item[0].careTeamSequence).sequence",
                1,
            ),
            (
                "careTeam.where(sequence in %resource.item[0].careTeamSequence and sequence in %resource.item[%rowIndex].careTeamSequence).sequence",
                1,
            ),
            ("item[1].sequence", 0),
            ("item[-1].sequence", 0),
            (
                "item.adjudication.where(category.coding.where(code = 'b').exists()).amount.value",
                0,
            ),
            ("item.adjudication.amount.value.first()", 0),
            ("%resource.total.amount.value", 0),
            ("item.first().careTeamSequence", 0),
            ("missing.where(code = 'x').exists()", 0),
            ("careTeam.where(nothing = 'x').sequence", 0),
            ("iif(status.exists(), status, 'none')", 0),
            ("iif(missing.exists(), status, %resource.id)", 0),
            ("iif(status = 'active', 1, 0)", 0),
            ("iif(missing = 'x', true)", 0),
            ("(identifier.value.first()).replace('9', '.9')", 0),
            (
                "(iif(type.coding.where(code = 'x').exists(), 'X', 'Y')).first()",
                0,
            ),
            ("(identifier.value).first()", 0),
            ("type.where(coding.code = 'x').coding.system", 0),
            ("type.where(coding.system = 't').coding.code", 0),
            ("type.where(coding.system != 'zz').coding.code", 0),
            ("careTeam.where(role.coding.code = 'referring').sequence", 0),
            ("iif(%resource.status = 'active', '1', '0')", 0),
        ];
        for (expr, row) in cases {
            let (fast, general) = both(EOB, expr, row);
            assert_eq!(
                fast.as_deref(),
                Some(general.as_str()),
                "{expr} at row {row}"
            );
        }
    }

    /// `getReferenceKey` compiled gives the general evaluator's keys: of the type asked or of
    /// any, a versioned reference, references that give no key (contained, a URN, a lowercase
    /// type, an empty id, a number), an element without `reference`, a primitive and an array
    /// of references reached by the path, after a `where` and a `first()`, and a path that
    /// reaches nothing. (Where the walk bails: `documents_outside_the_compiled_shape_...`.)
    #[test]
    fn reference_keys_compiled_give_the_general_answer() {
        let doc = r##"{"resourceType":"ExplanationOfBenefit","id":"e2",
            "patient":{"reference":"Patient/-10000000000001"},
            "provider":{"reference":"Organization/9/_history/3"},
            "referral":{"display":"no reference"},
            "insurer":{"reference":"#contained-1"},
            "facility":{"reference":"urn:uuid:1234"},
            "enterer":{"reference":"patient/7"},
            "prescription":{"reference":"Patient/"},
            "originalPrescription":{"reference":7},
            "careTeam":[{"provider":{"reference":"Practitioner/1"}},
                        {"provider":{"reference":"Practitioner/2?x=y"}},
                        {"provider":{}},
                        {"sequence":4}],
            "status":"active"}"##;
        let cases = [
            "patient.getReferenceKey(Patient)",
            "%resource.patient.getReferenceKey(Patient)",
            "patient.getReferenceKey(Organization)",
            "patient.getReferenceKey()",
            "provider.getReferenceKey(Organization)",
            "provider.getReferenceKey()",
            "referral.getReferenceKey()",
            "insurer.getReferenceKey()",
            "facility.getReferenceKey()",
            "enterer.getReferenceKey()",
            "prescription.getReferenceKey(Patient)",
            "originalPrescription.getReferenceKey()",
            "careTeam.provider.getReferenceKey(Practitioner)",
            "careTeam.provider.getReferenceKey()",
            "careTeam.where(sequence = 4).provider.getReferenceKey()",
            "careTeam.where(provider.exists()).provider.getReferenceKey()",
            "careTeam.provider.first().getReferenceKey()",
            "careTeam.sequence.getReferenceKey()",
            "status.getReferenceKey()",
            "missing.getReferenceKey(Patient)",
            "(patient.getReferenceKey(Patient)).first()",
        ];
        for expr in cases {
            let (fast, general) = both(doc, expr, 0);
            assert_eq!(fast.as_deref(), Some(general.as_str()), "{expr}");
        }
    }

    /// Extensions looked up several times in one row on objects with many of them (listed
    /// from the second lookup on), by compiled paths and by the general evaluator, give the
    /// general evaluator's answers where nothing is listed: urls given twice (both, in order;
    /// `first()` the first), urls alike in length and last eight bytes (one fingerprint), a
    /// null, a string and elements without a url or with one that is not a string among the
    /// extensions, a url no element has, extensions of an extension (a second listed object
    /// while the first's elements are walked), objects of 15 and 16 extensions (the least
    /// listed), an `extension` that is an object, a primitive's extensions (`_status`: the
    /// general evaluator alone), and more objects than a row keeps track of.
    #[test]
    fn extensions_listed_per_object_give_the_general_answer() {
        let exts = |n: usize, url: &dyn Fn(usize) -> String| -> String {
            (0..n)
                .map(|i| format!(r#"{{"url":"{}","valueString":"v{i}"}}"#, url(i)))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut root: Vec<String> = (0..16)
            .map(|i| {
                format!(
                    r#"{{"url":"https://x.org/v/dual_{i:02}","valueCoding":{{"code":"c{i}"}}}}"#
                )
            })
            .collect();
        root.push(r#"{"url":"https://x.org/v/dual_03","valueCoding":{"code":"again"}}"#.into());
        root.push(r#"{"url":"https://y.org/v/dual_03","valueCoding":{"code":"other"}}"#.into());
        root.push(r#"{"valueCoding":{"code":"no url"}}"#.into());
        root.push(r#"{"url":7,"valueCoding":{"code":"number url"}}"#.into());
        root.push("null".into());
        root.push(r#""text""#.into());
        root.push(format!(
            r#"{{"url":"https://x.org/v/nested","extension":[{}]}}"#,
            exts(17, &|i| format!("in{i}"))
        ));
        let many: Vec<String> = (0..10)
            .map(|m| {
                format!(
                    r#"{{"extension":[{}]}}"#,
                    exts(16, &|i| format!("m{m}-{i}"))
                )
            })
            .collect();
        let resource = format!(
            r#"{{"resourceType":"Coverage","extension":[{}],
                "status":"active","_status":{{"extension":[{}]}},
                "class":[{{"extension":[{{"url":"a","valueString":"few"}}]}}],
                "a15":{{"extension":[{}]}},"a16":{{"extension":[{}]}},
                "single":{{"extension":{{"url":"s","valueString":"one"}}}},
                "many":[{}]}}"#,
            root.join(","),
            exts(16, &|i| format!("u{i}")),
            exts(15, &|i| format!("f{i}")),
            exts(16, &|i| format!("g{i}")),
            many.join(",")
        );
        assert_eq!(
            text_fingerprint(b"https://x.org/v/dual_03"),
            text_fingerprint(b"https://y.org/v/dual_03")
        );
        let exprs = [
            "extension('https://x.org/v/dual_03').valueCoding.code",
            "extension('https://x.org/v/dual_03').valueCoding.code",
            "(extension('https://x.org/v/dual_03').valueCoding.code).first()",
            "extension('https://y.org/v/dual_03').valueCoding.code",
            "extension('https://x.org/v/dual_15').valueCoding.code",
            "extension('https://x.org/v/dual_00').valueCoding.code.first()",
            "extension('https://x.org/v/none').valueCoding.code",
            "extension('https://x.org/v/nested').extension('in3').valueString",
            "extension('https://x.org/v/nested').extension('in16').valueString",
            "extension('https://x.org/v/nested').extension('in16').valueString",
            "extension('https://x.org/v/nested').extension('in0').valueString",
            "class.extension('a').valueString",
            "class.extension('a').valueString",
            "a15.extension('f14').valueString",
            "a15.extension('f0').valueString",
            "a16.extension('g15').valueString",
            "a16.extension('g0').valueString",
            "single.extension('s').valueString",
            "single.extension('s').valueString",
            "status.extension('u3').valueString",
            "status.extension('u15').valueString",
            "extension('https://x.org/v/dual_07').exists()",
            "many.extension('m9-15').valueString",
            "many.extension('m0-0').valueString",
        ];
        let compiled: Vec<(Expr, Fast)> = exprs
            .iter()
            .map(|x| {
                let e = hoist_row_constants(compile(x, &[]).expect("valid FHIRPath"));
                let f = Fast::compile(&e).unwrap_or_else(|| panic!("`{x}` compiles"));
                (e, f)
            })
            .collect();
        // Every expression in one row, on serde's values and on the tape.
        fn answers<'a, N: Node<'a>>(root: N, compiled: &'a [(Expr, Fast)]) -> Vec<String> {
            let env = Env::new(root, &[], 0);
            let focus = [Item::node(root)];
            let mut bails = 0;
            let out = compiled
                .iter()
                .map(|(e, fast)| {
                    // The compiled path and the general one in the row (lists made and
                    // used), against the general one in a row of its own (never listed).
                    let alone = Env::new(root, &[], 0);
                    let want = eval(e, &focus, None, &alone).expect("general answer");
                    assert!(
                        alone
                            .ext_index
                            .borrow()
                            .iter()
                            .all(|x| !matches!(x.listing, Listing::Listed(_)))
                    );
                    match fast.eval(&focus, &env) {
                        Some(f) => assert_eq!(shapes(&f), shapes(&want), "{e:?}"),
                        None => bails += 1,
                    }
                    let g = eval(e, &focus, None, &env).expect("general answer");
                    assert_eq!(shapes(&g), shapes(&want), "{e:?}, general");
                    format!("{:?}", want.iter().map(|i| i.prim()).collect::<Vec<_>>())
                })
                .collect();
            // `status.extension(…)`: a member of a primitive, the general evaluator's.
            assert_eq!(bails, 2);
            // Listed: the root, the nested extension, `a16`, `_status`, and the first of
            // `many` (the row's eighth object: the others are not tracked); too few: the class,
            // `a15`, `single`.
            let listed = env.ext_index.borrow();
            let listed: Vec<&str> = listed
                .iter()
                .map(|x| match x.listing {
                    Listing::Once => "once",
                    Listing::Few => "few",
                    Listing::Listed(_) => "listed",
                })
                .collect();
            let (yes, few) = ("listed", "few");
            assert_eq!(listed, [yes, yes, few, few, yes, few, yes, yes]);
            assert_eq!(listed.len(), EXT_TRACKED);
            out
        }
        let doc: serde_json::Value = serde_json::from_str(&resource).expect("test JSON");
        let on_values = answers(&doc, &compiled);
        assert!(on_values[0].contains("c3") && on_values[0].contains("again"));
        assert!(on_values[2].contains("c3") && !on_values[2].contains("again"));
        assert!(on_values[3].contains("other") && !on_values[3].contains("c3"));
        assert!(on_values[22].contains("v15") && on_values[23].contains("v0"));
        let mut parser = LineParser::new();
        let on_tape = parser
            .parse(resource.as_bytes(), |d| answers(d.root(), &compiled))
            .expect("test JSON parses");
        assert_eq!(on_tape, on_values);
    }

    #[test]
    fn documents_outside_the_compiled_shape_take_the_general_path() {
        let cases = [
            // A choice type: `value` is `valueQuantity` here.
            (
                r#"{"resourceType":"Observation","valueQuantity":{"value":1}}"#,
                "value.value",
            ),
            // A value-less primitive with an extension: `_status` alone.
            (r#"{"resourceType":"X","_status":{"id":"s1"}}"#, "status.id"),
            // A null inside an array, its extension in the `_` twin.
            (
                r#"{"resourceType":"X","given":[null,"b"],"_given":[{"id":"g"},null]}"#,
                "given",
            ),
            // A member of a primitive reads its `_name` twin.
            (
                r#"{"resourceType":"X","status":"a","_status":{"id":"s"}}"#,
                "status.id",
            ),
            // A criterion on a decimal, or on a member with several values.
            (
                r#"{"resourceType":"X","a":[{"v":1.5}]}"#,
                "a.where(v = 1).exists()",
            ),
            (
                r#"{"resourceType":"X","a":[{"v":["p","q"]}]}"#,
                "a.where(v = 'p').exists()",
            ),
            // A criterion member missing, with a choice-type variant present.
            (
                r#"{"resourceType":"X","a":[{"vString":"p"}]}"#,
                "a.where(v = 'p').exists()",
            ),
            // `replace` on several values: the general path's error.
            (
                r#"{"resourceType":"X","a":["p","q"]}"#,
                "a.replace('p', 'r')",
            ),
            // `in` with a haystack that is not all integers.
            (
                r#"{"resourceType":"X","h":["1"],"a":[{"s":1}]}"#,
                "a.where(s in %resource.h).exists()",
            ),
            // `getReferenceKey` on a reference the walk cannot reach as it is: one in a
            // value-less primitive's twin, a choice type, a null inside an array.
            (
                r#"{"resourceType":"X","_patient":{"reference":"Patient/1"}}"#,
                "patient.getReferenceKey()",
            ),
            (
                r#"{"resourceType":"X","valueReference":{"reference":"Patient/1"}}"#,
                "value.getReferenceKey()",
            ),
            (
                r#"{"resourceType":"X","p":[null,{"reference":"Patient/1"}]}"#,
                "p.getReferenceKey()",
            ),
        ];
        for (doc, expr) in cases {
            let (fast, general) = both(doc, expr, 0);
            assert_eq!(fast, None, "{expr} bails on {doc} (general: {general})");
        }
    }

    #[test]
    fn other_shapes_are_not_compiled() {
        for expr in [
            "Patient.name",
            "name.given.join(' ')",
            "x.iif(a.exists(), b, c)",
            "iif(a.b = 1, 1, 0)",
            "a | b",
            "a.where(b.c = 1)",
            "a.where(length() = 1)",
            "a[%rowIndex + 1]",
            "a.extension(%url)",
        ] {
            let e = hoist_row_constants(compile(expr, &[String::from("url")]).expect("valid"));
            assert_eq!(Fast::compile(&e), None, "{expr}");
        }
    }

    /// `resource`'s rows by `fast` (with its compiled paths) and by `general` (the same view
    /// without them), held to be the same: the outcome and the rows (`what` names the case).
    fn either_way<'a>(
        fast: &'a ViewDefinition,
        general: &'a ViewDefinition,
        resource: claimline_ndjson::Cursor<'a>,
        what: &str,
    ) -> (Result<(), String>, Rows) {
        let (mut a, mut b) = (Rows::default(), Rows::default());
        let ra = fast.evaluate(resource, &mut a).map_err(|e| e.to_string());
        let rb = general
            .evaluate(resource, &mut b)
            .map_err(|e| e.to_string());
        assert_eq!(ra, rb, "{what}");
        assert_eq!(a, b, "{what}");
        (ra, a)
    }

    /// A column that holds one value takes its cell straight from the walk
    /// ([`Fast::cell`]): the same cell and row errors as the collection's way (general
    /// evaluator alone), for no value, one of every column type, one that does not convert, and
    /// several (an error by default, NULL or the value under [`ManyValues::OneOrNull`]).
    #[test]
    fn single_value_cells_give_the_collection_answer() {
        use crate::view::ManyValues;
        let columns = [
            ("seq", "sequence", "integer"),
            ("seq_text", "sequence", "string"),
            ("seq_dec", "sequence", "decimal"),
            ("amount", "adjudication.amount.value.first()", "decimal"),
            (
                "amount_int",
                "adjudication.where(category.coding.code = 'c').amount.value",
                "integer",
            ),
            (
                "bad_int",
                "adjudication.category.coding.code.first()",
                "integer",
            ),
            (
                "bad_date",
                "adjudication.category.coding.code.first()",
                "date",
            ),
            ("date", "servicedDate", "date"),
            ("when", "%resource.created", "dateTime"),
            ("flag", "careTeamSequence.exists()", "boolean"),
            ("none", "modifier.coding.code", "string"),
            ("lit", "'x'", "string"),
            ("object", "adjudication.first()", "string"),
            ("twin", "%resource.status", "string"),
            (
                "bene",
                "%resource.patient.getReferenceKey(Patient)",
                "string",
            ),
            (
                "repeated",
                "adjudication.where(category.coding.code = 'z').amount.value",
                "decimal",
            ),
            ("several", "careTeamSequence", "integer"),
            // Row-invariant (evaluated once per claim, its cell and row error copied to each
            // line): a value that does not convert.
            ("bad_inv", "%resource.status", "integer"),
            // A value-less primitive (only its `_name` twin) and a choice type (`servicedDate`
            // read as `serviced`): the walk bails, the general way answers.
            ("twin_only", "%resource.disposition", "string"),
            ("item_twin", "locationCode", "string"),
            ("serviced", "serviced", "date"),
        ];
        let cols: Vec<String> = columns
            .iter()
            .map(|(n, p, t)| format!(r#"{{"name":"{n}","path":"{p}","type":"{t}"}}"#))
            .collect();
        let view = format!(
            r#"{{"resourceType":"ViewDefinition","status":"active","resource":"ExplanationOfBenefit",
                "select":[{{"forEach":"item","column":[{}]}}]}}"#,
            cols.join(",")
        );
        let eob = r#"{"resourceType":"ExplanationOfBenefit","id":"e1","status":"active",
            "_status":{"extension":[{"url":"u","valueString":"s"}]},
            "_disposition":{"extension":[{"url":"u","valueString":"d"}]},
            "created":"2024-01-02T03:04:05Z","patient":{"reference":"Patient/p1"},
            "item":[{"sequence":1,"careTeamSequence":[2,3],"servicedDate":"2023-12-31",
                     "_locationCode":{"extension":[{"url":"u","valueString":"l"}]},
                     "adjudication":[{"category":{"coding":[{"code":"a"},{"code":"b"}]},"amount":{"value":1.50}},
                                     {"category":{"coding":[{"code":"c"}]},"amount":{"value":2}},
                                     {"category":{"coding":[{"code":"z"}]},"amount":{"value":4.0}},
                                     {"category":{"coding":[{"code":"z"}]},"amount":{"value":4.0}}]},
                    {"sequence":2,"careTeamSequence":[1],"servicedDate":"2023-13-01",
                     "adjudication":[{"category":{"coding":[{"code":"z"}]},"amount":{"value":4.0}},
                                     {"category":{"coding":[{"code":"z"}]},"amount":{"value":5}}]},
                    {"sequence":3}]}"#;
        let line = eob.replace('\n', "");
        for policy in [ManyValues::Error, ManyValues::OneOrNull] {
            let mut fast = ViewDefinition::from_json(&view, "v.json").expect("valid view");
            let mut general = ViewDefinition::from_json(&view, "v.json")
                .expect("valid view")
                .without_fast_paths();
            // Every column compiles, and the `forEach`.
            assert_eq!(fast.fast_paths(), columns.len() + 1, "the paths compile");
            fast.set_many_values(policy);
            general.set_many_values(policy);
            let mut parser = LineParser::new();
            parser
                .parse(line.as_bytes(), |doc| {
                    let (ra, a) = either_way(&fast, &general, doc.root(), &format!("{policy:?}"));
                    match policy {
                        // `several` has two values on the first item: the resource's error.
                        ManyValues::Error => assert!(ra.is_err(), "{ra:?}"),
                        ManyValues::OneOrNull => {
                            assert_eq!(a.rows.len(), 3);
                            // Conversions that fail and values that differ are row errors:
                            // per line, in column order; the row-invariant one on each line.
                            let named = |c: &str| a.errors.iter().filter(|e| e.column == c).count();
                            assert_eq!(a.errors.len(), 17, "{:?}", a.errors);
                            assert_eq!(named("bad_inv"), 3);
                            assert_eq!(named("twin_only"), 3);
                            assert_eq!(named("several"), 1);
                            assert_eq!(named("repeated"), 1);
                        }
                    }
                })
                .expect("test JSON parses");
        }
    }

    /// Every built-in view on the real CMS samples of its API version: the same rows and row
    /// errors with compiled paths as on the general evaluator alone.
    #[test]
    fn the_cclf_views_give_the_same_rows_either_way() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let mut compiled = 0;
        for (views, samples) in [("v1", "stu3"), ("v2", "r4"), ("v3", "v3")] {
            let dir = format!("{root}/mappings/cclf/{views}");
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .expect("mappings")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            let data: Vec<String> = std::fs::read_dir(format!("{root}/sample-data/real/{samples}"))
                .expect("samples")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
                .map(|p| std::fs::read_to_string(p).expect("sample"))
                .collect();
            for file in files {
                let text = std::fs::read_to_string(&file).expect("view");
                let name = file.display().to_string();
                let fast = ViewDefinition::from_json(&text, &name).expect("valid view");
                compiled += fast.fast_paths();
                let general = ViewDefinition::from_json(&text, &name)
                    .expect("valid view")
                    .without_fast_paths();
                let mut parser = LineParser::new();
                let mut rows = 0;
                for line in data.iter().flat_map(|d| d.lines()) {
                    parser
                        .parse(line.as_bytes(), |doc| {
                            rows += either_way(&fast, &general, doc.root(), &name).1.rows.len();
                        })
                        .expect("sample JSON parses");
                }
                assert!(
                    rows > 0 || name.contains("cclf8") || name.contains("cclf9"),
                    "{name} made rows"
                );
            }
        }
        // Most paths of the built-in views have a compiled form.
        assert!(compiled > 400, "{compiled} compiled paths");
    }
}

//! Evaluating a compiled [`Expr`] against one resource through the [`Node`] trait.
//!
//! Results are small collections ([`Coll`]) that hold zero or one item inline. Member paths,
//! `where`, `ofType`, `first()`, `exists()` and `empty()` are streamed item by item ([`stream`])
//! and stop as soon as the answer is known, so a lookup such as
//! `identifier.where(system = 'x').value.first()` builds no collection and never allocates.
//! Items are either positions in the resource ([`Item::Node`]) or computed values; strings are
//! borrowed from the document or the plan whenever they can be.

use std::borrow::Cow;
use std::cell::RefCell;
use std::cmp::Ordering;

use crate::decimal::Decimal;
use crate::fhirpath::{BinaryOp, Expr, Function, Key, Literal, Variable};
use crate::node::{Node, NodeKind};
use crate::temporal::{self, Boundary};
use claimline_model::same_text;

/// A spec-defined runtime error (e.g. `single()` on many items, arithmetic on a collection).
///
/// A boxed `str` (two words, never null) rather than a `String` (three): the evaluator's results
/// (`Result<bool>` for each streamed item, `Result<Option<bool>>` for each criterion) are then
/// two words and come back in registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError(pub Box<str>);

impl EvalError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        EvalError(msg.into().into_boxed_str())
    }
}

type Result<T> = std::result::Result<T, EvalError>;

/// Where a primitive's extensions live (FHIR JSON keeps them in a sibling `_name` member).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ext<'a, N> {
    /// Not a primitive, or no way to find its extensions.
    None,
    /// In `parent["_" + key]` (element `index` of it for arrays).
    Sibling { parent: N, key: &'a str, index: u32 },
    /// The node itself is the `_name` object: a primitive with extensions and no value.
    Only,
}

/// `Ext::Sibling`'s index of a value that is not an array element.
pub(crate) const NO_INDEX: u32 = u32::MAX;

/// A position in the resource, with the choice-type suffix it was reached by (`Quantity` for
/// `valueQuantity`) and where its primitive extensions are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeItem<'a, N> {
    pub node: N,
    pub tag: &'a str,
    pub ext: Ext<'a, N>,
}

/// One FHIRPath value.
#[derive(Debug, Clone)]
pub(crate) enum Item<'a, N> {
    Node(NodeItem<'a, N>),
    Bool(bool),
    Int(i64),
    Dec(Decimal),
    Str(Cow<'a, str>),
    Date(Cow<'a, str>),
    DateTime(Cow<'a, str>),
    Time(Cow<'a, str>),
}

/// A primitive value, borrowed from an [`Item`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Prim<'x> {
    Bool(bool),
    Int(i64),
    Dec(Decimal),
    Str(&'x str),
    Date(&'x str),
    DateTime(&'x str),
    Time(&'x str),
}

/// The primitive value of a JSON value holding one (a string read as the choice type `tag`
/// names, if any); `None` for an object, an array or `null`.
#[inline]
pub(crate) fn node_prim<'a, N: Node<'a>>(node: N, tag: &str) -> Option<Prim<'a>> {
    Some(match node.kind() {
        NodeKind::String(s) => match tag {
            "Date" => Prim::Date(s),
            "DateTime" | "Instant" => Prim::DateTime(s),
            "Time" => Prim::Time(s),
            _ => Prim::Str(s),
        },
        NodeKind::Bool(b) => Prim::Bool(b),
        NodeKind::Number => match node.as_i64() {
            Some(i) => Prim::Int(i),
            None => Prim::Dec(Decimal::parse(node.number_text()?)?),
        },
        _ => return None,
    })
}

impl<'a, N: Node<'a>> Item<'a, N> {
    pub(crate) fn node(node: N) -> Self {
        Item::Node(NodeItem {
            node,
            tag: "",
            ext: Ext::None,
        })
    }

    /// The primitive value, if this is one (a JSON object, array, null or value-less primitive
    /// is not).
    pub(crate) fn prim(&self) -> Option<Prim<'_>> {
        Some(match self {
            Item::Node(n) => {
                if matches!(n.ext, Ext::Only) {
                    return None;
                }
                return node_prim(n.node, n.tag);
            }
            Item::Bool(b) => Prim::Bool(*b),
            Item::Int(i) => Prim::Int(*i),
            Item::Dec(d) => Prim::Dec(*d),
            Item::Str(s) => Prim::Str(s),
            Item::Date(s) => Prim::Date(s),
            Item::DateTime(s) => Prim::DateTime(s),
            Item::Time(s) => Prim::Time(s),
        })
    }

    /// The item as a string (`toString()` semantics) for primitives.
    fn string(&self) -> Option<Cow<'_, str>> {
        Some(match self.prim()? {
            Prim::Str(s) | Prim::Date(s) | Prim::DateTime(s) | Prim::Time(s) => Cow::Borrowed(s),
            Prim::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
            Prim::Int(i) => Cow::Owned(i.to_string()),
            Prim::Dec(d) => Cow::Owned(d.to_string()),
        })
    }
}

/// A collection of items that keeps zero or one item without allocating.
#[derive(Debug, Clone)]
pub(crate) enum Coll<'a, N> {
    Empty,
    One(Item<'a, N>),
    Many(Vec<Item<'a, N>>),
}

impl<'a, N: Node<'a>> Coll<'a, N> {
    pub(crate) fn one(item: Item<'a, N>) -> Self {
        Coll::One(item)
    }

    pub(crate) fn push(&mut self, item: Item<'a, N>) {
        match self {
            Coll::Many(v) => v.push(item),
            Coll::Empty => *self = Coll::One(item),
            Coll::One(_) => {
                if let Coll::One(first) = std::mem::replace(self, Coll::Empty) {
                    let mut v = Vec::with_capacity(4);
                    v.push(first);
                    v.push(item);
                    *self = Coll::Many(v);
                }
            }
        }
    }

    pub(crate) fn as_slice(&self) -> &[Item<'a, N>] {
        match self {
            Coll::Empty => &[],
            Coll::One(i) => std::slice::from_ref(i),
            Coll::Many(v) => v,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn from_items(items: impl IntoIterator<Item = Item<'a, N>>) -> Self {
        let mut c = Coll::Empty;
        for i in items {
            c.push(i);
        }
        c
    }
}

/// The items of a collection by value; a collection of zero or one item is walked without a
/// `Vec`.
pub(crate) enum CollIter<'a, N> {
    One(Option<Item<'a, N>>),
    Many(std::vec::IntoIter<Item<'a, N>>),
}

impl<'a, N> Iterator for CollIter<'a, N> {
    type Item = Item<'a, N>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            CollIter::One(i) => i.take(),
            CollIter::Many(v) => v.next(),
        }
    }
}

impl<'a, N> IntoIterator for Coll<'a, N> {
    type Item = Item<'a, N>;
    type IntoIter = CollIter<'a, N>;

    fn into_iter(self) -> Self::IntoIter {
        match self {
            Coll::Empty => CollIter::One(None),
            Coll::One(i) => CollIter::One(Some(i)),
            Coll::Many(v) => CollIter::Many(v.into_iter()),
        }
    }
}

impl<'a, N: Node<'a>> std::ops::Deref for Coll<'a, N> {
    type Target = [Item<'a, N>];
    fn deref(&self) -> &Self::Target {
        self.as_slice()
    }
}

/// What an expression can see besides its focus.
pub(crate) struct Env<'a, N> {
    /// `%resource` / `%rootResource`.
    pub resource: N,
    /// The view's constants, by index.
    pub constants: &'a [Literal],
    /// `%rowIndex`.
    pub row_index: i64,
    /// The values of the [`Expr::RowConst`] expressions evaluated in this row (an `Env` lives
    /// for one row).
    pub row_memo: RowMemo<'a, N>,
    /// The objects whose extensions `extension('url')` (compiled or not) looked through in
    /// this row, the first [`EXT_TRACKED`] of them, each with its extensions listed by url
    /// once it has enough ([`ExtIndex`]): a later lookup of another url on the same object
    /// compares a number per extension, not its `url` member's text.
    pub ext_index: RefCell<Vec<ExtIndex<'a, N>>>,
}

/// See [`Env::row_memo`]: expression (by address) → its value.
pub(crate) type RowMemo<'a, N> = RefCell<Vec<(*const Expr, Coll<'a, N>)>>;

/// Fewest `extension` elements an object must have for [`ExtIndex`] to list them: below it a
/// lookup's walk of the elements costs less than making the list (a claim line's handful).
pub(crate) const EXT_INDEX_MIN: usize = 16;

/// Most objects a row's [`Env::ext_index`] keeps track of: the ones past it are walked at every
/// lookup, as before the lists, so that a row looking extensions up on many objects (a column of
/// every claim line's extension, in a select without `forEach`) does not search a long list for
/// each. A Coverage's lookups are on one object; an EOB row's on a few.
pub(crate) const EXT_TRACKED: usize = 8;

/// An object `extension('url')` looked up in this row, and, from its second lookup on if it
/// has [`EXT_INDEX_MIN`] `extension` elements or more, those that have a string `url`, in the
/// document's order: the url's [`claimline_model::text_fingerprint`], the url, the element.
/// What [`has_url`] finds for a url are the elements listed whose fingerprint and text are the
/// url's. (The second lookup lists every element, where a walk for `first()` would have stopped
/// at the first match: the list is for the lookups after it.)
pub(crate) struct ExtIndex<'a, N> {
    /// The object's [`Node::id`].
    pub object: usize,
    /// Whether its extensions are listed.
    pub listing: Listing<'a, N>,
}

/// How far an [`ExtIndex`] object's extensions are listed.
pub(crate) enum Listing<'a, N> {
    /// Looked up once: walked, not listed yet.
    Once,
    /// Fewer than [`EXT_INDEX_MIN`] extensions: walked at every lookup.
    Few,
    /// Its elements with a url.
    Listed(Vec<(u64, &'a str, N)>),
}

impl<'a, N: Node<'a>> ExtIndex<'a, N> {
    /// Whether `object`'s extensions are listed in `row` (an `Env::ext_index`), after this
    /// lookup: the first lookup on an object notes it, the second lists its elements if there
    /// are enough of them.
    fn listed(row: &RefCell<Vec<Self>>, object: N) -> bool {
        let id = object.id();
        let mut row = row.borrow_mut();
        let Some(x) = row.iter_mut().find(|x| x.object == id) else {
            if row.len() < EXT_TRACKED {
                row.push(ExtIndex {
                    object: id,
                    listing: Listing::Once,
                });
            }
            return false;
        };
        match x.listing {
            Listing::Listed(_) => return true,
            Listing::Few => return false,
            Listing::Once => {}
        }
        let exts = object.get("extension");
        if exts.map_or(0, |e| e.items().take(EXT_INDEX_MIN).count()) < EXT_INDEX_MIN {
            x.listing = Listing::Few;
            return false;
        }
        x.listing = Listing::Listed(
            exts.into_iter()
                .flat_map(|e| e.items())
                .filter_map(|e| {
                    let url = e.get("url")?.as_str()?;
                    Some((claimline_model::text_fingerprint(url.as_bytes()), url, e))
                })
                .collect(),
        );
        true
    }

    /// Hands `f` each element of `object`'s `extension` whose `url` is `url` (what
    /// [`has_url`] keeps), in the document's order, until `f` returns a value, which this
    /// returns. From the object's list when `row` has one ([`ExtIndex::listed`]); no borrow of
    /// `row` is held while `f` runs (it may look extensions up on other objects).
    pub(crate) fn each<R>(
        row: &RefCell<Vec<Self>>,
        object: N,
        url: &str,
        mut f: impl FnMut(N) -> Option<R>,
    ) -> Option<R> {
        if !Self::listed(row, object) {
            let exts = object.get("extension")?;
            return exts.items().filter(|e| has_url(*e, url)).find_map(f);
        }
        let fp = claimline_model::text_fingerprint(url.as_bytes());
        let mut from = 0;
        while let Some((e, after)) = Self::next(row, object, from, fp, url) {
            from = after;
            if let Some(r) = f(e) {
                return Some(r);
            }
        }
        None
    }

    /// In the listed elements of `object` in `row`, the first at or after `from` whose url is
    /// `url` (of fingerprint `fp`), and the place after it.
    #[inline]
    fn next(
        row: &RefCell<Vec<Self>>,
        object: N,
        from: usize,
        fp: u64,
        url: &str,
    ) -> Option<(N, usize)> {
        let id = object.id();
        let row = row.borrow();
        let Listing::Listed(entries) = &row.iter().find(|x| x.object == id)?.listing else {
            return None;
        };
        entries
            .get(from..)?
            .iter()
            .position(|&(f, u, _)| f == fp && same_text(u.as_bytes(), url.as_bytes()))
            .map(|i| (entries[from + i].2, from + i + 1))
    }
}

impl<'a, N: Node<'a>> Env<'a, N> {
    /// The environment of one row.
    pub(crate) fn new(resource: N, constants: &'a [Literal], row_index: i64) -> Self {
        Env {
            resource,
            constants,
            row_index,
            row_memo: RefCell::new(Vec::new()),
            ext_index: RefCell::new(Vec::new()),
        }
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(EvalError::new(msg))
}

pub(crate) fn literal<'a, N: Node<'a>>(l: &'a Literal) -> Item<'a, N> {
    match l {
        Literal::Bool(b) => Item::Bool(*b),
        Literal::Integer(i) => Item::Int(*i),
        Literal::Decimal(d) => Item::Dec(*d),
        Literal::String(s) => Item::Str(Cow::Borrowed(s)),
        Literal::Date(s) => Item::Date(Cow::Borrowed(s)),
        Literal::DateTime(s) => Item::DateTime(Cow::Borrowed(s)),
        Literal::Time(s) => Item::Time(Cow::Borrowed(s)),
    }
}

/// What a streaming callback says: `Ok(true)` to go on, `Ok(false)` to stop.
type Flow = Result<bool>;

/// Hands each value of member `key` of `item` (arrays flattened, choice types and primitive
/// extensions resolved) to `out`, until it says stop; returns `Ok(false)` if it did.
fn member<'a, N: Node<'a>, F: FnMut(Item<'a, N>) -> Flow>(
    item: &Item<'a, N>,
    key: &'a Key,
    out: &mut F,
) -> Flow {
    let Item::Node(n) = item else {
        return Ok(true);
    };
    let obj = match n.node.kind() {
        // An object, or the `_name` object of a value-less primitive.
        NodeKind::Object => n.node,
        // A primitive's `id` and `extension` live in its `_name` twin.
        _ => match primitive_ext(n) {
            Some(e) => e,
            None => return Ok(true),
        },
    };
    let name: &str = &key.name;
    // The member itself, found by the document's own lookup (the first of that name).
    if let Some((k, v)) = obj.get_entry(name) {
        return push_value(obj, k, v, "", out);
    }
    let mut choice = None;
    let mut under = None;
    // Else a choice type (`valueQuantity` for `value`) or a `_name` twin alone.
    for (k, v) in obj.entries() {
        match variant(k, name) {
            Some(Variant::Choice) if choice.is_none() => choice = Some((k, v)),
            Some(Variant::Twin) => under = Some(v),
            _ => {}
        }
    }
    if let Some((k, v)) = choice {
        return push_value(obj, k, v, &k[name.len()..], out);
    }
    let only = |node: N| {
        Item::Node(NodeItem {
            node,
            tag: "",
            ext: Ext::Only,
        })
    };
    // A primitive with only extensions: `"_given": [{…}]` with no `given`.
    match under.map(|u| (u, u.kind())) {
        Some((u, NodeKind::Array)) => {
            for e in u.items() {
                if e.kind() == NodeKind::Object && !out(only(e))? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Some((u, NodeKind::Object)) => out(only(u)),
        _ => Ok(true),
    }
}

/// What an object's key `k` is to member `name`, when it is not `name` itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Variant {
    /// A choice type: `valueQuantity` for `value`.
    Choice,
    /// The `_name` twin holding a primitive's `id` and `extension`.
    Twin,
}

/// See [`Variant`]; `None` for an unrelated key. Cheap byte checks first: most keys differ in
/// length or first byte.
pub(crate) fn variant(k: &str, name: &str) -> Option<Variant> {
    let (kb, nb) = (k.as_bytes(), name.as_bytes());
    if kb.len() <= nb.len() {
        None
    } else if kb.first() == nb.first() && kb[nb.len()].is_ascii_uppercase() && kb.starts_with(nb) {
        Some(Variant::Choice)
    } else if kb.len() == nb.len() + 1 && kb[0] == b'_' && &kb[1..] == nb {
        Some(Variant::Twin)
    } else {
        None
    }
}

fn push_value<'a, N: Node<'a>, F: FnMut(Item<'a, N>) -> Flow>(
    parent: N,
    key: &'a str,
    v: N,
    tag: &'a str,
    out: &mut F,
) -> Flow {
    let wrap = |v: N, index: u32| {
        let ext = match v.kind() {
            NodeKind::Object | NodeKind::Array => Ext::None,
            _ => Ext::Sibling { parent, key, index },
        };
        Item::Node(NodeItem { node: v, tag, ext })
    };
    match v.kind() {
        NodeKind::Array => {
            for (i, e) in v.items().enumerate() {
                let item = if e.kind() == NodeKind::Null {
                    // `[null, …]` with the extension in `_key[i]`.
                    let twin = wrap(e, i as u32);
                    match &twin {
                        Item::Node(n) => match primitive_ext(n) {
                            Some(x) => Item::Node(NodeItem {
                                node: x,
                                tag,
                                ext: Ext::Only,
                            }),
                            None => continue,
                        },
                        _ => continue,
                    }
                } else {
                    wrap(e, i as u32)
                };
                if !out(item)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        NodeKind::Null => Ok(true),
        _ => out(wrap(v, NO_INDEX)),
    }
}

/// Hands everything `keys` reaches from `item` to `out`, depth first, with no intermediate
/// collections; stops when `out` says so.
fn walk<'a, N: Node<'a>>(
    item: &Item<'a, N>,
    keys: &'a [Key],
    out: &mut dyn FnMut(Item<'a, N>) -> Flow,
) -> Flow {
    match keys.split_first() {
        None => out(item.clone()),
        Some((k, [])) => member(item, k, &mut |child| out(child)),
        Some((k, rest)) => member(item, k, &mut |child| walk(&child, rest, out)),
    }
}

/// Hands the items of `e` to `out` one at a time, without building the collection when `e` is a
/// member path, a `where`, an `ofType` or a `first()`; stops when `out` says so.
fn stream<'a, N: Node<'a>>(
    e: &'a Expr,
    focus: &[Item<'a, N>],
    index: Option<i64>,
    env: &Env<'a, N>,
    out: &mut dyn FnMut(Item<'a, N>) -> Flow,
) -> Flow {
    match e {
        Expr::Member(None, keys) => {
            let Some(first) = keys.first() else {
                return Ok(true);
            };
            // `Patient.name`: a leading type name selects the resource itself.
            if first.name.starts_with(|c: char| c.is_ascii_uppercase()) {
                let is_type = |it: &Item<'a, N>| {
                    matches!(it, Item::Node(n)
                        if n.node.get("resourceType").and_then(|r| r.as_str()) == Some(&*first.name))
                };
                if focus.iter().any(is_type) {
                    for it in focus.iter().filter(|i| is_type(i)) {
                        if !walk(it, &keys[1..], out)? {
                            return Ok(false);
                        }
                    }
                    return Ok(true);
                }
            }
            for it in focus {
                if !walk(it, keys, out)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Expr::Member(Some(input), keys) => {
            stream(input, focus, index, env, &mut |it| walk(&it, keys, out))
        }
        Expr::Call(Some(input), Function::Where, args) => {
            let Some(crit) = args.first() else {
                return Ok(true);
            };
            let mut k = 0;
            stream(input, focus, index, env, &mut |it| {
                let r = truth(crit, std::slice::from_ref(&it), Some(k), env)?;
                k += 1;
                if r == Some(true) { out(it) } else { Ok(true) }
            })
        }
        Expr::Call(Some(input), Function::OfType(ty), _) => {
            stream(input, focus, index, env, &mut |it| {
                if is_type(&it, ty) { out(it) } else { Ok(true) }
            })
        }
        Expr::Call(Some(input), Function::First, _) => {
            let mut got = None;
            stream(input, focus, index, env, &mut |it| {
                got = Some(it);
                Ok(false)
            })?;
            match got {
                Some(it) => out(it),
                None => Ok(true),
            }
        }
        _ => {
            for it in eval(e, focus, index, env)? {
                if !out(it)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    }
}

/// `exists()` and `empty()` on a streamed input: they stop at the first item (that meets the
/// criterion) and never build the input collection.
fn streamed_exists<'a, N: Node<'a>>(
    input: &'a Expr,
    f: &'a Function,
    args: &'a [Expr],
    focus: &[Item<'a, N>],
    index: Option<i64>,
    env: &Env<'a, N>,
) -> Result<Coll<'a, N>> {
    let mut any = false;
    match args.first() {
        None => {
            stream(input, focus, index, env, &mut |_| {
                any = true;
                Ok(false)
            })?;
        }
        Some(crit) => {
            let mut k = 0;
            stream(input, focus, index, env, &mut |it| {
                any = truth(crit, std::slice::from_ref(&it), Some(k), env)? == Some(true);
                k += 1;
                Ok(!any)
            })?;
        }
    }
    Ok(bool_coll(Some(any == (*f == Function::Exists))))
}

fn collect<'a, N: Node<'a>>(
    e: &'a Expr,
    focus: &[Item<'a, N>],
    index: Option<i64>,
    env: &Env<'a, N>,
) -> Result<Coll<'a, N>> {
    let mut out = Coll::Empty;
    stream(e, focus, index, env, &mut |it| {
        out.push(it);
        Ok(true)
    })?;
    Ok(out)
}

/// The `_name` object holding a primitive's `id` and `extension`.
fn primitive_ext<'a, N: Node<'a>>(n: &NodeItem<'a, N>) -> Option<N> {
    match n.ext {
        Ext::None => None,
        Ext::Only => Some(n.node),
        Ext::Sibling { parent, key, index } => {
            let twin = parent
                .entries()
                .find(|(k, _)| k.strip_prefix('_') == Some(key))
                .map(|(_, v)| v)?;
            let x = if index == NO_INDEX {
                twin
            } else {
                twin.items().nth(index as usize)?
            };
            (x.kind() == NodeKind::Object).then_some(x)
        }
    }
}

/// Evaluates `e` with `focus` as `$this`.
pub(crate) fn eval<'a, N: Node<'a>>(
    e: &'a Expr,
    focus: &[Item<'a, N>],
    index: Option<i64>,
    env: &Env<'a, N>,
) -> Result<Coll<'a, N>> {
    Ok(match e {
        Expr::Empty => Coll::Empty,
        Expr::Literal(l) => Coll::one(literal(l)),
        Expr::This => Coll::from_items(focus.iter().cloned()),
        Expr::Index => match index {
            Some(i) => Coll::one(Item::Int(i)),
            None => Coll::Empty,
        },
        Expr::Variable(v) => match v {
            Variable::Resource | Variable::RootResource => Coll::one(Item::node(env.resource)),
            Variable::RowIndex => Coll::one(Item::Int(env.row_index)),
            Variable::Constant(i) => match env.constants.get(*i) {
                Some(l) => Coll::one(literal(l)),
                None => return err("undefined constant"),
            },
        },
        Expr::Member(..)
        | Expr::Call(Some(_), Function::Where | Function::First | Function::OfType(_), _) => {
            collect(e, focus, index, env)?
        }
        Expr::Call(Some(input), f @ (Function::Exists | Function::Empty), args) => {
            streamed_exists(input, f, args, focus, index, env)?
        }
        Expr::Indexer(input, idx)
            if matches!(
                **idx,
                Expr::Literal(Literal::Integer(_)) | Expr::Variable(Variable::RowIndex)
            ) =>
        {
            // An integer literal or `%rowIndex` cannot fail, so the input is streamed up to item `i`
            // only: `%resource.item[%rowIndex]` neither builds the item collection nor walks past
            // the item (like `first()`, later items are not evaluated).
            let i = single_int(&eval(idx, focus, index, env)?)?;
            match i.and_then(|i| usize::try_from(i).ok()) {
                Some(i) => {
                    let mut got = None;
                    let mut k = 0;
                    stream(input, focus, index, env, &mut |it| {
                        if k == i {
                            got = Some(it);
                            return Ok(false);
                        }
                        k += 1;
                        Ok(true)
                    })?;
                    got.map_or(Coll::Empty, Coll::one)
                }
                None => {
                    eval(input, focus, index, env)?;
                    Coll::Empty
                }
            }
        }
        Expr::Indexer(input, idx) => {
            let src = eval(input, focus, index, env)?;
            let i = single_int(&eval(idx, focus, index, env)?)?;
            match i.and_then(|i| usize::try_from(i).ok()) {
                Some(i) => src
                    .as_slice()
                    .get(i)
                    .cloned()
                    .map_or(Coll::Empty, Coll::one),
                None => Coll::Empty,
            }
        }
        Expr::Negate(x) => {
            let v = eval(x, focus, index, env)?;
            match singleton(&v)?.and_then(|i| i.prim()) {
                Some(Prim::Int(i)) => Coll::one(Item::Int(-i)),
                Some(Prim::Dec(d)) => Coll::one(Item::Dec(Decimal::new(-d.mantissa(), d.scale()))),
                None => Coll::Empty,
                Some(_) => return err("unary minus needs a number"),
            }
        }
        Expr::Binary(op, a, b) => binary(*op, a, b, focus, index, env)?,
        Expr::RowConst(inner) => with_row_const(inner, focus, index, env, |v| {
            Coll::from_items(v.iter().cloned())
        })?,
        Expr::Call(input, f, args) => {
            let owned;
            let src = match input {
                Some(i) => {
                    owned = eval(i, focus, index, env)?;
                    &owned
                }
                None => focus,
            };
            call(f, src, args, focus, index, env)?
        }
    })
}

fn singleton<'c, 'a, N: Node<'a>>(c: &'c [Item<'a, N>]) -> Result<Option<&'c Item<'a, N>>> {
    match c {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => err("expected a single value, got a collection"),
    }
}

fn single_int<'a, N: Node<'a>>(c: &[Item<'a, N>]) -> Result<Option<i64>> {
    match singleton(c)?.and_then(|i| i.prim()) {
        None => Ok(None),
        Some(Prim::Int(i)) => Ok(Some(i)),
        Some(_) => err("expected an integer"),
    }
}

fn single_string<'c, 'a, N: Node<'a>>(c: &'c [Item<'a, N>]) -> Result<Option<Cow<'c, str>>> {
    match singleton(c)? {
        None => Ok(None),
        Some(i) => match i.prim() {
            Some(Prim::Str(s)) => Ok(Some(Cow::Borrowed(s))),
            Some(_) => Ok(i.string()),
            None => err("expected a string"),
        },
    }
}

/// A collection as a boolean: empty is unknown; one boolean is itself; any other single item is
/// `true` (FHIRPath's singleton evaluation).
pub(crate) fn to_bool<'a, N: Node<'a>>(c: &[Item<'a, N>]) -> Result<Option<bool>> {
    match singleton(c)? {
        None => Ok(None),
        Some(i) => Ok(Some(match i.prim() {
            Some(Prim::Bool(b)) => b,
            _ => true,
        })),
    }
}

fn bool_coll<'a, N: Node<'a>>(b: Option<bool>) -> Coll<'a, N> {
    b.map_or(Coll::Empty, |b| Coll::one(Item::Bool(b)))
}

fn deep_eq<'a, N: Node<'a>>(a: N, b: N) -> bool {
    match (a.kind(), b.kind()) {
        (NodeKind::Object, NodeKind::Object) => {
            a.entries().count() == b.entries().count()
                && a.entries()
                    .all(|(k, v)| b.get(k).is_some_and(|w| deep_eq(v, w)))
        }
        (NodeKind::Array, NodeKind::Array) => {
            a.items().count() == b.items().count()
                && a.items().zip(b.items()).all(|(x, y)| deep_eq(x, y))
        }
        (NodeKind::Number, NodeKind::Number) => {
            match (
                a.number_text().and_then(Decimal::parse),
                b.number_text().and_then(Decimal::parse),
            ) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            }
        }
        (x, y) => x == y,
    }
}

fn prim_text(p: Prim<'_>) -> Option<&str> {
    match p {
        Prim::Str(s) | Prim::Date(s) | Prim::DateTime(s) | Prim::Time(s) => Some(s),
        _ => None,
    }
}

fn temporal_cmp(a: Prim<'_>, b: Prim<'_>) -> Option<Ordering> {
    let (x, y) = (prim_text(a)?, prim_text(b)?);
    if matches!(a, Prim::Time(_)) || matches!(b, Prim::Time(_)) {
        let (p, q) = (temporal::parse_time(x)?, temporal::parse_time(y)?);
        return (p.2 == q.2).then(|| p.0.cmp(&q.0));
    }
    temporal::parse_date_time(x)?.compare(&temporal::parse_date_time(y)?)
}

/// Compares two primitives; `None` when they are not comparable or the answer is unknown.
fn prim_cmp(a: Prim<'_>, b: Prim<'_>) -> Option<Ordering> {
    use Prim::*;
    match (a, b) {
        (Int(x), Int(y)) => Some(x.cmp(&y)),
        (Int(x), Dec(y)) => Some(Decimal::from_i64(x).cmp(&y)),
        (Dec(x), Int(y)) => Some(x.cmp(&Decimal::from_i64(y))),
        (Dec(x), Dec(y)) => Some(x.cmp(&y)),
        (Str(x), Str(y)) => Some(x.cmp(y)),
        (Bool(x), Bool(y)) => Some(x.cmp(&y)),
        (Date(_) | DateTime(_) | Time(_), _) | (_, Date(_) | DateTime(_) | Time(_)) => {
            temporal_cmp(a, b)
        }
        _ => None,
    }
}

/// FHIRPath `=` on two items; `None` for unknown.
fn item_eq<'a, N: Node<'a>>(a: &Item<'a, N>, b: &Item<'a, N>) -> Option<bool> {
    if let (Item::Node(x), Item::Node(y)) = (a, b) {
        let composite = |k: NodeKind<'_>| matches!(k, NodeKind::Object | NodeKind::Array);
        if composite(x.node.kind()) || composite(y.node.kind()) {
            return Some(deep_eq(x.node, y.node));
        }
    }
    match (a.prim(), b.prim()) {
        (Some(p), Some(q)) => {
            let temporal =
                |p: Prim<'_>| matches!(p, Prim::Date(_) | Prim::DateTime(_) | Prim::Time(_));
            if temporal(p) || temporal(q) {
                return match temporal_cmp(p, q) {
                    Some(o) => Some(o == Ordering::Equal),
                    None if matches!((p, q), (Prim::Str(_), _) | (_, Prim::Str(_))) => {
                        Some(p.string_eq(q))
                    }
                    None => None,
                };
            }
            Some(prim_cmp(p, q) == Some(Ordering::Equal))
        }
        _ => Some(false),
    }
}

impl Prim<'_> {
    fn string_eq(self, other: Prim<'_>) -> bool {
        prim_text(self).is_some() && prim_text(self) == prim_text(other)
    }
}

/// FHIRPath `~` on two items: like `=`, but strings ignore case and collapse whitespace.
fn item_equiv<'a, N: Node<'a>>(a: &Item<'a, N>, b: &Item<'a, N>) -> bool {
    match (a.prim(), b.prim()) {
        (Some(Prim::Str(x)), Some(Prim::Str(y))) => {
            let norm = |s: &str| {
                s.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
            };
            norm(x) == norm(y)
        }
        _ => item_eq(a, b) == Some(true),
    }
}

fn distinct_push<'a, N: Node<'a>>(out: &mut Vec<Item<'a, N>>, item: Item<'a, N>) {
    if !out.iter().any(|o| item_eq(o, &item) == Some(true)) {
        out.push(item);
    }
}

/// The truth value of `e` as a criterion (`to_bool` of its value), with `and`, `or`, `xor` and
/// `implies` worked out on booleans, without building a collection per operand.
fn truth<'a, N: Node<'a>>(
    e: &'a Expr,
    focus: &[Item<'a, N>],
    index: Option<i64>,
    env: &Env<'a, N>,
) -> Result<Option<bool>> {
    match e {
        Expr::Binary(
            op @ (BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Implies),
            a,
            b,
        ) => logic(*op, a, b, focus, index, env),
        // The commonest criteria, `system = 'literal'`, `sequence = 1` and `sequence in
        // %resource.item[%rowIndex].careTeamSequence`, on a member that holds one plain value:
        // answered without building a collection for either side. Anything else (no such
        // member, an array, a choice type, a decimal) takes the general path.
        Expr::Binary(op @ (BinaryOp::Eq | BinaryOp::Ne), a, b) => {
            match plain_compare(*op, a, b, focus) {
                Some(answer) => Ok(Some(answer)),
                None => to_bool(&eval(e, focus, index, env)?),
            }
        }
        Expr::Binary(BinaryOp::In, a, b)
            if let Expr::RowConst(hay) = &**b
                && let Some(i) = plain_member(a, focus).and_then(|v| v.as_i64()) =>
        {
            let needle = Item::Int(i);
            let found = with_row_const(hay, focus, index, env, |hay| {
                hay.iter().any(|y| match y {
                    // An integer in the document: equal or not, no general comparison.
                    Item::Node(n) if !matches!(n.ext, Ext::Only) => match n.node.as_i64() {
                        Some(j) => i == j,
                        None => item_eq(&needle, y) == Some(true),
                    },
                    _ => item_eq(&needle, y) == Some(true),
                })
            })?;
            Ok(Some(found))
        }
        Expr::Call(Some(input), f @ (Function::Exists | Function::Empty), args) => {
            to_bool(&streamed_exists(input, f, args, focus, index, env)?)
        }
        _ => to_bool(&eval(e, focus, index, env)?),
    }
}

/// The value of `a` when it is a single lower-case member (`system`, not `Patient` or
/// `a.b`) of a single object focus, found under exactly that key: then the member's value is
/// that one node, with no choice type or `_name` twin to resolve.
fn plain_member<'a, N: Node<'a>>(a: &'a Expr, focus: &[Item<'a, N>]) -> Option<N> {
    let (Expr::Member(None, keys), [Item::Node(n)]) = (a, focus) else {
        return None;
    };
    let [key] = keys.as_slice() else {
        return None;
    };
    if key.name.starts_with(|c: char| c.is_ascii_uppercase()) || n.node.kind() != NodeKind::Object {
        return None;
    }
    n.node.get(&key.name)
}

/// `a = b` (or `a != b`, by `op`) when `a` is a [`plain_member`] holding a string and `b` a
/// string literal, or an integer and an integer literal: the answer, with no collection built.
/// `None`: anything else, for the general path.
fn plain_compare<'a, N: Node<'a>>(
    op: BinaryOp,
    a: &'a Expr,
    b: &'a Expr,
    focus: &[Item<'a, N>],
) -> Option<bool> {
    let v = plain_member(a, focus)?;
    let eq = match (v.kind(), b) {
        (NodeKind::String(s), Expr::Literal(Literal::String(lit))) => {
            same_text(s.as_bytes(), lit.as_bytes())
        }
        (NodeKind::Number, Expr::Literal(Literal::Integer(lit))) => v.as_i64()? == *lit,
        _ => return None,
    };
    Some(eq == (op == BinaryOp::Eq))
}

/// Hands `f` the value of the [`Expr::RowConst`] holding `inner` (evaluated once per row) by
/// reference, without copying it out of the row's memo.
fn with_row_const<'a, N: Node<'a>, T>(
    inner: &'a Expr,
    focus: &[Item<'a, N>],
    index: Option<i64>,
    env: &Env<'a, N>,
    f: impl FnOnce(&[Item<'a, N>]) -> T,
) -> Result<T> {
    let key: *const Expr = inner;
    if let Some((_, hit)) = env.row_memo.borrow().iter().find(|(k, _)| *k == key) {
        return Ok(f(hit));
    }
    let value = eval(inner, focus, index, env)?;
    let out = f(&value);
    env.row_memo.borrow_mut().push((key, value));
    Ok(out)
}

/// FHIRPath's three-valued logic; the left side decides alone where it can.
fn logic<'a, N: Node<'a>>(
    op: BinaryOp,
    a: &'a Expr,
    b: &'a Expr,
    focus: &[Item<'a, N>],
    index: Option<i64>,
    env: &Env<'a, N>,
) -> Result<Option<bool>> {
    let x = truth(a, focus, index, env)?;
    if let Some(decided) = left_decides(op, x) {
        return Ok(decided);
    }
    let y = truth(b, focus, index, env)?;
    Ok(three_valued(op, x, y))
}

/// The answer of `and`, `or` or `implies` when its left side alone decides it (`false and …`,
/// `true or …`, `false implies …`); `None` when the right side is needed.
pub(crate) fn left_decides(op: BinaryOp, x: Option<bool>) -> Option<Option<bool>> {
    use BinaryOp::*;
    match (op, x) {
        (And, Some(false)) => Some(Some(false)),
        (Or, Some(true)) => Some(Some(true)),
        (Implies, Some(false)) => Some(Some(true)),
        _ => None,
    }
}

/// FHIRPath's three-valued `and`, `or`, `xor` and `implies` (`None`: empty).
pub(crate) fn three_valued(op: BinaryOp, x: Option<bool>, y: Option<bool>) -> Option<bool> {
    use BinaryOp::*;
    match op {
        And => match (x, y) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Or => match (x, y) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Xor => match (x, y) {
            (Some(p), Some(q)) => Some(p != q),
            _ => None,
        },
        _ => match (x, y) {
            (Some(false), _) | (_, Some(true)) => Some(true),
            (Some(true), Some(false)) => Some(false),
            _ => None,
        },
    }
}

fn binary<'a, N: Node<'a>>(
    op: BinaryOp,
    a: &'a Expr,
    b: &'a Expr,
    focus: &[Item<'a, N>],
    index: Option<i64>,
    env: &Env<'a, N>,
) -> Result<Coll<'a, N>> {
    use BinaryOp::*;
    if matches!(op, And | Or | Xor | Implies) {
        return Ok(bool_coll(logic(op, a, b, focus, index, env)?));
    }
    // Fastest path, `system = 'literal'` or `sequence = 1` on a plain member: no collection.
    if matches!(op, Eq | Ne)
        && let Some(answer) = plain_compare(op, a, b, focus)
    {
        return Ok(bool_coll(Some(answer)));
    }
    let l = eval(a, focus, index, env)?;
    // Fast path for the commonest criterion, `path = 'literal'`: no second collection, no
    // general comparison.
    if let (Eq | Ne, Expr::Literal(Literal::String(lit))) = (op, b) {
        match l.as_slice() {
            [] => return Ok(Coll::Empty),
            [one] => {
                if let Some(Prim::Str(s)) = one.prim() {
                    let eq = same_text(s.as_bytes(), lit.as_bytes());
                    return Ok(bool_coll(Some(eq == (op == Eq))));
                }
            }
            _ => return Ok(bool_coll(Some(op == Ne))),
        }
    }
    let r = eval(b, focus, index, env)?;
    Ok(match op {
        // Handled before the left side is evaluated (see `logic`).
        And | Or | Xor | Implies => return err("logical operator out of place"),
        Eq | Ne => {
            if l.is_empty() || r.is_empty() {
                return Ok(Coll::Empty);
            }
            let eq = if l.len() != r.len() {
                Some(false)
            } else {
                let mut acc = Some(true);
                for (x, y) in l.as_slice().iter().zip(r.as_slice()) {
                    match item_eq(x, y) {
                        Some(true) => {}
                        Some(false) => {
                            acc = Some(false);
                            break;
                        }
                        None => acc = None,
                    }
                }
                acc
            };
            bool_coll(if op == Eq { eq } else { eq.map(|b| !b) })
        }
        Equiv | NotEquiv => {
            let eq = l.len() == r.len()
                && l.as_slice()
                    .iter()
                    .all(|x| r.as_slice().iter().any(|y| item_equiv(x, y)));
            bool_coll(Some(if op == Equiv { eq } else { !eq }))
        }
        Lt | Gt | Le | Ge => {
            let (Some(x), Some(y)) = (singleton(&l)?, singleton(&r)?) else {
                return Ok(Coll::Empty);
            };
            let (Some(p), Some(q)) = (x.prim(), y.prim()) else {
                return err("comparison needs primitive values");
            };
            match prim_cmp(p, q) {
                None => Coll::Empty,
                Some(o) => bool_coll(Some(match op {
                    Lt => o == Ordering::Less,
                    Gt => o == Ordering::Greater,
                    Le => o != Ordering::Greater,
                    _ => o != Ordering::Less,
                })),
            }
        }
        Union => {
            let mut out = Vec::new();
            for i in l.into_iter().chain(r) {
                distinct_push(&mut out, i);
            }
            Coll::from_items(out)
        }
        In | Contains => {
            let (needle, hay) = if op == In { (&l, &r) } else { (&r, &l) };
            match singleton(needle)? {
                None => Coll::Empty,
                Some(x) => bool_coll(Some(
                    hay.as_slice().iter().any(|y| item_eq(x, y) == Some(true)),
                )),
            }
        }
        Concat => {
            let x = single_string(&l)?.unwrap_or_default();
            let y = single_string(&r)?.unwrap_or_default();
            Coll::one(Item::Str(Cow::Owned(format!("{x}{y}"))))
        }
        Add | Sub | Mul | Div | IntDiv | Mod => {
            let (Some(x), Some(y)) = (singleton(&l)?, singleton(&r)?) else {
                return Ok(Coll::Empty);
            };
            arithmetic(op, x, y)?
        }
    })
}

fn arithmetic<'a, N: Node<'a>>(
    op: BinaryOp,
    x: &Item<'a, N>,
    y: &Item<'a, N>,
) -> Result<Coll<'a, N>> {
    use BinaryOp::*;
    let (Some(p), Some(q)) = (x.prim(), y.prim()) else {
        return err("arithmetic needs primitive values");
    };
    if let (Add, Prim::Str(a), Prim::Str(b)) = (op, p, q) {
        return Ok(Coll::one(Item::Str(Cow::Owned(format!("{a}{b}")))));
    }
    let dec = |p: Prim<'_>| match p {
        Prim::Int(i) => Some(Decimal::from_i64(i)),
        Prim::Dec(d) => Some(d),
        _ => None,
    };
    if let (Prim::Int(a), Prim::Int(b)) = (p, q) {
        let r = match op {
            Add => a.checked_add(b),
            Sub => a.checked_sub(b),
            Mul => a.checked_mul(b),
            IntDiv => a.checked_div(b),
            Mod => a.checked_rem(b),
            _ => None,
        };
        if op != Div {
            return Ok(r.map_or(Coll::Empty, |v| Coll::one(Item::Int(v))));
        }
    }
    let (Some(a), Some(b)) = (dec(p), dec(q)) else {
        return err("arithmetic needs numbers");
    };
    let r = match op {
        Add => a.checked_add(&b),
        Sub => a.checked_sub(&b),
        Mul => a.checked_mul(&b),
        Div => a.checked_div(&b),
        IntDiv => a
            .checked_div(&b)
            .and_then(|d| d.trunc_i64())
            .map(Decimal::from_i64),
        Mod => a.checked_div(&b).and_then(|d| d.trunc_i64()).and_then(|t| {
            b.checked_mul(&Decimal::from_i64(t))
                .and_then(|m| a.checked_sub(&m))
        }),
        _ => None,
    };
    Ok(match (op, r) {
        (_, None) => Coll::Empty,
        (IntDiv, Some(d)) => Coll::one(Item::Int(d.trunc_i64().unwrap_or_default())),
        (_, Some(d)) => Coll::one(Item::Dec(d)),
    })
}

/// Does `item` have FHIR/System type `ty` (`Quantity`, `string`, `dateTime`, …)?
fn is_type<'a, N: Node<'a>>(item: &Item<'a, N>, ty: &str) -> bool {
    let eq = |a: &str| a.eq_ignore_ascii_case(ty);
    let string_family = [
        "string",
        "code",
        "id",
        "markdown",
        "uri",
        "url",
        "canonical",
        "oid",
        "uuid",
        "base64Binary",
        "date",
        "dateTime",
        "instant",
        "time",
        "xhtml",
    ];
    match item {
        Item::Node(n) => {
            if !n.tag.is_empty() {
                return eq(n.tag)
                    || (eq("string") && ["Code", "Id", "Markdown"].contains(&n.tag))
                    || (eq("uri") && ["Url", "Canonical", "Oid", "Uuid"].contains(&n.tag))
                    || (eq("integer") && ["PositiveInt", "UnsignedInt"].contains(&n.tag));
            }
            match n.node.kind() {
                NodeKind::String(_) => string_family.iter().any(|t| eq(t)),
                NodeKind::Bool(_) => eq("boolean"),
                NodeKind::Number => {
                    eq("decimal")
                        || (n.node.as_i64().is_some()
                            && ["integer", "positiveInt", "unsignedInt", "integer64"]
                                .iter()
                                .any(|t| eq(t)))
                }
                NodeKind::Object => match n.node.get("resourceType").and_then(|r| r.as_str()) {
                    Some(rt) => eq(rt) || eq("Resource") || eq("DomainResource"),
                    None => ty.starts_with(|c: char| c.is_ascii_uppercase()),
                },
                _ => false,
            }
        }
        Item::Bool(_) => eq("boolean"),
        Item::Int(_) => eq("integer"),
        Item::Dec(_) => eq("decimal"),
        Item::Str(_) => eq("string"),
        Item::Date(_) => eq("date"),
        Item::DateTime(_) => eq("dateTime"),
        Item::Time(_) => eq("time"),
    }
}

/// The key a `Reference` points at, as FHIRPath's `getReferenceKey(ty)` takes it: the id of
/// `Type/id` (the last two path segments of a relative or absolute URL, `/_history/n`, `#` and
/// `?` parts off), if the type matches `ty`.
///
/// ```
/// assert_eq!(claimline_view::reference_key("Patient/-1000", Some("Patient")), Some("-1000"));
/// assert_eq!(claimline_view::reference_key("https://x/fhir/Patient/7/_history/2", None), Some("7"));
/// assert_eq!(claimline_view::reference_key("Organization/1", Some("Patient")), None);
/// ```
pub fn reference_key<'a>(reference: &'a str, ty: Option<&str>) -> Option<&'a str> {
    let path = reference.split(['#', '?']).next().unwrap_or(reference);
    let mut segs = path.rsplit('/');
    let mut id = segs.next()?;
    let mut rtype = segs.next()?;
    if rtype == "_history" {
        // `Type/id/_history/vid`
        id = segs.next()?;
        rtype = segs.next()?;
    }
    if id.is_empty() || !rtype.starts_with(|c: char| c.is_ascii_uppercase()) {
        return None;
    }
    match ty {
        Some(t) if t != rtype => None,
        _ => Some(id),
    }
}

fn decimal_boundary(d: Decimal, which: Boundary) -> Option<Decimal> {
    let scale = d.scale().max(1) + 1;
    let d = d.rescale(scale)?;
    let half = Decimal::new(5, scale);
    match which {
        Boundary::Low => d.checked_sub(&half),
        Boundary::High => d.checked_add(&half),
    }
}

fn boundary<'a, N: Node<'a>>(item: &Item<'a, N>, which: Boundary) -> Option<Item<'a, N>> {
    let owned = |s: Option<String>| s.map(Cow::Owned);
    Some(match item.prim()? {
        Prim::Int(i) => Item::Dec(decimal_boundary(Decimal::from_i64(i), which)?),
        Prim::Dec(d) => Item::Dec(decimal_boundary(d, which)?),
        Prim::Date(s) => Item::Date(owned(temporal::date_boundary(s, which))?),
        Prim::DateTime(s) => Item::DateTime(owned(temporal::date_time_boundary(s, which))?),
        Prim::Time(s) => Item::Time(owned(temporal::time_boundary(s, which))?),
        Prim::Str(s) => {
            if s.contains('T') {
                Item::DateTime(owned(temporal::date_time_boundary(s, which))?)
            } else if temporal::parse_date_time(s).is_some() {
                Item::Date(owned(temporal::date_boundary(s, which))?)
            } else {
                Item::Time(owned(temporal::time_boundary(s, which))?)
            }
        }
        Prim::Bool(_) => return None,
    })
}

fn string_fn<'a, N: Node<'a>>(
    src: &[Item<'a, N>],
    f: impl FnOnce(&str) -> Option<Item<'a, N>>,
) -> Result<Coll<'a, N>> {
    Ok(match single_string(src)? {
        None => Coll::Empty,
        Some(s) => f(&s).map_or(Coll::Empty, Coll::one),
    })
}

/// Is `e` an extension with this `url`? (`extension('url')`'s test.)
pub(crate) fn has_url<'a, N: Node<'a>>(e: N, url: &str) -> bool {
    e.get("url")
        .and_then(|u| u.as_str())
        .is_some_and(|u| same_text(u.as_bytes(), url.as_bytes()))
}

/// `replace(pattern, substitution)` on `src`.
pub(crate) fn replace<'a, N: Node<'a>>(
    src: &[Item<'a, N>],
    pat: &str,
    sub: &str,
) -> Result<Coll<'a, N>> {
    // A string of the document without the pattern is itself: borrowed, not copied (most
    // codes `replace('.', '')` is given have no dot).
    if let [Item::Node(n)] = src
        && !matches!(n.ext, Ext::Only)
        && let NodeKind::String(s) = n.node.kind()
        && !s.contains(pat)
    {
        return Ok(Coll::one(Item::Str(Cow::Borrowed(s))));
    }
    string_fn(src, |s| {
        let out = if pat.is_empty() {
            // FHIRPath: an empty pattern inserts the substitution around every character.
            let mut o = sub.to_owned();
            for c in s.chars() {
                o.push(c);
                o.push_str(sub);
            }
            o
        } else {
            s.replace(pat, sub)
        };
        Some(Item::Str(Cow::Owned(out)))
    })
}

fn call<'a, N: Node<'a>>(
    f: &'a Function,
    src: &[Item<'a, N>],
    args: &'a [Expr],
    focus: &[Item<'a, N>],
    index: Option<i64>,
    env: &Env<'a, N>,
) -> Result<Coll<'a, N>> {
    use Function as F;
    let items = src;
    // Non-lambda arguments are evaluated against the enclosing focus.
    let arg = |i: usize| -> Result<Coll<'a, N>> {
        match args.get(i) {
            Some(a) => eval(a, focus, index, env),
            None => Ok(Coll::Empty),
        }
    };
    // String arguments are nearly always literals: borrow those from the plan.
    let arg_string = |i: usize| -> Result<Option<Cow<'a, str>>> {
        if let Some(Expr::Literal(Literal::String(s))) = args.get(i) {
            return Ok(Some(Cow::Borrowed(s.as_str())));
        }
        let c = arg(i)?;
        Ok(single_string(&c)?.map(|s| Cow::Owned(s.into_owned())))
    };
    let lambda = |i: usize, item: &Item<'a, N>, k: usize| -> Result<Coll<'a, N>> {
        match args.get(i) {
            Some(a) => eval(a, std::slice::from_ref(item), Some(k as i64), env),
            None => Ok(Coll::Empty),
        }
    };
    Ok(match f {
        F::Where => {
            let mut out = Coll::Empty;
            for (k, it) in items.iter().enumerate() {
                if to_bool(&lambda(0, it, k)?)? == Some(true) {
                    out.push(it.clone());
                }
            }
            out
        }
        F::Select => {
            let mut out = Coll::Empty;
            for (k, it) in items.iter().enumerate() {
                for r in lambda(0, it, k)? {
                    out.push(r);
                }
            }
            out
        }
        F::Exists => {
            if args.is_empty() {
                bool_coll(Some(!items.is_empty()))
            } else {
                let mut any = false;
                for (k, it) in items.iter().enumerate() {
                    if to_bool(&lambda(0, it, k)?)? == Some(true) {
                        any = true;
                        break;
                    }
                }
                bool_coll(Some(any))
            }
        }
        F::All => {
            let mut all = true;
            for (k, it) in items.iter().enumerate() {
                if to_bool(&lambda(0, it, k)?)? != Some(true) {
                    all = false;
                    break;
                }
            }
            bool_coll(Some(all))
        }
        F::Empty => bool_coll(Some(items.is_empty())),
        F::Count => Coll::one(Item::Int(items.len() as i64)),
        F::First => items.first().cloned().map_or(Coll::Empty, Coll::one),
        F::Last => items.last().cloned().map_or(Coll::Empty, Coll::one),
        F::Single => match items {
            [] => Coll::Empty,
            [one] => Coll::one(one.clone()),
            _ => return err("single() on a collection of many items"),
        },
        F::Tail => Coll::from_items(items.iter().skip(1).cloned()),
        F::Skip | F::Take => {
            let n = single_int(&arg(0)?)?.unwrap_or(0).max(0) as usize;
            if *f == F::Skip {
                Coll::from_items(items.iter().skip(n).cloned())
            } else {
                Coll::from_items(items.iter().take(n).cloned())
            }
        }
        F::Distinct => {
            let mut out = Vec::new();
            for i in items {
                distinct_push(&mut out, i.clone());
            }
            Coll::from_items(out)
        }
        F::Union | F::Combine => {
            let other = arg(0)?;
            let mut out = Vec::new();
            for i in items.iter().cloned().chain(other) {
                if *f == F::Union {
                    distinct_push(&mut out, i);
                } else {
                    out.push(i);
                }
            }
            Coll::from_items(out)
        }
        F::Not => bool_coll(to_bool(src)?.map(|b| !b)),
        F::AllTrue | F::AnyTrue => {
            let bools: Vec<bool> = items
                .iter()
                .map(|i| matches!(i.prim(), Some(Prim::Bool(true))))
                .collect();
            bool_coll(Some(if *f == F::AllTrue {
                bools.iter().all(|b| *b)
            } else {
                bools.iter().any(|b| *b)
            }))
        }
        F::HasValue => bool_coll(Some(matches!(items, [one] if one.prim().is_some()))),
        F::OfType(ty) | F::As(ty) => {
            Coll::from_items(items.iter().filter(|i| is_type(i, ty)).cloned())
        }
        F::Is(ty) => match items {
            [] => Coll::Empty,
            [one] => bool_coll(Some(is_type(one, ty))),
            _ => return err("is() on a collection of many items"),
        },
        F::Extension => {
            let url = arg_string(0)?;
            let mut out = Coll::Empty;
            let Some(url) = url else {
                return Ok(out);
            };
            for it in items {
                let Item::Node(n) = it else { continue };
                let holder = match n.node.kind() {
                    NodeKind::Object if !matches!(n.ext, Ext::Only) => Some(n.node),
                    _ => primitive_ext(n),
                };
                let Some(holder) = holder else {
                    continue;
                };
                ExtIndex::each(&env.ext_index, holder, &url, |e| {
                    out.push(Item::node(e));
                    None::<()>
                });
            }
            out
        }
        F::Join => {
            let sep = arg_string(0)?.unwrap_or_default();
            let mut s = String::new();
            for (k, it) in items.iter().enumerate() {
                if k > 0 {
                    s.push_str(&sep);
                }
                match it.string() {
                    Some(t) => s.push_str(&t),
                    None => return err("join() needs strings"),
                }
            }
            Coll::one(Item::Str(Cow::Owned(s)))
        }
        F::LowBoundary | F::HighBoundary => {
            let which = if *f == F::LowBoundary {
                Boundary::Low
            } else {
                Boundary::High
            };
            match singleton(src)? {
                None => Coll::Empty,
                Some(i) => boundary(i, which).map_or(Coll::Empty, Coll::one),
            }
        }
        F::GetResourceKey => {
            let mut out = Coll::Empty;
            for it in items {
                if let Item::Node(n) = it
                    && let Some(id) = n.node.get("id").and_then(|v| v.as_str())
                {
                    out.push(Item::Str(Cow::Borrowed(id)));
                }
            }
            out
        }
        F::Resolve => {
            let mut out = Coll::Empty;
            for it in items {
                let Item::Node(n) = it else { continue };
                let Some(id) = n
                    .node
                    .get("reference")
                    .and_then(|v| v.as_str())
                    .and_then(|r| r.strip_prefix('#'))
                    .filter(|id| !id.is_empty())
                else {
                    continue;
                };
                let Some(contained) = env.resource.get("contained") else {
                    continue;
                };
                for c in contained.items() {
                    if c.get("id").and_then(|v| v.as_str()) == Some(id) {
                        out.push(Item::node(c));
                    }
                }
            }
            out
        }
        F::GetReferenceKey(ty) => {
            let mut out = Coll::Empty;
            for it in items {
                if let Item::Node(n) = it {
                    let r = n.node.get("reference").and_then(|v| v.as_str());
                    if let Some(key) = r.and_then(|r| reference_key(r, ty.as_deref())) {
                        out.push(Item::Str(Cow::Borrowed(key)));
                    }
                }
            }
            out
        }
        F::Iif => {
            if src.len() > 1 {
                return err("iif() on a collection of many items");
            }
            let run = |i: usize| -> Result<Coll<'a, N>> {
                match args.get(i) {
                    Some(a) => eval(a, src, index, env),
                    None => Ok(Coll::Empty),
                }
            };
            if to_bool(&run(0)?)? == Some(true) {
                run(1)?
            } else {
                run(2)?
            }
        }
        F::StartsWith | F::EndsWith | F::Contains | F::IndexOf => {
            let Some(needle) = arg_string(0)? else {
                return Ok(Coll::Empty);
            };
            string_fn(src, |s| {
                Some(match f {
                    F::StartsWith => Item::Bool(s.starts_with(&*needle)),
                    F::EndsWith => Item::Bool(s.ends_with(&*needle)),
                    F::Contains => Item::Bool(s.contains(&*needle)),
                    _ => Item::Int(
                        s.find(&*needle)
                            .map_or(-1, |b| s[..b].chars().count() as i64),
                    ),
                })
            })?
        }
        F::Substring => {
            let start = single_int(&arg(0)?)?;
            let len = if args.len() > 1 {
                single_int(&arg(1)?)?
            } else {
                None
            };
            let Some(start) = start else {
                return Ok(Coll::Empty);
            };
            string_fn(src, |s| {
                let n = s.chars().count() as i64;
                if start < 0 || start >= n {
                    return None;
                }
                let take = len.map_or(n, |l| l.max(0));
                let out: String = s.chars().skip(start as usize).take(take as usize).collect();
                Some(Item::Str(Cow::Owned(out)))
            })?
        }
        F::Replace => {
            let (Some(pat), Some(sub)) = (arg_string(0)?, arg_string(1)?) else {
                return Ok(Coll::Empty);
            };
            replace(src, &pat, &sub)?
        }
        F::Upper => string_fn(src, |s| Some(Item::Str(Cow::Owned(s.to_uppercase()))))?,
        F::Lower => string_fn(src, |s| Some(Item::Str(Cow::Owned(s.to_lowercase()))))?,
        F::Trim => string_fn(src, |s| Some(Item::Str(Cow::Owned(s.trim().to_owned()))))?,
        F::Length => string_fn(src, |s| Some(Item::Int(s.chars().count() as i64)))?,
        F::ToString => match singleton(src)? {
            None => Coll::Empty,
            Some(i) => match i.string() {
                Some(s) => Coll::one(Item::Str(Cow::Owned(s.into_owned()))),
                None => Coll::Empty,
            },
        },
        F::ToInteger | F::ConvertsToInteger => {
            let v = match singleton(src)?.and_then(|i| i.prim()) {
                Some(Prim::Int(i)) => Some(i),
                Some(Prim::Str(s)) => {
                    let t = s.strip_prefix('+').unwrap_or(s);
                    if t.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                        t.parse().ok()
                    } else {
                        None
                    }
                }
                Some(Prim::Bool(b)) => Some(i64::from(b)),
                _ => None,
            };
            if *f == F::ToInteger {
                v.map_or(Coll::Empty, |v| Coll::one(Item::Int(v)))
            } else if src.is_empty() {
                Coll::Empty
            } else {
                bool_coll(Some(v.is_some()))
            }
        }
        F::ToDecimal | F::ConvertsToDecimal => {
            let v = match singleton(src)?.and_then(|i| i.prim()) {
                Some(Prim::Int(i)) => Some(Decimal::from_i64(i)),
                Some(Prim::Dec(d)) => Some(d),
                Some(Prim::Str(s)) => Decimal::parse(s).filter(|_| !s.contains(['e', 'E'])),
                Some(Prim::Bool(b)) => Some(Decimal::from_i64(i64::from(b))),
                _ => None,
            };
            if *f == F::ToDecimal {
                v.map_or(Coll::Empty, |v| Coll::one(Item::Dec(v)))
            } else if src.is_empty() {
                Coll::Empty
            } else {
                bool_coll(Some(v.is_some()))
            }
        }
        F::ToBoolean => {
            let v = match singleton(src)?.and_then(|i| i.prim()) {
                Some(Prim::Bool(b)) => Some(b),
                Some(Prim::Int(1)) => Some(true),
                Some(Prim::Int(0)) => Some(false),
                Some(Prim::Str(s)) => match s.to_ascii_lowercase().as_str() {
                    "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(true),
                    "false" | "f" | "no" | "n" | "0" | "0.0" => Some(false),
                    _ => None,
                },
                _ => None,
            };
            bool_coll(v)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhirpath::compile;

    /// Evaluates `expr` on `resource` (JSON text) and renders the result as JSON-ish text.
    fn run(resource: &str, expr: &str) -> String {
        let json: serde_json::Value = serde_json::from_str(resource).expect("test resource");
        let plan = compile(expr, &["c".to_owned()]).expect("test expression compiles");
        let consts = [Literal::String("official".to_owned())];
        let env = Env::new(&json, &consts, 0);
        match eval(&plan, &Coll::one(Item::node(&json)), None, &env) {
            Err(EvalError(e)) => format!("error: {e}"),
            Ok(c) => {
                let parts: Vec<String> = c
                    .as_slice()
                    .iter()
                    .map(|i| match i {
                        Item::Node(n) if i.prim().is_none() => {
                            if matches!(n.ext, Ext::Only) {
                                "<ext>".to_owned()
                            } else {
                                serde_json::to_string(n.node).unwrap_or_default()
                            }
                        }
                        _ => match i.prim() {
                            Some(Prim::Str(s)) => format!("'{s}'"),
                            Some(Prim::Date(s)) => format!("@{s}"),
                            Some(Prim::DateTime(s)) => format!("@{s}"),
                            Some(Prim::Time(s)) => format!("@T{s}"),
                            _ => i.string().map(|s| s.into_owned()).unwrap_or_default(),
                        },
                    })
                    .collect();
                format!("[{}]", parts.join(", "))
            }
        }
    }

    /// The criteria answered without collections (`truth`'s fast paths) give what the general
    /// path gives, including where they must fall back to it: a decimal `1.0` equals `1`, an
    /// array member, a choice type, a missing member, and a row constant with a decimal in it.
    #[test]
    fn criteria_fast_paths_agree_with_the_general_path() {
        let res: serde_json::Value = serde_json::from_str(
            r#"{"resourceType":"ExplanationOfBenefit",
            "item":[{"sequence":1,"careTeamSequence":[2,3.0]},{"sequence":2,"careTeamSequence":[1]}],
            "careTeam":[{"sequence":1,"role":"a"},{"sequence":2.0,"role":"b"},{"sequence":3,"role":"c"},
                        {"sequence":"1","role":"d"},{"role":"e"},{"sequence":[1],"role":"f"},
                        {"sequenceInteger":1,"role":"g"},{"sequence":1,"_sequence":{"id":"x"},"role":"h"}],
            "type":{"coding":[{"system":"s","code":"c1"},{"system":["s"],"code":"c2"},{"code":"c3"},
                              {"systemUri":"s","code":"c4"}]}}"#,
        )
        .expect("test resource");
        let cases: [(&str, i64, &str); 10] = [
            // `f` holds `[1]`, `g` the choice type `sequenceInteger`: the general path's answers.
            ("careTeam.where(sequence = 1).role", 0, "a,f,g,h"),
            ("careTeam.where(sequence != 1).role", 0, "b,c,d"),
            ("careTeam.where(sequence = 2).role", 0, "b"),
            ("careTeam.where(sequence = '1').role", 0, "d"),
            ("type.coding.where(system = 's').code", 0, "c1,c2,c4"),
            ("type.coding.where(system != 's').code", 0, ""),
            ("type.coding.where(code = 'c3').exists()", 0, "true"),
            ("type.coding.where(code = 'c9').empty()", 0, "true"),
            (
                "careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence).role",
                0,
                "b,c",
            ),
            (
                "careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence).role",
                1,
                "a,f,g,h",
            ),
        ];
        for (src, row, want) in cases {
            let mut plan =
                crate::fhirpath::hoist_row_constants(compile(src, &[]).expect("compiles"));
            crate::fhirpath::share_row_constants(&mut plan, &mut Vec::new());
            let env = Env::new(&res, &[], row);
            let got = eval(&plan, &Coll::one(Item::node(&res)), None, &env).expect("evaluates");
            let got: Vec<String> = got
                .iter()
                .map(|i| i.string().map(|s| s.into_owned()).unwrap_or_default())
                .collect();
            assert_eq!(got.join(","), want, "expression: {src}, row {row}");
        }
    }

    /// One line per case: resource, expression, expected rendering.
    macro_rules! fhirpath_tests {
        ($($name:ident: $res:expr, $expr:expr => $want:expr;)*) => {
            $(
                #[test]
                fn $name() {
                    assert_eq!(run($res, $expr), $want, "expression: {}", $expr);
                }
            )*
        };
    }

    const PT: &str = r#"{"resourceType":"Patient","id":"p1","active":true,
        "name":[{"use":"official","family":"Smith","given":["Ann","Bo"]},{"family":"Jones","given":["Cy"]}],
        "birthDate":"1970-06","_birthDate":{"extension":[{"url":"u","valueString":"approx"}]},
        "deceasedBoolean":false,
        "_active":{"id":"a1"},
        "extension":[{"url":"http://x/race","extension":[{"url":"omb","valueCoding":{"code":"2106-3"}}]}],
        "link":[{"other":{"reference":"Patient/p1"}},{"other":{"reference":"http://h/fhir/Organization/o2/_history/3"}}],
        "multipleBirthInteger":2,"weight":{"value":1.50},"onsetDateTime":"2020-01-02"}"#;
    const EOB: &str = r##"{"resourceType":"ExplanationOfBenefit","id":"e1",
        "identifier":[{"system":"s/claim-group","value":"44"},{"system":"s/clm_id","value":"-99"}],
        "item":[{"sequence":1,"net":{"value":10.00}},{"sequence":2,"net":{"value":2.5}}],
        "given":["a",null,"c"],"_given":[null,{"extension":[{"url":"why","valueCode":"masked"}]},null],
        "contained":[{"resourceType":"Practitioner","id":"careteam-provider-1","identifier":[{"value":"111"}]},
                     {"resourceType":"Practitioner","id":"careteam-provider-2","identifier":[{"value":"222"}]}],
        "careTeam":[{"provider":{"reference":"#careteam-provider-2"}},{"provider":{"identifier":{"value":"333"}}},
                    {"provider":{"reference":"Practitioner/9"}}]}"##;

    fhirpath_tests! {
        member_path: PT, "name.family" => "['Smith', 'Jones']";
        type_prefix: PT, "Patient.name.given.first()" => "['Ann']";
        indexer: PT, "name[1].given" => "['Cy']";
        indexer_out_of_range: PT, "name[5]" => "[]";
        where_eq: PT, "name.where(use = 'official').family" => "['Smith']";
        where_constant: PT, "name.where(use = %c).given.last()" => "['Bo']";
        exists_empty: PT, "name.exists() and telecom.empty()" => "[true]";
        exists_criteria: PT, "name.exists(family = 'Jones')" => "[true]";
        choice_oftype: PT, "deceased.ofType(boolean)" => "[false]";
        choice_wrong_type: PT, "deceased.ofType(dateTime)" => "[]";
        choice_integer: PT, "multipleBirth.ofType(integer) + 1" => "[3]";
        nested_extension: PT, "extension('http://x/race').extension('omb').value.ofType(Coding).code" => "['2106-3']";
        primitive_extension: PT, "birthDate.extension('u').value.ofType(string)" => "['approx']";
        primitive_id: PT, "active.id" => "['a1']";
        join_sep: PT, "name.given.join(', ')" => "['Ann, Bo, Cy']";
        join_empty: PT, "telecom.value.join(',')" => "['']";
        not_fn: PT, "(active = true).not()" => "[false]";
        three_valued_and: PT, "telecom.exists() or gender = 'x'" => "[]";
        implies: PT, "false implies gender = 'x'" => "[true]";
        xor: PT, "true xor false" => "[true]";
        decimal_keeps_scale: PT, "weight.value" => "[1.50]";
        decimal_literal_compare: PT, "weight.value = 1.5" => "[true]";
        int_div: PT, "7 div 2" => "[3]";
        int_mod: PT, "7 mod 2" => "[1]";
        dec_div: PT, "3 / 2" => "[1.5]";
        arithmetic_precedence: PT, "1 + 2 * 3 - 4" => "[3]";
        concat_empty: PT, "'a' & gender & 'b'" => "['ab']";
        string_plus: PT, "'a' + 'b'" => "['ab']";
        comparison_strings: PT, "'abc' < 'abd'" => "[true]";
        date_low_boundary: PT, "birthDate.lowBoundary()" => "[@1970-06-01]";
        date_high_boundary: PT, "birthDate.highBoundary()" => "[@1970-06-30]";
        decimal_boundary: PT, "weight.value.highBoundary()" => "[1.505]";
        date_literal_eq: PT, "@2020-01-01 = @2020-01-01" => "[true]";
        date_precision_unknown: PT, "@2020-01 = @2020-01-01" => "[]";
        resource_key: PT, "getResourceKey()" => "['p1']";
        resolve_contained: EOB, "careTeam.provider.resolve().identifier.value" => "['222']";
        resolve_or_inline: EOB, "careTeam.provider.select(identifier | resolve().identifier).value" => "['222', '333']";
        reference_key: PT, "link.other.getReferenceKey()" => "['p1', 'o2']";
        reference_key_typed: PT, "link.other.getReferenceKey(Organization)" => "['o2']";
        iif_true: PT, "iif(active, 'y', 'n')" => "['y']";
        iif_no_else: PT, "iif(name.count() > 5, 'many')" => "[]";
        starts_ends: PT, "name.family.first().startsWith('Sm') and name.family.first().endsWith('th')" => "[true]";
        contains_fn: PT, "name.family.first().contains('mit')" => "[true]";
        substring: PT, "'abcdef'.substring(2, 3)" => "['cde']";
        substring_out: PT, "'abc'.substring(9)" => "[]";
        replace: PT, "'a-b-c'.replace('-', '')" => "['abc']";
        replace_node_without_pattern: PT, "name.family.first().replace('x', 'y')" => "['Smith']";
        replace_node_with_pattern: PT, "name.family.first().replace('mi', 'MI')" => "['SMIth']";
        replace_gives_a_string: PT, "birthDate.replace('x', '') is string" => "[true]";
        choice_is_datetime: PT, "onset is dateTime" => "[true]";
        replace_of_a_choice_gives_a_string: PT, "onset.replace('x', '') is string" => "[true]";
        replace_of_a_choice_is_no_datetime: PT, "onset.replace('x', '') is dateTime" => "[false]";
        replace_leaves_no_extension: PT, "birthDate.replace('x', '').extension('u').exists()" => "[false]";
        to_string: PT, "weight.value.toString()" => "['1.50']";
        to_integer: PT, "'-42'.toInteger() + 2" => "[-40]";
        to_integer_bad: PT, "'4x'.toInteger()" => "[]";
        count: PT, "name.given.count()" => "[3]";
        distinct: PT, "(name.use | 'official' | 'x').count()" => "[2]";
        select: PT, "name.select(given.first())" => "['Ann', 'Cy']";
        union_fn: PT, "name.family.union(name.given).count()" => "[5]";
        membership_in: PT, "'Jones' in name.family" => "[true]";
        membership_contains: PT, "name.family contains 'Nope'" => "[false]";
        single_ok: PT, "name.where(use = 'official').single().family" => "['Smith']";
        single_many: PT, "name.single()" => "error: single() on a collection of many items";
        tail_skip_take: PT, "name.given.tail().skip(1).take(1)" => "['Cy']";
        this_in_where: PT, "name.given.where($this = 'Bo')" => "['Bo']";
        index_in_where: PT, "name.given.where($index = 2)" => "['Cy']";
        resource_var: PT, "name.where(%resource.active).family.count()" => "[2]";
        is_op: PT, "deceased is boolean" => "[true]";
        as_op: PT, "(multipleBirth as integer) * 2" => "[4]";
        equality_of_collections: PT, "name.given = name.given" => "[true]";
        equality_empty: PT, "gender = 'male'" => "[]";
        arithmetic_on_many: PT, "name.given + 'x'" => "error: expected a single value, got a collection";
        negation: PT, "-(2 + 3)" => "[-5]";
        upper_lower_len: PT, "'Ab'.upper() & 'Ab'.lower() & 'Ab'.length().toString()" => "['ABab2']";
        null_array_items: EOB, "given" => "['a', <ext>, 'c']";
        null_item_extension: EOB, "given[1].extension('why').value.ofType(code)" => "['masked']";
        eob_identifier: EOB, "identifier.where(system.endsWith('clm_id')).value.first()" => "['-99']";
        eob_sum_free: EOB, "item.net.value.first() + item.net.value.last()" => "[12.50]";
        eob_all: EOB, "item.all(sequence > 0)" => "[true]";
        eob_equiv: EOB, "'Ab c' ~ 'ab  C'" => "[true]";
        eob_date_compare: EOB, "@2020-01-02T10:00:00+02:00 < @2020-01-02T09:00:00Z" => "[true]";
    }
}

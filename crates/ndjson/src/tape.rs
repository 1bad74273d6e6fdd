//! A read-only cursor over one parsed resource on simd-json's tape.
//!
//! The tape is a flat `Vec<Node>` in document order: an object node is followed by its keys and
//! values, an array node by its elements, and each container records how many nodes it spans, so
//! skipping a subtree is one addition. A [`Cursor`] is a position on that tape plus a reference to
//! the [`Document`] it belongs to; it is `Copy`, 16 bytes, and never allocates.
//!
//! Numbers on the tape are `i64`/`u64`/`f64`. Exact decimals need the digits as written, so
//! [`Cursor::number_text`] returns the number's source text: the k-th number node on the tape is
//! the k-th structural index whose byte starts a number (simd-json records one structural index per
//! scalar, in document order, and those offsets index the original line bytes).

use std::cell::OnceCell;

use claimline_model::{same_text, text_fingerprint};
use simd_json::{Node, StaticNode};

use crate::prune::Needs;

/// One parsed JSON document: its tape, the original line bytes, and the structural indexes
/// simd-json found in them.
pub struct Document<'a> {
    nodes: &'a [Node<'a>],
    text: &'a [u8],
    structurals: &'a [u32],
    /// Address of the parse buffer, which holds `text` at the same offsets (strings unescaped in
    /// place), so a string node's position in `text` is its address minus this.
    base: usize,
    /// `(tape index, byte offset)` of every number node, built on first use.
    numbers: OnceCell<Vec<(u32, u32)>>,
    /// The root object's members, listed on the first lookup in it (see [`RootKeys`]).
    root_keys: OnceCell<Option<RootKeys>>,
    /// What the tape was cut down to, when the line was parsed in part (see [`crate::prune`]).
    pruned: Option<&'a Needs>,
}

/// The members of a document's root object in document order: each key's [`text_fingerprint`] and
/// the tape position of the key. The views and the link stage look a resource's members up
/// dozens of times, and a resource has thirty-odd of them; a lookup here compares one number per
/// member until the fingerprint matches, where a walk of the tape reads each member's key and
/// the size of its value.
type RootKeys = Vec<(u64, u32)>;

impl<'a> Document<'a> {
    /// Wraps a tape that simd-json filled from a copy of `text`, with the structural indexes of
    /// that parse (offsets into `text`).
    pub fn new(nodes: &'a [Node<'a>], text: &'a [u8], structurals: &'a [u32]) -> Self {
        Document {
            nodes,
            text,
            structurals,
            base: 0,
            numbers: OnceCell::new(),
            root_keys: OnceCell::new(),
            pruned: None,
        }
    }

    /// As [`Document::new`], also giving the address of the buffer simd-json parsed (a copy of
    /// `text` at the same offsets). Number text is then found from the key before the number,
    /// without scanning the document.
    pub fn with_buffer(
        nodes: &'a [Node<'a>],
        text: &'a [u8],
        structurals: &'a [u32],
        buffer: *const u8,
    ) -> Self {
        Document {
            base: buffer as usize,
            ..Document::new(nodes, text, structurals)
        }
    }

    /// The number at tape position `pos` when it is an object member's value: its key is the
    /// node before it, the key's unescaped text sits where it was written, and what follows the
    /// key's closing quote is `:` and the number. `None` when any of that does not hold.
    fn number_after_key(&self, pos: usize) -> Option<usize> {
        if self.base == 0 {
            return None;
        }
        let Some(Node::String(key)) = pos.checked_sub(1).and_then(|p| self.nodes.get(p)) else {
            return None;
        };
        let start = (key.as_ptr() as usize).checked_sub(self.base)?;
        let end = start + key.len();
        // The original bytes must be the key itself followed by its closing quote (a key with
        // escapes was shortened by unescaping and fails this check).
        if self.text.get(start..end)? != key.as_bytes() || self.text.get(end) != Some(&b'"') {
            return None;
        }
        let mut i = end + 1;
        while self.text.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if self.text.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        while self.text.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        self.text
            .get(i)
            .is_some_and(|b| *b == b'-' || b.is_ascii_digit())
            .then_some(i)
    }

    /// Marks the document as parsed in part, with the root members `needs` reads (see
    /// [`crate::prune`]). Debug builds then check every lookup in the root object: a member
    /// looked up that `needs` does not name may have been left out, which is a consumer's
    /// [`Needs`] missing a member it reads.
    pub fn pruned(self, needs: Option<&'a Needs>) -> Self {
        Document {
            pruned: needs,
            ..self
        }
    }

    /// The cursor at the document's root value.
    pub fn root(&self) -> Cursor<'_> {
        Cursor { doc: self, pos: 0 }
    }

    /// Number of tape nodes (a rough measure of document size).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The root object's members ([`RootKeys`]; none when the root is no object). `None` only
    /// for a tape too long for its positions to fit 32 bits.
    fn root_keys(&self) -> Option<&RootKeys> {
        self.root_keys
            .get_or_init(|| {
                let root = self.root();
                // Made at its size: a collect through `Option` would grow it member by member.
                let mut keys = Vec::with_capacity(match root.kind() {
                    Kind::Object(members) => members,
                    _ => 0,
                });
                for (k, v) in root.entries() {
                    keys.push((
                        text_fingerprint(k.as_bytes()),
                        u32::try_from(v.pos - 1).ok()?,
                    ));
                }
                Some(keys)
            })
            .as_ref()
    }

    fn number_offsets(&self) -> &[(u32, u32)] {
        self.numbers.get_or_init(|| {
            let tape_numbers = self.nodes.iter().enumerate().filter(|(_, n)| {
                matches!(
                    n,
                    Node::Static(StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_))
                )
            });
            let text_numbers = self.structurals.iter().copied().filter(|&i| {
                self.text
                    .get(i as usize)
                    .is_some_and(|b| *b == b'-' || b.is_ascii_digit())
            });
            tape_numbers
                .zip(text_numbers)
                .map(|((ti, _), off)| (ti as u32, off))
                .collect()
        })
    }
}

/// What kind of JSON value a [`Cursor`] points at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind<'a> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number (use [`Cursor::number_text`] for its exact digits).
    Number,
    /// A string, unescaped.
    String(&'a str),
    /// An object with this many keys.
    Object(usize),
    /// An array with this many elements.
    Array(usize),
}

/// A position on a [`Document`]'s tape.
#[derive(Clone, Copy)]
pub struct Cursor<'a> {
    doc: &'a Document<'a>,
    pos: usize,
}

/// Where the cursor is and the kind of value there, never the value's text (a resource's
/// strings are claims data: a cursor put in an error or a log must not carry them).
impl std::fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind() {
            Kind::String(s) => write!(f, "Cursor({}: a string of {} bytes)", self.pos, s.len()),
            kind => write!(f, "Cursor({}: {kind:?})", self.pos),
        }
    }
}

impl<'a> Cursor<'a> {
    fn node(&self) -> Node<'a> {
        // `pos` only ever comes from walking a well-formed tape, so it is in bounds; fall back to
        // null rather than panic if that invariant were ever broken.
        self.doc
            .nodes
            .get(self.pos)
            .copied()
            .unwrap_or(Node::Static(StaticNode::Null))
    }

    /// Index of this node on the tape (stable for the document's lifetime).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The kind of value here.
    pub fn kind(&self) -> Kind<'a> {
        match self.node() {
            Node::String(s) => Kind::String(s),
            Node::Object { len, .. } => Kind::Object(len),
            Node::Array { len, .. } => Kind::Array(len),
            Node::Static(StaticNode::Null) => Kind::Null,
            Node::Static(StaticNode::Bool(b)) => Kind::Bool(b),
            Node::Static(_) => Kind::Number,
        }
    }

    /// Number of tape nodes this value spans (1 for scalars).
    fn span(&self) -> usize {
        match self.node() {
            Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
            _ => 1,
        }
    }

    /// The string value, if this is a string.
    pub fn as_str(&self) -> Option<&'a str> {
        match self.node() {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean value, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self.node() {
            Node::Static(StaticNode::Bool(b)) => Some(b),
            _ => None,
        }
    }

    /// The value as `i64`, if it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self.node() {
            Node::Static(StaticNode::I64(i)) => Some(i),
            Node::Static(StaticNode::U64(u)) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The value as `f64`, if it is a number (may round: use [`Cursor::number_text`] for exact
    /// decimals).
    pub fn as_f64(&self) -> Option<f64> {
        match self.node() {
            Node::Static(StaticNode::I64(i)) => Some(i as f64),
            Node::Static(StaticNode::U64(u)) => Some(u as f64),
            Node::Static(StaticNode::F64(f)) => Some(f),
            _ => None,
        }
    }

    /// True for a number that JSON wrote without fraction or exponent.
    pub fn is_integer(&self) -> bool {
        matches!(
            self.node(),
            Node::Static(StaticNode::I64(_) | StaticNode::U64(_))
        )
    }

    /// The number's source text exactly as written in the line (`84999.37`, `0.0`, `-1e3`), if
    /// this is a number.
    pub fn number_text(&self) -> Option<&'a str> {
        if self.kind() != Kind::Number {
            return None;
        }
        let doc: &'a Document<'a> = self.doc;
        let start = match doc.number_after_key(self.pos) {
            Some(start) => start,
            None => {
                let offsets = doc.number_offsets();
                let i = offsets
                    .binary_search_by_key(&(self.pos as u32), |&(t, _)| t)
                    .ok()?;
                offsets[i].1 as usize
            }
        };
        let rest = doc.text.get(start..)?;
        let end = rest
            .iter()
            .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// The value of `key` if this is an object that has it (first match, as JSON parsers do).
    pub fn get(&self, key: &str) -> Option<Cursor<'a>> {
        self.get_entry(key).map(|(_, v)| v)
    }

    /// As [`Cursor::get`], with the key as the document holds it (borrowed from the document,
    /// where `key` may be borrowed from anything).
    #[inline]
    pub fn get_entry(&self, key: &str) -> Option<(&'a str, Cursor<'a>)> {
        if self.pos == 0 {
            return self.root_entry(key);
        }
        self.walk_entry(key)
    }

    /// [`Cursor::get_entry`] by walking the object's members on the tape.
    #[inline]
    fn walk_entry(&self, key: &str) -> Option<(&'a str, Cursor<'a>)> {
        let Node::Object { len, .. } = self.node() else {
            return None;
        };
        let nodes = self.doc.nodes;
        let mut idx = self.pos + 1;
        for _ in 0..len {
            let Node::String(k) = *nodes.get(idx)? else {
                return None;
            };
            let value = idx + 1;
            if same_text(k.as_bytes(), key.as_bytes()) {
                return Some((
                    k,
                    Cursor {
                        doc: self.doc,
                        pos: value,
                    },
                ));
            }
            idx = value
                + match nodes.get(value)? {
                    Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
                    _ => 1,
                };
        }
        None
    }

    /// [`Cursor::get_entry`] in the root object, through its [`RootKeys`] (out of line: the
    /// walk, the commoner lookup, stays small enough to inline where members are looked up).
    #[inline(never)]
    fn root_entry(&self, key: &str) -> Option<(&'a str, Cursor<'a>)> {
        debug_assert!(
            self.doc.pruned.is_none_or(|n| n.need(key).is_some()),
            "root member `{key}` looked up, but the line was parsed without it"
        );
        let Some(keys) = self.doc.root_keys() else {
            return self.walk_entry(key);
        };
        let want = text_fingerprint(key.as_bytes());
        for &(fp, at) in keys {
            if fp != want {
                continue;
            }
            let at = at as usize;
            if let Some(&Node::String(k)) = self.doc.nodes.get(at)
                && same_text(k.as_bytes(), key.as_bytes())
            {
                return Some((
                    k,
                    Cursor {
                        doc: self.doc,
                        pos: at + 1,
                    },
                ));
            }
        }
        None
    }

    /// Iterates over an object's `(key, value)` pairs in document order (empty for non-objects).
    pub fn entries(&self) -> Entries<'a> {
        let remaining = match self.node() {
            Node::Object { len, .. } => len,
            _ => 0,
        };
        Entries {
            doc: self.doc,
            pos: self.pos + 1,
            remaining,
        }
    }

    /// Iterates over an array's elements (empty for non-arrays).
    pub fn items(&self) -> Items<'a> {
        let remaining = match self.node() {
            Node::Array { len, .. } => len,
            _ => 0,
        };
        Items {
            doc: self.doc,
            pos: self.pos + 1,
            remaining,
        }
    }

    /// Length of an array, or `None` for other values.
    pub fn array_len(&self) -> Option<usize> {
        match self.node() {
            Node::Array { len, .. } => Some(len),
            _ => None,
        }
    }

    /// Element `i` of an array.
    pub fn index(&self, i: usize) -> Option<Cursor<'a>> {
        self.items().nth(i)
    }
}

/// Iterator over an object's entries; see [`Cursor::entries`].
pub struct Entries<'a> {
    doc: &'a Document<'a>,
    pos: usize,
    remaining: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, Cursor<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let key = match self.doc.nodes.get(self.pos)? {
            Node::String(s) => *s,
            _ => return None,
        };
        let value = Cursor {
            doc: self.doc,
            pos: self.pos + 1,
        };
        self.pos = value.pos + value.span();
        Some((key, value))
    }
}

/// Iterator over an array's elements; see [`Cursor::items`].
pub struct Items<'a> {
    doc: &'a Document<'a>,
    pos: usize,
    remaining: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = Cursor<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let value = Cursor {
            doc: self.doc,
            pos: self.pos,
        };
        self.pos += value.span();
        Some(value)
    }

    fn nth(&mut self, n: usize) -> Option<Self::Item> {
        for _ in 0..n {
            self.next()?;
        }
        self.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::LineParser;

    fn with_doc<R>(json: &str, f: impl FnOnce(Cursor<'_>) -> R) -> R {
        let mut p = LineParser::new();
        p.parse(json.as_bytes(), |doc| f(doc.root()))
            .expect("test JSON parses")
    }

    #[test]
    fn root_members_are_found_as_a_walk_finds_them() {
        // Keys alike in length and last eight bytes (one fingerprint), a duplicate key (the
        // first wins), an empty key, nested values to skip, and a missing key.
        let json = r#"{"a_longkey":1,"b_longkey":{"a_longkey":[2,{"q":3}]},"":"e","a_longkey":4,"z":[[],{}],"x":null}"#;
        assert_eq!(
            text_fingerprint(b"a_longkey"),
            text_fingerprint(b"b_longkey")
        );
        with_doc(json, |root| {
            for key in [
                "a_longkey",
                "b_longkey",
                "",
                "z",
                "x",
                "nope",
                "_longkey",
                "a_longkeys",
            ] {
                let indexed = root.get_entry(key).map(|(k, v)| (k, v.position()));
                let walked = root.walk_entry(key).map(|(k, v)| (k, v.position()));
                assert_eq!(indexed, walked, "{key:?}");
            }
            assert_eq!(root.get("a_longkey").map(|v| v.position()), Some(2));
            assert!(root.get("nope").is_none());
            // Below the root, the walk answers.
            let inner = root.get("b_longkey").expect("b_longkey");
            assert!(
                inner
                    .get("a_longkey")
                    .is_some_and(|v| v.kind() == Kind::Array(2))
            );
        });
        with_doc("[1,2]", |root| assert!(root.get("a").is_none()));
    }

    #[test]
    fn walks_objects_and_arrays() {
        with_doc(r#"{"a":{"b":[1,{"c":"x"},3]},"d":true}"#, |root| {
            let b = root.get("a").and_then(|a| a.get("b")).expect("a.b");
            assert_eq!(b.array_len(), Some(3));
            assert_eq!(
                b.index(1).and_then(|o| o.get("c")).and_then(|c| c.as_str()),
                Some("x")
            );
            assert_eq!(b.index(2).and_then(|n| n.as_i64()), Some(3));
            assert_eq!(root.get("d").and_then(|d| d.as_bool()), Some(true));
            assert!(root.get("zz").is_none());
            let keys: Vec<_> = root.entries().map(|(k, _)| k).collect();
            assert_eq!(keys, ["a", "d"]);
        });
    }

    #[test]
    fn number_text_is_exact_even_after_escaped_strings() {
        with_doc(
            r#"{"s":"\u0031\"2","v":[84999.37,0.0,-1E3,250],"t":"9","w":1234.50}"#,
            |root| {
                let v: Vec<_> = root
                    .get("v")
                    .expect("v")
                    .items()
                    .map(|c| c.number_text().expect("number"))
                    .collect();
                assert_eq!(v, ["84999.37", "0.0", "-1E3", "250"]);
                assert_eq!(root.get("s").and_then(|s| s.as_str()), Some("1\"2"));
                assert_eq!(root.get("w").and_then(|w| w.number_text()), Some("1234.50"));
                assert_eq!(root.get("t").and_then(|t| t.number_text()), None);
            },
        );
    }

    #[test]
    fn number_text_after_spaced_and_escaped_keys() {
        with_doc(
            r#"{"a" :  1.50, "key":2.50,"x":{"value":-0.0},"n":[7.10]}"#,
            |root| {
                fn text(c: Option<Cursor<'_>>) -> Option<String> {
                    c.and_then(|c| c.number_text()).map(str::to_owned)
                }
                assert_eq!(text(root.get("a")).as_deref(), Some("1.50"));
                assert_eq!(text(root.get("key")).as_deref(), Some("2.50"));
                let value = root.get("x").and_then(|x| x.get("value"));
                assert_eq!(text(value).as_deref(), Some("-0.0"));
                let first = root.get("n").and_then(|n| n.index(0));
                assert_eq!(text(first).as_deref(), Some("7.10"));
            },
        );
    }

    #[test]
    fn a_cursors_debug_never_shows_a_string() {
        let line = br#"{"id":"1EG4TE5MK73","n":7,"ok":true}"#;
        let mut parser = crate::LineParser::new();
        let shown = parser
            .parse(line, |doc| {
                let root = doc.root();
                let id = root.get("id").expect("id");
                let n = root.get("n").expect("n");
                format!("{id:?} {n:?} {root:?}")
            })
            .expect("valid");
        assert!(!shown.contains("1EG4TE5MK73"), "{shown}");
        assert!(shown.contains("a string of 11 bytes"), "{shown}");
        assert!(
            shown.contains("Number") && shown.contains("Object(3)"),
            "{shown}"
        );
    }
}

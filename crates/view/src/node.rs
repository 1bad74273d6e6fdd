//! The value trait the evaluator works through: one JSON value of a parsed resource.
//!
//! Two implementations: [`claimline_ndjson::Cursor`] (the fast path, a position on simd-json's
//! tape, no DOM) and `&serde_json::Value` (convenient in tests; with the workspace's
//! `arbitrary_precision` feature its numbers keep their source text too).

use claimline_ndjson::{Cursor, Kind};

/// What kind of JSON value a [`Node`] is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeKind<'a> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number; [`Node::number_text`] gives its exact digits.
    Number,
    /// A string, unescaped.
    String(&'a str),
    /// An object.
    Object,
    /// An array.
    Array,
}

/// A JSON value inside one parsed resource, cheap to copy.
///
/// `'a` is the lifetime of the parsed document: strings and keys are borrowed from it.
pub trait Node<'a>: Copy + 'a {
    /// Iterator over an array's elements.
    type Items: Iterator<Item = Self>;
    /// Iterator over an object's `(key, value)` pairs in document order.
    type Entries: Iterator<Item = (&'a str, Self)>;

    /// The kind of value.
    fn kind(self) -> NodeKind<'a>;
    /// The value of `key`, if this is an object that has it (the first of that name, where a
    /// document repeats a key).
    fn get(self, key: &str) -> Option<Self>;
    /// As [`Node::get`], with the key as the document holds it (the first of that name).
    fn get_entry(self, key: &str) -> Option<(&'a str, Self)> {
        self.entries().find(|(k, _)| *k == key)
    }
    /// An array's elements (empty for other values).
    fn items(self) -> Self::Items;
    /// An object's entries (empty for other values).
    fn entries(self) -> Self::Entries;
    /// A number's source text exactly as written (`1.0`, `84999.37`), if this is a number.
    fn number_text(self) -> Option<&'a str>;
    /// A number that JSON wrote as an integer and that fits `i64`.
    fn as_i64(self) -> Option<i64>;
    /// A number no other value of the same document has: what a row's list of the objects
    /// whose extensions it looked up tells them apart by (the evaluator's `ExtIndex`).
    fn id(self) -> usize;

    /// The string value, if this is a string.
    fn as_str(self) -> Option<&'a str> {
        match self.kind() {
            NodeKind::String(s) => Some(s),
            _ => None,
        }
    }
}

impl<'a> Node<'a> for Cursor<'a> {
    type Items = claimline_ndjson::tape::Items<'a>;
    type Entries = claimline_ndjson::tape::Entries<'a>;

    #[inline]
    fn kind(self) -> NodeKind<'a> {
        match Cursor::kind(&self) {
            Kind::Null => NodeKind::Null,
            Kind::Bool(b) => NodeKind::Bool(b),
            Kind::Number => NodeKind::Number,
            Kind::String(s) => NodeKind::String(s),
            Kind::Object(_) => NodeKind::Object,
            Kind::Array(_) => NodeKind::Array,
        }
    }
    #[inline]
    fn get(self, key: &str) -> Option<Self> {
        Cursor::get(&self, key)
    }
    #[inline]
    fn get_entry(self, key: &str) -> Option<(&'a str, Self)> {
        Cursor::get_entry(&self, key)
    }
    #[inline]
    fn items(self) -> Self::Items {
        Cursor::items(&self)
    }
    #[inline]
    fn entries(self) -> Self::Entries {
        Cursor::entries(&self)
    }
    #[inline]
    fn number_text(self) -> Option<&'a str> {
        Cursor::number_text(&self)
    }
    #[inline]
    fn as_i64(self) -> Option<i64> {
        if self.is_integer() {
            Cursor::as_i64(&self)
        } else {
            None
        }
    }
    #[inline]
    fn id(self) -> usize {
        self.position()
    }
}

impl<'a> Node<'a> for &'a serde_json::Value {
    type Items = std::slice::Iter<'a, serde_json::Value>;
    type Entries = JsonEntries<'a>;

    fn kind(self) -> NodeKind<'a> {
        match self {
            serde_json::Value::Null => NodeKind::Null,
            serde_json::Value::Bool(b) => NodeKind::Bool(*b),
            serde_json::Value::Number(_) => NodeKind::Number,
            serde_json::Value::String(s) => NodeKind::String(s),
            serde_json::Value::Array(_) => NodeKind::Array,
            serde_json::Value::Object(_) => NodeKind::Object,
        }
    }
    fn get(self, key: &str) -> Option<Self> {
        self.as_object().and_then(|o| o.get(key))
    }
    fn get_entry(self, key: &str) -> Option<(&'a str, Self)> {
        self.as_object()
            .and_then(|o| o.get_key_value(key))
            .map(|(k, v)| (k.as_str(), v))
    }
    fn items(self) -> Self::Items {
        match self {
            serde_json::Value::Array(a) => a.iter(),
            _ => [].iter(),
        }
    }
    fn entries(self) -> Self::Entries {
        JsonEntries {
            inner: self.as_object().map(|o| o.iter()),
        }
    }
    fn number_text(self) -> Option<&'a str> {
        match self {
            serde_json::Value::Number(n) => Some(n.as_str()),
            _ => None,
        }
    }
    fn as_i64(self) -> Option<i64> {
        match self {
            serde_json::Value::Number(n) => {
                let t = n.as_str();
                if t.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                    t.parse().ok()
                } else {
                    None
                }
            }
            _ => None,
        }
    }
    fn id(self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

/// Iterator over a `serde_json` object's entries; see [`Node::entries`].
pub struct JsonEntries<'a> {
    inner: Option<serde_json::map::Iter<'a>>,
}

impl<'a> Iterator for JsonEntries<'a> {
    type Item = (&'a str, &'a serde_json::Value);
    fn next(&mut self) -> Option<Self::Item> {
        self.inner
            .as_mut()
            .and_then(|i| i.next())
            .map(|(k, v)| (k.as_str(), v))
    }
}

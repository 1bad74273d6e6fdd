//! simd-json's tape built by the validator as it checks a line, without simd-json's two stages.
//!
//! The validator ([`Validator`]) already reads every token of a line to check it; pushing a
//! tape node for each token as it goes costs little more. [`build`] does that and fills the
//! same tape simd-json fills for the same line, node for node: `Object { len, count }` and
//! `Array { len, count }` (`count`: the nodes of the subtree after the container's own), keys
//! and strings as `String` (unescaped), integers as `U64` (`I64` when negative), other numbers
//! as `F64` rounded as simd-json rounds them (correctly), `true`, `false` and `null`. Strings
//! without an escape borrow the line itself, so nothing is copied; strings with one are
//! unescaped into [`Built::unescaped`] and patched in by [`patch`] once the walk is over.
//!
//! Whatever the validator leaves to the whole parse (see [`crate::prune`]), and a key with an
//! escape or a root that is not an object, makes [`build`] return `None`; the caller then
//! parses with simd-json, which decides as it always did. `fuzzing::built_tape` holds the two
//! to the same tape and the same number text for any bytes.

use std::ops::Range;

use simd_json::{Node, StaticNode};

use super::{MAX_DEPTH, Memo, Need, Needs, Split, Validator, stop_masks};

/// What a build keeps besides the tape, reused from line to line.
#[derive(Debug, Default)]
pub(crate) struct Built {
    stops: Vec<[u64; 2]>,
    /// The byte offset of every number in the text, in document order: the tape's number nodes'
    /// order, as [`crate::Document`] reads simd-json's structural indexes.
    pub numbers: Vec<u32>,
    /// Each string with an escape: its tape position and its text (between the quotes); after
    /// [`unescape`], the range of its unescaped text in `unescaped`.
    escaped: Vec<(usize, Range<usize>)>,
    /// The escaped strings' text, unescaped, one after the other.
    unescaped: String,
}

/// Checks `text` (one JSON object, as [`super::split`] checks a line) and pushes its tape onto
/// `tape` (empty). `None`: the text is not valid JSON, or holds what the validator leaves to
/// simd-json, or a key with an escape, or its root is no object; `tape` then holds a part.
/// Strings with an escape are placeholders until [`unescape`] and [`patch`].
pub(crate) fn build<'t>(text: &'t str, built: &mut Built, tape: &mut Vec<Node<'t>>) -> Option<()> {
    let b = text.as_bytes();
    built.numbers.clear();
    built.escaped.clear();
    let Built { stops, .. } = built;
    stop_masks(b, stops);
    let stops = std::mem::take(stops);
    let mut v = Validator::new(b, &stops, 0);
    let walked = match v.token() {
        Some(b'{') => v.build_value(b'{', 1, text, tape, built),
        _ => None,
    };
    v.ws();
    let at_end = v.i == b.len();
    built.stops = stops;
    walked?;
    at_end.then_some(())
}

/// [`build`] of the object `text` is with only the root members `needs` reads, in one walk:
/// every byte is checked as [`super::split`] checks it, and nodes are pushed only for what is
/// read. The tape is the one [`super::reduce`] then [`build`] give for the same line and needs,
/// node for node (arrays read for their length as that many empty objects, the first holding
/// the members of it read, or whole when it has an escape; such an array whose elements are
/// not all objects whole), except that strings borrow `text` and [`Built::numbers`] are offsets
/// in it. `None` wherever that long way is not sure to give this tape (what [`build`] refuses,
/// a key with an escape in an array's first element): the caller then takes the long way,
/// which decides as it always did. `split`'s memos of what `needs` reads of each key are used
/// and kept. How many bytes the long way's copy holds (to tell whether parsing in part
/// pays).
pub(crate) fn build_pruned<'t>(
    text: &'t str,
    needs: &Needs,
    split: &mut Split,
    built: &mut Built,
    tape: &mut Vec<Node<'t>>,
) -> Option<usize> {
    let b = text.as_bytes();
    built.numbers.clear();
    built.escaped.clear();
    let Built { stops, .. } = built;
    stop_masks(b, stops);
    let stops = std::mem::take(stops);
    let mut v = Validator::new(b, &stops, 0);
    let walked = match v.token() {
        Some(b'{') => v.build_read(needs, 1, &mut split.memos, text, tape, built),
        _ => None,
    };
    v.ws();
    let at_end = v.i == b.len();
    built.stops = stops;
    let kept = walked?;
    at_end.then_some(kept)
}

/// Unescapes the strings [`build`] left as placeholders into [`Built::unescaped`].
/// `None` when an escape is not one [`build`] lets through (it never is).
pub(crate) fn unescape(text: &str, built: &mut Built) -> Option<()> {
    let Built {
        escaped, unescaped, ..
    } = built;
    unescaped.clear();
    let b = text.as_bytes();
    for (_, range) in escaped.iter_mut() {
        let start = unescaped.len();
        let raw = b.get(range.clone())?;
        let mut i = 0;
        while i < raw.len() {
            // Copy up to the next backslash whole (the text between is UTF-8: `text` is a str and
            // a backslash is ASCII).
            let next = memchr::memchr(b'\\', &raw[i..]).map_or(raw.len(), |k| i + k);
            unescaped.push_str(text.get(range.start + i..range.start + next)?);
            if next == raw.len() {
                break;
            }
            let c = match *raw.get(next + 1)? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let hex = text.get(range.start + next + 2..range.start + next + 6)?;
                    let unit = u32::from_str_radix(hex, 16).ok()?;
                    i = next + 6;
                    // Surrogates never come here: the validator leaves them to simd-json.
                    unescaped.push(char::from_u32(unit)?);
                    continue;
                }
                _ => return None,
            };
            unescaped.push(c);
            i = next + 2;
        }
        *range = start..unescaped.len();
    }
    Some(())
}

/// Puts the unescaped strings in place of [`build`]'s placeholders.
pub(crate) fn patch<'x>(tape: &mut [Node<'x>], built: &'x Built) -> Option<()> {
    for (at, range) in &built.escaped {
        *tape.get_mut(*at)? = Node::String(built.unescaped.get(range.clone())?);
    }
    Some(())
}

/// How far a build had got (its tape, numbers and escaped strings), to walk a value again.
struct Mark {
    tape: usize,
    numbers: usize,
    escaped: usize,
}

impl Mark {
    fn of(tape: &[Node<'_>], built: &Built) -> Mark {
        Mark {
            tape: tape.len(),
            numbers: built.numbers.len(),
            escaped: built.escaped.len(),
        }
    }

    fn rewind(&self, tape: &mut Vec<Node<'_>>, built: &mut Built) {
        tape.truncate(self.tape);
        built.numbers.truncate(self.numbers);
        built.escaped.truncate(self.escaped);
    }
}

/// `text[start..end]`, as `str::get` gives it (`None` out of bounds or off a character's
/// boundary), its checks made here: `str::get` is a call of its own at each of the build's
/// strings (2% of a parse), these few comparisons inline.
#[inline(always)]
fn between(text: &str, start: usize, end: usize) -> Option<&str> {
    if start <= end
        && end <= text.len()
        && text.is_char_boundary(start)
        && text.is_char_boundary(end)
    {
        // SAFETY: `start <= end <= text.len()` and both are character boundaries, just
        // checked: the conditions `str::get_unchecked` asks for (the ones `str::get` checks).
        Some(unsafe { text.get_unchecked(start..end) })
    } else {
        None
    }
}

/// Powers of ten an `f64` holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A number as simd-json puts it on the tape: `text` is one the validator took (an optional
/// minus, digits, an optional fraction, at most 18 characters, no exponent).
fn number(text: &[u8]) -> Option<StaticNode> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    let mut n: u64 = 0;
    let mut dot = None;
    for (k, &d) in digits.iter().enumerate() {
        if d == b'.' {
            dot = Some(k);
        } else {
            n = n * 10 + u64::from(d - b'0');
        }
    }
    let Some(dot) = dot else {
        return Some(if negative {
            StaticNode::I64(0i64.checked_sub_unsigned(n)?)
        } else {
            StaticNode::U64(n)
        });
    };
    let places = digits.len() - dot - 1;
    // Both exact, so one rounding: the correctly rounded value, as simd-json's fast path gives
    // it; beyond that simd-json rounds correctly too, as Rust's parse does.
    let f = if n < 1 << 53 && places < POW10.len() {
        let f = n as f64 / POW10[places];
        if negative { -f } else { f }
    } else {
        std::str::from_utf8(text).ok()?.parse::<f64>().ok()?
    };
    Some(StaticNode::F64(f))
}

impl<'a> Validator<'a> {
    /// The string at `self.i`, checked and pushed onto `tape` (a placeholder when it has an
    /// escape: see [`unescape`]).
    #[inline(always)]
    fn build_string<'t>(
        &mut self,
        text: &'t str,
        tape: &mut Vec<Node<'t>>,
        built: &mut Built,
    ) -> Option<()> {
        let start = self.i + 1;
        if self.string()? {
            built.escaped.push((tape.len(), start..self.i - 1));
            tape.push(Node::String(""));
        } else {
            tape.push(Node::String(between(text, start, self.i - 1)?));
        }
        Some(())
    }

    /// The object at `self.i`, `depth` levels down (the root is 1), every member checked and
    /// the keys and values of those `needs` reads pushed (a root member read for its length as
    /// [`Validator::build_counted`]; below the root, in an array's first element, members are
    /// read whole); as many bytes as the long way's copy holds of it.
    fn build_read<'t>(
        &mut self,
        needs: &Needs,
        depth: u32,
        memos: &mut Vec<Memo>,
        text: &'t str,
        tape: &mut Vec<Node<'t>>,
        built: &mut Built,
    ) -> Option<usize> {
        let at = tape.len();
        tape.push(Node::Object { len: 0, count: 0 });
        self.i += 1;
        // `{}` and, for each member read, its key, quotes, `:` and `,`, and its value.
        let (mut len, mut kept) = (0, 2);
        if self.token()? == b'}' {
            self.i += 1;
        } else {
            let mut place = 0;
            loop {
                if self.token()? != b'"' {
                    return None;
                }
                let start = self.i + 1;
                // A key with an escape: the long way leaves the line (or, in an array's first
                // element, the copy it keeps whole) to simd-json.
                if self.string()? {
                    return None;
                }
                let key = between(text, start, self.i - 1)?;
                if self.token()? != b':' {
                    return None;
                }
                self.i += 1;
                let c = self.token()?;
                let need = Memo::of(memos, needs).need(place, key.as_bytes(), needs);
                place += 1;
                if let Some(need) = need {
                    tape.push(Node::String(key));
                    let from = self.i;
                    kept += key.len() + 4;
                    match (need, c) {
                        (Need::Count, b'[') if depth == 1 => {
                            let first = needs.first.get(key);
                            kept += self.build_counted(first, memos, text, tape, built)?;
                        }
                        (_, b'"') => {
                            self.build_string(text, tape, built)?;
                            kept += self.i - from;
                        }
                        (_, c) => {
                            self.build_value(c, depth + 1, text, tape, built)?;
                            kept += self.i - from;
                        }
                    }
                    len += 1;
                } else {
                    self.value_at(c, depth + 1)?;
                }
                match self.token()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        tape[at] = Node::Object {
            len,
            count: tape.len() - at - 1,
        };
        // One comma fewer than members.
        Some(kept - usize::from(len > 0))
    }

    /// A root member's array read for its length (at `self.i`, its `[`): as many empty objects
    /// as it has elements, the first holding the members `first` reads of it; the whole array
    /// when not every element is an object (the long way keeps such an array whole). How many
    /// bytes the long way's copy holds of it.
    fn build_counted<'t>(
        &mut self,
        first: Option<&Needs>,
        memos: &mut Vec<Memo>,
        text: &'t str,
        tape: &mut Vec<Node<'t>>,
        built: &mut Built,
    ) -> Option<usize> {
        let start = self.i;
        let mark = Mark::of(tape, built);
        tape.push(Node::Array { len: 0, count: 0 });
        let (mut objects, mut first_kept) = (true, 2);
        let len = self.array(2, |v, c, k| {
            objects &= c == b'{';
            match first {
                Some(read) if objects && k == 0 => {
                    first_kept = v.build_first(read, memos, text, tape, built)?;
                }
                _ => {
                    v.value_at(c, 3)?;
                    tape.push(Node::Object { len: 0, count: 0 });
                }
            }
            Some(())
        })?;
        if !objects {
            return self.build_again(&mark, start, 2, text, tape, built);
        }
        tape[mark.tape] = Node::Array {
            len,
            count: tape.len() - mark.tape - 1,
        };
        // `[`, the first element, `,{}` for each other one, `]` (an empty array as written).
        Some(if len == 0 {
            self.i - start
        } else {
            2 + first_kept + 3 * (len - 1)
        })
    }

    /// The first element of an array read for its length (an object, at `self.i`) with only
    /// the members `read` reads; whole when any of its strings has an escape (the long way
    /// keeps such an element whole). How many bytes the long way's copy holds of it.
    fn build_first<'t>(
        &mut self,
        read: &Needs,
        memos: &mut Vec<Memo>,
        text: &'t str,
        tape: &mut Vec<Node<'t>>,
        built: &mut Built,
    ) -> Option<usize> {
        let (start, escapes) = (self.i, self.escapes);
        let mark = Mark::of(tape, built);
        let kept = self.build_read(read, 3, memos, text, tape, built)?;
        if self.escapes != escapes {
            return self.build_again(&mark, start, 3, text, tape, built);
        }
        Some(kept)
    }

    /// The value at `start`, `depth` levels down, walked again whole (what was pushed of it
    /// since `mark` taken back): the long way keeps it whole. How many bytes it has.
    fn build_again<'t>(
        &mut self,
        mark: &Mark,
        start: usize,
        depth: u32,
        text: &'t str,
        tape: &mut Vec<Node<'t>>,
        built: &mut Built,
    ) -> Option<usize> {
        mark.rewind(tape, built);
        self.i = start;
        self.seek(start);
        let c = *self.b.get(start)?;
        self.build_value(c, depth, text, tape, built)?;
        Some(self.i - start)
    }

    /// The value that starts with `c` at `self.i`, `depth` levels down (the root is 1, as
    /// [`super::split`] counts), checked and pushed onto `tape`.
    fn build_value<'t>(
        &mut self,
        c: u8,
        depth: u32,
        text: &'t str,
        tape: &mut Vec<Node<'t>>,
        built: &mut Built,
    ) -> Option<()> {
        match c {
            b'"' => self.build_string(text, tape, built)?,
            b'{' => {
                if depth > MAX_DEPTH {
                    return None;
                }
                let at = tape.len();
                tape.push(Node::Object { len: 0, count: 0 });
                self.i += 1;
                let mut len = 0;
                if self.token()? == b'}' {
                    self.i += 1;
                } else {
                    loop {
                        if self.token()? != b'"' {
                            return None;
                        }
                        let start = self.i + 1;
                        // A key with an escape: simd-json's (see `Document::number_after_key`).
                        if self.string()? {
                            return None;
                        }
                        tape.push(Node::String(between(text, start, self.i - 1)?));
                        if self.token()? != b':' {
                            return None;
                        }
                        self.i += 1;
                        // Most values are strings: read here, not through a call.
                        match self.token()? {
                            b'"' => self.build_string(text, tape, built)?,
                            c => self.build_value(c, depth + 1, text, tape, built)?,
                        }
                        len += 1;
                        match self.token()? {
                            b',' => self.i += 1,
                            b'}' => {
                                self.i += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                tape[at] = Node::Object {
                    len,
                    count: tape.len() - at - 1,
                };
            }
            b'[' => {
                let at = tape.len();
                tape.push(Node::Array { len: 0, count: 0 });
                // The validator's own walk of an array (its depth check included), each element
                // pushed as it is read.
                let len = self.array(depth, |v, c, _| match c {
                    b'"' => v.build_string(text, tape, built),
                    c => v.build_value(c, depth + 1, text, tape, built),
                })?;
                tape[at] = Node::Array {
                    len,
                    count: tape.len() - at - 1,
                };
            }
            b't' => {
                self.literal(b"true")?;
                tape.push(Node::Static(StaticNode::Bool(true)));
            }
            b'f' => {
                self.literal(b"false")?;
                tape.push(Node::Static(StaticNode::Bool(false)));
            }
            b'n' => {
                self.literal(b"null")?;
                tape.push(Node::Static(StaticNode::Null));
            }
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                self.number()?;
                built.numbers.push(u32::try_from(start).ok()?);
                tape.push(Node::Static(number(text.as_bytes().get(start..self.i)?)?));
            }
            _ => return None,
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tape_of(line: &str) -> Option<Vec<String>> {
        let mut built = Built::default();
        let mut tape = Vec::new();
        build(line, &mut built, &mut tape)?;
        unescape(line, &mut built)?;
        patch(&mut tape, &built)?;
        Some(tape.iter().map(|n| format!("{n:?}")).collect())
    }

    fn simd_tape_of(line: &str) -> Option<Vec<String>> {
        let mut buf = line.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut buf).ok()?;
        Some(tape.0.iter().map(|n| format!("{n:?}")).collect())
    }

    #[test]
    fn between_is_str_get() {
        let text = "a\"é€😀\"z";
        for start in 0..=text.len() + 1 {
            for end in 0..=text.len() + 1 {
                assert_eq!(
                    between(text, start, end),
                    text.get(start..end),
                    "{start}..{end}"
                );
            }
        }
    }

    #[test]
    fn the_tape_is_simd_jsons() {
        for line in [
            r#"{}"#,
            r#" {"a" : [ ] , "b":{}} "#,
            r#"{"id":"x","n":[0,-0,7,-12,123456789012345678,1.5,-0.25,0.1,-0.0,99999999999999.99]}"#,
            r#"{"s":"a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\u20ac","t":"plain","u":"é and \u0026"}"#,
            r#"{"deep":[[[{"a":[true,false,null]}]]],"after":1}"#,
            r#"{"x":"€","y":["\u0026",5]}"#,
        ] {
            assert_eq!(tape_of(line), simd_tape_of(line), "{line}");
            assert!(tape_of(line).is_some(), "{line}");
        }
    }

    #[test]
    fn what_it_is_not_sure_of_is_left_to_simd_json() {
        for line in [
            r#"{"a\u0041":1}"#,
            r#"{"e":1e5}"#,
            r#"{"big":1234567890123456789}"#,
            r#"{"s":"\ud83d\ude00"}"#,
            r#"[1,2]"#,
            r#""text""#,
            r#"{"a":1} x"#,
            r#"{"a":01}"#,
            r#"{"a":[1,]}"#,
            "{\"a\":\"\u{1}\"}",
        ] {
            assert_eq!(tape_of(line), None, "{line}");
        }
    }
}

//! Parsing one line into simd-json's tape, reusing every buffer between lines.

use simd_json::{Buffers, INPUT_PADDING, Tape, fill_tape_padded};

use crate::prune::build::{self, Built};
use crate::prune::{self, Needs, Pruning, Split};
use crate::tape::Document;

/// Parses lines into a reused tape. One per worker thread.
///
/// A line is checked and its tape built in one walk by the validator of [`crate::prune`]
/// (`prune::build`): strings without escapes point into the line itself, so
/// nothing is copied. A line that walk leaves to simd-json (not valid JSON, or holding what the
/// validator is not sure of) is copied into a padded buffer (simd-json reads past the end of its
/// input and unescapes strings in place, so it cannot work on the read-only memory map) and
/// parsed with `fill_tape_padded`, which accepts or refuses it and says why. Both give the same
/// tape. The tape's allocation is kept across lines via `Tape::reset`.
pub struct LineParser {
    buf: Vec<u8>,
    /// What the validator's build keeps from line to line.
    built: Built,
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    /// The root members of the line being parsed in part ([`LineParser::parse_pruned`]).
    split: Split,
    /// The line with only the members read.
    reduced: Vec<u8>,
    /// Whether parsing in part pays on this parser's recent lines.
    payoff: Payoff,
    /// The resource type of the last line read in part (walked once, or found the long way):
    /// the next line's, as a rule (an export's file holds one type), when the line does not
    /// say it first.
    last_type: String,
}

/// Parsing in part looks up what is read of every root member (and the long way copies out
/// what is kept and checks it again): it pays when little is kept (a header view keeps a fifth
/// of an EOB), not when most is (a load of every CCLF table keeps nine tenths). A parser
/// measures what it keeps over [`Payoff::SAMPLE`] lines parsed in part; when that is more than
/// half their bytes, it parses the next lines whole ([`Payoff::WHOLE`], twice as many after
/// each sample that says so again, up to [`Payoff::LONGEST`]), then measures again. Which way a
/// line is parsed never changes what comes of it.
#[derive(Debug, Default)]
struct Payoff {
    lines: u32,
    line_bytes: u64,
    kept_bytes: u64,
    /// Lines still to parse whole.
    whole_for: u32,
    /// How many lines the last sample that said so sent to the whole parse (0: none).
    last_whole: u32,
}

impl Payoff {
    const SAMPLE: u32 = 64;
    const WHOLE: u32 = 1024;
    const LONGEST: u32 = 64 * 1024;

    /// A line of `line` bytes was parsed with `kept` of them.
    fn record(&mut self, line: usize, kept: usize) {
        self.lines += 1;
        self.line_bytes += line as u64;
        self.kept_bytes += kept as u64;
        if self.lines == Self::SAMPLE {
            let last_whole = if self.kept_bytes * 2 > self.line_bytes {
                (self.last_whole * 2).clamp(Self::WHOLE, Self::LONGEST)
            } else {
                0
            };
            *self = Payoff {
                whole_for: last_whole,
                last_whole,
                ..Payoff::default()
            };
        }
    }

    /// True when the next line is to be parsed whole (and counts it).
    fn skip(&mut self) -> bool {
        let skip = self.whole_for > 0;
        self.whole_for = self.whole_for.saturating_sub(1);
        skip
    }
}

impl Default for LineParser {
    fn default() -> Self {
        Self::new()
    }
}

impl LineParser {
    /// A parser with empty buffers; they grow to the largest line seen.
    pub fn new() -> Self {
        LineParser {
            buf: Vec::new(),
            built: Built::default(),
            buffers: Buffers::new(64 * 1024),
            tape: Some(Tape(Vec::new())),
            split: Split::default(),
            reduced: Vec::new(),
            payoff: Payoff::default(),
            last_type: String::new(),
        }
    }

    /// Parses `line` and hands the resulting [`Document`] to `f`.
    ///
    /// # Errors
    /// simd-json's error if the line is not valid JSON or not valid UTF-8.
    pub fn parse<R>(
        &mut self,
        line: &[u8],
        f: impl FnOnce(&Document<'_>) -> R,
    ) -> Result<R, simd_json::Error> {
        match built(&mut self.built, &mut self.tape, line, None, f) {
            Ok(out) => Ok(out),
            Err(f) => self.parse_with_simd_json(line, f),
        }
    }

    /// As [`LineParser::parse`], always with simd-json (never the validator's build): for the
    /// tests that hold the two to the same tape.
    #[doc(hidden)]
    pub fn parse_with_simd_json<R>(
        &mut self,
        line: &[u8],
        f: impl FnOnce(&Document<'_>) -> R,
    ) -> Result<R, simd_json::Error> {
        fill(
            &mut self.buf,
            &mut self.buffers,
            &mut self.tape,
            line,
            None,
            f,
        )
        .map_err(|(e, _)| e)
    }

    /// [`LineParser::parse_pruned`] in one walk of the validator (`prune::build::build_pruned`):
    /// for a line whose type is told without a walk (its first member, else the last line's
    /// type; checked against the root's `resourceType` after the walk), a type `pruning` parses
    /// in part, every byte checked and only the members read put on the tape, without the long
    /// way's second check and copy of what is read. `Err(f)`, `f` unused, wherever the long way
    /// must decide (another line, or a walk it does not take): the same document either way.
    fn walk_pruned<R, F: FnOnce(&Document<'_>) -> R>(
        &mut self,
        line: &[u8],
        pruning: &Pruning,
        detecting: bool,
        f: F,
    ) -> Result<R, F> {
        let mut last = std::mem::take(&mut self.last_type);
        let leading = prune::leading_type(line);
        let guess = leading.or((!last.is_empty()).then_some(last.as_str()));
        let out = self.walk_typed(line, pruning, detecting, guess, f);
        if let (Ok(_), Some(ty)) = (&out, leading)
            && ty != last
        {
            last.clear();
            last.push_str(ty);
        }
        self.last_type = last;
        out
    }

    /// [`LineParser::walk_pruned`] of a line guessed to be of type `guess`.
    fn walk_typed<R, F: FnOnce(&Document<'_>) -> R>(
        &mut self,
        line: &[u8],
        pruning: &Pruning,
        detecting: bool,
        guess: Option<&str>,
        f: F,
    ) -> Result<R, F> {
        let Some((ty, needs)) = guess.and_then(|ty| Some((ty, pruning.needs(ty, detecting)?)))
        else {
            return Err(f);
        };
        // Strings are borrowed from the line as text: all of it is checked as UTF-8 (as the
        // whole parse checks it), which the walk also checks string by string. (Each string
        // read made text on its own costs more: the strings of a resource's `identifier`,
        // `type` and `extension`, which version detection reads, are a tenth of an EOB.)
        let Ok(text) = simdutf8::basic::from_utf8(line) else {
            return Err(f);
        };
        match self.walk_once(text, line, ty, needs, detecting, f) {
            Ok(out) => Ok(out),
            Err((f, false)) => Err(f),
            // A resource whose version is told from its shape and that has no profile is read
            // again with every member the detection may read (as the long way reads it).
            Err((f, true)) => match pruning.unprofiled(ty) {
                Some(all) => self
                    .walk_once(text, line, ty, all, false, f)
                    .map_err(|(f, _)| f),
                None => Err(f),
            },
        }
    }

    /// One walk of [`LineParser::walk_pruned`] with `needs`, `f` given the document; `Err((f,
    /// profile))`, `f` unused: the walk did not take the line, or its root's `resourceType` is
    /// not `ty` (the type guessed, whose needs these are) (`false`), or (`true`, when
    /// `check_profile`) the resource has no profile.
    fn walk_once<R, F: FnOnce(&Document<'_>) -> R>(
        &mut self,
        text: &str,
        line: &[u8],
        ty: &str,
        needs: &Needs,
        check_profile: bool,
        f: F,
    ) -> Result<R, (F, bool)> {
        let mut t: Tape<'_> = self.tape.take().unwrap_or_else(|| Tape(Vec::new())).reset();
        let kept = build::build_pruned(text, needs, &mut self.split, &mut self.built, &mut t.0);
        let ok = kept.is_some()
            && build::unescape(text, &mut self.built).is_some()
            && build::patch(&mut t.0, &self.built).is_some();
        let out = if ok {
            // Strings without escapes are the line's own bytes, numbers' offsets the line's.
            let doc = Document::with_buffer(&t.0, line, &self.built.numbers, line.as_ptr())
                .pruned(Some(needs));
            // (Every type's needs keep `resourceType`.) The long way reads a type written
            // with an escape as no type, and parses such a line whole: so does this, a string
            // with an escape being the only one not borrowed from the line.
            let root_type = doc.root().get("resourceType").and_then(|t| t.as_str());
            let plain = root_type.is_some_and(|t| line.as_ptr_range().contains(&t.as_ptr()));
            if root_type != Some(ty) || !plain {
                Err((f, false))
            } else if check_profile && !crate::detect::profiled(doc.root()) {
                Err((f, true))
            } else {
                self.payoff.record(line.len(), kept.unwrap_or(line.len()));
                Ok(f(&doc))
            }
        } else {
            Err((f, false))
        };
        self.tape = Some(t.reset());
        out
    }

    /// As [`LineParser::parse`], with only the root members `pruning` says are read of the
    /// line's resource type on the tape (see [`crate::prune`]); `detecting`: the API version will
    /// be told from the resource's shape, so what [`crate::detect_version`] reads is kept too.
    /// The whole line is checked either way: a line is accepted or refused, with the same
    /// error, as [`LineParser::parse`] accepts or refuses it. A line of a type `pruning` does
    /// not parse in part ([`Pruning::set_whole`], or not named with no
    /// [`Pruning::set_others`]), or one the validator leaves to simd-json, is parsed whole; so
    /// are lines while parsing in part keeps most of each (a parser that keeps more than half of
    /// its lines' bytes, a line parsed whole counting whole, parses the next ones whole for a
    /// while, then samples again).
    ///
    /// # Errors
    /// As [`LineParser::parse`].
    pub fn parse_pruned<R>(
        &mut self,
        line: &[u8],
        pruning: &Pruning,
        detecting: bool,
        f: impl FnOnce(&Document<'_>) -> R,
    ) -> Result<R, simd_json::Error> {
        if self.payoff.skip() {
            return self.parse(line, f);
        }
        // One walk, when the line's type can be told without one (its first member, or in a
        // file of one type, as BCDA writes them, every line after the first).
        let f = match self.walk_pruned(line, pruning, detecting, f) {
            Ok(out) => return Ok(out),
            Err(f) => f,
        };
        // The long way: the line checked and its root members found, the members read copied
        // out, and that copy parsed.
        let ty = match prune::split(line, &mut self.split) {
            Some(()) => prune::resource_type(line, &self.split.spans),
            None => None,
        };
        if let Some(ty) = ty {
            self.last_type.clear();
            self.last_type.push_str(ty);
        }
        let Some((ty, needs)) = ty.and_then(|ty| Some((ty, pruning.needs(ty, detecting)?))) else {
            // Parsed whole, every byte kept: a type parsed whole, or a line the check leaves to
            // simd-json (not JSON, or past what the check reads). Either way the payoff counts
            // it as kept whole; it only decides how soon pruning is given up as not paying.
            self.payoff.record(line.len(), line.len());
            return self.parse(line, f);
        };
        prune::reduce(line, &mut self.split, needs, &mut self.reduced);
        // A resource whose version is told from its shape is read as one with a profile first
        // (the version's marks are then in `meta`, `type`, `identifier` and `extension`);
        // without a profile, again with every member the detection may read.
        let first = |doc: &Document<'_>| {
            if !detecting || crate::detect::profiled(doc.root()) {
                Ok(f(doc))
            } else {
                Err(f)
            }
        };
        let attempt = match built(
            &mut self.built,
            &mut self.tape,
            &self.reduced,
            Some(needs),
            first,
        ) {
            Ok(out) => Ok(out),
            Err(first) => fill(
                &mut self.buf,
                &mut self.buffers,
                &mut self.tape,
                &self.reduced,
                Some(needs),
                first,
            ),
        };
        let f = match attempt {
            Ok(Ok(out)) => {
                self.payoff.record(line.len(), self.reduced.len());
                return Ok(out);
            }
            Ok(Err(f)) => f,
            // The members kept are refused on their own: the whole line decides (and says
            // where), as `parse` would. (`f` is inside the closure that came back: it runs on
            // the whole parse either way.)
            Err((_, again)) => {
                self.payoff.record(line.len(), line.len());
                return self.parse(line, |doc| again(doc).unwrap_or_else(|f| f(doc)));
            }
        };
        let Some(all) = pruning.unprofiled(ty) else {
            return self.parse(line, f);
        };
        prune::reduce(line, &mut self.split, all, &mut self.reduced);
        self.payoff.record(line.len(), self.reduced.len());
        let f = match built(&mut self.built, &mut self.tape, &self.reduced, Some(all), f) {
            Ok(out) => return Ok(out),
            Err(f) => f,
        };
        match fill(
            &mut self.buf,
            &mut self.buffers,
            &mut self.tape,
            &self.reduced,
            Some(all),
            f,
        ) {
            Ok(out) => Ok(out),
            Err((_, f)) => self.parse(line, f),
        }
    }
}

/// Checks `text` and builds its tape in one walk of the validator (see [`crate::prune::build`])
/// and hands the [`Document`] to `f`; when the walk leaves the text to simd-json, `f` comes
/// back unused.
fn built<R, F: FnOnce(&Document<'_>) -> R>(
    built: &mut Built,
    tape: &mut Option<Tape<'static>>,
    text: &[u8],
    pruned: Option<&Needs>,
    f: F,
) -> Result<R, F> {
    // Every string's text is checked as UTF-8 as the walk reads it, and outside strings JSON is
    // ASCII: a line the walk takes is UTF-8 throughout, and this check of all of it at once is
    // what lets its strings be borrowed as text.
    let Ok(s) = simdutf8::basic::from_utf8(text) else {
        return Err(f);
    };
    let mut t: Tape<'_> = tape.take().unwrap_or_else(|| Tape(Vec::new())).reset();
    let ok = build::build(s, built, &mut t.0).is_some()
        && build::unescape(s, built).is_some()
        && build::patch(&mut t.0, built).is_some();
    let out = if ok {
        // Strings without escapes are the line's own bytes: their offset from `text`'s start
        // is their offset in it, as in simd-json's buffer.
        let doc = Document::with_buffer(&t.0, text, &built.numbers, text.as_ptr()).pruned(pruned);
        Ok(f(&doc))
    } else {
        Err(f)
    };
    *tape = Some(t.reset());
    out
}

/// Parses `text` into `tape` through `buf` and hands the [`Document`] to `f`; on an error, `f`
/// comes back unused.
fn fill<R, F: FnOnce(&Document<'_>) -> R>(
    buf: &mut Vec<u8>,
    buffers: &mut Buffers,
    tape: &mut Option<Tape<'static>>,
    text: &[u8],
    pruned: Option<&Needs>,
    f: F,
) -> Result<R, (simd_json::Error, F)> {
    let len = text.len();
    buf.clear();
    buf.reserve(len + INPUT_PADDING);
    buf.extend_from_slice(text);
    buf.resize(len + INPUT_PADDING, b' ');
    // Only the address: string nodes point into `buf`, and their offset from here is their
    // offset in `text`.
    let base = buf.as_ptr();
    let mut t: Tape<'_> = tape.take().unwrap_or_else(|| Tape(Vec::new())).reset();
    let result = fill_tape_padded(buf, len, buffers, &mut t);
    let out = match result {
        Ok(()) => {
            // Number text comes from the caller's original bytes: unescaping rewrote strings in
            // `buf`, and the tape borrows it for as long as the tape lives.
            let doc = Document::with_buffer(&t.0, text, buffers.structural_indexes(), base)
                .pruned(pruned);
            Ok(f(&doc))
        }
        Err(e) => Err((e, f)),
    };
    *tape = Some(t.reset());
    out
}

/// Why `line` is not valid JSON, for a person: the byte of the line where it goes wrong and a
/// reason in words ("the line ends inside an object", "expected `:`"). Never quotes the line.
/// Runs only for a line the fast parser refused.
pub fn explain_invalid(line: &[u8]) -> (usize, String) {
    if let Err(e) = std::str::from_utf8(line) {
        return (
            e.valid_up_to(),
            "the line is not valid UTF-8 (JSON must be)".to_owned(),
        );
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
        Err(e) => {
            // serde_json counts columns in bytes from 1; its line is always 1 here.
            let at = e.column().saturating_sub(1).min(line.len());
            let text = e.to_string();
            let what = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(w, _)| w);
            let eof = e.classify() == serde_json::error::Category::Eof;
            // A line cut short goes wrong at its end.
            let at = if eof { line.len() } else { at };
            let reason = match e.classify() {
                serde_json::error::Category::Eof => match what {
                    "EOF while parsing an object" => "the line ends inside an object".to_owned(),
                    "EOF while parsing a list" => "the line ends inside an array".to_owned(),
                    "EOF while parsing a string" => "the line ends inside a string".to_owned(),
                    "EOF while parsing a value" => {
                        "the line ends where a value should be".to_owned()
                    }
                    other => format!("the line ends early ({other})"),
                },
                _ => what.to_owned(),
            };
            (at, reason)
        }
        // What serde_json takes and simd-json does not: an escape of half a surrogate pair,
        // nesting deeper than simd-json allows, or a number out of its range.
        Ok(_) => match lone_surrogate(line) {
            Some(at) => (
                at,
                "an escape of half a UTF-16 surrogate pair (`\\uD800` to `\\uDFFF` not in a \
                 high-low pair) encodes no character"
                    .to_owned(),
            ),
            None => (
                0,
                "nested too deeply or a number out of range for the parser".to_owned(),
            ),
        },
    }
}

/// Where the first `\u` escape of a lone surrogate starts in `line`, a line serde_json reads
/// (its strings' escapes are well formed): a high surrogate not followed by an escaped low one,
/// or a low one without a high one before it.
fn lone_surrogate(line: &[u8]) -> Option<usize> {
    let unit = |at: usize| -> Option<u16> {
        let hex = line.get(at + 2..at + 6)?;
        if line.get(at..at + 2)? != b"\\u" {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    let (mut i, mut in_string) = (0, false);
    while i < line.len() {
        match line[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                if let Some(u) = unit(i) {
                    match u {
                        0xD800..=0xDBFF => {
                            if !unit(i + 6).is_some_and(|l| (0xDC00..=0xDFFF).contains(&l)) {
                                return Some(i);
                            }
                            i += 12;
                            continue;
                        }
                        0xDC00..=0xDFFF => return Some(i),
                        _ => {}
                    }
                }
                // The escaped byte (a quote or backslash among them) is not looked at again.
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::Kind;

    #[test]
    fn parses_many_lines_with_one_parser() {
        let mut p = LineParser::new();
        for i in 0..100 {
            let line = format!(r#"{{"resourceType":"Patient","id":"{i}","n":[{i}.50]}}"#);
            let id = p
                .parse(line.as_bytes(), |d| {
                    d.root()
                        .get("id")
                        .and_then(|c| c.as_str())
                        .map(str::to_owned)
                })
                .expect("parses");
            assert_eq!(id.as_deref(), Some(i.to_string().as_str()));
        }
    }

    #[test]
    fn invalid_lines_are_explained_with_a_position_and_words() {
        const END: usize = usize::MAX;
        const SURROGATE: &str = "an escape of half a UTF-16 surrogate pair (`\\uD800` to \
                                 `\\uDFFF` not in a high-low pair) encodes no character";
        let cases: [(&[u8], usize, &str); 11] = [
            (
                br#"{"resourceType":"Patient","id":"p"#,
                END,
                "the line ends inside a string",
            ),
            (
                br#"{"resourceType":"Patient","name":[{"family":"X"}"#,
                END,
                "the line ends inside an array",
            ),
            (
                br#"{"resourceType":"Patient","id":"p1""#,
                END,
                "the line ends inside an object",
            ),
            (br#"{"resourceType" "Patient"}"#, 16, "expected `:`"),
            (br#"{"a":1,}"#, 7, "key must be a string"),
            (br#"{"a":1} x"#, 8, "trailing characters"),
            (
                b"{\"a\":\"\xff\"}",
                6,
                "the line is not valid UTF-8 (JSON must be)",
            ),
            (br#"{"a":"x\ud800"}"#, 7, SURROGATE),
            (br#"{"a":"\\\ud83d\ude00","b":"\udc00y"}"#, 27, SURROGATE),
            (br#"{"a":"\ud800\u0041"}"#, 6, SURROGATE),
            (br#"{"\\ud800":"\udbff"}"#, 12, SURROGATE),
        ];
        for (line, at, reason) in cases {
            let mut p = LineParser::new();
            assert!(p.parse(line, |_| ()).is_err(), "{line:?} is invalid");
            let at = if at == END { line.len() } else { at };
            assert_eq!(explain_invalid(line), (at, reason.to_owned()), "{line:?}");
        }
    }

    #[test]
    fn lines_that_keep_most_of_their_bytes_are_parsed_whole_for_a_while() {
        let mut p = Payoff::default();
        // A fifth kept: parsing in part goes on.
        for _ in 0..Payoff::SAMPLE * 3 {
            assert!(!p.skip());
            p.record(1000, 200);
        }
        // Nine tenths kept: after one sample, the next lines are parsed whole, then sampled.
        for _ in 0..Payoff::SAMPLE {
            assert!(!p.skip());
            p.record(1000, 900);
        }
        for _ in 0..Payoff::WHOLE {
            assert!(p.skip());
        }
        assert!(!p.skip());
        // Again: twice as many lines whole; a sample that keeps little ends that.
        for _ in 0..Payoff::SAMPLE - 1 {
            p.record(1000, 900);
            assert!(!p.skip());
        }
        p.record(1000, 900);
        for _ in 0..2 * Payoff::WHOLE {
            assert!(p.skip());
        }
        for _ in 0..Payoff::SAMPLE {
            assert!(!p.skip());
            p.record(1000, 100);
        }
        assert!(!p.skip());
        // The same line, parsed in part or (while skipping) whole, gives the same document.
        let mut parser = LineParser::new();
        let mut pruning = Pruning::new();
        let mut needs = Needs::new();
        needs.add("a", crate::Need::Whole);
        pruning.set("T", needs);
        let line = br#"{"resourceType":"T","a":[1.50],"b":{"c":[true,null,"x"]}}"#;
        let read = |d: &Document<'_>| {
            d.root()
                .get("a")
                .and_then(|a| a.index(0)?.number_text().map(str::to_owned))
        };
        let mut counts = Vec::new();
        for _ in 0..Payoff::SAMPLE + 2 {
            let got = parser
                .parse_pruned(line, &pruning, false, |d| (read(d), d.node_count()))
                .expect("valid");
            assert_eq!(got.0.as_deref(), Some("1.50"));
            counts.push(got.1);
        }
        assert!(
            counts[0] < counts[Payoff::SAMPLE as usize + 1],
            "{counts:?}"
        );
    }

    /// The type of a line is told without a walk from its first member, else guessed as the
    /// last line's, and the guess is checked against the root's `resourceType`: a line of
    /// another type (or whose nested resource is of the type guessed) is read with its own
    /// type's needs, whichever way it goes.
    #[test]
    fn a_type_guessed_wrong_is_read_with_the_roots_needs() {
        let mut pruning = Pruning::new();
        for (ty, member) in [("A", "a"), ("B", "z")] {
            let mut needs = Needs::new();
            needs.add(member, crate::Need::Whole);
            pruning.set(ty, needs);
        }
        let keys = |d: &Document<'_>| {
            d.root()
                .entries()
                .map(|(k, _)| k.to_owned())
                .collect::<Vec<_>>()
        };
        let (a, b) = (["a", "resourceType"], ["resourceType", "z"]);
        let mut parser = LineParser::new();
        for (line, want) in [
            // First member: read as a B.
            (
                &br#"{"resourceType":"B","a":1,"z":{"resourceType":"A"}}"#[..],
                b,
            ),
            // Sorted keys: the last line's type guessed (a B), and right.
            (
                br#"{"a":1,"contained":[{"resourceType":"A"}],"resourceType":"B","z":2}"#,
                b,
            ),
            (br#"{"a":1,"resourceType":"B","z":{"resourceType":"A"}}"#, b),
            // Guessed a B, but an A.
            (br#"{"a":1,"resourceType":"A","z":{"resourceType":"B"}}"#, a),
            (br#"{"a":1,"resourceType":"A","z":{"resourceType":"B"}}"#, a),
            // Guessed an A, but a B, its nested resource an A.
            (br#"{"a":1,"resourceType":"B","z":{"resourceType":"A"}}"#, b),
        ] {
            let got = parser
                .parse_pruned(line, &pruning, false, keys)
                .expect("valid");
            assert_eq!(got, want, "{}", String::from_utf8_lossy(line));
            assert!(!parser.last_type.is_empty());
        }
        // A type written with an escape is no type to the long way, which parses the line
        // whole: so it is after a line of that type too (found by a review).
        let whole = parser
            .parse_pruned(
                br#"{"a":1,"resourceType":"\u0042","z":2}"#,
                &pruning,
                false,
                keys,
            )
            .expect("valid");
        assert_eq!(whole, ["a", "resourceType", "z"]);
        assert_eq!(
            prune::leading_type(br#"{"resourceType":"B","z":1}"#),
            Some("B")
        );
        assert_eq!(prune::leading_type(br#"{"a":1,"resourceType":"B"}"#), None);
        assert_eq!(prune::leading_type(br#"{"resourceType": "B"}"#), None);
        assert_eq!(prune::leading_type(br#"{"resourceType":"B\u0041"}"#), None);
    }

    /// A resource whose version is told from its shape: with a profile, what the detection
    /// reads of one (`meta`, `type`, `identifier`, `extension`) is kept and the rest left out;
    /// without, every member the detection may read is kept, and the version comes out as from
    /// the whole line.
    #[test]
    fn resources_without_a_profile_keep_what_tells_their_release() {
        let mut pruning = Pruning::new();
        pruning.set("ExplanationOfBenefit", Needs::new());
        let profiled = br#"{"resourceType":"ExplanationOfBenefit","id":"a","meta":{"profile":["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Inpatient-Institutional"]},"benefitBalance":[{"financial":[{"usedMoney":{"value":1}}]}],"item":[{}]}"#;
        let stu3 = br#"{"resourceType":"ExplanationOfBenefit","id":"b","insurance":{"coverage":{"reference":"Coverage/x"}},"item":[{}]}"#;
        let r4 = br#"{"resourceType":"ExplanationOfBenefit","id":"c","insurance":[{"focal":true}],"item":[{}]}"#;
        let mut parser = LineParser::new();
        for (line, version, kept) in [
            (&profiled[..], Some(crate::ApiVersion::V2), ["meta", "id"]),
            (&stu3[..], Some(crate::ApiVersion::V1), ["insurance", "id"]),
            (&r4[..], Some(crate::ApiVersion::V2), ["insurance", "id"]),
        ] {
            let whole = parser
                .parse(line, |d| crate::detect_version(d.root()))
                .expect("valid");
            assert_eq!(whole, version);
            let (part, keys) = parser
                .parse_pruned(line, &pruning, true, |d| {
                    let keys: Vec<String> = d.root().entries().map(|(k, _)| k.to_owned()).collect();
                    (crate::detect_version(d.root()), keys)
                })
                .expect("valid");
            assert_eq!(part, version);
            assert!(kept.iter().all(|k| keys.iter().any(|x| x == k)), "{keys:?}");
            assert!(
                !keys.iter().any(|k| k == "item" || k == "benefitBalance"),
                "{keys:?}"
            );
        }
    }

    #[test]
    fn errors_on_truncated_json_and_bad_utf8() {
        let mut p = LineParser::new();
        assert!(p.parse(br#"{"a":[1,2"#, |_| ()).is_err());
        assert!(p.parse(b"{\"a\":\"\xff\"}", |_| ()).is_err());
        // The parser is still usable afterwards.
        let k = p.parse(br#"[1]"#, |d| d.root().kind() == Kind::Array(1));
        assert_eq!(k.ok(), Some(true));
    }
}

//! Parsing less: the root members of a line that nothing reads are checked but left off the tape.
//!
//! An ExplanationOfBenefit line is mostly `item`, `supportingInfo` and `careTeam`; a view of its
//! header reads none of them. A [`Pruning`] says, per resource type, which root members a
//! consumer reads ([`Needs`]); [`LineParser::parse_pruned`](crate::LineParser::parse_pruned)
//! then checks the whole line with a validator of its own (every byte: UTF-8, strings and their
//! escapes, numbers, literals, nesting) and builds simd-json's tape of the members read, in one
//! walk (`build::build_pruned`) when the line's type is told without a walk (its first member,
//! as BFD writes a resource, else the parser's last line's type: BCDA's files hold one type
//! each, their keys sorted; checked against the root's once the line is walked). The long way,
//! for the rest: the line checked and its root members found (`split`), the members read
//! copied out (`reduce`) and that copy built with the same validator (`build`, which builds
//! the tape of a whole line too). Both give the same tape, node for node
//! (`fuzzing::pruned_walk`). An array read only for its length (`item.count()`) is kept as that
//! many empty objects, the first of them holding the members of it that are read
//! ([`Needs::add_first`]). Strings are found with the line's stop masks, made 64 bytes at a
//! time with the widest vectors the processor has on x86-64 (AVX-512, AVX2, else SSE2, which
//! every x86-64 processor has; each `unsafe` call is made only once the feature is detected).
//!
//! The validator is stricter than simd-json, never laxer: what it is not sure of (a `\u`
//! escape of a surrogate, a number with an exponent or of many digits, a key with an escape,
//! nesting deeper than [`MAX_DEPTH`]) sends the line to the whole parse, which decides as it
//! always did. So a line is accepted or rejected, with the same reason, whether pruned or not;
//! `fuzz/`'s `pruned_line` target and the test suite hold the two parses to that.
//!
//! ```
//! use claimline_ndjson::{LineParser, Need, Needs, Pruning};
//!
//! let mut needs = Needs::new();
//! needs.add("id", Need::Whole);
//! needs.add("item", Need::Count);
//! let mut pruning = Pruning::new();
//! pruning.set("ExplanationOfBenefit", needs);
//!
//! let line = br#"{"resourceType":"ExplanationOfBenefit","id":"e1","item":[{"sequence":1},{"sequence":2}],"careTeam":[{"sequence":1}]}"#;
//! let mut parser = LineParser::new();
//! let (id, lines, nodes) = parser
//!     .parse_pruned(line, &pruning, false, |doc| {
//!         let root = doc.root();
//!         let id = root.get("id").and_then(|v| v.as_str()).map(str::to_owned);
//!         let lines = root.get("item").and_then(|v| v.array_len());
//!         // `careTeam` is not read: it is checked, then left out.
//!         (id, lines, doc.node_count())
//!     })
//!     .expect("valid JSON");
//! assert_eq!(id.as_deref(), Some("e1"));
//! assert_eq!(lines, Some(2));
//! // The root, three keys, two strings, the array and its two empty objects: no `careTeam`.
//! assert_eq!(nodes, 9);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::detect;

pub(crate) mod build;

/// How much of a root member a consumer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// Only how many elements the array has (`count()`, `exists()`, `empty()`), and the members
    /// of its first element that [`Needs::add_first`] names.
    Count,
    /// All of it.
    Whole,
}

/// The root members a consumer reads of one resource type. A member named here is kept with its
/// primitive-extension twin (`_name`) and its choice-type variants (`nameString` for `name`),
/// which FHIRPath reads under the same name; those are kept whole.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    names: BTreeMap<String, Need>,
    /// Per array read for its length, the members of its first element that are read too.
    first: BTreeMap<String, Needs>,
    /// Which content this is: a new number (never used before) at every change, so two
    /// `Needs` of one version read the same (a clone keeps it until either changes). A parser
    /// remembers the answers of [`Needs::need`] per version ([`Split`]). Zero: nothing read.
    version: u64,
}

impl PartialEq for Needs {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names && self.first == other.first
    }
}

impl Eq for Needs {}

/// The numbers [`Needs::version`] takes: one process-wide count, so no two changes share one.
static VERSIONS: AtomicU64 = AtomicU64::new(1);

impl Needs {
    /// Nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `name` is read as much as `need` says (more, when it was already read more).
    pub fn add(&mut self, name: &str, need: Need) {
        self.version = VERSIONS.fetch_add(1, Ordering::Relaxed);
        match self.names.get_mut(name) {
            Some(have) => *have = (*have).max(need),
            None => {
                self.names.insert(name.to_owned(), need);
            }
        }
    }

    /// `array` is read for its length and for `member` of its first element (the link stage's
    /// fallback for a claim's date is `item[0].servicedDate`). When `array` is read whole, so is
    /// its first element.
    pub fn add_first(&mut self, array: &str, member: &str) {
        // `add` gives the needs their new version.
        self.add(array, Need::Count);
        self.first
            .entry(array.to_owned())
            .or_default()
            .add(member, Need::Whole);
    }

    /// The members of `array`'s first element that are read ([`Needs::add_first`]).
    pub fn first_members(&self, array: &str) -> Option<&Needs> {
        self.first.get(array)
    }

    /// Everything `other` reads is read here too.
    pub fn extend(&mut self, other: &Needs) {
        for (name, need) in &other.names {
            self.add(name, *need);
        }
        for (array, members) in &other.first {
            self.first.entry(array.clone()).or_default().extend(members);
        }
        self.version = VERSIONS.fetch_add(1, Ordering::Relaxed);
    }

    /// The members named, with what is read of each.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Need)> {
        self.names.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// What is read of the root member whose key is `key`: its own need when it is named, all
    /// of it when it is the twin or a choice-type variant of a name, `None` when it is not read.
    /// A key can be more than one of these (`_valueQuantity` is the twin of `valueQuantity`,
    /// itself a variant of `value`): the most any of them reads.
    pub fn need(&self, key: &str) -> Option<Need> {
        let own = self.names.get(key).copied();
        if own == Some(Need::Whole) {
            return own;
        }
        // The twin of a name, or of a variant of one.
        let untwinned = key.strip_prefix('_').unwrap_or(key);
        let twin = untwinned.len() < key.len()
            && (self.names.contains_key(untwinned) || self.variant(untwinned));
        if twin || self.variant(key) {
            return Some(Need::Whole);
        }
        own
    }

    /// `key` is a choice-type variant of a name read (`valueQuantity` of `value`). Such a name
    /// sorts before `key` among the names of its first letter: only those are looked at.
    fn variant(&self, key: &str) -> bool {
        use std::ops::Bound;
        let Some(first) = key.as_bytes().first() else {
            return false;
        };
        self.names
            .range::<str, _>((Bound::Unbounded, Bound::Excluded(key)))
            .rev()
            .take_while(|(name, _)| name.as_bytes().first() == Some(first))
            .any(|(name, _)| {
                key.len() > name.len()
                    && key.as_bytes()[name.len()].is_ascii_uppercase()
                    && key.starts_with(name.as_str())
            })
    }
}

/// Which resource types are parsed in part, and what a consumer reads of each. A type it does
/// not name is parsed whole, unless [`Pruning::set_others`] says what is read of every other
/// type; a type named by [`Pruning::set_whole`] is parsed whole either way.
#[derive(Debug, Clone, Default)]
pub struct Pruning {
    /// Per type: the members read; with what version detection reads of a resource with a
    /// profile; with what it reads of one without. `None`: the type is parsed whole.
    types: HashMap<String, Option<[Needs; 3]>>,
    /// The same for every type `types` does not name (`None`: such a type is parsed whole).
    others: Option<[Needs; 3]>,
}

impl Pruning {
    /// No type parsed in part.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resources of type `resource_type` are parsed with only the members `needs` names (and
    /// `resourceType` and `id`, which the scanner reads itself).
    pub fn set(&mut self, resource_type: &str, needs: Needs) {
        self.types
            .insert(resource_type.to_owned(), Some(Self::read(needs)));
    }

    /// Resources of type `resource_type` are parsed whole (a consumer may read any member),
    /// whatever [`Pruning::set_others`] says.
    pub fn set_whole(&mut self, resource_type: &str) {
        self.types.insert(resource_type.to_owned(), None);
    }

    /// Resources of every type neither [`Pruning::set`] nor [`Pruning::set_whole`] names are
    /// parsed with only the members `needs` names (and `resourceType` and `id`): a load reads
    /// a few members of the types no view reads, and still checks every line whole.
    pub fn set_others(&mut self, needs: Needs) {
        self.others = Some(Self::read(needs));
    }

    /// `needs` with the scanner's reads, and with those of version detection (of a resource
    /// with a profile, and of one without).
    fn read(mut needs: Needs) -> [Needs; 3] {
        needs.add("resourceType", Need::Whole);
        needs.add("id", Need::Whole);
        let mut profiled = needs.clone();
        for name in detect::PROFILED_READS {
            profiled.add(name, Need::Whole);
        }
        let mut unprofiled = profiled.clone();
        for name in detect::UNPROFILED_READS {
            unprofiled.add(name, Need::Whole);
        }
        [needs, profiled, unprofiled]
    }

    /// The three [`Needs`] of `resource_type`, when it is parsed in part.
    fn of(&self, resource_type: &str) -> Option<&[Needs; 3]> {
        match self.types.get(resource_type) {
            Some(named) => named.as_ref(),
            None => self.others.as_ref(),
        }
    }

    /// What is read of a resource of `resource_type`, when it is parsed in part; `detecting`:
    /// its API version is told from its shape (no manifest says it), and this is what is read of
    /// one with a profile (the commonest: every resource of v2 and v3).
    pub fn needs(&self, resource_type: &str, detecting: bool) -> Option<&Needs> {
        self.of(resource_type).map(|n| &n[usize::from(detecting)])
    }

    /// What is read of a resource of `resource_type` whose version is told from its shape
    /// when it has no profile: [`detect_version`](crate::detect_version) looks further.
    pub(crate) fn unprofiled(&self, resource_type: &str) -> Option<&Needs> {
        self.of(resource_type).map(|n| &n[2])
    }

    /// True when no type is parsed in part.
    pub fn is_empty(&self) -> bool {
        self.others.is_none() && self.types.values().all(Option::is_none)
    }
}

/// Deepest nesting the validator follows; a line nested deeper is parsed whole.
pub const MAX_DEPTH: u32 = 128;

/// A root member as the line holds it (byte offsets into the line).
#[derive(Debug, Clone)]
pub(crate) struct Span {
    /// The key's text, between its quotes (it has no escapes).
    pub key: Range<usize>,
    /// The value's text.
    pub value: Range<usize>,
    /// For a non-empty array whose elements are all objects: how many, the first one, and its
    /// members.
    pub objects: Option<Objects>,
}

/// A root member's array whose elements are all objects, as [`split`] found it.
#[derive(Debug, Clone)]
pub(crate) struct Objects {
    /// How many elements.
    pub n: usize,
    /// The first element's text.
    pub first: Range<usize>,
    /// The first element's members: a range of [`Split::members`].
    pub members: Range<usize>,
    /// Some string of the first element has an escape (a key is only known unescaped).
    pub escaped: bool,
}

/// A member's key (between its quotes) and value, byte offsets into the line.
type Member = (Range<usize>, Range<usize>);

/// What [`split`] finds in a line, kept from line to line: the root members, the members of
/// the first element of each root array of objects, and where the line's strings may stop.
#[derive(Debug, Default)]
pub(crate) struct Split {
    /// The root members.
    pub spans: Vec<Span>,
    /// Per 64 bytes of the line, the stops and the quotes among them (see [`stop_masks`]).
    stops: Vec<[u64; 2]>,
    /// The members of the first element of each array of objects among the root members (see
    /// [`Objects::members`]): found as the line is checked, so that cutting the element down
    /// to the members read needs no second walk of it.
    members: Vec<Member>,
    /// What [`Needs::need`] said of the keys of the last lines reduced, per version of the
    /// needs asked (see [`Memo`]).
    memos: Vec<Memo>,
}

/// The answers of one version of [`Needs`] for the keys of the lines reduced with it, by their
/// place in the line: the lines of one export hold the same members in the same order, so the
/// key at a place is nearly always the one met there before, and one comparison of its bytes
/// replaces the lookups of [`Needs::need`].
#[derive(Debug)]
struct Memo {
    version: u64,
    /// Per place: the key met there last and the answer for it (`None`: no key met there yet).
    keys: Vec<Option<(Vec<u8>, Option<Need>)>>,
}

impl Memo {
    /// Most versions remembered at once (a parser asks a few: what it reads of a resource with
    /// a profile, and of one without, and of the first element of each array read for its
    /// length).
    const VERSIONS: usize = 8;
    /// Places remembered: a resource has a few dozen root members; a line with more is asked
    /// past these without a memo (which holds no more than this many keys).
    const PLACES: usize = 64;

    /// What `needs` reads of `key` (its bytes, between the quotes), the `n`th member of its
    /// line; a key met at its place before is told by its bytes alone, without reading them as
    /// text.
    #[inline]
    fn need(&mut self, n: usize, key: &[u8], needs: &Needs) -> Option<Need> {
        if let Some(Some((k, need))) = self.keys.get(n)
            && k.as_slice() == key
        {
            return *need;
        }
        // `split` checked that every string is UTF-8.
        let need = std::str::from_utf8(key).ok().and_then(|k| needs.need(k));
        if n >= Self::PLACES {
            return need;
        }
        if self.keys.len() <= n {
            self.keys.resize_with(n + 1, || None);
        }
        // The key's bytes go where the last key of this place was (no new allocation when the
        // old one was as long or longer).
        let slot = self.keys[n].get_or_insert_with(|| (Vec::new(), None));
        slot.0.clear();
        slot.0.extend_from_slice(key);
        slot.1 = need;
        need
    }

    /// The memo of `needs`' version among `memos`, made (in place of the oldest) when there is
    /// none.
    fn of<'a>(memos: &'a mut Vec<Memo>, needs: &Needs) -> &'a mut Memo {
        let at = match memos.iter().position(|m| m.version == needs.version) {
            Some(at) => at,
            None => {
                if memos.len() == Memo::VERSIONS {
                    memos.remove(0);
                }
                memos.push(Memo {
                    version: needs.version,
                    keys: Vec::new(),
                });
                memos.len() - 1
            }
        };
        &mut memos[at]
    }
}

/// Checks that `line` is one JSON object, valid throughout, and lists its members in
/// `split.spans` (and those of the first element of each root array of objects in
/// `split.members`). `None`: the line is not valid JSON, or not an object, or holds something the
/// validator leaves to the whole parse (see the module's documentation).
pub(crate) fn split(line: &[u8], split: &mut Split) -> Option<()> {
    let Split {
        spans,
        stops,
        members,
        ..
    } = split;
    spans.clear();
    members.clear();
    stop_masks(line, stops);
    // Outside strings only ASCII is JSON (the grammar below refuses anything else), and every
    // string's text is checked as UTF-8 as it is read.
    let mut v = Validator::new(line, stops, 0);
    v.members = std::mem::take(members);
    let checked = v.object(1, true, |span| spans.push(span));
    v.ws();
    *members = std::mem::take(&mut v.members);
    checked?;
    (v.i == line.len()).then_some(())
}

/// Writes into `out` the object `line` is with only the members `needs` reads (`split` of the
/// same line), arrays read for their length cut down to as many empty objects (the first holding
/// the members of it that are read).
pub(crate) fn reduce(line: &[u8], split: &mut Split, needs: &Needs, out: &mut Vec<u8>) {
    out.clear();
    out.push(b'{');
    let Split {
        spans,
        members,
        memos,
        ..
    } = split;
    let memo = Memo::of(memos, needs);
    for (place, span) in spans.iter().enumerate() {
        let key = &line[span.key.clone()];
        let Some(need) = memo.need(place, key, needs) else {
            continue;
        };
        if out.len() > 1 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(key);
        out.extend_from_slice(b"\":");
        match (need, &span.objects) {
            (Need::Count, Some(objects)) => {
                out.push(b'[');
                match key_text(line, &span.key).and_then(|k| needs.first.get(k)) {
                    Some(read) => keep_members(line, objects, members, read, out),
                    None => out.extend_from_slice(b"{}"),
                }
                for _ in 1..objects.n {
                    out.extend_from_slice(b",{}");
                }
                out.push(b']');
            }
            _ => out.extend_from_slice(&line[span.value.clone()]),
        }
    }
    out.push(b'}');
}

/// A member's key (`split` checked that every string is UTF-8).
fn key_text<'a>(line: &'a [u8], key: &Range<usize>) -> Option<&'a str> {
    std::str::from_utf8(&line[key.clone()]).ok()
}

/// Writes the first element of `objects` (an array [`split`] found in `line`, its members in
/// `members`) with only the members `needs` names.
fn keep_members(
    line: &[u8],
    objects: &Objects,
    members: &[Member],
    needs: &Needs,
    out: &mut Vec<u8>,
) {
    // Any escape in the element keeps it whole (a key with one is only known unescaped).
    if objects.escaped {
        out.extend_from_slice(&line[objects.first.clone()]);
        return;
    }
    let mut any = false;
    out.push(b'{');
    for (key, value) in &members[objects.members.clone()] {
        if key_text(line, key).is_some_and(|k| needs.need(k).is_some()) {
            if any {
                out.push(b',');
            }
            any = true;
            out.extend_from_slice(&line[key.start - 1..key.end + 1]);
            out.push(b':');
            out.extend_from_slice(&line[value.clone()]);
        }
    }
    out.push(b'}');
}

/// The value of `resourceType` when it is the line's first member, written compactly, and a
/// string without escapes (as BFD writes a resource; BCDA sorts the keys): what
/// [`resource_type`] finds in such a line, without a walk of it.
pub(crate) fn leading_type(line: &[u8]) -> Option<&str> {
    let rest = line.strip_prefix(br#"{"resourceType":""#)?;
    let ty = &rest[..memchr::memchr(b'"', rest)?];
    if ty.contains(&b'\\') {
        return None;
    }
    std::str::from_utf8(ty).ok()
}

/// The value of `resourceType` among `spans` when it is a string without escapes.
pub(crate) fn resource_type<'a>(line: &'a [u8], spans: &[Span]) -> Option<&'a str> {
    let span = spans
        .iter()
        .find(|s| &line[s.key.clone()] == b"resourceType")?;
    let text = line[span.value.clone()]
        .strip_prefix(b"\"")?
        .strip_suffix(b"\"")?;
    if text.contains(&b'\\') {
        return None;
    }
    std::str::from_utf8(text).ok()
}

/// The stops of `line` into `out`: bit `k` of `out[k / 64][0]` is set when byte `k` is a `"`, a
/// `\`, a control byte or a byte beyond ASCII, the bytes a string's reader must look at, and bit
/// `k` of `out[k / 64][1]` when it is a `"` (so a reader tells a string's end from its mask, not
/// from the byte, which it would wait for).
fn stop_masks(line: &[u8], out: &mut Vec<[u64; 2]>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bw") {
        // SAFETY: the one obligation of calling a `target_feature` function is that the
        // processor has the feature, which was just checked. The function reads the line
        // through safe slices; nothing here is unsafe on the input.
        unsafe { stop_masks_avx512(line, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: as above, the processor has the feature, just checked.
        unsafe { stop_masks_avx2(line, out) };
        return;
    }
    stop_masks_with(line, out, block_stops);
}

/// [`stop_masks`] with `block` making the masks of each 64 bytes (inlined into its caller, so
/// that a caller compiled for AVX-512 gets the loop compiled for it too).
#[inline(always)]
fn stop_masks_with(line: &[u8], out: &mut Vec<[u64; 2]>, block: impl Fn(&[u8; 64]) -> [u64; 2]) {
    out.clear();
    let (blocks, rest) = line.as_chunks::<64>();
    out.reserve(blocks.len() + 1);
    // One extend of a slice's map: its length known, the room is taken once and each block's
    // masks stored without a check of the room and a store of the length per block (a push's).
    out.extend(blocks.iter().map(&block));
    if !rest.is_empty() {
        // Spaces are no stops.
        let mut last = [b' '; 64];
        last[..rest.len()].copy_from_slice(rest);
        out.push(block(&last));
    }
}

/// [`stop_masks`] with AVX-512 (BW): each kind of byte compared over 64 bytes at once, the mask
/// straight from the compare.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
fn stop_masks_avx512(line: &[u8], out: &mut Vec<[u64; 2]>) {
    stop_masks_with(line, out, |block| block_stops_avx512(block));
}

/// The stops and quotes of 64 bytes with AVX-512 (BW).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
#[inline]
fn block_stops_avx512(block: &[u8; 64]) -> [u64; 2] {
    use std::arch::x86_64::{
        _mm512_cmpeq_epi8_mask, _mm512_cmpge_epu8_mask, _mm512_loadu_si512, _mm512_set1_epi8,
        _mm512_sub_epi8,
    };
    // One load: built from eight words, LLVM made the vector with two cross-lane permutes and
    // a broadcast.
    // SAFETY: the pointer is `block`'s, 64 readable bytes, and `loadu` reads 64 bytes at any
    // alignment: the load reads the block and nothing else, whatever its bytes are.
    let x = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
    let quotes = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(b'"' as i8));
    let backslashes = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(b'\\' as i8));
    // Below the space or beyond ASCII: outside 0x20..0x80, so `b - 0x20` wraps to 0x60 or more.
    let others = _mm512_cmpge_epu8_mask(
        _mm512_sub_epi8(x, _mm512_set1_epi8(0x20)),
        _mm512_set1_epi8(0x60),
    );
    [quotes | backslashes | others, quotes]
}

/// [`stop_masks`] with AVX2, for a processor without AVX-512 (AMD before Zen 4, most of Intel's
/// desktops, a VM that hides AVX-512): 32 bytes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn stop_masks_avx2(line: &[u8], out: &mut Vec<[u64; 2]>) {
    stop_masks_with(line, out, |block| block_stops_avx2(block));
}

/// The stops and quotes of 64 bytes, 32 at a time with AVX2: a byte outside `0x20..0x80` is
/// below the space as a signed byte, so one signed compare finds control bytes and bytes beyond
/// ASCII. Each half's masks are kept apart until the end: accumulated in one `u64` in the loop,
/// LLVM made a 64-lane vector of booleans of them and took it apart byte by byte (a load of a
/// header view ran 68% slower).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn block_stops_avx2(block: &[u8; 64]) -> [u64; 2] {
    use std::arch::x86_64::{
        _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set_epi64x, _mm256_set1_epi8,
    };
    let quote = _mm256_set1_epi8(b'"' as i8);
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let space = _mm256_set1_epi8(0x20);
    let (halves, _) = block.as_chunks::<32>();
    let (mut stops, mut quotes) = ([0u32; 2], [0u32; 2]);
    for (k, half) in halves.iter().enumerate() {
        let (words, _) = half.as_chunks::<8>();
        let w = |i: usize| i64::from_le_bytes(words[i]);
        let x = _mm256_set_epi64x(w(3), w(2), w(1), w(0));
        let quoted = _mm256_cmpeq_epi8(x, quote);
        let found = _mm256_or_si256(
            _mm256_or_si256(quoted, _mm256_cmpeq_epi8(x, backslash)),
            _mm256_cmpgt_epi8(space, x),
        );
        stops[k] = _mm256_movemask_epi8(found) as u32;
        quotes[k] = _mm256_movemask_epi8(quoted) as u32;
    }
    let join = |m: [u32; 2]| u64::from(m[0]) | u64::from(m[1]) << 32;
    [join(stops), join(quotes)]
}

/// The stops and quotes of 64 bytes, sixteen at a time with SSE2.
#[cfg(target_arch = "x86_64")]
#[inline]
fn block_stops(block: &[u8; 64]) -> [u64; 2] {
    // SAFETY: the one obligation of calling a `target_feature` function is that the processor
    // has the feature, and SSE2 is part of x86-64 itself (every x86-64 target enables it). The
    // function reads the block as a value; nothing here is unsafe on the input.
    unsafe { block_stops_sse2(block) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn block_stops_sse2(block: &[u8; 64]) -> [u64; 2] {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };
    let quote = _mm_set1_epi8(b'"' as i8);
    let backslash = _mm_set1_epi8(b'\\' as i8);
    let control = _mm_set1_epi8(0x1F);
    let (chunks, _) = block.as_chunks::<16>();
    let (mut stops, mut quotes) = (0u64, 0u64);
    for (k, chunk) in chunks.iter().enumerate() {
        let v = u128::from_le_bytes(*chunk);
        let x = _mm_set_epi64x((v >> 64) as i64, v as i64);
        let quoted = _mm_cmpeq_epi8(x, quote);
        let found = _mm_or_si128(
            _mm_or_si128(quoted, _mm_cmpeq_epi8(x, backslash)),
            _mm_cmpeq_epi8(_mm_max_epu8(x, control), control),
        );
        // The high bit of each byte is its own: bytes beyond ASCII stop too.
        let mask = (_mm_movemask_epi8(found) | _mm_movemask_epi8(x)) as u32 & 0xFFFF;
        stops |= u64::from(mask) << (16 * k);
        quotes |= u64::from(_mm_movemask_epi8(quoted) as u32 & 0xFFFF) << (16 * k);
    }
    [stops, quotes]
}

/// Whether a string's reader must look at byte `b` (see [`stop_masks`]).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn is_stop(b: u8) -> bool {
    matches!(b, b'"' | b'\\') || !(0x20..0x80).contains(&b)
}

/// The stops and quotes of 64 bytes, one at a time.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn block_stops(block: &[u8; 64]) -> [u64; 2] {
    block
        .iter()
        .enumerate()
        .fold([0, 0], |[stops, quotes], (k, b)| {
            [
                stops | u64::from(is_stop(*b)) << k,
                quotes | u64::from(*b == b'"') << k,
            ]
        })
}

/// Asks for the 64 bytes one line's length past block `w` of the line `b` in the cache (L2):
/// as the walk reaches each block of a line, the same block of the next line (the input's
/// lines are of a size) is on its way from memory, and the next line's first read (the search
/// for its end) finds it there rather than waiting on memory at every page. A hint only: it
/// reads no value and never faults, whatever the address (at one that is not mapped, past
/// the input's end say, it is dropped).
#[inline(always)]
fn prefetch_ahead(b: &[u8], w: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        let at = b
            .as_ptr()
            .wrapping_add(b.len().wrapping_add(w.wrapping_mul(64)));
        // SAFETY: SSE is part of x86-64 (every x86-64 target enables it), the one obligation of
        // calling this `target_feature` function; a prefetch dereferences nothing.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(at.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (b, w);
}

/// The bytes of one character beyond ASCII whose first byte is `lead`: 2 to 4 (`None` for a byte
/// no character starts with).
#[inline]
fn utf8_width(lead: u8) -> Option<usize> {
    match lead {
        0xC2..=0xDF => Some(2),
        0xE0..=0xEF => Some(3),
        0xF0..=0xF4 => Some(4),
        _ => None,
    }
}

struct Validator<'a> {
    b: &'a [u8],
    /// The line's [`stop_masks`].
    stops: &'a [[u64; 2]],
    i: usize,
    /// The stops not taken yet, in order: `word` holds those of block `w` (the bits of the
    /// stops taken cleared), `quotes` that block's quote mask. Strings take their stops from
    /// here one after the other ([`Validator::take_stop`]; [`Validator::skip_stop`] for one
    /// whose place is known), so a string's end is found from the stop before it (a bit
    /// cleared, a count), not from the position the bytes before it left: the position no
    /// longer waits on a load of the masks at every string.
    w: usize,
    word: u64,
    quotes: u64,
    /// Escapes read so far (so a caller can tell whether a value held one).
    escapes: usize,
    /// Where [`Validator::top_array`] puts the members of each root array's first element,
    /// taken back off when not all its elements are objects (see [`Split::members`]).
    members: Vec<Member>,
}

impl<'a> Validator<'a> {
    /// A validator of `b` (whose masks `stops` are) from byte `i`.
    fn new(b: &'a [u8], stops: &'a [[u64; 2]], i: usize) -> Self {
        let mut v = Validator {
            b,
            stops,
            i,
            w: 0,
            word: 0,
            quotes: 0,
            escapes: 0,
            members: Vec::new(),
        };
        v.seek(i);
        v
    }

    /// The stream of stops from byte `from` on (the stops before it dropped).
    #[cold]
    #[inline(never)]
    fn seek(&mut self, from: usize) {
        self.w = from >> 6;
        let [stops, quotes] = self.stops.get(self.w).copied().unwrap_or_default();
        self.word = stops & (u64::MAX << (from & 63));
        self.quotes = quotes;
    }

    /// The next stop of the stream (see [`stop_masks`]), taken, and whether it is a `"`; `None`
    /// when the line has no more.
    #[inline(always)]
    fn take_stop(&mut self) -> Option<(usize, bool)> {
        self.reach_stop()?;
        let at = self.word.trailing_zeros();
        self.word &= self.word - 1;
        Some((self.w * 64 + at as usize, (self.quotes >> at) & 1 != 0))
    }

    /// Where the stream's next stop is, not taken (for a debug build's checks).
    #[cfg(debug_assertions)]
    fn next_stop(&self) -> Option<usize> {
        let (mut w, mut word) = (self.w, self.word);
        while word == 0 {
            w += 1;
            word = self.stops.get(w)?[0];
        }
        Some(w * 64 + word.trailing_zeros() as usize)
    }

    /// The next stop of the stream taken unread (its place is not worked out); `None` when the
    /// line has no more.
    #[inline(always)]
    fn skip_stop(&mut self) -> Option<()> {
        self.reach_stop()?;
        self.word &= self.word - 1;
        Some(())
    }

    /// The block of the stream's next stop made the current one (`word` holds it); `None` when
    /// the line has no more. Each block it moves to has its twin in the next line prefetched
    /// ([`prefetch_ahead`]).
    #[inline(always)]
    fn reach_stop(&mut self) -> Option<()> {
        while self.word == 0 {
            self.w += 1;
            prefetch_ahead(self.b, self.w);
            [self.word, self.quotes] = *self.stops.get(self.w)?;
        }
        Some(())
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A string, from its opening quote to past its closing one; `Some(true)` when it has an
    /// escape.
    #[inline(always)]
    fn string(&mut self) -> Option<bool> {
        // The stream's next stop is this quote, unless stops outside strings were passed over
        // (whitespace below the space: a line that is not compact). It is taken unread; the
        // stop after it is then past the quote, or the stream was behind (that stop is at or
        // before the quote) and starts again past it. The stream is never ahead of a string's
        // quote: a string takes every stop inside it, and outside strings only whitespace is
        // a stop (anything else there ends the walk).
        #[cfg(debug_assertions)]
        debug_assert!(
            self.next_stop().is_some_and(|at| at <= self.i),
            "the stream of stops is past a string's opening quote"
        );
        self.skip_stop()?;
        let (mut at, mut quote) = self.take_stop()?;
        if at <= self.i {
            self.seek(self.i + 1);
            (at, quote) = self.take_stop()?;
        }
        let mut escaped = false;
        loop {
            self.i = at + 1;
            if quote {
                return Some(escaped);
            }
            match *self.b.get(at)? {
                b'\\' => {
                    escaped = true;
                    self.escapes += 1;
                    match self.next()? {
                        // The escaped byte is a stop of its own: taken with its backslash.
                        b'"' | b'\\' => self.skip_stop()?,
                        b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4)?;
                            let hex = std::str::from_utf8(hex).ok()?;
                            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                                return None;
                            }
                            let unit = u16::from_str_radix(hex, 16).ok()?;
                            // Surrogates (paired or not) are left to the whole parse.
                            if (0xD800..=0xDFFF).contains(&unit) {
                                return None;
                            }
                            // Hex digits are no stops.
                            self.i += 4;
                        }
                        _ => return None,
                    }
                }
                c if c >= 0x80 => {
                    let width = utf8_width(c)?;
                    std::str::from_utf8(self.b.get(at..at + width)?).ok()?;
                    // Its continuation bytes (beyond ASCII) are stops of their own.
                    for _ in 1..width {
                        self.skip_stop()?;
                    }
                    self.i = at + width;
                }
                // A control byte.
                _ => return None,
            }
            (at, quote) = self.take_stop()?;
        }
    }

    /// A number of at most 18 characters without an exponent (anything else: the whole parse).
    fn number(&mut self) -> Option<()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) || self.i - start > 18 {
            return None;
        }
        Some(())
    }

    #[inline]
    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    /// The next byte that is not JSON whitespace, not taken. Every token starts with a byte
    /// above the space, so one comparison settles compact JSON.
    #[inline(always)]
    fn token(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        if c > b' ' {
            return Some(c);
        }
        self.ws();
        self.peek()
    }

    /// The object at `self.i`, `depth` levels down from the root, each member handed to
    /// `member` (`arrays`: with what [`Span::objects`] says of an array value).
    #[inline]
    fn object(&mut self, depth: u32, arrays: bool, member: impl FnMut(Span)) -> Option<()> {
        if self.token()? != b'{' {
            return None;
        }
        self.object_at(depth, arrays, member)
    }

    /// [`Validator::object`] of the object whose `{` is at `self.i`, the byte its caller read.
    #[inline]
    fn object_at(&mut self, depth: u32, arrays: bool, mut member: impl FnMut(Span)) -> Option<()> {
        debug_assert_eq!(self.peek(), Some(b'{'));
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        if self.token()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            if self.token()? != b'"' {
                return None;
            }
            let key_start = self.i + 1;
            if self.string()? && arrays {
                // A key with an escape is compared unescaped: the whole parse does that.
                return None;
            }
            let key = key_start..self.i - 1;
            if self.token()? != b':' {
                return None;
            }
            self.i += 1;
            let c = self.token()?;
            let start = self.i;
            let objects = if arrays && c == b'[' {
                self.top_array(depth + 1)?
            } else {
                self.value_at(c, depth + 1)?;
                None
            };
            member(Span {
                key,
                value: start..self.i,
                objects,
            });
            match self.token()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The value that starts with `c` at `self.i` (a string, the commonest, first).
    #[inline(always)]
    fn value_at(&mut self, c: u8, depth: u32) -> Option<()> {
        if c == b'"' {
            return self.string().map(|_| ());
        }
        self.other_value(c, depth)
    }

    /// [`Validator::value_at`] of anything but a string.
    fn other_value(&mut self, c: u8, depth: u32) -> Option<()> {
        match c {
            b'{' => self.object_at(depth, false, |_| {}),
            b'[' => self
                .array(depth, |v, c, _| v.value_at(c, depth + 1))
                .map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// The array at `self.i` (its `[`), `depth` levels down, each element read by `element`
    /// (given the validator at the element, its first byte and its index); how many elements
    /// it has.
    #[inline]
    fn array(
        &mut self,
        depth: u32,
        mut element: impl FnMut(&mut Self, u8, usize) -> Option<()>,
    ) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        let mut c = self.token()?;
        if c == b']' {
            self.i += 1;
            return Some(0);
        }
        let mut n = 0;
        loop {
            element(self, c, n)?;
            n += 1;
            match self.token()? {
                b',' => {
                    self.i += 1;
                    c = self.token()?;
                }
                b']' => {
                    self.i += 1;
                    return Some(n);
                }
                _ => return None,
            }
        }
    }

    /// A root member's array value; `Some(Some(objects))` when it has elements and all are
    /// objects, the first one's members pushed to [`Validator::members`] as it is read.
    fn top_array(&mut self, depth: u32) -> Option<Option<Objects>> {
        let from = self.members.len();
        let (mut all_objects, mut first, mut escaped) = (true, 0..0, false);
        let n = self.array(depth, |v, c, i| {
            all_objects &= c == b'{';
            if i > 0 {
                return v.value_at(c, depth + 1);
            }
            let (start, escapes) = (v.i, v.escapes);
            if c == b'{' {
                let mut members = std::mem::take(&mut v.members);
                let read = v.object(depth + 1, false, |span| {
                    members.push((span.key, span.value))
                });
                v.members = members;
                read?;
            } else {
                v.value_at(c, depth + 1)?;
            }
            first = start..v.i;
            escaped = v.escapes != escapes;
            Some(())
        })?;
        if n == 0 || !all_objects {
            self.members.truncate(from);
            return Some(None);
        }
        Some(Some(Objects {
            n,
            first,
            members: from..self.members.len(),
            escaped,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(list: &[(&str, Need)]) -> Needs {
        let mut n = Needs::new();
        for (name, need) in list {
            n.add(name, *need);
        }
        n
    }

    fn reduced(line: &str, n: &Needs) -> Option<String> {
        let mut found = Split::default();
        split(line.as_bytes(), &mut found)?;
        let mut out = Vec::new();
        reduce(line.as_bytes(), &mut found, n, &mut out);
        String::from_utf8(out).ok()
    }

    #[test]
    fn a_key_read_several_ways_is_read_as_much_as_the_most_of_them() {
        let n = needs(&[
            ("value", Need::Whole),
            ("valueQuantity", Need::Count),
            ("_x", Need::Count),
            ("x", Need::Whole),
            ("deceased", Need::Count),
        ]);
        assert_eq!(n.need("valueQuantity"), Some(Need::Whole));
        assert_eq!(n.need("_valueQuantity"), Some(Need::Whole));
        assert_eq!(n.need("_x"), Some(Need::Whole));
        assert_eq!(n.need("_deceasedBoolean"), Some(Need::Whole));
        assert_eq!(n.need("deceased"), Some(Need::Count));
        assert_eq!(n.need("_y"), None);
        assert_eq!(n.need("values"), None);
        // Names between a name and its variant do not hide it.
        let m = needs(&[("a", Need::Whole), ("aB", Need::Count), ("aa", Need::Count)]);
        assert_eq!(m.need("aZ"), Some(Need::Whole));
        assert_eq!(m.need("abC"), None);
        assert_eq!(m.need("aaB"), Some(Need::Whole));
        assert_eq!(m.need("b"), None);
    }

    #[test]
    fn keeps_the_members_read_with_their_twins_and_variants() {
        let n = needs(&[("id", Need::Whole), ("value", Need::Whole)]);
        let line = r#" { "id" : "a", "_id":{"id":"x"}, "valueQuantity":{"value":1.50}, "values":[1], "other":[true,false,null] } "#;
        assert_eq!(
            reduced(line, &n).as_deref(),
            Some(r#"{"id":"a","_id":{"id":"x"},"valueQuantity":{"value":1.50}}"#)
        );
    }

    #[test]
    fn a_parser_remembers_answers_per_version_of_the_needs_and_place_of_the_key() {
        // One `Split` kept from line to line, as a parser keeps it: every answer is the one a
        // fresh `Split` gives, whether the keys move, the needs change or another needs is asked.
        let lines = [
            r#"{"id":"a","status":"x","item":[{}]}"#,
            r#"{"id":"b","status":"y","item":[{}]}"#,
            r#"{"status":"z","id":"c","_status":{"id":"s"}}"#,
            r#"{"statusCode":"q","id":"d"}"#,
        ];
        let mut header = needs(&[("id", Need::Whole), ("status", Need::Whole)]);
        let mut all = header.clone();
        all.add("item", Need::Whole);
        assert_eq!(all, all.clone());
        assert_ne!(all.version, header.version);
        let mut kept = Split::default();
        fn check(kept: &mut Split, line: &str, n: &Needs) {
            let mut out = Vec::new();
            split(line.as_bytes(), kept).expect("valid");
            reduce(line.as_bytes(), kept, n, &mut out);
            assert_eq!(
                Some(String::from_utf8(out).expect("utf-8")),
                reduced(line, n)
            );
        }
        for line in lines {
            check(&mut kept, line, &header);
            check(&mut kept, line, &all);
        }
        // Both versions are remembered, each with the keys of the last line at their places.
        assert_eq!(kept.memos.len(), 2);
        let places = |m: &Memo| -> Vec<Option<(String, Option<Need>)>> {
            m.keys
                .iter()
                .map(|k| {
                    k.as_ref()
                        .map(|(k, n)| (String::from_utf8(k.clone()).expect("utf-8"), *n))
                })
                .collect()
        };
        assert_eq!(
            places(&kept.memos[0]),
            [
                Some(("statusCode".to_owned(), Some(Need::Whole))),
                Some(("id".to_owned(), Some(Need::Whole))),
                Some(("_status".to_owned(), Some(Need::Whole))),
            ]
        );
        // A change is a new version: what was remembered of the old one is not used.
        let before = header.version;
        header.add("item", Need::Count);
        assert_ne!(header.version, before);
        for line in lines {
            check(&mut kept, line, &header);
        }
        assert_eq!(
            reduced(lines[0], &header).as_deref(),
            Some(r#"{"id":"a","status":"x","item":[{}]}"#)
        );
        // A line with more root members than the memo's places: the rest are asked each time.
        let wide = format!(
            "{{{}\"id\":\"w\"}}",
            (0..100)
                .map(|i| format!("\"m{i}\":{i},"))
                .collect::<String>()
        );
        check(&mut kept, &wide, &header);
        check(&mut kept, &wide, &header);
        assert_eq!(reduced(&wide, &header).as_deref(), Some(r#"{"id":"w"}"#));
        assert!(kept.memos.iter().all(|m| m.keys.len() <= Memo::PLACES));
        // More versions than the memo keeps: the oldest go, the answers stay right.
        let many: Vec<Needs> = (0..Memo::VERSIONS + 2)
            .map(|k| {
                let mut n = header.clone();
                n.add(&format!("m{k}"), Need::Whole);
                n
            })
            .collect();
        for _ in 0..2 {
            for n in &many {
                check(&mut kept, &wide, n);
            }
        }
        assert_eq!(kept.memos.len(), Memo::VERSIONS);
    }

    #[test]
    fn a_kept_split_cuts_first_elements_as_a_fresh_one_does() {
        // One `Split` kept from line to line, as a parser keeps it, with two arrays cut down to
        // their first elements' members: first elements of more members, then fewer, one with
        // an escape, an array that is not all objects, an empty one.
        let lines = [
            r#"{"item":[{"a":1,"servicedDate":"x","b":[{"servicedDate":0}]},{}],"careTeam":[{"role":"r"}]}"#,
            r#"{"careTeam":[{"role":"s"},2],"item":[{"servicedDate":"y"}]}"#,
            r#"{"item":[{"b":"\u0041","servicedDate":"z"}],"careTeam":[{"x":1,"role":"t"}]}"#,
            r#"{"item":[],"careTeam":[{"role":"u","x":[{"role":1}]}]}"#,
            r#"{"item":[{"servicedDate":"w","a":2}]}"#,
        ];
        let mut n = Needs::new();
        n.add_first("item", "servicedDate");
        n.add_first("careTeam", "role");
        let mut kept = Split::default();
        for line in lines {
            let mut out = Vec::new();
            split(line.as_bytes(), &mut kept).expect("valid");
            reduce(line.as_bytes(), &mut kept, &n, &mut out);
            let out = String::from_utf8(out).expect("utf-8");
            assert_eq!(Some(out.as_str()), reduced(line, &n).as_deref(), "{line}");
            // No member left out comes back (the escaped element is kept whole, as it is).
            if !line.contains('\\') {
                assert!(
                    !out.contains(r#""x":"#) && !out.contains(r#""a":"#),
                    "{out}"
                );
            }
        }
    }

    #[test]
    fn arrays_read_for_their_length_or_first_element_are_cut_down() {
        let line = r#"{"item":[{"a":1,"servicedDate":"2020-01-02","_servicedDate":{"id":"x"},"b":[{}]}, {"b":[2]} ,{}],"mixed":[{"a":1},2],"empty":[ ]}"#;
        let count = needs(&[
            ("item", Need::Count),
            ("mixed", Need::Count),
            ("empty", Need::Count),
        ]);
        assert_eq!(
            reduced(line, &count).as_deref(),
            Some(r#"{"item":[{},{},{}],"mixed":[{"a":1},2],"empty":[ ]}"#)
        );
        let mut first = Needs::new();
        first.add_first("item", "servicedDate");
        assert_eq!(
            reduced(line, &first).as_deref(),
            Some(r#"{"item":[{"servicedDate":"2020-01-02","_servicedDate":{"id":"x"}},{},{}]}"#)
        );
        // A first element with an escape anywhere is kept whole.
        let escaped = r#"{"item":[{"servicedD\u0061te":"2020"},{}]}"#;
        assert_eq!(
            reduced(escaped, &first).as_deref(),
            Some(r#"{"item":[{"servicedD\u0061te":"2020"},{}]}"#)
        );
        // An escape in a value of the first element keeps it whole too; one in a later element
        // does not. Whitespace around the first element's members goes with the members left
        // out.
        let in_value = r#"{"item":[{"a":"\t","servicedDate":"2020"},{}]}"#;
        assert_eq!(reduced(in_value, &first).as_deref(), Some(in_value));
        let later = r#"{"item":[{"a":"x","servicedDate":"2020"},{"b":"\n"}]}"#;
        assert_eq!(
            reduced(later, &first).as_deref(),
            Some(r#"{"item":[{"servicedDate":"2020"},{}]}"#)
        );
        let spaced = r#"{"item":[ { "a" : {"servicedDate":1} , "servicedDate" : "2020" } , {} ]}"#;
        assert_eq!(
            reduced(spaced, &first).as_deref(),
            Some(r#"{"item":[{"servicedDate":"2020"},{}]}"#)
        );
        // An escape before the element does not keep it whole either.
        let before = r#"{"id":"a\nb","item":[{"a":"x","servicedDate":"2020"}]}"#;
        assert_eq!(
            reduced(before, &first).as_deref(),
            Some(r#"{"item":[{"servicedDate":"2020"}]}"#)
        );
        // Each array's first element is cut by its own members and needs: not those of an
        // earlier array's first element, nor of an array that is not all objects.
        let arrays = r#"{"careTeam":[{"servicedDate":"c","role":"r"}],"mixed":[{"servicedDate":"m"},1],"item":[{"a":1,"servicedDate":"z"},{"servicedDate":"w"}]}"#;
        assert_eq!(
            reduced(arrays, &first).as_deref(),
            Some(r#"{"item":[{"servicedDate":"z"},{}]}"#)
        );
        let mut two = first.clone();
        two.add_first("careTeam", "role");
        assert_eq!(
            reduced(arrays, &two).as_deref(),
            Some(r#"{"careTeam":[{"role":"r"}],"item":[{"servicedDate":"z"},{}]}"#)
        );
        // A need only grows: read whole, the array is kept as it is.
        let mut grown = first.clone();
        grown.add("item", Need::Count);
        assert_eq!(grown.need("item"), Some(Need::Count));
        grown.add("item", Need::Whole);
        assert_eq!(grown.need("item"), Some(Need::Whole));
        let item = &line[line.find('[').expect("[")..line.find(r#","mixed""#).expect("mixed")];
        assert_eq!(reduced(line, &grown), Some(format!(r#"{{"item":{item}}}"#)));
    }

    #[test]
    fn the_validator_refuses_what_is_not_json_and_leaves_doubts_to_the_whole_parse() {
        let valid = [
            r#"{}"#,
            r#"{"a":[1,-2,0.5,-0.25,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9",{"b":{}}]}"#,
            "{\"a\":\"caf\u{e9} \u{1F600}\"}\r",
            r#"{"a" : [ ] , "b" : { } }"#,
            // Whitespace below the space between tokens (stops outside strings, which the
            // stream of stops steps over).
            "{\t\"a\"\t:\r[\t\"x\" ,\t\"y\"\r] ,\r\n\"b\":\t\"z\"}",
            // Empty strings, and escaped quotes and backslashes right after an opening quote,
            // also after whitespace below the space.
            r#"{"a":""}"#,
            r#"{"a":"\"x","b":"\\"}"#,
            "{\"a\":\t\"\\\"x\",\r\n\"\":\"\"}",
        ];
        for line in valid {
            assert!(
                split(line.as_bytes(), &mut Split::default()).is_some(),
                "{line}"
            );
        }
        // A key's and a value's opening quote at the last byte of a 64-byte block and at the
        // first of the next (a byte or two later after whitespace below the space).
        for n in [51, 52, 55, 56] {
            for gap in ["", "\t", "\r\n"] {
                let line = format!("{{\"a\":\"{}\",{gap}\"b\":{gap}\"y\"}}", "0".repeat(n));
                assert!(
                    split(line.as_bytes(), &mut Split::default()).is_some(),
                    "{line}"
                );
            }
        }
        // An escape whose backslash ends one 64-byte block and whose quote starts the next, and
        // a character beyond ASCII whose two bytes straddle the next boundary.
        let across = format!(
            "{{\"a\":\"{}\\\"\\\\\\\"\",\"b\":\"{}\u{e9}\"}}",
            "0".repeat(57),
            "1".repeat(51)
        );
        assert_eq!(&across.as_bytes()[63..65], b"\\\"");
        assert_eq!(&across.as_bytes()[127..129], "\u{e9}".as_bytes());
        assert!(split(across.as_bytes(), &mut Split::default()).is_some());
        let refused: [&[u8]; 22] = [
            b"",
            b"[1]",
            b"{",
            b"{\"a\":1,}",
            b"{\"a\":1} x",
            b"{\"a\" 1}",
            b"{\"a\":01}",
            b"{\"a\":1.}",
            b"{\"a\":-}",
            b"{\"a\":tru}",
            b"{\"a\":nul}",
            b"{\"a\":\"x}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\\u00g0\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":[1,]}",
            b"{\"a\":[1 2]}",
            // Left to the whole parse: simd-json decides.
            b"{\"a\":1e5}",
            b"{\"a\":12345678901234567890}",
            b"{\"a\":\"\\ud83d\\ude00\"}",
            b"{\"a\\u0062\":1}",
        ];
        for line in refused {
            assert!(
                split(line, &mut Split::default()).is_none(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(split(deep.as_bytes(), &mut Split::default()).is_none());
    }

    /// Every byte's stop and quote bits are what [`is_stop`] and `"` say, whatever the line's
    /// length, and a pair per 64 bytes; the validator's stream of stops gives them in order
    /// from any position, across words, and none past the last.
    #[test]
    fn stop_masks_flag_exactly_the_bytes_a_string_reader_looks_at() {
        let mut line: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        line.extend_from_slice(&[b'a'; 300]);
        let mut stops = Vec::new();
        for len in [0, 1, 63, 64, 65, 200, 1000] {
            let line = &line[..len];
            stop_masks(line, &mut stops);
            assert_eq!(stops.len(), len.div_ceil(64), "{len}");
            for (k, b) in line.iter().enumerate() {
                let [stop, quote] = stops[k / 64].map(|w| w >> (k % 64) & 1 == 1);
                assert_eq!(stop, is_stop(*b), "byte {k} of {len}");
                assert_eq!(quote, *b == b'"', "byte {k} of {len}");
            }
            // From any place, the stream gives every stop after it, in order, then none.
            for from in 0..len {
                let mut v = Validator::new(line, &stops, from);
                let want: Vec<(usize, bool)> = (from..len)
                    .filter(|k| is_stop(line[*k]))
                    .map(|k| (k, line[k] == b'"'))
                    .collect();
                let got: Vec<(usize, bool)> = std::iter::from_fn(|| v.take_stop()).collect();
                assert_eq!(got, want, "from {from} of {len}");
            }
            // Each way of making the masks this processor has makes the same ones.
            for (way, other) in masks_each_way(line) {
                assert_eq!(other, stops, "{len}, {way}");
            }
        }
    }

    /// The masks of `line` made each way this processor has, named: the baseline (SSE2 on
    /// x86-64, byte by byte elsewhere), then AVX2 and AVX-512 when it has them, whichever
    /// [`stop_masks`] would pick.
    fn masks_each_way(line: &[u8]) -> Vec<(&'static str, Vec<[u64; 2]>)> {
        let mut ways = Vec::new();
        let mut masks = Vec::new();
        stop_masks_with(line, &mut masks, block_stops);
        ways.push(("baseline", masks));
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut masks = Vec::new();
            // SAFETY: the processor has the feature (checked just above).
            unsafe { stop_masks_avx2(line, &mut masks) };
            ways.push(("AVX2", masks));
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bw") {
            let mut masks = Vec::new();
            // SAFETY: the processor has the feature (checked just above).
            unsafe { stop_masks_avx512(line, &mut masks) };
            ways.push(("AVX-512", masks));
        }
        ways
    }

    #[test]
    fn every_way_of_making_stop_masks_flags_every_byte_at_every_place_of_a_block() {
        // Above, a byte value always falls at the same place of its block (256 is a multiple
        // of 64): here each value sits at each place of two blocks and of a short last one.
        let mut line = vec![b'a'; 150];
        let mut want = Vec::new();
        let mut got = Vec::new();
        for b in 0..=255u8 {
            for at in 0..line.len() {
                line[at] = b;
                want.clear();
                want.extend(line.chunks(64).map(|chunk| {
                    chunk.iter().enumerate().fold([0u64; 2], |[s, q], (k, c)| {
                        [
                            s | u64::from(is_stop(*c)) << k,
                            q | u64::from(*c == b'"') << k,
                        ]
                    })
                }));
                stop_masks(&line, &mut got);
                assert_eq!(got, want, "byte {b:#04x} at {at}");
                for (way, masks) in masks_each_way(&line) {
                    assert_eq!(masks, want, "byte {b:#04x} at {at}, {way}");
                }
                line[at] = b'a';
            }
        }
    }

    #[test]
    fn the_resource_type_is_read_only_when_plain() {
        let mut found = Split::default();
        let line = br#"{"id":"1","resourceType":"Patient"}"#;
        split(line, &mut found).expect("valid");
        assert_eq!(resource_type(line, &found.spans), Some("Patient"));
        let line = br#"{"resourceType":"Pat\u0069ent"}"#;
        split(line, &mut found).expect("valid");
        assert_eq!(resource_type(line, &found.spans), None);
        let line = br#"{"resourceType":7}"#;
        split(line, &mut found).expect("valid");
        assert_eq!(resource_type(line, &found.spans), None);
    }

    #[test]
    fn pruning_adds_what_the_scanner_and_the_detector_read() {
        let mut p = Pruning::new();
        p.set("Claim", needs(&[("total", Need::Count)]));
        let plain = p.needs("Claim", false).expect("set");
        assert_eq!(plain.need("resourceType"), Some(Need::Whole));
        assert_eq!(plain.need("id"), Some(Need::Whole));
        assert_eq!(plain.need("meta"), None);
        assert_eq!(plain.need("total"), Some(Need::Count));
        let detecting = p.needs("Claim", true).expect("set");
        assert_eq!(detecting.need("meta"), Some(Need::Whole));
        assert_eq!(detecting.need("extension"), Some(Need::Whole));
        assert_eq!(detecting.need("total"), Some(Need::Count));
        assert_eq!(detecting.need("benefitBalance"), None);
        let unprofiled = p.unprofiled("Claim").expect("set");
        assert_eq!(unprofiled.need("total"), Some(Need::Whole));
        assert_eq!(unprofiled.need("benefitBalance"), Some(Need::Whole));
        assert!(p.needs("Patient", false).is_none());
    }

    #[test]
    fn types_not_named_take_the_others_needs_and_a_type_set_whole_is_parsed_whole() {
        let mut p = Pruning::new();
        assert!(p.is_empty());
        p.set_whole("Coverage");
        assert!(p.is_empty(), "a type parsed whole parses nothing in part");
        assert!(p.needs("Claim", false).is_none(), "no others: parsed whole");
        let mut only_others = p.clone();
        only_others.set_others(Needs::new());
        assert!(!only_others.is_empty(), "the others are parsed in part");
        p.set("Patient", needs(&[("name", Need::Whole)]));
        p.set_others(needs(&[("status", Need::Whole)]));
        assert!(!p.is_empty());
        let other = p.needs("ExplanationOfBenefit", false).expect("others");
        assert_eq!(other.need("status"), Some(Need::Whole));
        assert_eq!(other.need("id"), Some(Need::Whole));
        assert_eq!(other.need("resourceType"), Some(Need::Whole));
        assert_eq!(other.need("item"), None);
        let detecting = p.needs("ExplanationOfBenefit", true).expect("others");
        assert_eq!(detecting.need("meta"), Some(Need::Whole));
        let unprofiled = p.unprofiled("Claim").expect("others");
        assert_eq!(unprofiled.need("benefitBalance"), Some(Need::Whole));
        let named = p.needs("Patient", false).expect("set");
        assert_eq!(named.need("name"), Some(Need::Whole));
        assert_eq!(
            named.need("status"),
            None,
            "a named type does not take the others'"
        );
        assert!(
            p.needs("Coverage", false).is_none(),
            "set whole stays whole"
        );
        assert!(p.unprofiled("Coverage").is_none());

        // A line of a type not named is checked whole and parsed in part.
        let line = br#"{"resourceType":"Claim","id":"c1","status":"active","item":[{"sequence":1}],"total":{"value":1}}"#;
        let mut parser = crate::LineParser::new();
        let (status, has_item) = parser
            .parse_pruned(line, &p, false, |doc| {
                let root = doc.root();
                let status = root
                    .get("status")
                    .and_then(|s| s.as_str())
                    .map(str::to_owned);
                // Counted on the tape, not looked up (a lookup of a member not read is a bug
                // debug builds catch).
                let has_item = root.entries().any(|(k, _)| k == "item");
                (status, has_item)
            })
            .expect("valid JSON");
        assert_eq!(status.as_deref(), Some("active"));
        assert!(!has_item, "`item` is left off the tape");
        let bad = br#"{"resourceType":"Claim","id":"c1","item":[{"sequence":01}]}"#;
        assert!(
            parser.parse_pruned(bad, &p, false, |_| ()).is_err(),
            "a member left out is still checked"
        );
    }
}

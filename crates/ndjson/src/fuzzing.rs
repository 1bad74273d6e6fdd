//! The bodies of the fuzz targets in `fuzz/` that exercise this crate, so that `cargo fuzz` and
//! the ordinary test suite run the same code: `tests/fuzz.rs` feeds them the committed seed
//! corpus (`fuzz/corpus/ndjson_line/`), every line of the real CMS fixtures cut and damaged
//! every way, and a few thousand generated inputs. Not an API.

use crate::prune::{Need, Needs, Pruning};
use crate::tape::{Cursor, Kind};
use crate::{LineParser, claim_type, detect_version};

fn walk(c: Cursor<'_>, depth: usize) -> usize {
    if depth > 64 {
        return 0;
    }
    let mut n = 1;
    match c.kind() {
        Kind::Object(_) => {
            for (_, v) in c.entries() {
                n += walk(v, depth + 1);
            }
        }
        Kind::Array(_) => {
            for v in c.items() {
                n += walk(v, depth + 1);
            }
        }
        Kind::Number => {
            let text = c.number_text();
            assert!(text.is_some(), "every number has source text");
        }
        _ => {}
    }
    n
}

/// Any bytes as one NDJSON line: parsing, walking the tape, number text and the shape
/// detectors must never panic; a line the parser refuses must be explained (a position within
/// the line and a reason).
pub fn ndjson_line(data: &[u8]) {
    let mut parser = LineParser::new();
    let parsed = parser.parse(data, |doc| {
        let root = doc.root();
        let _ = detect_version(root);
        let _ = claim_type(root);
        walk(root, 0)
    });
    if parsed.is_err() {
        let (at, why) = crate::parse::explain_invalid(data);
        assert!(at <= data.len() && !why.is_empty());
    }
}

/// A value as text that two parses of the same JSON agree on (numbers as written).
fn canon(c: Cursor<'_>, depth: usize, out: &mut String) {
    if depth > 256 {
        out.push('…');
        return;
    }
    match c.kind() {
        Kind::Object(_) => {
            out.push('{');
            for (k, v) in c.entries() {
                out.push_str(&format!("{k:?}:"));
                canon(v, depth + 1, out);
                out.push(',');
            }
            out.push('}');
        }
        Kind::Array(_) => {
            out.push('[');
            for v in c.items() {
                canon(v, depth + 1, out);
                out.push(',');
            }
            out.push(']');
        }
        Kind::Number => out.push_str(c.number_text().unwrap_or("?")),
        Kind::String(s) => out.push_str(&format!("{s:?}")),
        other => out.push_str(&format!("{other:?}")),
    }
}

/// What a parse in part may hold of the root `root` of a whole parse, as [`canon`] writes it:
/// pieces one after the other, each one of its alternatives (the first element of an array read
/// for its length is cut down to the members read, or kept whole when its text has an escape,
/// which the tape no longer shows: either, element by element).
fn projected(root: Cursor<'_>, needs: &Needs) -> Vec<Vec<String>> {
    let mut pieces = vec![vec![String::from("{")]];
    let text = |pieces: &mut Vec<Vec<String>>, t: &str| match pieces.last_mut() {
        Some(last) if last.len() == 1 => last[0].push_str(t),
        _ => pieces.push(vec![t.to_owned()]),
    };
    for (k, v) in root.entries() {
        let Some(need) = needs.need(k) else { continue };
        text(&mut pieces, &format!("{k:?}:"));
        let objects = matches!(v.kind(), Kind::Array(n) if n > 0)
            && v.items().all(|e| matches!(e.kind(), Kind::Object(_)));
        if need == Need::Count && objects {
            text(&mut pieces, "[");
            for (i, e) in v.items().enumerate() {
                match needs.first_members(k) {
                    Some(members) if i == 0 => {
                        let mut whole = String::new();
                        canon(e, 1, &mut whole);
                        let cut: String = projected(e, members)
                            .into_iter()
                            .map(|mut alternatives| alternatives.swap_remove(0))
                            .collect();
                        pieces.push(vec![cut, whole]);
                    }
                    _ => text(&mut pieces, "{}"),
                }
                text(&mut pieces, ",");
            }
            text(&mut pieces, "]");
        } else {
            let mut value = String::new();
            canon(v, 1, &mut value);
            text(&mut pieces, &value);
        }
        text(&mut pieces, ",");
    }
    text(&mut pieces, "}");
    pieces
}

/// Whether `got` is [`projected`]'s `pieces`, each piece one of its alternatives.
fn holds(pieces: &[Vec<String>], got: &str) -> bool {
    match pieces.split_first() {
        None => got.is_empty(),
        Some((alternatives, rest)) => alternatives
            .iter()
            .any(|a| got.strip_prefix(a.as_str()).is_some_and(|r| holds(rest, r))),
    }
}

/// Any bytes as one NDJSON line, parsed whole and in part ([`LineParser::parse_pruned`]) with
/// several [`Needs`]: both must accept the line or both refuse it with the same error, and the
/// tape of the parse in part must hold exactly the members read (arrays read for their length
/// as that many empty objects, the first with the members of it read). Returns how many of the
/// parses in part held less than the whole parse (a line the validator leaves to simd-json is
/// parsed whole, which is right too: callers check that most lines were cut down).
pub fn pruned_line(data: &[u8]) -> usize {
    let mut cut_down = 0;
    let mut parser = LineParser::new();
    let whole = parser.parse(data, |doc| {
        let root = doc.root();
        let ty = root
            .get("resourceType")
            .and_then(|t| t.as_str())
            .map(str::to_owned);
        let first_key = root.entries().next().map(|(k, _)| k.to_owned());
        (ty, first_key)
    });
    let (ty, first_key) = match &whole {
        Ok((ty, first)) => (ty.clone(), first.clone()),
        Err(_) => (None, None),
    };
    let ty = ty.unwrap_or_else(|| "ExplanationOfBenefit".to_owned());
    let mut variants = vec![Needs::new()];
    let mut counted = Needs::new();
    counted.add("item", Need::Count);
    counted.add("value", Need::Whole);
    variants.push(counted);
    let mut first = Needs::new();
    first.add_first("item", "servicedDate");
    first.add("identifier", Need::Whole);
    variants.push(first);
    if let Some(k) = first_key {
        let mut n = Needs::new();
        n.add(&k, Need::Count);
        n.add_first(&k, "a");
        variants.push(n);
    }
    for needs in variants {
        for (detecting, named) in [(false, true), (true, true), (false, false), (true, false)] {
            let mut pruning = Pruning::new();
            if named {
                // Every type a line may claim gets the needs: a line whose whole parse fails
                // (its type unknown here) is still parsed in part, whatever its `resourceType`.
                for t in [ty.as_str(), "ExplanationOfBenefit", "Patient", "Coverage"] {
                    pruning.set(t, needs.clone());
                }
            } else {
                // The same needs for every type no one names, and one type parsed whole (a
                // line of it comes back whole, which the check below accepts).
                pruning.set_others(needs.clone());
                pruning.set_whole("Coverage");
            }
            // What the parse in part may hold: the members read (the first element of an
            // array read for its length cut down, or whole when it has an escape), or
            // everything when the line is left to the whole parse.
            // With the version told from the shape, a resource without a profile is read with
            // every member the detection may read.
            let want = parser.parse(data, |doc| {
                let mut n = pruning.needs(&ty, detecting).unwrap_or(&needs);
                if detecting && !crate::detect::profiled(doc.root()) {
                    n = pruning.unprofiled(&ty).unwrap_or(n);
                }
                let mut full = String::new();
                canon(doc.root(), 0, &mut full);
                (projected(doc.root(), n), full)
            });
            let got = parser.parse_pruned(data, &pruning, detecting, |doc| {
                let mut out = String::new();
                canon(doc.root(), 0, &mut out);
                out
            });
            match (&want, &got) {
                (Ok((pieces, full)), Ok(got)) => {
                    assert!(
                        got == full || holds(pieces, got),
                        "parsed in part: {got}\nexpected {pieces:?} or the whole {full}"
                    );
                    cut_down += usize::from(got != full);
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                _ => panic!(
                    "whole parse {:?}, parse in part {:?}",
                    want.as_ref().err().map(ToString::to_string),
                    got.as_ref().err().map(ToString::to_string)
                ),
            }
        }
    }
    cut_down
}

/// Any bytes as one line: the tape the validator builds (`prune::build`) is the tape
/// simd-json fills, node for node (each `f64` to the bit), with the same number text, whenever
/// the validator takes the line; a line simd-json refuses, the validator never takes. True when
/// the validator took it (so a caller can tell the comparison ran).
pub fn built_tape(data: &[u8]) -> bool {
    use crate::prune::build::{Built, build, patch, unescape};
    use simd_json::{Node, StaticNode};

    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut built = Built::default();
    let mut tape = Vec::new();
    let took = build(text, &mut built, &mut tape).is_some()
        && unescape(text, &mut built).is_some()
        && patch(&mut tape, &built).is_some();
    let mut copy = data.to_vec();
    let simd = simd_json::to_tape(&mut copy);
    if !took {
        return false;
    }
    let simd = match simd {
        Ok(simd) => simd,
        Err(e) => panic!("the validator took a line simd-json refuses ({e})"),
    };
    assert_eq!(tape.len(), simd.0.len(), "tape lengths");
    for (k, (a, b)) in tape.iter().zip(&simd.0).enumerate() {
        let same = match (a, b) {
            (Node::Static(StaticNode::F64(x)), Node::Static(StaticNode::F64(y))) => {
                x.to_bits() == y.to_bits()
            }
            _ => a == b,
        };
        assert!(same, "node {k}: {a:?} built, {b:?} from simd-json");
    }
    // The same number text through both documents (the whole parse is simd-json's).
    let doc = crate::Document::with_buffer(&tape, data, &built.numbers, data.as_ptr());
    let mut ours = String::new();
    canon(doc.root(), 0, &mut ours);
    let theirs = LineParser::new()
        .parse_with_simd_json(data, |d| {
            let mut s = String::new();
            canon(d.root(), 0, &mut s);
            s
        })
        .expect("simd-json took it above");
    assert_eq!(ours, theirs);
    true
}

/// Any bytes as one line: the one walk of a line parsed in part (`prune::build::build_pruned`)
/// gives the tape the long way gives for the same needs (`prune::split`, `prune::reduce`, then
/// the copy built, or parsed by simd-json where the build leaves it), node for node (each
/// `f64` to the bit), with the same number text, whenever it takes the line; a line the long
/// way's check refuses, it never takes. Several needs: none, a few members, arrays read for
/// their length with and without members of their first element. The walk also says how many
/// bytes the long way's copy holds. True when the walk took the line with every needs (so a
/// caller can tell the comparison ran).
pub fn pruned_walk(data: &[u8]) -> bool {
    use crate::prune::build::{Built, build, build_pruned, patch, unescape};
    use crate::prune::{Split, reduce, split};
    use simd_json::{Node, StaticNode};

    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut variants = vec![Needs::new()];
    let mut header = Needs::new();
    for name in [
        "resourceType",
        "id",
        "identifier",
        "status",
        "type",
        "billablePeriod",
    ] {
        header.add(name, Need::Whole);
    }
    variants.push(header);
    let mut counted = Needs::new();
    counted.add("item", Need::Count);
    counted.add("value", Need::Whole);
    counted.add("meta", Need::Whole);
    variants.push(counted);
    let mut first = Needs::new();
    first.add_first("item", "servicedDate");
    first.add_first("item", "sequence");
    first.add_first("supportingInfo", "category");
    first.add("identifier", Need::Whole);
    variants.push(first);
    // Every root key of the line read for its length, with a member of its first element.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
        && let Some(object) = value.as_object()
    {
        let mut every = Needs::new();
        for (k, v) in object {
            every.add(k, Need::Count);
            if let Some(member) = v
                .as_array()
                .and_then(|a| a.first())
                .and_then(|e| e.as_object())
                .and_then(|o| o.keys().next())
            {
                every.add_first(k, member);
            }
        }
        variants.push(every);
    }
    let same = |a: &Node<'_>, b: &Node<'_>| match (a, b) {
        (Node::Static(StaticNode::F64(x)), Node::Static(StaticNode::F64(y))) => {
            x.to_bits() == y.to_bits()
        }
        _ => a == b,
    };
    let mut took_all = true;
    let (mut walked_split, mut long_split) = (Split::default(), Split::default());
    for needs in &variants {
        let mut built = Built::default();
        let mut tape = Vec::new();
        let kept = build_pruned(text, needs, &mut walked_split, &mut built, &mut tape);
        let took = kept.is_some()
            && unescape(text, &mut built).is_some()
            && patch(&mut tape, &built).is_some();
        let checked = split(data, &mut long_split).is_some();
        if !took {
            took_all = false;
            continue;
        }
        assert!(checked, "the walk took a line the long way's check refuses");
        let mut reduced = Vec::new();
        reduce(data, &mut long_split, needs, &mut reduced);
        // What the walk says it kept is the copy's size (the payoff's measure).
        assert_eq!(kept, Some(reduced.len()), "bytes kept");
        let reduced_text = std::str::from_utf8(&reduced).expect("a copy of checked text");
        let mut long_built = Built::default();
        let mut long_tape = Vec::new();
        let long_took = build(reduced_text, &mut long_built, &mut long_tape).is_some()
            && unescape(reduced_text, &mut long_built).is_some()
            && patch(&mut long_tape, &long_built).is_some();
        let mut copy = reduced.clone();
        let simd;
        let long_nodes: &[Node<'_>] = if long_took {
            &long_tape
        } else {
            simd = simd_json::to_tape(&mut copy)
                .unwrap_or_else(|e| panic!("the walk took a line whose copy is refused ({e})"));
            &simd.0
        };
        assert_eq!(tape.len(), long_nodes.len(), "tape lengths");
        for (k, (a, b)) in tape.iter().zip(long_nodes).enumerate() {
            assert!(same(a, b), "node {k}: {a:?} walked, {b:?} the long way");
        }
        // The same number text: the long way's document is its build's, or simd-json's.
        let doc = crate::Document::with_buffer(&tape, data, &built.numbers, data.as_ptr());
        let mut ours = String::new();
        canon(doc.root(), 0, &mut ours);
        let theirs = if long_took {
            let doc = crate::Document::with_buffer(
                &long_tape,
                &reduced,
                &long_built.numbers,
                reduced.as_ptr(),
            );
            let mut s = String::new();
            canon(doc.root(), 0, &mut s);
            s
        } else {
            LineParser::new()
                .parse_with_simd_json(&reduced, |d| {
                    let mut s = String::new();
                    canon(d.root(), 0, &mut s);
                    s
                })
                .expect("simd-json took the copy above")
        };
        assert_eq!(ours, theirs);
    }
    took_all
}

//! Text compared where it is compared most: keys, codes and URLs looked up in every resource.

/// Whether `a` and `b` hold the same bytes, compared inline: a key or code on the tape is
/// mostly shorter than 17 bytes, and the library's comparison is a call for any length. Texts
/// of one length mostly differ at their end (URLs and codes share long prefixes), so the last
/// eight bytes are compared first; past 16 bytes what is left is compared the library's way.
#[inline(always)]
pub fn same_text(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        if word(a, n - 8) != word(b, n - 8) {
            return false;
        }
        if n <= 16 {
            return word(a, 0) == word(b, 0);
        }
        return a == b;
    }
    if n >= 4 {
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// A number that texts [`same_text`] finds the same share: their last eight bytes (fewer for a
/// shorter text) with their length mixed in, in one `u64`. Texts whose fingerprints differ
/// differ; texts whose fingerprints are equal may differ (of one length, in a byte before the
/// last eight; of two lengths, rarely) and are compared with [`same_text`]. Keys and URLs of
/// one length mostly differ in their last bytes (`…/dual_01`, `…/dual_02`), so most are told
/// apart by it.
///
/// ```
/// use claimline_model::{same_text, text_fingerprint};
/// let a = "https://bluebutton.cms.gov/resources/variables/dual_01";
/// let b = "https://bluebutton.cms.gov/resources/variables/dual_11";
/// assert_ne!(text_fingerprint(a.as_bytes()), text_fingerprint(b.as_bytes()));
/// assert_eq!(text_fingerprint(a.as_bytes()), text_fingerprint(a.to_owned().as_bytes()));
/// assert!(same_text(a.as_bytes(), a.to_owned().as_bytes()));
/// ```
#[inline(always)]
pub fn text_fingerprint(k: &[u8]) -> u64 {
    let n = k.len();
    let tail = if n >= 8 {
        word(k, n - 8)
    } else {
        let mut w = [0; 8];
        w[..n].copy_from_slice(k);
        u64::from_ne_bytes(w)
    };
    tail ^ (n as u64).rotate_right(8)
}

/// The eight bytes of `s` from `at` as one number (one load).
#[inline(always)]
fn word(s: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_ne_bytes(w)
}

/// The four bytes of `s` from `at` as one number.
#[inline(always)]
fn half(s: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_ne_bytes(w)
}

/// A TOML or serde message without the values it quotes (`invalid type: string "…", expected
/// usize`): a secret typed into a config file's wrong key, or an MBI in a damaged state file,
/// would otherwise be shown. Key names and the values expected (`expected one of `v1`, `v2``)
/// stay.
///
/// ```
/// use claimline_model::without_values;
/// assert_eq!(
///     without_values(r#"invalid type: string "1EG4TE5MK73", expected u64 at line 3 column 9"#),
///     r#"invalid type: string "…", expected u64 at line 3 column 9"#
/// );
/// ```
pub fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(['"', '`']) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let quote = from.as_bytes()[0] as char;
        // A value is what serde names after its kind (`string "x"`, `integer `5``, `unknown
        // variant `x``); a name (`missing field `x``, `expected one of `a``) is kept.
        let value = quote == '"'
            || [
                "integer ",
                "floating point ",
                "boolean ",
                "character ",
                "unknown variant ",
            ]
            .iter()
            .any(|kind| out.ends_with(kind));
        let body = &from[1..];
        // A quoted string is written escaped (`"a\"b"`): its end is the first quote not escaped.
        let mut escaped = false;
        let end = body
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == quote && !escaped;
                escaped = !escaped && quote == '"' && c == '\\';
                closes
            })
            .map_or(body.len(), |(e, _)| e + 1);
        if value {
            out.push(quote);
            out.push('…');
            out.push(quote);
        } else {
            out.push(quote);
            out.push_str(&body[..end]);
        }
        rest = body.get(end..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_answers_as_the_library_at_every_length_and_every_differing_byte() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same_text(&a, &a.clone()), "length {n}, equal");
            for at in 0..n {
                let mut b = a.clone();
                b[at] = b'Z';
                assert!(!same_text(&a, &b), "length {n}, differing at {at}");
                assert!(!same_text(&b, &a), "length {n}, differing at {at}, swapped");
            }
            let mut longer = a.clone();
            longer.push(b'a');
            assert!(!same_text(&a, &longer), "lengths {n} and {}", n + 1);
        }
    }
}

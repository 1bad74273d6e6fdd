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

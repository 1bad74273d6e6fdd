//! JSON text as BCDA's Go worker writes it: keys sorted, Go's string escaping, numbers in Go's
//! shortest `float64` form.

use serde_json::{Number, Value};

/// Appends `s` as a JSON string literal with Go `encoding/json` escaping (`<`, `>`, `&`, U+2028
/// and U+2029 escaped; control characters as `\n`, `\r`, `\t` or `\u00XX`).
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_str_body(out, s);
    out.push(b'"');
}

/// The inside of a string literal: `s` escaped, without the quotes.
pub(crate) fn write_str_body(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            _ => None,
        };
        let go_special = b < 0x20 || b == b'<' || b == b'>' || b == b'&';
        let line_sep = b == 0xE2
            && bytes.get(i + 1) == Some(&0x80)
            && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9));
        if escape.is_none() && !go_special && !line_sep {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if let Some(e) = escape {
            out.extend_from_slice(e);
            i += 1;
        } else if line_sep {
            let last = bytes.get(i + 2).copied().unwrap_or(0xA8);
            out.extend_from_slice(if last == 0xA8 { b"\\u2028" } else { b"\\u2029" });
            i += 3;
        } else {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xF)]);
            i += 1;
        }
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// A number as Go's `strconv.FormatFloat(f, 'f' or 'e', -1, 64)` renders a decoded `float64`
/// (`0.0` → `0`, `4517.0` → `4517`, `84999.37` stays), the way `encoding/json` writes it.
pub(crate) fn go_number_text(n: &Number) -> String {
    let f: f64 = n.to_string().parse().unwrap_or(0.0);
    go_float_text(f)
}

/// See [`go_number_text`].
pub(crate) fn go_float_text(f: f64) -> String {
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        let text = format!("{f}");
        if text == "-0" { "0".to_owned() } else { text }
    } else {
        // Go writes `1e+21` and `1e-07`.
        let text = format!("{f:e}");
        match text.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                let digits = if digits.len() < 2 {
                    format!("0{digits}")
                } else {
                    digits.to_owned()
                };
                format!("{mantissa}e{sign}{digits}")
            }
            None => text,
        }
    }
}

/// Appends `v` with sorted keys, Go escaping and Go number text.
pub(crate) fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(go_number_text(n).as_bytes()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                if let Some(child) = map.get(key) {
                    write_value(out, child);
                }
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn num(text: &str) -> String {
        Number::from_str(text)
            .map(|n| go_number_text(&n))
            .unwrap_or_default()
    }

    fn esc(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn numbers_are_go_shortest() {
        assert_eq!(num("0.0"), "0");
        assert_eq!(num("250.00"), "250");
        assert_eq!(num("12.50"), "12.5");
        assert_eq!(num("84999.37"), "84999.37");
        assert_eq!(num("-3"), "-3");
        assert_eq!(num("1e21"), "1e+21");
        assert_eq!(num("0.0000001"), "1e-07");
        assert_eq!(num("123456789012"), "123456789012");
    }

    #[test]
    fn strings_use_go_escapes() {
        assert_eq!(esc("a<b>&c"), r#""a\u003cb\u003e\u0026c""#);
        assert_eq!(esc("q\"\\\n\u{1}"), r#""q\"\\\n\u0001""#);
        assert_eq!(esc("x\u{2028}y"), r#""x\u2028y""#);
        assert_eq!(esc("é"), "\"é\"");
    }

    #[test]
    fn keys_are_sorted() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":0.0,"c":[true,null]}}"#).unwrap_or_default();
        let mut out = Vec::new();
        write_value(&mut out, &v);
        assert_eq!(out, br#"{"a":{"c":[true,null],"d":0},"b":1}"#);
    }
}

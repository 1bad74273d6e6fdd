//! Parsing one line into simd-json's tape, reusing every buffer between lines.

use simd_json::{Buffers, INPUT_PADDING, Tape, fill_tape_padded};

use crate::tape::Document;

/// Parses lines into a reused tape. One per worker thread.
///
/// Each line is copied into a padded buffer (simd-json reads past the end of its input and
/// unescapes strings in place, so it cannot work on the read-only memory map), then parsed with
/// `fill_tape_padded`; the tape's allocation is kept across lines via `Tape::reset`.
pub struct LineParser {
    buf: Vec<u8>,
    buffers: Buffers,
    tape: Option<Tape<'static>>,
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
            buffers: Buffers::new(64 * 1024),
            tape: Some(Tape(Vec::new())),
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
        let len = line.len();
        self.buf.clear();
        self.buf.reserve(len + INPUT_PADDING);
        self.buf.extend_from_slice(line);
        self.buf.resize(len + INPUT_PADDING, b' ');
        // Only the address: string nodes point into `buf`, and their offset from here is their
        // offset in `line`.
        let base = self.buf.as_ptr();
        let mut tape: Tape<'_> = self.tape.take().unwrap_or_else(|| Tape(Vec::new())).reset();
        let result = fill_tape_padded(&mut self.buf, len, &mut self.buffers, &mut tape);
        let out = match result {
            Ok(()) => {
                // Number text comes from the caller's original bytes: unescaping rewrote strings in
                // `buf`, and the tape borrows it for as long as the tape lives.
                let doc =
                    Document::with_buffer(&tape.0, line, self.buffers.structural_indexes(), base);
                Ok(f(&doc))
            }
            Err(e) => Err(e),
        };
        self.tape = Some(tape.reset());
        out
    }
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
    fn errors_on_truncated_json_and_bad_utf8() {
        let mut p = LineParser::new();
        assert!(p.parse(br#"{"a":[1,2"#, |_| ()).is_err());
        assert!(p.parse(b"{\"a\":\"\xff\"}", |_| ()).is_err());
        // The parser is still usable afterwards.
        let k = p.parse(br#"[1]"#, |d| d.root().kind() == Kind::Array(1));
        assert_eq!(k.ok(), Some(true));
    }
}

//! A cursor over a JSON text for readers that walk an object's members themselves: each
//! member's value is read where it stands by serde_json (or by a caller's fast path), so a
//! large value is read once, not skipped by one parser and read again by another.
//!
//! The cursor also holds the text to `MAX_JSON_DEPTH` levels: it counts the objects and
//! arrays it walks, checks each value it hands to serde_json, and tells a caller's fast
//! path how many levels are left.

use serde::Deserialize;

use crate::v2::depth::{MAX_JSON_DEPTH, Scan, closing, nests_deeper_than, too_deep};

/// Where a JSON text is being read; errors carry the line and column in the whole text.
pub(crate) struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
    /// The objects and arrays open at the cursor.
    depth: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        Cursor {
            text,
            at: 0,
            depth: 0,
        }
    }

    /// How many levels a value at the cursor may nest.
    pub fn levels_left(&self) -> usize {
        MAX_JSON_DEPTH.saturating_sub(self.depth)
    }

    pub fn text(&self) -> &'a [u8] {
        self.text
    }

    pub fn position(&self) -> usize {
        self.at
    }

    /// Moves to `at`, the end of a value a caller's fast path read.
    pub fn advance_to(&mut self, at: usize) {
        self.at = at;
    }

    /// The next byte that is not JSON whitespace, without consuming it.
    pub fn peek(&mut self) -> Option<u8> {
        self.at = skip_whitespace(self.text, self.at);
        self.text.get(self.at).copied()
    }

    /// Reads one value of type `T` at the cursor with serde_json; a value nested past the
    /// levels left is refused.
    pub fn value<T: Deserialize<'a>>(&mut self) -> Result<T, String> {
        self.peek();
        let rest = &self.text[self.at..];
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
        match values.next() {
            Some(Ok(value)) => {
                let read = &rest[..values.byte_offset()];
                if let Some(b'[' | b'{') = read.first()
                    && nests_deeper_than(read, self.levels_left())
                {
                    return Err(too_deep());
                }
                self.at += read.len();
                Ok(value)
            }
            Some(Err(e)) => Err(self.serde_error_at(self.at, &e)),
            None => Err(self.error("EOF while parsing a value")),
        }
    }

    /// Moves past the value at the cursor without reading it, and returns where it starts
    /// and ends: an array or object by a scan for its end (counting its levels, leaving its
    /// grammar to whoever reads it later), anything else read by serde_json.
    pub fn skip(&mut self) -> Result<(usize, usize), String> {
        self.peek();
        let start = self.at;
        if let Some(b'[' | b'{') = self.text.get(start) {
            match closing(self.text, start, self.levels_left()) {
                Scan::Closed(end) => {
                    self.at = end;
                    return Ok((start, end));
                }
                Scan::Deeper => return Err(too_deep()),
                // serde_json's error below.
                Scan::Unclosed => {}
            }
        }
        self.value::<serde::de::IgnoredAny>()?;
        Ok((start, self.at))
    }

    /// Reads an object, calling `member` with each key; `member` reads the value.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &str) -> Result<(), String>,
    ) -> Result<(), String> {
        self.expect(b'{', "an object")?;
        self.enter()?;
        if self.peek() == Some(b'}') {
            return self.leave();
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a member name"));
            }
            let key: String = self.value()?;
            self.expect(b':', "`:`")?;
            member(self, &key)?;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => return self.leave(),
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// Reads an array, calling `item` for each element; `item` reads it.
    pub fn array(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        self.expect(b'[', "an array")?;
        self.enter()?;
        if self.peek() == Some(b']') {
            return self.leave();
        }
        loop {
            item(self)?;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => return self.leave(),
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    /// Into an object or array whose opening the cursor just passed.
    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        match self.depth > MAX_JSON_DEPTH {
            true => Err(too_deep()),
            false => Ok(()),
        }
    }

    /// Past the closing of the innermost object or array open.
    fn leave(&mut self) -> Result<(), String> {
        self.at += 1;
        self.depth = self.depth.saturating_sub(1);
        Ok(())
    }

    /// Only whitespace may follow.
    pub fn end(&mut self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("trailing characters")),
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else if self.peek().is_none() {
            Err(self.error("EOF while parsing a value"))
        } else {
            Err(self.error(&format!("expected {what}")))
        }
    }

    /// `message` at the cursor, placed as serde_json places its errors.
    pub fn error(&self, message: &str) -> String {
        let (line, column) = line_and_column(self.text, self.at + 1);
        format!("{message} at line {line} column {column}")
    }

    /// A serde_json error in a value that starts at `at`, placed in the whole text.
    pub fn serde_error_at(&self, at: usize, e: &serde_json::Error) -> String {
        let shown = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let Some(message) = shown.strip_suffix(&suffix) else {
            return shown;
        };
        let rest = &self.text[at..];
        let line_start = match e.line() {
            0 | 1 => 0,
            line => rest
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(line - 2)
                .map_or(rest.len(), |(i, _)| i + 1),
        };
        let (line, column) = line_and_column(self.text, at + line_start + e.column());
        format!("{message} at line {line} column {column}")
    }
}

/// The first index at or after `at` that is not JSON whitespace (or the text's end).
pub(crate) fn skip_whitespace(text: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = text.get(at) {
        at += 1;
    }
    at
}

/// The 1-based line and column of the `offset`-th byte (1-based) of `text`.
fn line_and_column(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset.saturating_sub(1).min(text.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_members_and_reads_values_in_place() {
        let mut cursor = Cursor::new(br#" {"a": [1, 2], "b" : {"c": "d"}, "e": []} "#);
        let mut seen = Vec::new();
        cursor
            .object(|cursor, key| {
                match key {
                    "a" => seen.push(format!("{:?}", cursor.value::<Vec<i32>>()?)),
                    "e" => cursor.array(|_| unreachable!())?,
                    _ => seen.push(cursor.value::<serde_json::Value>()?.to_string()),
                }
                Ok(())
            })
            .unwrap();
        cursor.end().unwrap();
        assert_eq!(seen, ["[1, 2]", r#"{"c":"d"}"#]);
    }

    #[test]
    fn errors_are_placed_in_the_whole_text() {
        let text = b"{\"a\": 1,\n \"b\": [1, x]}";
        let mut cursor = Cursor::new(text);
        let err = cursor
            .object(|cursor, _| cursor.value::<serde_json::Value>().map(drop))
            .unwrap_err();
        assert_eq!(err, "expected value at line 2 column 11");
        let mut cursor = Cursor::new(b"{\"a\": 1} x");
        cursor.object(|c, _| c.value::<u8>().map(drop)).unwrap();
        assert_eq!(
            cursor.end().unwrap_err(),
            "trailing characters at line 1 column 10"
        );
        let mut cursor = Cursor::new(b"{\"a\" 1}");
        let err = cursor.object(|c, _| c.value::<u8>().map(drop)).unwrap_err();
        assert_eq!(err, "expected `:` at line 1 column 6");
        let mut cursor = Cursor::new(b"[1 2]");
        let err = cursor.array(|c| c.value::<u8>().map(drop)).unwrap_err();
        assert_eq!(err, "expected `,` or `]` at line 1 column 4");
    }
}

//! The nesting limit of JSON bodies: Triton refuses documents nested deeper than 100 levels,
//! and so does destino (a scan that allocates nothing: of a whole body, or of the values a
//! reader hands to serde_json while it counts its own levels).
//!
//! The scan reads eight bytes at a time and stops only at bytes that matter (quotes,
//! brackets, braces; in strings, quotes and backslashes): a tensor's numbers, most of a large
//! body, pass at a few instructions per word.

use crate::error::ApiError;

/// The deepest nesting a JSON body may have.
pub const MAX_JSON_DEPTH: usize = 100;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Each zero byte of `word` as its high bit (and maybe bits above a zero byte: only whether
/// any is set is used).
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// Whether `word` holds a quote, a bracket or a brace (`[`/`{` and `]`/`}` differ only in bit
/// 5, so one test covers each pair). Branch-free: most words hold none.
fn has_structural(word: u64) -> bool {
    let folded = word | (ONES * 0x20);
    zero_bytes(word ^ (ONES * u64::from(b'"')))
        | zero_bytes(folded ^ (ONES * u64::from(b'{')))
        | zero_bytes(folded ^ (ONES * u64::from(b'}')))
        != 0
}

/// Whether `word` holds a quote or a backslash.
fn has_string_special(word: u64) -> bool {
    zero_bytes(word ^ (ONES * u64::from(b'"'))) | zero_bytes(word ^ (ONES * u64::from(b'\\'))) != 0
}

/// The first index at or after `from` whose 8-byte word `stop` flags, or where fewer than
/// eight bytes remain; the caller goes on byte by byte from there.
#[inline(always)]
fn skip_words(json: &[u8], from: usize, stop: impl Fn(u64) -> bool) -> usize {
    let rest = json.get(from..).unwrap_or_default();
    let mut skipped = 0;
    for chunk in rest.chunks_exact(8) {
        let word = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        if stop(word) {
            break;
        }
        skipped += 8;
    }
    from + skipped
}

/// The index just after the string whose opening quote precedes `from` (the end of `json`
/// for an unterminated one).
fn skip_string(json: &[u8], mut from: usize) -> usize {
    loop {
        from = skip_words(json, from, has_string_special);
        match json.get(from) {
            None => return json.len(),
            Some(b'"') => return from + 1,
            Some(b'\\') => from += 2,
            Some(_) => from += 1,
        }
    }
}

/// The refusal of a body nested too deep.
pub fn too_deep() -> String {
    format!("JSON nested deeper than {MAX_JSON_DEPTH} levels")
}

/// Refuses `json` when arrays and objects nest deeper than `MAX_JSON_DEPTH`; brackets inside
/// strings do not count. Malformed JSON is left to the parser.
pub fn check_depth(json: &[u8]) -> Result<(), ApiError> {
    match nests_deeper_than(json, MAX_JSON_DEPTH) {
        true => Err(ApiError::invalid(too_deep())),
        false => Ok(()),
    }
}

/// Whether arrays and objects in `json` nest deeper than `levels` (brackets inside strings
/// do not count).
pub(crate) fn nests_deeper_than(json: &[u8], levels: usize) -> bool {
    scan(json, 0, levels, false) == Scan::Deeper
}

/// What a scan for an array's or object's end found.
#[derive(Debug, PartialEq)]
pub(crate) enum Scan {
    /// Nesting deeper than allowed.
    Deeper,
    /// The value closes just before this index.
    Closed(usize),
    /// The text ended first, or a bracket closed a brace (or the other way round).
    Unclosed,
}

/// Scans the array or object opening at `from` of `json` for its end, nested at most
/// `levels` deep (at most `MAX_JSON_DEPTH`). Only brackets and braces are checked: the
/// text between is left to a reader that checks the grammar.
pub(crate) fn closing(json: &[u8], from: usize, levels: usize) -> Scan {
    scan(json, from, levels.min(MAX_JSON_DEPTH), true)
}

fn scan(json: &[u8], mut at: usize, levels: usize, stop_when_closed: bool) -> Scan {
    let mut depth = 0usize;
    // Bit `k`: level `k + 1` is an object (kept for the first 128 levels).
    let mut objects = 0u128;
    loop {
        at = skip_words(json, at, has_structural);
        let Some(&byte) = json.get(at) else {
            return Scan::Unclosed;
        };
        at += 1;
        match byte {
            b'"' => at = skip_string(json, at),
            b'[' | b'{' => {
                depth += 1;
                if depth > levels {
                    return Scan::Deeper;
                }
                if let Some(bit) = 1u128.checked_shl(depth as u32 - 1) {
                    objects = (objects & !bit) | if byte == b'{' { bit } else { 0 };
                }
            }
            b']' | b'}' => {
                if stop_when_closed {
                    let opened_object = 1u128
                        .checked_shl(depth.saturating_sub(1) as u32)
                        .is_some_and(|bit| objects & bit != 0);
                    if depth == 0 || opened_object != (byte == b'}') {
                        return Scan::Unclosed;
                    }
                }
                depth = depth.saturating_sub(1);
                if depth == 0 && stop_when_closed {
                    return Scan::Closed(at);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time scan this one replaced: the oracle.
    fn check_depth_bytewise(json: &[u8]) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &byte in json {
            if in_string {
                match byte {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_JSON_DEPTH {
                        return false;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        true
    }

    #[test]
    fn a_hundred_levels_pass_and_one_more_does_not() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(check_depth(nested(100).as_bytes()).is_ok());
        assert!(check_depth(nested(101).as_bytes()).is_err());
        let in_string = format!("{{\"a\": \"{}\"}}", "[".repeat(500));
        assert!(check_depth(in_string.as_bytes()).is_ok());
        let escaped = format!("{{\"a\": \"\\\"{}\"}}", "{".repeat(500));
        assert!(check_depth(escaped.as_bytes()).is_ok());
        let deep_after_numbers = format!("[{}{}]", "0.125,".repeat(999), "[".repeat(100));
        assert!(check_depth(deep_after_numbers.as_bytes()).is_err());
    }

    #[test]
    fn finds_where_a_value_closes() {
        let text = br#"{"a": [1, [2, "]"], {"b": "\"}"}], "c": 3}"#;
        let end = text.len() - br#", "c": 3}"#.len();
        assert_eq!(&text[end - 2..end], b"}]");
        assert_eq!(closing(text, 6, 3), Scan::Closed(end));
        assert_eq!(closing(text, 6, 1), Scan::Deeper);
        assert_eq!(closing(text, 0, 3), Scan::Closed(text.len()));
        assert_eq!(closing(b"[[1]", 0, 3), Scan::Unclosed);
        assert_eq!(closing(b"[[1}]", 0, 3), Scan::Unclosed);
        assert_eq!(closing(br#"{"a": [1]]}"#, 0, 3), Scan::Unclosed);
    }

    #[test]
    fn agrees_with_the_bytewise_scan() {
        // Bodies over an alphabet of brackets, braces, quotes, backslashes, bytes one bit
        // away from them (`;`, `=`, `k`, `\xfb`), digits, punctuation and high bytes.
        let alphabet = b"[]{}\"\\\"[[{{;=0123456789.,- \x7f\x80\xfbk";
        let mut next = crate::v2::xorshift(0x2545_f491_4f6c_dd1d);
        let mut refused = 0;
        for case in 0..20_000 {
            let state = next();
            let len = (state % 300) as usize;
            let body: Vec<u8> = (0..len)
                .map(|i| {
                    let r = state.rotate_left(i as u32 * 7) ^ (i as u64).wrapping_mul(0x9e37);
                    alphabet[(r % alphabet.len() as u64) as usize]
                })
                .collect();
            let depth_heavy = [b"[".repeat(case % 120), body.clone()].concat();
            for json in [&body, &depth_heavy] {
                let passed = check_depth_bytewise(json);
                assert_eq!(
                    check_depth(json).is_ok(),
                    passed,
                    "{:?}",
                    String::from_utf8_lossy(json)
                );
                refused += usize::from(!passed);
            }
        }
        // Both answers were exercised.
        assert!((2_000..38_000).contains(&refused), "{refused} refused");
    }
}

//! The nesting limit of JSON bodies: Triton refuses documents nested deeper than 100 levels,
//! and so does destino, before parsing them (a scan that allocates nothing).

use crate::error::ApiError;

/// The deepest nesting a JSON body may have.
pub const MAX_JSON_DEPTH: usize = 100;

/// Refuses `json` when arrays and objects nest deeper than `MAX_JSON_DEPTH`; brackets inside
/// strings do not count. Malformed JSON is left to the parser.
pub fn check_depth(json: &[u8]) -> Result<(), ApiError> {
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
                    return Err(ApiError::invalid(format!(
                        "JSON nested deeper than {MAX_JSON_DEPTH} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hundred_levels_pass_and_one_more_does_not() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(check_depth(nested(100).as_bytes()).is_ok());
        assert!(check_depth(nested(101).as_bytes()).is_err());
        let in_string = format!("{{\"a\": \"{}\"}}", "[".repeat(500));
        assert!(check_depth(in_string.as_bytes()).is_ok());
        let escaped = format!("{{\"a\": \"\\\"{}\"}}", "{".repeat(500));
        assert!(check_depth(escaped.as_bytes()).is_ok());
    }
}

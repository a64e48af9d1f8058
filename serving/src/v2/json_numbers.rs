//! The fast path for numeric JSON `data`: a tight loop over the raw text of an array of
//! numbers (nested to any depth) that turns each number into the element type as serde_json
//! would, bit for bit, without a visitor call per element. Anything else in the array (a
//! string, `true`, `null`, an object, a number too long or too large for the short form)
//! declines, and the caller reads the text through serde, whose errors name the element.

use std::sync::LazyLock;

use crate::v2::json_cursor::skip_whitespace;
use crate::v2::json_elements::JsonElement;

/// Reads the value at `at` of `text` (a number, or arrays of numbers nested up to `levels`
/// deep, checked against JSON's grammar) into `out`; returns where it ends, or `None` when
/// something there needs serde's reading or refusal (`out` is then partly filled).
pub(crate) fn read_numbers_at<T: JsonElement>(
    text: &[u8],
    mut at: usize,
    levels: usize,
    out: &mut Vec<T>,
) -> Option<usize> {
    // The table once per value, not once per number (a `LazyLock` checks its state at
    // every access); with `number` inlined, the loop is about a tenth faster.
    let powers: &Powers = &POWERS;
    let mut depth = 0usize;
    loop {
        // A value: an array's start, or a number.
        at = skip_whitespace(text, at);
        match *text.get(at)? {
            b'[' => {
                depth += 1;
                if depth > levels {
                    return None;
                }
                at = skip_whitespace(text, at + 1);
                if text.get(at) != Some(&b']') {
                    continue;
                }
                at += 1;
                depth -= 1;
            }
            b'-' | b'0'..=b'9' => {
                let (number, end) = number(text, at, powers)?;
                out.push(number.convert()?);
                at = end;
            }
            _ => return None,
        }
        // After a value: the enclosing arrays go on or close.
        loop {
            if depth == 0 {
                return Some(at);
            }
            at = skip_whitespace(text, at);
            match *text.get(at)? {
                b',' => {
                    at += 1;
                    break;
                }
                b']' => {
                    at += 1;
                    depth -= 1;
                }
                _ => return None,
            }
        }
    }
}

/// A JSON number as serde_json hands it to a visitor; one with a negative decimal exponent
/// is kept as its quotient's operands, for each element type to compute its own way.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
    Quotient(Quotient),
}

impl Number {
    fn convert<T: JsonElement>(self) -> Option<T> {
        match self {
            Number::U64(v) => T::from_u64(v),
            Number::I64(v) => T::from_i64(v),
            Number::F64(v) => T::from_f64(v),
            Number::Quotient(q) => T::from_quotient(q),
        }
    }
}

/// The number starting at `at` and where it ends, computed as serde_json 1.x computes it
/// without its `float_roundtrip` feature: the decimal significand as a `u64`, then one
/// multiplication or division by a correctly rounded power of ten. Significands past
/// `u64` and exponents past that table decline.
#[inline(always)]
fn number(bytes: &[u8], mut at: usize, powers: &Powers) -> Option<(Number, usize)> {
    let negative = bytes[at] == b'-';
    at += usize::from(negative);
    let mut significand = 0u64;
    // One integer digit is the common case (normalised values): no word to combine.
    let (integer_digits, end) = match (bytes.get(at), bytes.get(at + 1)) {
        (Some(&digit @ b'0'..=b'9'), next) if !next.is_some_and(u8::is_ascii_digit) => {
            significand = u64::from(digit - b'0');
            (1, at + 1)
        }
        _ => digits(bytes, at, &mut significand)?,
    };
    // JSON allows no leading zero.
    if integer_digits == 0 || (integer_digits > 1 && bytes[at] == b'0') {
        return None;
    }
    at = end;
    let mut exponent = 0i32;
    let mut integral = true;
    if bytes.get(at) == Some(&b'.') {
        integral = false;
        let (fraction, end) = digits(bytes, at + 1, &mut significand)?;
        if fraction == 0 {
            return None;
        }
        exponent = -i32::try_from(fraction).ok()?;
        at = end;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        integral = false;
        at += 1;
        let sign = match bytes.get(at) {
            Some(b'-') => -1,
            Some(b'+') => 1,
            _ => 0,
        };
        at += usize::from(sign != 0);
        let mut power = 0u64;
        let (count, end) = digits(bytes, at, &mut power)?;
        if count == 0 || count > 4 {
            return None;
        }
        exponent += if sign < 0 { -1 } else { 1 } * i32::try_from(power).ok()?;
        at = end;
    }
    let number = if integral {
        match (negative, significand) {
            (false, v) => Number::U64(v),
            // serde_json reads `-0` and negatives below `i64::MIN` as floats.
            (true, v) => match (v as i64).wrapping_neg() {
                n if n >= 0 => Number::F64(-(v as f64)),
                n => Number::I64(n),
            },
        }
    } else {
        let power = exponent.unsigned_abs() as usize;
        let pow = *powers.exact.get(power)?;
        if exponent >= 0 {
            let product = significand as f64 * pow;
            if product.is_infinite() {
                return None;
            }
            Number::F64(if negative { -product } else { product })
        } else {
            Number::Quotient(Quotient {
                significand: significand as f64,
                divisor: pow,
                reciprocal: powers.reciprocal[power],
                negative,
            })
        }
    };
    Some((number, at))
}

/// Reads decimal digits from `at` into `value` (`value * 10 + digit`); returns how many and
/// where they end, or `None` when `value` would pass `u64::MAX` (serde_json's long path).
/// Up to eight digits at a time while `value` cannot overflow: one digit at a time is a
/// chain of dependent multiplications, the longest part of reading a number.
#[inline]
fn digits(bytes: &[u8], mut at: usize, value: &mut u64) -> Option<(usize, usize)> {
    // 10^10 · 10^8 stays below u64::MAX: any eight more digits fit.
    const EIGHT_MORE_FIT: u64 = 10_000_000_000;
    let start = at;
    while *value < EIGHT_MORE_FIT {
        let Some(chunk) = bytes.get(at..at + 8).and_then(|c| c.try_into().ok()) else {
            break;
        };
        let (count, read) = leading_digits(chunk);
        *value = *value * POW10_INT[count] + read;
        at += count;
        // Eight digits and no ninth is common (a float's fraction): no second word.
        if count < 8 || !bytes.get(at).is_some_and(u8::is_ascii_digit) {
            return Some((at - start, at));
        }
    }
    while let Some(&byte) = bytes.get(at) {
        if !byte.is_ascii_digit() {
            break;
        }
        *value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
        at += 1;
    }
    Some((at - start, at))
}

const POW10_INT: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// How many of the eight bytes of `chunk` are ASCII digits before the first that is not,
/// and their value (SWAR: the bytes as one little-endian word, combined pairwise).
#[inline]
fn leading_digits(chunk: &[u8; 8]) -> (usize, u64) {
    let word = u64::from_le_bytes(*chunk);
    let values = word.wrapping_sub(0x3030_3030_3030_3030);
    // A byte's top bit: below b'0' (borrow) or above b'9' (carry); bytes before the first
    // such byte take no borrow or carry from it.
    let not_digit = (word.wrapping_add(0x4646_4646_4646_4646) | values) & 0x8080_8080_8080_8080;
    let count = (not_digit.trailing_zeros() / 8) as usize;
    if count == 0 {
        return (0, 0);
    }
    // The digits to the top of the word, zeros (leading zero digits) shifted in below.
    let aligned = values << (8 * (8 - count));
    let pairs = aligned.wrapping_mul(10).wrapping_add(aligned >> 8) & 0x00ff_00ff_00ff_00ff;
    let quads = pairs.wrapping_mul(100).wrapping_add(pairs >> 16) & 0x0000_ffff_0000_ffff;
    let eight = quads.wrapping_mul(10_000).wrapping_add(quads >> 32) & 0xffff_ffff;
    (count, eight)
}

/// `±significand / divisor`: serde_json's reading of a number with a negative exponent (one
/// correctly rounded division), with the divisor's reciprocal for types that may multiply
/// instead (see `f32_from_quotient`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quotient {
    pub significand: f64,
    pub divisor: f64,
    pub reciprocal: f64,
    pub negative: bool,
}

impl Quotient {
    /// The quotient in f64, as serde_json computes it.
    pub fn divided(self) -> f64 {
        let magnitude = self.significand / self.divisor;
        if self.negative { -magnitude } else { magnitude }
    }
}

/// The quotient rounded to f32, bit for bit `divided() as f32`, mostly without a division
/// (the divisions were the largest single cost of reading an FP32 tensor). `significand ×
/// reciprocal` is within a few f64 units in the last place of the quotient, so it rounds
/// to the same f32 unless it lies that near the midpoint between two f32 values (the 29
/// bits f32 drops are near `1 << 28`), or outside f32's normal range: then it divides.
pub(crate) fn f32_from_quotient(q: Quotient) -> f32 {
    const DROPPED: u64 = (1 << 29) - 1;
    const MIDPOINT: u64 = 1 << 28;
    const MARGIN: u64 = 16;
    let estimate = q.significand * q.reciprocal;
    let in_range = (f64::from(f32::MIN_POSITIVE)..f64::from(f32::MAX) / 2.0).contains(&estimate);
    let magnitude = if in_range && (estimate.to_bits() & DROPPED).abs_diff(MIDPOINT) > MARGIN {
        estimate as f32
    } else {
        (q.significand / q.divisor) as f32
    };
    if q.negative { -magnitude } else { magnitude }
}

/// Powers of ten for the numbers' reading.
pub(crate) struct Powers {
    /// 10^0 ..= 10^308, each correctly rounded (as the literals of serde_json's table).
    exact: [f64; 309],
    /// 10^-0 ..= 10^-308, each correctly rounded.
    reciprocal: [f64; 309],
}

static POWERS: LazyLock<Powers> = LazyLock::new(|| Powers {
    exact: std::array::from_fn(|k| format!("1e{k}").parse().unwrap_or(f64::INFINITY)),
    reciprocal: std::array::from_fn(|k| format!("1e-{k}").parse().unwrap_or(0.0)),
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v2::json_elements::{TypedData, read_raw_with_serde};
    use destino_core::dtype::DType;
    use destino_core::tensor::TensorData;
    use half::f16;

    /// The numbers of `raw` when all of it is one value the loop reads.
    fn fast<T: JsonElement>(raw: &str) -> Option<Vec<T>> {
        let mut out = Vec::new();
        let end = read_numbers_at(raw.as_bytes(), 0, 100, &mut out)?;
        (skip_whitespace(raw.as_bytes(), end) == raw.len()).then_some(out)
    }

    /// The elements serde's reading (the fallback) makes of `raw`.
    fn serde_path(raw: &str, dtype: DType) -> TensorData {
        let typed = TypedData {
            dtype,
            label: "x",
            claimed: 0,
        };
        read_raw_with_serde(raw.as_bytes(), typed).unwrap()
    }

    /// The fast path reads `raw` as serde does, bit for bit, as FP64 and as FP32.
    fn same_as_serde(raw: &str) {
        let Some(ours) = fast::<f64>(raw) else {
            panic!("the fast path declined {raw}");
        };
        let TensorData::F64(theirs) = serde_path(raw, DType::F64) else {
            unreachable!()
        };
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&ours), bits(&theirs), "{raw}");
        let TensorData::F32(theirs) = serde_path(raw, DType::F32) else {
            unreachable!()
        };
        let ours = fast::<f32>(raw).unwrap_or_default();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&ours), bits(&theirs), "{raw}");
    }

    #[test]
    fn floats_match_serde_json_bit_for_bit() {
        let mut next = crate::v2::xorshift(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            // f32 values as Python prints them (`float(np.float32(x))`: 17 digits), and
            // shorter forms, exponents included.
            let x = f32::from_bits(next() as u32);
            if !x.is_finite() {
                continue;
            }
            let long = format!("{:?}", f64::from(x));
            let short = format!("{x:?}");
            let exp = format!("{:e}", f64::from(x));
            let made_up = format!("{}.{}e-{}", next() % 1000, next() % 10_000_000, next() % 60);
            same_as_serde(&format!(
                "[{long}, {short}, {exp}, [{made_up}], -{:?}]",
                x.abs()
            ));
        }
        for edge in [
            "[0, -0, 0.0, -0.0, 1e0, 1E+2, 1e-2, 4.9e-300, 1.7976931348623157e308]",
            "[18446744073709551615, -9223372036854775808, -9223372036854775809]",
            "[0.1, 0.2, 0.30000000000000004, 123456789012345678.9]",
        ] {
            same_as_serde(edge);
        }
    }

    /// Decimals next to the midpoints between adjacent f32 values, where multiplying by the
    /// reciprocal and dividing can round to different f32 values: the reading divides there.
    #[test]
    fn f32_quotients_near_midpoints_round_as_the_division_does() {
        let mut next = crate::v2::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut multiplied_differs = 0;
        for _ in 0..200_000 {
            let state = next();
            // Normal f32 values from 2^-30 to 2^30.
            let bits = (state as u32 & 0x807f_ffff) | ((97 + (state >> 40) as u32 % 60) << 23);
            let x = f32::from_bits(bits);
            let midpoint = (f64::from(x) + f64::from(f32::from_bits(bits + 1))) / 2.0;
            for text in [format!("{midpoint:?}"), format!("{midpoint:e}")] {
                let mut out = Vec::<f32>::new();
                let mut wide = Vec::<f64>::new();
                if read_numbers_at(text.as_bytes(), 0, 100, &mut out).is_none()
                    || read_numbers_at(text.as_bytes(), 0, 100, &mut wide).is_none()
                {
                    continue;
                }
                assert_eq!(out[0].to_bits(), (wide[0] as f32).to_bits(), "{text}");
                if let (Some(dot), false) = (text.find('.'), text.contains('e')) {
                    let digits = text.replace(['.', '-'], "");
                    let significand: u64 = digits.parse().unwrap_or(0);
                    let power = text.len() - dot - 1;
                    let q = Quotient {
                        significand: significand as f64,
                        divisor: POWERS.exact[power],
                        reciprocal: POWERS.reciprocal[power],
                        negative: false,
                    };
                    let multiplied = (q.significand * q.reciprocal) as f32;
                    multiplied_differs += usize::from(multiplied != q.divided() as f32);
                }
            }
        }
        assert!(multiplied_differs > 0, "no case where the guard matters");
    }

    #[test]
    fn reads_in_place_up_to_the_value_end() {
        let text = b"{\"data\": [ [1, 2] ,[3] ], \"x\": 0}";
        let mut out = Vec::<i32>::new();
        let end = read_numbers_at(text, 9, 100, &mut out);
        assert_eq!((end, out), (Some(24), vec![1, 2, 3]));
        assert_eq!(&text[24..], b", \"x\": 0}");
        let mut out = Vec::<f32>::new();
        assert_eq!(read_numbers_at(b"-2.5e1,", 0, 100, &mut out), Some(6));
        assert_eq!(out, [-25.0]);
    }

    #[test]
    fn up_to_eight_digits_at_a_time() {
        assert_eq!(leading_digits(b"01234567"), (8, 1_234_567));
        assert_eq!(leading_digits(b"99999999"), (8, 99_999_999));
        assert_eq!(leading_digits(b"1234567."), (7, 1_234_567));
        assert_eq!(leading_digits(b"2421875,"), (7, 2_421_875));
        assert_eq!(leading_digits(b"0.242187"), (1, 0));
        assert_eq!(leading_digits(b"/1234567"), (0, 0));
        assert_eq!(leading_digits(b"1234:567"), (4, 1234));
        assert_eq!(leading_digits(b"12e45678"), (2, 12));
        assert_eq!(leading_digits(b"9\xff999999"), (1, 9));
        for count in 0..=8 {
            let text = format!("{}{}", &"98765432"[..count], &"]]]]]]]]"[count..]);
            let expected = "98765432"[..count].parse().unwrap_or(0);
            let chunk = text.as_bytes().try_into().unwrap();
            assert_eq!(leading_digits(chunk), (count, expected), "{text}");
        }
        let mut value = 0;
        assert_eq!(
            digits(b"18446744073709551615,", 0, &mut value),
            Some((20, 20))
        );
        assert_eq!(value, u64::MAX);
        assert_eq!(digits(b"18446744073709551616", 0, &mut 0), None);
    }

    #[test]
    fn arrays_past_the_levels_left_decline() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let mut out = Vec::<u8>::new();
        assert_eq!(
            read_numbers_at(nested(3).as_bytes(), 0, 3, &mut out),
            Some(7)
        );
        assert_eq!(read_numbers_at(nested(4).as_bytes(), 0, 3, &mut out), None);
        assert_eq!(read_numbers_at(b"[[1], [[2]]]", 0, 2, &mut out), None);
    }

    #[test]
    fn integers_and_halves_convert_as_serde_does() {
        assert_eq!(fast::<u8>("[[1, 2], [255]]"), Some(vec![1, 2, 255]));
        assert_eq!(
            fast::<i64>("[-9223372036854775808, 7]"),
            Some(vec![i64::MIN, 7])
        );
        assert_eq!(fast::<f16>("[1, 65504.0]"), Some(vec![f16::ONE, f16::MAX]));
        assert_eq!(fast::<f32>("3"), Some(vec![3.0]));
        assert_eq!(fast::<f32>("[[], [[]]]"), Some(vec![]));
    }

    #[test]
    fn declines_what_serde_must_read_or_refuse() {
        for (raw, why) in [
            ("[256]", "out of range for u8"),
            ("[1.5]", "a fraction for an integer type"),
            ("[-0]", "serde_json reads -0 as a float"),
            ("[-1]", "negative for an unsigned type"),
            ("[\"1\"]", "a string"),
            ("[true]", "a boolean"),
            ("[null]", "null"),
            ("[{}]", "an object"),
            ("[18446744073709551616]", "past u64"),
            ("[1e400]", "out of f64's range"),
            ("[1e-400]", "past the table"),
            ("[01]", "a leading zero"),
            ("[1.]", "no fraction digits"),
            ("[1e]", "no exponent digits"),
            ("[-]", "no digits"),
            ("[1 2]", "no comma"),
            ("[1,]", "a trailing comma"),
            ("[1", "an open array"),
            ("[1]]", "a bracket too many"),
            ("[1x]", "a letter"),
        ] {
            assert_eq!(fast::<u8>(raw), None, "{raw}: {why}");
        }
        assert_eq!(fast::<f64>("[1e400]"), None);
        assert_eq!(fast::<f64>("[5e-324]"), None, "a subnormal past the table");
        assert_eq!(fast::<f64>("[0.123456789012345678901]"), None);
    }
}

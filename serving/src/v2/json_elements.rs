//! Typed reading of JSON tensor `data`: flat or nested arrays go straight into the element
//! buffer as the request is parsed, each leaf checked against the datatype, with no
//! `serde_json::Value` tree between.

use std::fmt;

use half::f16;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

use crate::v2::datatype::to_v2;
use crate::v2::json_numbers::{Quotient, f32_from_quotient, read_numbers_at};
use destino_core::dtype::DType;
use destino_core::tensor::TensorData;

/// An element type JSON leaves convert to; `None` refuses the leaf.
pub(crate) trait JsonElement: Sized {
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    /// A fraction with a negative exponent (`from_f64` of serde_json's quotient unless the
    /// type computes the same value faster).
    fn from_quotient(q: Quotient) -> Option<Self> {
        Self::from_f64(q.divided())
    }
    fn from_str(_: &str) -> Option<Self> {
        None
    }
}

impl JsonElement for bool {
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl JsonElement for $t {
            fn from_u64(v: u64) -> Option<Self> {
                v.try_into().ok()
            }
            fn from_i64(v: i64) -> Option<Self> {
                v.try_into().ok()
            }
        }
    )*};
}
integers!(u8, u16, u32, u64, i8, i16, i32, i64);

/// Floats take any JSON number, rounded to the nearest value of the type (`$quotient`: a
/// negative exponent's quotient, as `$from` of serde_json's division gives it).
macro_rules! floats {
    ($($t:ty => $from:expr, $quotient:expr);*) => {$(
        impl JsonElement for $t {
            fn from_u64(v: u64) -> Option<Self> {
                Some($from(v as f64))
            }
            fn from_i64(v: i64) -> Option<Self> {
                Some($from(v as f64))
            }
            fn from_f64(v: f64) -> Option<Self> {
                Some($from(v))
            }
            fn from_quotient(q: Quotient) -> Option<Self> {
                Some($quotient(q))
            }
        }
    )*};
}
floats!(
    f16 => f16::from_f64, |q: Quotient| f16::from_f64(q.divided());
    f32 => |v: f64| v as f32, f32_from_quotient;
    f64 => |v: f64| v, Quotient::divided
);

impl JsonElement for String {
    fn from_str(v: &str) -> Option<Self> {
        Some(v.to_string())
    }
}

/// Reads JSON `data` (a scalar, or arrays nested to any depth the deserializer allows) as
/// `dtype` elements; errors name the input by `label`.
#[derive(Debug, Clone, Copy)]
pub struct TypedData<'a> {
    pub dtype: DType,
    pub label: &'a str,
    /// The shape's element count: reserved up front, up to `RESERVED_ELEMENTS`, since a
    /// claim alone must not allocate.
    pub claimed: usize,
}

/// The most elements reserved for JSON `data` before any is read.
const RESERVED_ELEMENTS: usize = 1 << 16;

/// `$read(args…)?` (generic over the element type) in `dtype`'s `TensorData` variant.
macro_rules! by_dtype {
    ($dtype:expr, $read:ident($($arg:expr),*)) => {
        match $dtype {
            DType::Bool => TensorData::Bool($read($($arg),*)?),
            DType::U8 => TensorData::U8($read($($arg),*)?),
            DType::U16 => TensorData::U16($read($($arg),*)?),
            DType::U32 => TensorData::U32($read($($arg),*)?),
            DType::U64 => TensorData::U64($read($($arg),*)?),
            DType::I8 => TensorData::I8($read($($arg),*)?),
            DType::I16 => TensorData::I16($read($($arg),*)?),
            DType::I32 => TensorData::I32($read($($arg),*)?),
            DType::I64 => TensorData::I64($read($($arg),*)?),
            DType::F16 => TensorData::F16($read($($arg),*)?),
            DType::F32 => TensorData::F32($read($($arg),*)?),
            DType::F64 => TensorData::F64($read($($arg),*)?),
            DType::String => TensorData::String($read($($arg),*)?),
        }
    };
}

impl<'de> DeserializeSeed<'de> for TypedData<'_> {
    type Value = TensorData;

    fn deserialize<D: Deserializer<'de>>(self, data: D) -> Result<TensorData, D::Error> {
        Ok(by_dtype!(self.dtype, read_leaves(data, self)))
    }
}

/// Reads `raw` as `typed.dtype` elements through serde alone: for text the in-place
/// reading declined (serde's errors name the element).
pub fn read_raw_with_serde(
    raw: &[u8],
    typed: TypedData<'_>,
) -> Result<TensorData, serde_json::Error> {
    Ok(by_dtype!(typed.dtype, leaves_of_text(raw, typed)))
}

/// Reads numeric `data` where it stands, at `at` of the request's `text`, in one pass, its
/// arrays nested at most `levels` deep; returns the elements and where the value ends, or
/// `None` for what only serde can read (booleans, strings, anything out of the ordinary)
/// or refuse with a precise error.
pub fn read_in_place(
    text: &[u8],
    at: usize,
    levels: usize,
    typed: TypedData<'_>,
) -> Option<(TensorData, usize)> {
    if matches!(typed.dtype, DType::Bool | DType::String) {
        return None;
    }
    let mut end = at;
    let data = by_dtype!(typed.dtype, numbers_in_place(text, &mut end, levels, typed));
    Some((data, end))
}

/// Numbers from `*at` of `text`, moving `*at` to their end.
fn numbers_in_place<T: JsonElement>(
    text: &[u8],
    at: &mut usize,
    levels: usize,
    typed: TypedData<'_>,
) -> Option<Vec<T>> {
    let mut out = Vec::with_capacity(reserved(typed, text.len() - *at));
    *at = read_numbers_at(text, *at, levels, &mut out)?;
    Some(out)
}

/// The elements to reserve for `typed` read from `text_len` bytes: each element takes at
/// least two bytes of text, so no more than the text could hold, whatever the shape claims.
fn reserved(typed: TypedData<'_>, text_len: usize) -> usize {
    typed.claimed.min(text_len / 2 + 1)
}

fn leaves_of_text<T: JsonElement>(
    raw: &[u8],
    typed: TypedData<'_>,
) -> Result<Vec<T>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    let out = leaves(&mut deserializer, typed, reserved(typed, raw.len()))?;
    deserializer.end()?;
    Ok(out)
}

fn read_leaves<'de, T: JsonElement, D: Deserializer<'de>>(
    data: D,
    typed: TypedData<'_>,
) -> Result<Vec<T>, D::Error> {
    leaves(data, typed, typed.claimed.min(RESERVED_ELEMENTS))
}

/// The leaves of `data` as `typed` elements, `capacity` reserved first.
fn leaves<'de, T: JsonElement, D: Deserializer<'de>>(
    data: D,
    typed: TypedData<'_>,
    capacity: usize,
) -> Result<Vec<T>, D::Error> {
    let mut out = Vec::with_capacity(capacity);
    Leaves {
        out: &mut out,
        datatype: to_v2(typed.dtype),
        label: typed.label,
    }
    .deserialize(data)?;
    Ok(out)
}

struct Leaves<'v, 'l, T> {
    out: &'v mut Vec<T>,
    datatype: &'static str,
    label: &'l str,
}

impl<T> Leaves<'_, '_, T> {
    fn push<E: de::Error>(self, value: Option<T>, shown: impl fmt::Display) -> Result<(), E> {
        match value {
            Some(v) => {
                self.out.push(v);
                Ok(())
            }
            None => Err(E::custom(format!(
                "{}: element {} is {shown}, not a valid {}",
                self.label,
                self.out.len(),
                self.datatype
            ))),
        }
    }
}

/// A string leaf as an error shows it: quoted, and cut short when long.
fn quoted(v: &str) -> String {
    const SHOWN: usize = 40;
    match v.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{:?}…", &v[..end]),
        None => format!("{v:?}"),
    }
}

impl<'de, T: JsonElement> DeserializeSeed<'de> for Leaves<'_, '_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, data: D) -> Result<(), D::Error> {
        data.deserialize_any(self)
    }
}

impl<'de, T: JsonElement> Visitor<'de> for Leaves<'_, '_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} elements, flat or in nested arrays", self.datatype)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let Leaves {
            out,
            datatype,
            label,
        } = self;
        while items
            .next_element_seed(Leaves {
                out: &mut *out,
                datatype,
                label,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.push(T::from_bool(v), v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.push(T::from_u64(v), v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.push(T::from_i64(v), v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.push(T::from_f64(v), v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.push(T::from_str(v), quoted(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.push(None, "null")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.push(None, "an object")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str, dtype: DType) -> Result<TensorData, String> {
        let typed = TypedData {
            dtype,
            label: "input `x`",
            claimed: 0,
        };
        typed
            .deserialize(&mut serde_json::Deserializer::from_str(text))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn nested_arrays_flatten_in_row_major_order() {
        assert_eq!(
            read("[[1, 2], [3, -4]]", DType::I64),
            Ok(TensorData::I64(vec![1, 2, 3, -4]))
        );
        assert_eq!(
            read("[[[0.5]], [2]]", DType::F32),
            Ok(TensorData::F32(vec![0.5, 2.0]))
        );
        assert_eq!(
            read("[1, 65504.0]", DType::F16),
            Ok(TensorData::F16(vec![f16::ONE, f16::MAX]))
        );
        assert_eq!(read("true", DType::Bool), Ok(TensorData::Bool(vec![true])));
        assert_eq!(
            read(r#"["a\"b", "é"]"#, DType::String),
            Ok(TensorData::String(vec!["a\"b".into(), "é".into()]))
        );
        let typed = TypedData {
            dtype: DType::U8,
            label: "input `x`",
            claimed: 4,
        };
        let value = json!([[1, 2], [3, 4]]);
        assert_eq!(
            typed.deserialize(&value).map_err(|e| e.to_string()),
            Ok(TensorData::U8(vec![1, 2, 3, 4]))
        );
    }

    #[test]
    fn leaves_of_the_wrong_kind_name_their_input_and_index() {
        let err = read("[1, 300]", DType::U8).unwrap_err();
        assert!(
            err.starts_with("input `x`: element 1 is 300, not a valid UINT8"),
            "{err}"
        );
        let err = read("[1.5]", DType::I32).unwrap_err();
        assert!(err.contains("element 0 is 1.5, not a valid INT32"), "{err}");
        let err = read("[-1]", DType::U64).unwrap_err();
        assert!(err.contains("element 0 is -1, not a valid UINT64"), "{err}");
        let err = read(r#"[1, "1.0"]"#, DType::F32).unwrap_err();
        assert!(
            err.contains(r#"element 1 is "1.0", not a valid FP32"#),
            "{err}"
        );
        let err = read("[null]", DType::F32).unwrap_err();
        assert!(err.contains("element 0 is null"), "{err}");
        let err = read(r#"[{"a": 1}]"#, DType::Bool).unwrap_err();
        assert!(err.contains("element 0 is an object"), "{err}");
        let long = format!("[\"{}\"]", "x".repeat(1000));
        let err = read(&long, DType::I8).unwrap_err();
        assert!(err.len() < 120, "{err}");
    }

    #[test]
    fn nesting_is_bounded_by_the_deserializer() {
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = read(&deep, DType::F32).unwrap_err();
        assert!(err.contains("recursion limit"), "{err}");
    }
}

//! Element types of tensors: every ONNX tensor dtype a served model uses.

use std::fmt;
use std::str::FromStr;

/// A tensor element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    F32,
    F64,
    String,
}

impl DType {
    pub const ALL: [DType; 13] = [
        DType::Bool,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::F16,
        DType::F32,
        DType::F64,
        DType::String,
    ];

    /// The `TensorProto.DataType` code ONNX uses; `None` for types destino cannot serve
    /// (bfloat16, complex, float8 and 4-bit types).
    pub fn from_onnx(code: i32) -> Option<DType> {
        Some(match code {
            1 => DType::F32,
            2 => DType::U8,
            3 => DType::I8,
            4 => DType::U16,
            5 => DType::I16,
            6 => DType::I32,
            7 => DType::I64,
            8 => DType::String,
            9 => DType::Bool,
            10 => DType::F16,
            11 => DType::F64,
            12 => DType::U32,
            13 => DType::U64,
            _ => return None,
        })
    }

    /// Lower-case name as numpy and ONNX tooling print it (`float32`, `int64`, `string`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::F16 => "float16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::String => "string",
        }
    }

    /// Size of one element in bytes; `None` for strings.
    pub fn size_of(self) -> Option<usize> {
        Some(match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 | DType::F16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
            DType::String => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::F32 | DType::F64)
    }
}

/// Name of an ONNX element type code, for messages about types destino cannot serve.
pub fn onnx_type_name(code: i32) -> String {
    match DType::from_onnx(code) {
        Some(dtype) => dtype.name().to_string(),
        None => match code {
            0 => "undefined".into(),
            14 => "complex64".into(),
            15 => "complex128".into(),
            16 => "bfloat16".into(),
            17..=20 => "float8".into(),
            21 | 22 => "4-bit integer".into(),
            other => format!("ONNX type {other}"),
        },
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = String;

    /// Accepts numpy/ONNX names (`float32`, `int64`) and the usual short forms (`f32`, `i64`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let found = DType::ALL.into_iter().find(|d| {
            d.name() == lower
                || match d {
                    DType::Bool => lower == "boolean",
                    DType::U8 => lower == "u8",
                    DType::U16 => lower == "u16",
                    DType::U32 => lower == "u32",
                    DType::U64 => lower == "u64",
                    DType::I8 => lower == "i8",
                    DType::I16 => lower == "i16",
                    DType::I32 => lower == "i32",
                    DType::I64 => lower == "i64",
                    DType::F16 => lower == "f16" || lower == "half",
                    DType::F32 => lower == "f32" || lower == "float",
                    DType::F64 => lower == "f64" || lower == "double",
                    DType::String => lower == "str" || lower == "bytes",
                }
        });
        found.ok_or_else(|| format!("unknown dtype `{s}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_codes_round_trip_through_names() {
        for code in 1..=13 {
            let dtype = DType::from_onnx(code).expect("codes 1..=13 are served");
            assert_eq!(dtype.name().parse::<DType>(), Ok(dtype));
        }
        assert_eq!(DType::from_onnx(16), None);
        assert_eq!(onnx_type_name(16), "bfloat16");
    }

    #[test]
    fn short_names_parse() {
        assert_eq!("f32".parse::<DType>(), Ok(DType::F32));
        assert_eq!("I64".parse::<DType>(), Ok(DType::I64));
        assert!("complex64".parse::<DType>().is_err());
    }
}

//! KServe V2 datatype names.

use destino_core::dtype::DType;

pub fn to_v2(dtype: DType) -> &'static str {
    match dtype {
        DType::Bool => "BOOL",
        DType::U8 => "UINT8",
        DType::U16 => "UINT16",
        DType::U32 => "UINT32",
        DType::U64 => "UINT64",
        DType::I8 => "INT8",
        DType::I16 => "INT16",
        DType::I32 => "INT32",
        DType::I64 => "INT64",
        DType::F16 => "FP16",
        DType::F32 => "FP32",
        DType::F64 => "FP64",
        DType::String => "BYTES",
    }
}

pub fn from_v2(name: &str) -> Option<DType> {
    DType::ALL.into_iter().find(|d| to_v2(*d) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for dtype in DType::ALL {
            assert_eq!(from_v2(to_v2(dtype)), Some(dtype));
        }
        assert_eq!(from_v2("FP8"), None);
    }
}

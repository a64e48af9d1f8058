//! `.npz` files (numpy's zip of `.npy` arrays) as named tensors: the offline CLI's input and
//! output format. Keys are the ONNX input/output names exactly, `/` and `:` included.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use half::f16;
use npyz::{NpyFile, TypeChar, WriterBuilder};
use zip::ZipArchive;
use zip::write::{SimpleFileOptions, ZipWriter};

use crate::error::{Error, Result};
use crate::metadata::Tensors;
use crate::tensor::{Tensor, TensorData};

/// Reads every array of an `.npz` file.
pub fn read_npz(path: &Path) -> Result<Tensors> {
    let file = File::open(path).map_err(|e| Error::file(path, e))?;
    let mut archive =
        ZipArchive::new(file).map_err(|e| Error::file(path, format!("not an npz file: {e}")))?;
    let mut tensors = Tensors::new();
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(|e| Error::file(path, e))?;
        let entry_name = entry.name().map_err(|e| Error::file(path, e))?;
        let Some(name) = entry_name.strip_suffix(".npy").map(str::to_string) else {
            continue;
        };
        let tensor =
            read_npy(entry).map_err(|e| Error::file(path, format!("array `{name}`: {e}")))?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

/// Reads one `.npy` array from `path`.
pub fn read_npy_file(path: &Path) -> Result<Tensor> {
    let file = File::open(path).map_err(|e| Error::file(path, e))?;
    read_npy(file).map_err(|e| Error::file(path, e))
}

/// Reads one `.npy` stream into a tensor of the matching dtype.
pub fn read_npy(reader: impl Read) -> std::result::Result<Tensor, String> {
    let npy = NpyFile::new(reader).map_err(|e| format!("not an npy array: {e}"))?;
    if npy.order() == npyz::Order::Fortran && npy.shape().len() > 1 {
        return Err("Fortran-ordered arrays are not supported; save with C order".into());
    }
    let shape = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("dimension {d} is too large")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let npyz::DType::Plain(type_str) = npy.dtype() else {
        return Err("structured arrays are not supported".into());
    };
    let size = type_str.size_field();
    let read_err = |e: std::io::Error| format!("reading {type_str}: {e}");
    let data: TensorData = match (type_str.type_char(), size) {
        (TypeChar::Bool, 1) => npy.into_vec::<bool>().map_err(read_err)?.into(),
        (TypeChar::Uint, 1) => npy.into_vec::<u8>().map_err(read_err)?.into(),
        (TypeChar::Uint, 2) => npy.into_vec::<u16>().map_err(read_err)?.into(),
        (TypeChar::Uint, 4) => npy.into_vec::<u32>().map_err(read_err)?.into(),
        (TypeChar::Uint, 8) => npy.into_vec::<u64>().map_err(read_err)?.into(),
        (TypeChar::Int, 1) => npy.into_vec::<i8>().map_err(read_err)?.into(),
        (TypeChar::Int, 2) => npy.into_vec::<i16>().map_err(read_err)?.into(),
        (TypeChar::Int, 4) => npy.into_vec::<i32>().map_err(read_err)?.into(),
        (TypeChar::Int, 8) => npy.into_vec::<i64>().map_err(read_err)?.into(),
        (TypeChar::Float, 2) => npy.into_vec::<f16>().map_err(read_err)?.into(),
        (TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(read_err)?.into(),
        (TypeChar::Float, 8) => npy.into_vec::<f64>().map_err(read_err)?.into(),
        (TypeChar::UnicodeStr, _) => npy.into_vec::<String>().map_err(read_err)?.into(),
        (TypeChar::ByteStr, _) => npy
            .into_vec::<Vec<u8>>()
            .map_err(read_err)?
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect::<Vec<_>>()
            .into(),
        (TypeChar::Object, _) => {
            return Err(
                "object arrays (pickled) are not supported; use a fixed-width string dtype".into(),
            );
        }
        _ => return Err(format!("numpy dtype `{type_str}` is not supported")),
    };
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// Writes `tensors` as an uncompressed `.npz` file numpy can load.
pub fn write_npz(path: &Path, tensors: &Tensors) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::file(path, e))?;
    let mut zip = ZipWriter::new(BufWriter::new(file));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for (name, tensor) in tensors {
        zip.start_file(format!("{name}.npy"), options)
            .map_err(|e| Error::file(path, e))?;
        write_npy(&mut zip, tensor)
            .map_err(|e| Error::file(path, format!("array `{name}`: {e}")))?;
    }
    let mut inner = zip.finish().map_err(|e| Error::file(path, e))?;
    inner.flush().map_err(|e| Error::file(path, e))
}

/// Writes one tensor as an `.npy` stream.
pub fn write_npy<W: Write>(writer: &mut W, tensor: &Tensor) -> std::io::Result<()> {
    let shape: Vec<u64> = tensor.shape().iter().map(|&d| d as u64).collect();
    macro_rules! write_plain {
        ($v:expr) => {{
            let mut out = npyz::WriteOptions::new()
                .default_dtype()
                .shape(&shape)
                .writer(writer)
                .begin_nd()?;
            out.extend($v.iter().copied())?;
            out.finish()
        }};
    }
    match tensor.data() {
        TensorData::Bool(v) => write_plain!(v),
        TensorData::U8(v) => write_plain!(v),
        TensorData::U16(v) => write_plain!(v),
        TensorData::U32(v) => write_plain!(v),
        TensorData::U64(v) => write_plain!(v),
        TensorData::I8(v) => write_plain!(v),
        TensorData::I16(v) => write_plain!(v),
        TensorData::I32(v) => write_plain!(v),
        TensorData::I64(v) => write_plain!(v),
        TensorData::F16(v) => write_plain!(v),
        TensorData::F32(v) => write_plain!(v),
        TensorData::F64(v) => write_plain!(v),
        TensorData::String(v) => {
            let width = v
                .iter()
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                .max(1);
            let type_str = format!("<U{width}").parse::<npyz::TypeStr>().map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
            })?;
            let mut out = npyz::WriteOptions::<str>::new()
                .dtype(npyz::DType::Plain(type_str))
                .shape(&shape)
                .writer(writer)
                .begin_nd()?;
            for s in v {
                out.push(s.as_str())?;
            }
            out.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_round_trips_through_npz() {
        let mut tensors = Tensors::new();
        let samples: Vec<TensorData> = vec![
            vec![true, false].into(),
            vec![1u8, 2].into(),
            vec![1u16, 2].into(),
            vec![1u32, 2].into(),
            vec![1u64, u64::MAX].into(),
            vec![-1i8, 2].into(),
            vec![-1i16, 2].into(),
            vec![-1i32, 2].into(),
            vec![i64::MIN, 2].into(),
            vec![f16::from_f32(0.5), f16::from_f32(-2.0)].into(),
            vec![0.25f32, -1.0].into(),
            vec![0.125f64, 1e300].into(),
            vec!["héllo".to_string(), String::new()].into(),
        ];
        for (i, data) in samples.into_iter().enumerate() {
            tensors.insert(
                format!("t{i}/with:odd name"),
                Tensor::new(vec![2, 1], data).unwrap(),
            );
        }
        tensors.insert("scalar".into(), Tensor::scalar(16000i64));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.npz");
        write_npz(&path, &tensors).unwrap();
        assert_eq!(read_npz(&path).unwrap(), tensors);
    }

    #[test]
    fn unreadable_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.npz");
        std::fs::write(&path, b"not a zip").unwrap();
        assert!(read_npz(&path).is_err());
        assert!(read_npz(&dir.path().join("absent.npz")).is_err());
    }
}

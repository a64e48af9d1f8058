//! `.npz` files (numpy's zip of `.npy` arrays) as named tensors: the offline CLI's input and
//! output format. Keys are the ONNX input/output names exactly, `/` and `:` included.

use std::fs::File;
use std::io::{BufReader, BufWriter, Cursor, Read, Seek, Write};
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
    read_npz_from(BufReader::with_capacity(IO_BUFFER_BYTES, file)).map_err(|e| Error::file(path, e))
}

/// Reads every array of an `.npz` stream.
pub fn read_npz_from(reader: impl Read + Seek) -> std::result::Result<Tensors, String> {
    let mut archive = ZipArchive::new(reader).map_err(|e| format!("not an npz file: {e}"))?;
    let mut tensors = Tensors::new();
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(|e| e.to_string())?;
        let entry_name = entry.name().map_err(|e| e.to_string())?;
        let Some(name) = entry_name.strip_suffix(".npy").map(str::to_string) else {
            continue;
        };
        let tensor = read_npy(entry).map_err(|e| format!("array `{name}`: {e}"))?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

/// Reads one `.npy` array from `path`.
pub fn read_npy_file(path: &Path) -> Result<Tensor> {
    let file = File::open(path).map_err(|e| Error::file(path, e))?;
    read_npy(BufReader::with_capacity(IO_BUFFER_BYTES, file)).map_err(|e| Error::file(path, e))
}

/// Files are read and written through a buffer this large: npy arrays are decoded element by
/// element, which unbuffered would be one `read` call per element.
const IO_BUFFER_BYTES: usize = 1 << 16;

/// numpy's own default limit on the `.npy` header it reads (`max_header_size`).
const MAX_NPY_HEADER_BYTES: usize = 10_000;

/// Deepest bracket nesting in a header (plain arrays need 2): npyz's header parser
/// backtracks exponentially on nesting, 16 levels of `{` take minutes.
const MAX_NPY_HEADER_NESTING: usize = 4;

/// Widest string element read: npyz allocates each element's full width before reading it.
const MAX_NPY_STRING_BYTES: u64 = 1 << 24;

/// The magic, version, header length and header of a `.npy` stream, read ahead and checked
/// so npyz, which parses them from the returned bytes, can neither allocate gigabytes for a
/// header length field nor backtrack for hours on nested brackets.
fn npy_header(reader: &mut impl Read) -> std::result::Result<Vec<u8>, String> {
    let unreadable = |e: std::io::Error| format!("not an npy array: {e}");
    let mut head = Vec::with_capacity(12);
    reader.take(12).read_to_end(&mut head).map_err(unreadable)?;
    let (start, header_len) = match head.as_slice() {
        [b'\x93', b'N', b'U', b'M', b'P', b'Y', 1, _, a, b, ..] => {
            (10, usize::from(u16::from_le_bytes([*a, *b])))
        }
        [b'\x93', b'N', b'U', b'M', b'P', b'Y', 2 | 3, _, a, b, c, d] => (
            12,
            usize::try_from(u32::from_le_bytes([*a, *b, *c, *d])).unwrap_or(usize::MAX),
        ),
        // Not a version npyz reads either: it reports the error.
        _ => return Ok(head),
    };
    if header_len > MAX_NPY_HEADER_BYTES {
        return Err(format!(
            "not an npy array: the header claims {header_len} bytes, over numpy's limit of {MAX_NPY_HEADER_BYTES}"
        ));
    }
    let rest = (start + header_len).saturating_sub(head.len());
    reader
        .take(rest as u64)
        .read_to_end(&mut head)
        .map_err(unreadable)?;
    let mut open = Vec::new();
    for &byte in head.get(start..).unwrap_or_default() {
        let opener = match byte {
            b'{' | b'[' | b'(' => {
                open.push(byte);
                if open.len() > MAX_NPY_HEADER_NESTING {
                    return Err(format!(
                        "not an npy array: the header nests brackets more than {MAX_NPY_HEADER_NESTING} deep"
                    ));
                }
                continue;
            }
            b'}' => b'{',
            b']' => b'[',
            b')' => b'(',
            _ => continue,
        };
        if open.pop() != Some(opener) {
            return Err("not an npy array: the header's brackets do not match".into());
        }
    }
    Ok(head)
}

/// Reads one `.npy` stream into a tensor of the matching dtype.
pub fn read_npy(mut reader: impl Read) -> std::result::Result<Tensor, String> {
    let header = npy_header(&mut reader)?;
    let npy = NpyFile::new(Cursor::new(header).chain(reader))
        .map_err(|e| format!("not an npy array: {e}"))?;
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
    let string_bytes = match type_str.type_char() {
        TypeChar::UnicodeStr => Some(size.saturating_mul(4)),
        TypeChar::ByteStr => Some(size),
        _ => None,
    };
    // Zero-width strings read no bytes, so a huge shape would never reach the end of the data.
    if let Some(bytes) = string_bytes
        && !(1..=MAX_NPY_STRING_BYTES).contains(&bytes)
    {
        return Err(format!(
            "string elements of {bytes} bytes are not supported (1 to {MAX_NPY_STRING_BYTES})"
        ));
    }
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
    let mut zip = ZipWriter::new(BufWriter::with_capacity(IO_BUFFER_BYTES, file));
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

    /// A `.npy` stream: magic, version, header length and header, as numpy writes them.
    fn npy(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = b"\x93NUMPY".to_vec();
        bytes.extend_from_slice(&[major, 0]);
        let len = header.len() + 1;
        match major {
            1 => bytes.extend_from_slice(&(len as u16).to_le_bytes()),
            _ => bytes.extend_from_slice(&(len as u32).to_le_bytes()),
        }
        bytes.extend_from_slice(header.as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn reads_npy_streams_of_each_header_version() {
        let header = "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }";
        for major in [1, 2, 3] {
            let t = read_npy(npy(major, header, &[1, 0, 0xff, 0xff]).as_slice()).unwrap();
            assert_eq!(t, Tensor::new(vec![2], vec![1i16, -1]).unwrap());
        }
    }

    #[test]
    fn hostile_npy_headers_are_refused() {
        // Found by the `npz` fuzz target: a v2 header length of 0xffff0074 made npyz
        // allocate 4 GiB before reading anything.
        let oom = b"\x93NUMPY\x02\x00\x74\x00\xff\xff{'descr': '<U2'}";
        let err = read_npy(&oom[..]).unwrap_err();
        assert!(err.contains("over numpy's limit of 10000"), "{err}");
        let long_v1 = b"\x93NUMPY\x01\x00\xff\xff{";
        assert!(read_npy(&long_v1[..]).is_err());
        // Found by the `npz` fuzz target: 30 nested `{` in a 116-byte header kept npyz's
        // parser busy for hours.
        let nested = format!(
            "{{'descr':{} '<U2', 'fortran_order': False, 'shape': (2,), }}",
            "{".repeat(30)
        );
        let err = read_npy(npy(2, &nested, b"").as_slice()).unwrap_err();
        assert!(err.contains("more than 4 deep"), "{err}");
        let crossed = npy(1, "{'descr': '<f4', 'shape': (((]]], }", b"");
        let err = read_npy(crossed.as_slice()).unwrap_err();
        assert!(err.contains("do not match"), "{err}");
        // A string width npyz would allocate per element, and a zero width that never
        // reaches the end of the data.
        let wide = npy(
            1,
            "{'descr': '<U1000000000', 'fortran_order': False, 'shape': (1,), }",
            b"a",
        );
        let err = read_npy(wide.as_slice()).unwrap_err();
        assert!(err.contains("not supported"), "{err}");
        let empty = npy(
            1,
            "{'descr': '|S0', 'fortran_order': False, 'shape': (1000000000000,), }",
            b"",
        );
        let err = read_npy(empty.as_slice()).unwrap_err();
        assert!(err.contains("not supported"), "{err}");
        for short in [&b""[..], b"\x93NUMPY", b"\x93NUMPY\x02\x00\x10"] {
            assert!(read_npy(short).unwrap_err().contains("not an npy array"));
        }
    }

    #[test]
    fn npz_streams_read_like_files() {
        let mut tensors = Tensors::new();
        tensors.insert(
            "x".into(),
            Tensor::new(vec![2], vec![1.5f32, -2.0]).unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npz");
        write_npz(&path, &tensors).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(read_npz_from(Cursor::new(bytes)).unwrap(), tensors);
        assert!(read_npz_from(Cursor::new(b"PK\x05\x06")).is_err());
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

//! A `ZipMap` output (a sequence of class → probability maps) as the tensor it zips:
//! `[rows, classes]`, columns in the node's label order, as the tract engine serves it.

use destino_core::onnx::{ZipMapLabels, ZipMapOutput};
use destino_core::{Error, Result, Tensor};
use ort::value::{DynMapValueType, DynValue};

use crate::engine_error;

pub fn to_tensor(zipmap: &ZipMapOutput, value: &DynValue) -> Result<Tensor> {
    let rows = value
        .try_extract_sequence::<DynMapValueType>()
        .map_err(engine_error)?;
    let classes = zipmap.labels.len();
    let mut probabilities = vec![0f32; rows.len() * classes];
    for (r, map) in rows.iter().enumerate() {
        let row = &mut probabilities[r * classes..(r + 1) * classes];
        match &zipmap.labels {
            ZipMapLabels::Int(labels) => {
                for (key, p) in map
                    .try_extract_key_values::<i64, f32>()
                    .map_err(engine_error)?
                {
                    place(row, labels.iter().position(|l| *l == key), p, &zipmap.name)?;
                }
            }
            ZipMapLabels::Text(labels) => {
                for (key, p) in map
                    .try_extract_key_values::<String, f32>()
                    .map_err(engine_error)?
                {
                    place(row, labels.iter().position(|l| *l == key), p, &zipmap.name)?;
                }
            }
        }
    }
    Tensor::new(vec![rows.len(), classes], probabilities)
}

fn place(row: &mut [f32], column: Option<usize>, p: f32, name: &str) -> Result<()> {
    let column = column.ok_or_else(|| Error::Engine {
        engine: "ort",
        message: format!("output `{name}`: a class the ZipMap does not list"),
    })?;
    row[column] = p;
    Ok(())
}

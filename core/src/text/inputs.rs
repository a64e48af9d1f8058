//! Which model input a tokenizer fills with what, recognised by the names exporters use.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::metadata::{Dim, ModelMetadata, TensorInfo};
use crate::tensor::{Tensor, TensorData};

/// What a tokenizer puts in an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    TokenIds,
    AttentionMask,
    TokenTypeIds,
    PositionIds,
}

/// Names (lower case, without a `:0` suffix) of each role's input.
const NAMES: &[(Role, &[&str])] = &[
    (
        Role::TokenIds,
        &["input_ids", "ids", "input_id", "token_ids", "tokens"],
    ),
    (
        Role::AttentionMask,
        &["attention_mask", "input_mask", "mask", "attention_masks"],
    ),
    (
        Role::TokenTypeIds,
        &["token_type_ids", "segment_ids", "type_ids", "token_type_id"],
    ),
    (Role::PositionIds, &["position_ids", "positions"]),
];

fn role_of(name: &str) -> Option<Role> {
    let lower = name.to_ascii_lowercase();
    let key = lower.strip_suffix(":0").unwrap_or(&lower);
    NAMES
        .iter()
        .find(|(_, names)| names.contains(&key))
        .map(|(role, _)| *role)
}

/// One model input and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextInput {
    pub name: String,
    pub role: Role,
    pub dtype: DType,
}

/// The model's inputs, each with its role; the token ids' fixed batch and sequence sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextInputs {
    pub inputs: Vec<TextInput>,
    /// Rows every run must have, when the model fixes them.
    pub fixed_rows: Option<usize>,
    /// Tokens every row must have, when the model fixes them.
    pub fixed_length: Option<usize>,
}

impl TextInputs {
    /// Every input must be one a tokenizer fills, with integer ids, and one must hold the ids.
    pub fn recognise(metadata: &ModelMetadata) -> Result<TextInputs> {
        let mut inputs = Vec::new();
        for info in &metadata.inputs {
            let role = role_of(&info.name).ok_or_else(|| {
                Error::Text(format!(
                    "input `{}` is not one a tokenizer fills (input_ids, attention_mask, token_type_ids, position_ids)",
                    info.name
                ))
            })?;
            if !matches!(info.dtype, DType::I64 | DType::I32) {
                return Err(Error::Text(format!(
                    "input `{}` is {}; token inputs must be int64 or int32",
                    info.name, info.dtype
                )));
            }
            inputs.push(TextInput {
                name: info.name.clone(),
                role,
                dtype: info.dtype,
            });
        }
        let ids = metadata
            .inputs
            .iter()
            .zip(&inputs)
            .find(|(_, input)| input.role == Role::TokenIds)
            .map(|(info, _)| info)
            .ok_or_else(|| Error::Text("the model has no token ids input (input_ids)".into()))?;
        Ok(TextInputs {
            inputs,
            fixed_rows: fixed_dim(ids, 0),
            fixed_length: fixed_dim(ids, 1),
        })
    }

    /// The tensors of one run: `rows` token rows, padded on the right with `pad_id` to
    /// `length` tokens.
    pub fn tensors(
        &self,
        rows: &[&super::Tokens],
        length: usize,
        pad_id: u32,
    ) -> Result<crate::Tensors> {
        let shape = vec![rows.len(), length];
        let mut tensors = crate::Tensors::new();
        for input in &self.inputs {
            let mut values = Vec::with_capacity(rows.len() * length);
            for row in rows {
                let real = row.ids.len();
                let padding = length - real;
                match input.role {
                    Role::TokenIds => {
                        values.extend(row.ids.iter().map(|&id| i64::from(id)));
                        values.extend(std::iter::repeat_n(i64::from(pad_id), padding));
                    }
                    Role::AttentionMask => {
                        values.extend(std::iter::repeat_n(1, real));
                        values.extend(std::iter::repeat_n(0, padding));
                    }
                    Role::TokenTypeIds => {
                        values.extend(row.type_ids.iter().map(|&t| i64::from(t)));
                        values.extend(std::iter::repeat_n(0, padding));
                    }
                    Role::PositionIds => values.extend((0..length).map(|p| p as i64)),
                }
            }
            let data = match input.dtype {
                DType::I32 => TensorData::I32(values.into_iter().map(|v| v as i32).collect()),
                _ => TensorData::I64(values),
            };
            tensors.insert(input.name.clone(), Tensor::new(shape.clone(), data)?);
        }
        Ok(tensors)
    }
}

fn fixed_dim(info: &TensorInfo, axis: usize) -> Option<usize> {
    match info.shape.as_deref()?.get(axis)? {
        Dim::Fixed(n) => Some(*n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_exporters_use_are_recognised() {
        assert_eq!(role_of("input_ids"), Some(Role::TokenIds));
        assert_eq!(role_of("input_ids:0"), Some(Role::TokenIds));
        assert_eq!(role_of("Attention_Mask"), Some(Role::AttentionMask));
        assert_eq!(role_of("segment_ids"), Some(Role::TokenTypeIds));
        assert_eq!(role_of("position_ids"), Some(Role::PositionIds));
        assert_eq!(role_of("pixel_values"), None);
    }
}

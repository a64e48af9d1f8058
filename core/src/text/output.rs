//! Which output of a text model carries the embedding, when `model.toml` does not say.

use super::spec::{Pooling, TextSpec};
use crate::error::{Error, Result};
use crate::metadata::{ModelMetadata, TensorInfo};

/// The embedding output: the manifest's, else a float `[batch, dim]` output (not BERT's
/// `pooler_output`), else a `[batch, sequence, dim]` one (mean pooled), else `pooler_output`,
/// else the first float output (pooled as its rank says).
pub(super) fn choose(
    metadata: &ModelMetadata,
    spec: &TextSpec,
) -> Result<(String, Option<Pooling>)> {
    if let Some(name) = &spec.output {
        if metadata.output(name).is_none() {
            return Err(Error::Text(format!("the model has no output `{name}`")));
        }
        return Ok((name.clone(), spec.pooling));
    }
    let floats: Vec<_> = metadata
        .outputs
        .iter()
        .filter(|o| o.dtype.is_float())
        .collect();
    let rank = |o: &&TensorInfo| o.shape.as_ref().map(Vec::len);
    let is_pooler = |o: &&TensorInfo| o.name.to_ascii_lowercase().contains("pooler");
    let chosen = floats
        .iter()
        .find(|o| rank(o) == Some(2) && !is_pooler(o))
        .or_else(|| floats.iter().find(|o| rank(o) == Some(3)))
        .or_else(|| floats.iter().find(|o| rank(o) == Some(2)))
        .or_else(|| floats.iter().find(|o| rank(o).is_none()))
        .ok_or_else(|| {
            Error::Text(
                "the model has no float [batch, dim] or [batch, sequence, dim] output".into(),
            )
        })?;
    Ok((chosen.name.clone(), spec.pooling))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::metadata::Dim;

    fn output(name: &str, dtype: DType, rank: Option<usize>) -> TensorInfo {
        let shape = rank.map(|r| (0..r).map(|i| Dim::Symbolic(format!("d{i}"))).collect());
        TensorInfo {
            name: name.into(),
            dtype,
            shape,
        }
    }

    fn chosen(outputs: Vec<TensorInfo>) -> Result<String> {
        let metadata = ModelMetadata {
            outputs,
            ..ModelMetadata::default()
        };
        choose(&metadata, &TextSpec::default()).map(|(name, _)| name)
    }

    #[test]
    fn sentence_vectors_before_token_vectors_before_the_bert_pooler() {
        let hidden = output("last_hidden_state", DType::F32, Some(3));
        let pooler = output("pooler_output", DType::F32, Some(2));
        let sentence = output("sentence_embedding", DType::F32, Some(2));
        let ids = output("ids", DType::I64, Some(2));
        let all = vec![ids.clone(), pooler.clone(), hidden.clone(), sentence];
        assert_eq!(chosen(all).unwrap(), "sentence_embedding");
        assert_eq!(
            chosen(vec![pooler.clone(), hidden]).unwrap(),
            "last_hidden_state"
        );
        assert_eq!(chosen(vec![ids.clone(), pooler]).unwrap(), "pooler_output");
        let unknown = output("y", DType::F16, None);
        assert_eq!(chosen(vec![ids.clone(), unknown]).unwrap(), "y");
        assert!(chosen(vec![ids]).is_err());
    }
}

//! The `[text]` section of `model.toml`: what a text model needs that its files do not say.
//! Optional: a `tokenizer.json` beside the model is enough when the defaults fit.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextSpec {
    /// The tokenizer (Hugging Face `tokenizer.json` format), relative to the manifest;
    /// unset: `tokenizer.json` beside the model, or in the model's folder.
    pub tokenizer: Option<PathBuf>,
    /// The output carrying the embedding; unset: chosen from the declared outputs
    /// (README: "Text models").
    pub output: Option<String>,
    /// How token embeddings become one vector; unset: a `[batch, dim]` output as it is,
    /// mean pooling over the attention mask for a `[batch, sequence, dim]` one.
    pub pooling: Option<Pooling>,
    /// Scales every embedding to unit length.
    #[serde(default)]
    pub normalize: bool,
    /// Most tokens per input (special tokens included); unset: the tokenizer's truncation
    /// length, else the model's fixed sequence length, else no limit.
    pub max_tokens: Option<usize>,
    /// What happens to a longer input; unset: as the tokenizer says (truncated when its
    /// file sets truncation), refused otherwise.
    pub truncation: Option<Truncation>,
    /// Text put before every input, e.g. `"query: "` for E5-style models.
    #[serde(default)]
    pub prefix: String,
    /// Put instead before inputs a request marks as queries (`input_type: "query"`):
    /// asymmetric retrieval models (E5, BGE) embed queries and documents differently.
    pub query_prefix: Option<String>,
    /// Put instead before inputs a request marks as documents (`input_type: "document"`).
    pub document_prefix: Option<String>,
    /// The model was trained so that a prefix of its embedding is an embedding too
    /// (Matryoshka): requests may ask for fewer `dimensions`.
    #[serde(default)]
    pub matryoshka: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean of the token embeddings where the attention mask is 1.
    Mean,
    /// The first token's embedding (`[CLS]`).
    Cls,
    /// The last real token's embedding (decoder models).
    LastToken,
    /// The output is one vector per input already.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// A longer input is refused (413) with its token count.
    Refuse,
    /// The end of a longer input is dropped.
    Right,
    /// The start of a longer input is dropped.
    Left,
}

/// What a request says its inputs are, for models with a query or document prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputType {
    #[default]
    Unspecified,
    Query,
    Document,
}

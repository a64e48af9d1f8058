//! Text models: a `tokenizer.json` (Hugging Face `tokenizers` format) beside `model.onnx`
//! turns strings into the model's token inputs, and the model's answer into one embedding
//! per string. Implemented once, so every engine and route sees identical tensors.

mod inputs;
mod output;
mod pooling;
pub mod spec;

use std::path::{Path, PathBuf};

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams};

use crate::error::{Error, Result};
use crate::metadata::{ModelMetadata, Tensors};
pub use inputs::{Role, TextInput, TextInputs};
pub use pooling::normalize;
pub use spec::{InputType, Pooling, TextSpec, Truncation};

/// The tokenizer file looked for beside a model when `model.toml` names none.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Default most strings per request (OpenAI's own limit).
pub const DEFAULT_MAX_INPUTS: usize = 2048;
/// Default most bytes per string, checked before tokenizing.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 128 << 10;
/// Default most tokens (padding included) in one engine run, as TEI's `max_batch_tokens`.
pub const DEFAULT_MAX_BATCH_TOKENS: usize = 16_384;

/// Limits every text request is held to, whatever carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLimits {
    pub max_inputs: usize,
    pub max_input_bytes: usize,
    pub max_batch_tokens: usize,
}

impl Default for TextLimits {
    fn default() -> Self {
        TextLimits {
            max_inputs: DEFAULT_MAX_INPUTS,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            max_batch_tokens: DEFAULT_MAX_BATCH_TOKENS,
        }
    }
}

/// One input's tokens, special tokens included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

/// A model with its tokenizer and the way its answer becomes embeddings.
#[derive(Debug)]
pub struct TextModel {
    tokenizer: Tokenizer,
    inputs: TextInputs,
    output: String,
    pooling: Option<Pooling>,
    normalize: bool,
    max_tokens: Option<usize>,
    truncation: Truncation,
    prefix: String,
    query_prefix: Option<String>,
    document_prefix: Option<String>,
    matryoshka: bool,
    vocab_size: usize,
    pad_id: u32,
}

/// The tokenizer a model uses: the one `spec` names (relative to `base`), else
/// `tokenizer.json` in the first of `dirs` that has one.
pub fn find_tokenizer(spec: Option<&TextSpec>, base: &Path, dirs: &[&Path]) -> Option<PathBuf> {
    if let Some(path) = spec.and_then(|s| s.tokenizer.as_ref()) {
        return Some(base.join(path));
    }
    dirs.iter()
        .map(|dir| dir.join(TOKENIZER_FILE))
        .find(|path| path.is_file())
}

impl TextModel {
    /// Reads the tokenizer and recognises the model's token inputs and embedding output.
    pub fn load(
        tokenizer_path: &Path,
        metadata: &ModelMetadata,
        spec: &TextSpec,
    ) -> Result<TextModel> {
        let fail = |reason: String| Error::File {
            path: tokenizer_path.to_path_buf(),
            reason,
        };
        let mut tokenizer = Tokenizer::from_file(tokenizer_path)
            .map_err(|e| fail(format!("cannot read the tokenizer: {e}")))?;
        let inputs = TextInputs::recognise(metadata)?;
        let (output, pooling) = output::choose(metadata, spec)?;
        let declared = tokenizer.get_truncation().cloned();
        let max_tokens = spec
            .max_tokens
            .or(declared.as_ref().map(|t| t.max_length))
            .or(inputs.fixed_length);
        if let (Some(max), Some(fixed)) = (max_tokens, inputs.fixed_length)
            && max > fixed
        {
            return Err(Error::Text(format!(
                "max_tokens {max} is over the model's fixed sequence length {fixed}"
            )));
        }
        let truncation = spec.truncation.unwrap_or(match &declared {
            Some(t) if t.direction == TruncationDirection::Left => Truncation::Left,
            Some(_) => Truncation::Right,
            None => Truncation::Refuse,
        });
        let pad_id = tokenizer.get_padding().map_or(0, |p| p.pad_id);
        let params = match (truncation, max_tokens) {
            (Truncation::Right | Truncation::Left, Some(max_length)) => Some(TruncationParams {
                max_length,
                direction: match truncation {
                    Truncation::Left => TruncationDirection::Left,
                    _ => TruncationDirection::Right,
                },
                ..TruncationParams::default()
            }),
            _ => None,
        };
        tokenizer
            .with_truncation(params)
            .map_err(|e| fail(format!("cannot set truncation: {e}")))?;
        tokenizer.with_padding(None);
        let vocab_size = tokenizer.get_vocab_size(true);
        Ok(TextModel {
            tokenizer,
            inputs,
            output,
            pooling,
            normalize: spec.normalize,
            max_tokens,
            truncation,
            prefix: spec.prefix.clone(),
            query_prefix: spec.query_prefix.clone(),
            document_prefix: spec.document_prefix.clone(),
            matryoshka: spec.matryoshka,
            vocab_size,
            pad_id,
        })
    }

    /// The output the embeddings come from.
    pub fn output(&self) -> &str {
        &self.output
    }

    /// Most tokens per input, when there is a limit.
    pub fn max_tokens(&self) -> Option<usize> {
        self.max_tokens
    }

    pub fn truncation(&self) -> Truncation {
        self.truncation
    }

    /// The value each input is padded with: the tokenizer's pad id for token ids, 0 else.
    pub fn pad_values(&self) -> std::collections::BTreeMap<String, i64> {
        self.inputs
            .inputs
            .iter()
            .map(|input| {
                let value = match input.role {
                    Role::TokenIds => i64::from(self.pad_id),
                    _ => 0,
                };
                (input.name.clone(), value)
            })
            .collect()
    }

    /// Whether runs of different lengths may be padded to share an engine run: the model
    /// fixes neither its sequence length nor its row count.
    pub fn pads(&self) -> bool {
        self.inputs.fixed_length.is_none() && self.inputs.fixed_rows.is_none()
    }

    /// Whether the model's token rows are a batch (it does not fix their count).
    pub fn batches(&self) -> bool {
        self.inputs.fixed_rows.is_none()
    }

    /// Whether embeddings are scaled to unit length.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// Whether requests may ask for fewer dimensions than the model answers.
    pub fn matryoshka(&self) -> bool {
        self.matryoshka
    }

    /// Tokenizes `texts` (with the manifest's prefix), held to `limits` and the model's
    /// token limit.
    pub fn tokenize(&self, texts: &[&str], limits: &TextLimits) -> Result<Vec<Tokens>> {
        self.tokenize_as(texts, limits, InputType::Unspecified)
    }

    /// As `tokenize`, with the prefix of `input_type` where the manifest has one.
    pub fn tokenize_as(
        &self,
        texts: &[&str],
        limits: &TextLimits,
        input_type: InputType,
    ) -> Result<Vec<Tokens>> {
        check_count(texts.len(), limits)?;
        let prefix = match input_type {
            InputType::Query => self.query_prefix.as_deref(),
            InputType::Document => self.document_prefix.as_deref(),
            InputType::Unspecified => None,
        }
        .unwrap_or(&self.prefix);
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                if text.is_empty() {
                    return Err(Error::Text(format!("input {i} is empty")));
                }
                if text.len() > limits.max_input_bytes {
                    return Err(Error::TextTooLong(format!(
                        "input {i} is {} bytes, over the limit of {}",
                        text.len(),
                        limits.max_input_bytes
                    )));
                }
                let text = format!("{prefix}{text}");
                let encoding = self
                    .tokenizer
                    .encode_fast(text, true)
                    .map_err(|e| Error::Text(format!("input {i}: cannot tokenize: {e}")))?;
                let tokens = Tokens {
                    ids: encoding.get_ids().to_vec(),
                    type_ids: encoding.get_type_ids().to_vec(),
                };
                self.check_length(i, tokens)
            })
            .collect()
    }

    /// Token ids a client tokenized itself, checked against the vocabulary and the limits.
    pub fn tokens_from_ids(&self, lists: &[Vec<i64>], limits: &TextLimits) -> Result<Vec<Tokens>> {
        check_count(lists.len(), limits)?;
        lists
            .iter()
            .enumerate()
            .map(|(i, list)| {
                if list.is_empty() {
                    return Err(Error::Text(format!("input {i} has no tokens")));
                }
                let ids = list
                    .iter()
                    .map(|&id| {
                        u32::try_from(id)
                            .ok()
                            .filter(|&id| (id as usize) < self.vocab_size)
                            .ok_or_else(|| {
                                Error::Text(format!(
                                    "input {i}: token id {id} is outside the vocabulary (0..{})",
                                    self.vocab_size
                                ))
                            })
                    })
                    .collect::<Result<Vec<u32>>>()?;
                let mut tokens = Tokens {
                    type_ids: vec![0; ids.len()],
                    ids,
                };
                if let Some(max) = self.max_tokens
                    && tokens.ids.len() > max
                {
                    let keep = match self.truncation {
                        Truncation::Refuse => return self.check_length(i, tokens),
                        Truncation::Right => 0..max,
                        Truncation::Left => tokens.ids.len() - max..tokens.ids.len(),
                    };
                    tokens.ids = tokens.ids[keep.clone()].to_vec();
                    tokens.type_ids = tokens.type_ids[keep].to_vec();
                }
                Ok(tokens)
            })
            .collect()
    }

    fn check_length(&self, i: usize, tokens: Tokens) -> Result<Tokens> {
        match self.max_tokens {
            Some(max) if tokens.ids.len() > max => Err(Error::TextTooLong(format!(
                "input {i} has {} tokens, over the model's limit of {max}",
                tokens.ids.len()
            ))),
            _ => Ok(tokens),
        }
    }

    /// Groups inputs into engine runs: similar lengths together (least padding), at most
    /// `max_rows` rows and `max_batch_tokens` padded tokens per run (a longer input runs
    /// alone). Returns indices into `tokens`.
    pub fn runs(
        &self,
        tokens: &[Tokens],
        max_rows: usize,
        max_batch_tokens: usize,
    ) -> Vec<Vec<usize>> {
        let max_rows = self.inputs.fixed_rows.unwrap_or(max_rows).max(1);
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].ids.len()));
        let mut runs: Vec<Vec<usize>> = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        let mut length = 0;
        for i in order {
            let padded = self
                .inputs
                .fixed_length
                .unwrap_or(length.max(tokens[i].ids.len()));
            let fits = current.len() < max_rows && (current.len() + 1) * padded <= max_batch_tokens;
            if !current.is_empty() && !fits {
                runs.push(std::mem::take(&mut current));
            }
            if current.is_empty() {
                length = tokens[i].ids.len();
            }
            current.push(i);
        }
        if !current.is_empty() {
            runs.push(current);
        }
        runs
    }

    /// The model's inputs for one run of `rows`, padded to the longest (or the model's fixed
    /// length); a model with a fixed row count gets copies of the last row to fill it.
    pub fn tensors(&self, rows: &[&Tokens]) -> Result<Tensors> {
        let Some(last) = rows.last() else {
            return Err(Error::Text("no input".into()));
        };
        let mut rows = rows.to_vec();
        if let Some(fixed) = self.inputs.fixed_rows {
            rows.resize(fixed.max(rows.len()), last);
        }
        let longest = rows.iter().map(|r| r.ids.len()).max().unwrap_or(1);
        let length = self.inputs.fixed_length.unwrap_or(longest);
        self.inputs.tensors(&rows, length, self.pad_id)
    }

    /// One embedding per row of a run from the model's `outputs` (rows added to fill a
    /// fixed row count are dropped).
    pub fn embeddings(&self, outputs: &Tensors, rows: &[&Tokens]) -> Result<Vec<Vec<f32>>> {
        let output = outputs.get(&self.output).ok_or_else(|| Error::Engine {
            engine: "text",
            message: format!("the model answered no output `{}`", self.output),
        })?;
        let mut lengths: Vec<usize> = rows.iter().map(|r| r.ids.len()).collect();
        if let (Some(fixed), Some(&last)) = (self.inputs.fixed_rows, lengths.last()) {
            lengths.resize(fixed.max(lengths.len()), last);
        }
        let mut vectors = pooling::pool(output, &lengths, self.pooling)?;
        vectors.truncate(rows.len());
        if self.normalize {
            vectors.iter_mut().for_each(|v| normalize(v));
        }
        Ok(vectors)
    }
}

fn check_count(count: usize, limits: &TextLimits) -> Result<()> {
    if count == 0 {
        return Err(Error::Text("no input".into()));
    }
    if count > limits.max_inputs {
        return Err(Error::TextTooLong(format!(
            "{count} inputs, over the limit of {} per request",
            limits.max_inputs
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! Text in, embeddings out: tokenizing (on the blocking pool when large), runs grouped by
//! length within the token budget, each through the model's queue, pooled back in order.

use std::sync::Arc;
use std::time::Duration;

use destino_core::text::{InputType, TextModel, Tokens, normalize};
use destino_core::{Tensor, TensorData, Tensors};
use serde_json::Value;

use crate::batch::Padding;
use crate::blocking::cpu_heavy;
use crate::error::ApiError;
use crate::inference::infer_padded;
use crate::served::ServedModel;
use crate::service::Service;

/// What a client sends to embed: strings, or token ids it tokenized itself.
#[derive(Debug, Clone, PartialEq)]
pub enum TextInput {
    Strings(Vec<String>),
    TokenIds(Vec<Vec<i64>>),
}

/// What to embed, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRequest {
    pub input: TextInput,
    /// Queries or documents, for models with a prefix for either.
    pub input_type: InputType,
    /// Fewer dimensions than the model's, for a Matryoshka model.
    pub dimensions: Option<usize>,
}

impl TextRequest {
    /// Strings, embedded as the model embeds any input.
    pub fn strings(texts: Vec<String>) -> TextRequest {
        TextRequest {
            input: TextInput::Strings(texts),
            input_type: InputType::Unspecified,
            dimensions: None,
        }
    }
}

/// One embedding per input, in the order sent, and the tokens they took.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: usize,
}

/// The model's text support, or why it has none.
pub fn text_model(model: &ServedModel) -> Result<&Arc<TextModel>, ApiError> {
    model.text.as_ref().ok_or_else(|| {
        ApiError::invalid(format!(
            "model `{}` is not a text model: it has no tokenizer.json (see README: \"Text models\")",
            model.name
        ))
    })
}

/// Engine runs one `embed` call has queued at most: enough to keep every instance busy, so
/// one large request neither fills the model's queue nor refuses itself with 429.
pub fn runs_in_flight(model: &ServedModel) -> usize {
    (2 * model.instance_count).clamp(1, model.scheduler.policy().max_queue_size)
}

/// Embeds `request` with `model`; its `dimensions`, when given, must be the model's own or,
/// for a Matryoshka model (`model.toml`), fewer. `timeout` shortens the server's request
/// timeout.
pub async fn embed(
    service: &Service,
    model: &Arc<ServedModel>,
    request: TextRequest,
    timeout: Option<Duration>,
) -> Result<Embeddings, ApiError> {
    let TextRequest {
        input,
        input_type,
        dimensions,
    } = request;
    let text = text_model(model)?.clone();
    let limits = service.options.text;
    let size = match &input {
        TextInput::Strings(texts) => texts.iter().map(String::len).sum(),
        TextInput::TokenIds(lists) => lists.iter().map(Vec::len).sum::<usize>() * 8,
    };
    let tokenizer = text.clone();
    let tokens = cpu_heavy(size, "tokenizing", move || {
        let tokens = match &input {
            TextInput::Strings(texts) => {
                let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                tokenizer.tokenize_as(&texts, &limits, input_type)
            }
            TextInput::TokenIds(lists) => tokenizer.tokens_from_ids(lists, &limits),
        };
        tokens.map_err(ApiError::from)
    })
    .await?;
    let tokens = Arc::new(tokens);
    let max_rows = model.max_batch_size().unwrap_or(limits.max_inputs);
    let runs = text.runs(&tokens, max_rows, limits.max_batch_tokens);
    // Runs may be padded to share the engine with other requests' when the model fixes
    // neither length nor rows.
    let padding = text.pads().then(|| {
        Arc::new(Padding {
            values: text.pad_values(),
            max_tokens: limits.max_batch_tokens,
        })
    });
    let in_flight = runs_in_flight(model);
    let mut runs = runs.into_iter();
    let mut pending = tokio::task::JoinSet::new();
    let mut vectors = vec![Vec::new(); tokens.len()];
    loop {
        while pending.len() < in_flight {
            let Some(rows) = runs.next() else { break };
            let (service, model, text, tokens, padding) = (
                service.clone(),
                model.clone(),
                text.clone(),
                tokens.clone(),
                padding.clone(),
            );
            pending.spawn(async move {
                let run = Run {
                    text: &text,
                    tokens: &tokens,
                    rows: &rows,
                    padding,
                };
                let result = run.embed(&service, &model, timeout).await;
                (rows, result)
            });
        }
        let Some(joined) = pending.join_next().await else {
            break;
        };
        let (rows, result) =
            joined.map_err(|e| ApiError::internal(format!("an embedding run failed: {e}")))?;
        for (index, vector) in rows.into_iter().zip(result?) {
            vectors[index] = vector;
        }
    }
    let vectors = with_dimensions(vectors, dimensions, &text)?;
    Ok(Embeddings {
        vectors,
        prompt_tokens: tokens.iter().map(|t| t.ids.len()).sum(),
    })
}

/// One engine run: the inputs at `rows` of `tokens`, which the scheduler may pad to share
/// the run with other requests' (the pooling reads each row's own length).
struct Run<'a> {
    text: &'a TextModel,
    tokens: &'a [Tokens],
    rows: &'a [usize],
    padding: Option<Arc<Padding>>,
}

impl Run<'_> {
    async fn embed(
        self,
        service: &Service,
        model: &Arc<ServedModel>,
        timeout: Option<Duration>,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        let rows: Vec<&Tokens> = self.rows.iter().map(|&i| &self.tokens[i]).collect();
        let inputs = self.text.tensors(&rows)?;
        let reply = infer_padded(service, model, inputs, timeout, self.padding).await?;
        Ok(self.text.embeddings(&reply.outputs, &rows)?)
    }
}

/// The embeddings cut to `dimensions` where the model allows it (scaled to unit length
/// again when the model's are).
fn with_dimensions(
    mut vectors: Vec<Vec<f32>>,
    dimensions: Option<usize>,
    text: &TextModel,
) -> Result<Vec<Vec<f32>>, ApiError> {
    let native = vectors.first().map_or(0, Vec::len);
    let Some(wanted) = dimensions.filter(|&d| d != native) else {
        return Ok(vectors);
    };
    if !text.matryoshka() {
        return Err(ApiError::invalid(format!(
            "this model answers {native} dimensions and does not allow others (model.toml: [text] matryoshka = true)"
        )));
    }
    if wanted == 0 || wanted > native {
        return Err(ApiError::invalid(format!(
            "dimensions must be between 1 and {native}, got {wanted}"
        )));
    }
    for vector in &mut vectors {
        vector.truncate(wanted);
        if text.normalizes() {
            normalize(vector);
        }
    }
    Ok(vectors)
}

/// The embeddings as one `[inputs, dim]` tensor named after the model's embedding output,
/// for protocols that answer tensors.
pub fn embeddings_tensors(
    model: &ServedModel,
    embeddings: Embeddings,
) -> Result<Tensors, ApiError> {
    let output = text_model(model)?.output().to_string();
    let rows = embeddings.vectors.len();
    let dim = embeddings.vectors.first().map_or(0, Vec::len);
    let tensor = Tensor::new(vec![rows, dim], embeddings.vectors.concat())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Tensors::from([(output, tensor)]))
}

/// The strings of a tensor request to a text model: one BYTES input that is not one of the
/// model's own (`text`, say), any shape.
pub fn strings_input(model: &ServedModel, inputs: &Tensors) -> Option<Vec<String>> {
    model.text.as_ref()?;
    let [(name, tensor)] = inputs.iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    match tensor.data() {
        TensorData::String(strings) if model.metadata.input(name).is_none() => {
            Some(strings.clone())
        }
        _ => None,
    }
}

/// The strings of a JSON body to a text model: a list of strings, or `{"data": ...}`,
/// `{"inputs": ...}`, `{"input": ...}` or `{"text": ...}` holding a string or a list of
/// strings. `None` when the body is not of that form (it may be tensors).
pub fn strings_body(model: &ServedModel, body: &Value) -> Option<Vec<String>> {
    model.text.as_ref()?;
    let value = match body {
        Value::Object(fields) => {
            let [(key, value)] = fields.iter().collect::<Vec<_>>()[..] else {
                return None;
            };
            if !matches!(key.as_str(), "data" | "inputs" | "input" | "text") {
                return None;
            }
            value
        }
        Value::Array(_) => body,
        _ => return None,
    };
    match value {
        Value::String(text) => Some(vec![text.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

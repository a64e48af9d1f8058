//! The OpenAI embeddings protocol (`POST /v1/embeddings`, `GET /v1/models`): request
//! parsing, answers and error bodies, as OpenAI's API reference and its clients have them.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorKind};
use crate::served::ServedModel;
use crate::text::{Embeddings, TextInput, TextRequest};
use destino_core::text::InputType;

/// A parsed `POST /v1/embeddings` body.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsCall {
    pub model: String,
    pub request: TextRequest,
    /// `encoding_format: "base64"`: each embedding as little-endian f32 bytes in base64.
    pub base64: bool,
}

#[derive(Debug, Deserialize)]
struct Body {
    model: Option<String>,
    input: Option<Value>,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
    /// An extension (as NVIDIA's and Cohere's embedding APIs have): `query`, or `document`
    /// (`passage`), for models with a prefix for either.
    input_type: Option<String>,
}

pub fn parse_embeddings(body: &[u8]) -> Result<EmbeddingsCall, ApiError> {
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("malformed request body: {e}")))?;
    let model = body
        .model
        .ok_or_else(|| ApiError::invalid("`model` is required"))?;
    let input = text_input(
        body.input
            .ok_or_else(|| ApiError::invalid("`input` is required"))?,
    )?;
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "encoding_format must be \"float\" or \"base64\", got {other:?}"
            )));
        }
    };
    let input_type = match body.input_type.as_deref() {
        None => InputType::Unspecified,
        Some("query") => InputType::Query,
        Some("document" | "passage") => InputType::Document,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "input_type must be \"query\" or \"document\", got {other:?}"
            )));
        }
    };
    Ok(EmbeddingsCall {
        model,
        request: TextRequest {
            input,
            input_type,
            dimensions: body.dimensions,
        },
        base64,
    })
}

/// `input`: a string, a list of strings, a list of token ids, or a list of such lists.
fn text_input(input: Value) -> Result<TextInput, ApiError> {
    let shape_error = || {
        ApiError::invalid(
            "`input` must be a string, a list of strings, a list of token ids or a list of lists of token ids",
        )
    };
    let ids = |values: &[Value]| -> Result<Vec<i64>, ApiError> {
        values
            .iter()
            .map(|v| v.as_i64().ok_or_else(shape_error))
            .collect()
    };
    match input {
        Value::String(text) => Ok(TextInput::Strings(vec![text])),
        Value::Array(items) => match items.first() {
            None => Err(ApiError::invalid("`input` is an empty list")),
            Some(Value::String(_)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(shape_error()),
                })
                .collect::<Result<_, _>>()
                .map(TextInput::Strings),
            Some(Value::Number(_)) => Ok(TextInput::TokenIds(vec![ids(&items)?])),
            Some(Value::Array(_)) => items
                .iter()
                .map(|v| v.as_array().ok_or_else(shape_error).and_then(|a| ids(a)))
                .collect::<Result<_, _>>()
                .map(TextInput::TokenIds),
            Some(_) => Err(shape_error()),
        },
        _ => Err(shape_error()),
    }
}

/// The answer: one `embedding` object per input, in order, and the tokens used.
pub fn embeddings_response(model: &str, embeddings: &Embeddings, base64: bool) -> Value {
    let data: Vec<Value> = embeddings
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {
            "prompt_tokens": embeddings.prompt_tokens,
            "total_tokens": embeddings.prompt_tokens,
        },
    })
}

/// One entry of `GET /v1/models`.
pub fn model_object(model: &ServedModel) -> Value {
    json!({ "id": model.name, "object": "model", "created": 0, "owned_by": "destino" })
}

/// `GET /v1/models`: every model served.
pub fn models_list(models: &[std::sync::Arc<ServedModel>]) -> Value {
    let data: Vec<Value> = models.iter().map(|m| model_object(m)).collect();
    json!({ "object": "list", "data": data })
}

/// An error as OpenAI answers one: `{"error": {"message", "type", "param", "code"}}`.
pub fn error_body(error: &ApiError) -> Value {
    let kind = match error.kind {
        ErrorKind::Unauthenticated => "authentication_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::ResourceExhausted => "rate_limit_error",
        ErrorKind::Internal | ErrorKind::Unavailable | ErrorKind::DeadlineExceeded => {
            "server_error"
        }
        _ => "invalid_request_error",
    };
    json!({
        "error": {
            "message": error.public_message(),
            "type": kind,
            "param": null,
            "code": error.reason,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_form_parses() {
        let parse = |body: &str| parse_embeddings(body.as_bytes()).map(|c| c.request.input);
        assert_eq!(
            parse(r#"{"model":"m","input":"hi"}"#).unwrap(),
            TextInput::Strings(vec!["hi".into()])
        );
        assert_eq!(
            parse(r#"{"model":"m","input":["a","b"]}"#).unwrap(),
            TextInput::Strings(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            parse(r#"{"model":"m","input":[1,2]}"#).unwrap(),
            TextInput::TokenIds(vec![vec![1, 2]])
        );
        assert_eq!(
            parse(r#"{"model":"m","input":[[1],[2,3]]}"#).unwrap(),
            TextInput::TokenIds(vec![vec![1], vec![2, 3]])
        );
        let query = parse_embeddings(br#"{"model":"m","input":"a","input_type":"query"}"#);
        assert_eq!(query.unwrap().request.input_type, InputType::Query);
        for bad in [
            r#"{"model":"m","input":[]}"#,
            r#"{"model":"m","input":["a",1]}"#,
            r#"{"model":"m","input":[1.5]}"#,
            r#"{"model":"m","input":{"a":1}}"#,
            r#"{"input":"a"}"#,
            r#"{"model":"m"}"#,
            r#"{"model":"m","input":"a","encoding_format":"hex"}"#,
            r#"{"model":"m","input":"a","input_type":"question"}"#,
        ] {
            assert!(parse_embeddings(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let embeddings = Embeddings {
            vectors: vec![vec![1.0, -2.5]],
            prompt_tokens: 3,
        };
        let answer = embeddings_response("m", &embeddings, true);
        let text = answer["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        let floats: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(floats, [1.0, -2.5]);
        assert_eq!(answer["usage"]["prompt_tokens"], 3);
        let floats = embeddings_response("m", &embeddings, false);
        assert_eq!(floats["data"][0]["embedding"], json!([1.0, -2.5]));
        assert_eq!(floats["data"][0]["object"], "embedding");
    }
}

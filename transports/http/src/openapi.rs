//! `GET /swagger.json`: an OpenAPI 3 document generated from the routing table, with the
//! served models' inputs and outputs.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use crate::router::{RouteDoc, table};
use crate::state::AppState;
use destino_serving::v2::datatype::to_v2;

pub async fn document(State(state): State<AppState>) -> Json<Value> {
    let docs: Vec<RouteDoc> = table().into_iter().map(|(doc, _)| doc).collect();
    let models: Vec<Value> = state
        .service
        .registry
        .served()
        .iter()
        .map(|m| {
            let tensors = |infos: &[destino_core::TensorInfo]| -> Vec<Value> {
                infos
                    .iter()
                    .map(|i| json!({ "name": i.name, "datatype": to_v2(i.dtype), "shape": i.shape_text() }))
                    .collect()
            };
            json!({
                "name": m.name,
                "version": m.version.to_string(),
                "inputs": tensors(&m.metadata.inputs),
                "outputs": tensors(&m.metadata.outputs),
            })
        })
        .collect();
    Json(openapi(&docs, models))
}

fn operation(doc: &RouteDoc) -> Value {
    let parameters: Vec<Value> = doc
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    let mut op = json!({
        "summary": doc.summary,
        "parameters": parameters,
        "responses": {
            "200": { "description": "Success" },
            "default": {
                "description": "Error",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
            }
        }
    });
    if let Some(body) = doc.body {
        let content = if body == "Image" {
            json!({
                "image/jpeg": { "schema": { "type": "string", "format": "binary" } },
                "image/png": { "schema": { "type": "string", "format": "binary" } },
                "multipart/form-data": { "schema": { "type": "object", "additionalProperties": { "type": "string", "format": "binary" } } }
            })
        } else {
            json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{body}") } } })
        };
        op["requestBody"] = json!({ "required": true, "content": content });
    }
    op
}

fn openapi(docs: &[RouteDoc], models: Vec<Value>) -> Value {
    let mut paths = Map::new();
    for doc in docs {
        let entry = paths.entry(doc.path).or_insert_with(|| json!({}));
        entry[doc.method] = operation(doc);
    }
    let tensor = json!({
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": { "type": "string" },
            "shape": { "type": "array", "items": { "type": "integer", "minimum": 0 } },
            "datatype": { "type": "string", "enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"] },
            "parameters": { "type": "object" },
            "data": { "type": "array", "description": "Flat or nested, row-major" }
        }
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "destino",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "KServe V2 / Open Inference Protocol with Triton's binary tensor, classification and repository extensions; Azure ML inference server routes; image scoring; OpenAI-compatible embeddings."
        },
        "paths": paths,
        "components": { "schemas": {
            "Error": { "type": "object", "properties": { "error": { "type": "string" } } },
            "InferenceRequest": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": { "type": "string" },
                    "parameters": { "type": "object" },
                    "inputs": { "type": "array", "items": tensor },
                    "outputs": { "type": "array", "items": { "type": "object", "properties": { "name": { "type": "string" }, "parameters": { "type": "object" } } } }
                }
            },
            "EmbeddingsRequest": {
                "type": "object",
                "required": ["model", "input"],
                "properties": {
                    "model": { "type": "string" },
                    "input": { "description": "A string, a list of strings, a list of token ids, or a list of such lists" },
                    "encoding_format": { "type": "string", "enum": ["float", "base64"] },
                    "dimensions": { "type": "integer", "minimum": 1 }
                }
            },
            "UpdateDocument": {
                "type": "object",
                "required": ["model", "version", "url", "sha256"],
                "properties": {
                    "model": { "type": "string" },
                    "version": { "type": "integer", "minimum": 1 },
                    "url": { "type": "string", "description": "https:// or file://" },
                    "sha256": { "type": "string", "pattern": "^[0-9a-fA-F]{64}$" },
                    "files": { "type": "object", "additionalProperties": { "type": "object", "required": ["url", "sha256"], "properties": { "url": { "type": "string" }, "sha256": { "type": "string" } } } },
                    "id": { "type": "string" },
                    "signature": { "type": "string", "description": "base64 ed25519 signature (see README, Fleet updates)" }
                }
            },
            "ScoreRequest": {
                "type": "object",
                "description": "{\"data\": nested array} for single-input models, or one nested array per input name",
                "additionalProperties": { "type": "array" }
            }
        }},
        "x-models": models,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_once_per_method() {
        let docs: Vec<RouteDoc> = table().into_iter().map(|(d, _)| d).collect();
        let doc = openapi(&docs, vec![]);
        let infer = &doc["paths"]["/v2/models/{model}/versions/{version}/infer"]["post"];
        assert_eq!(infer["parameters"].as_array().unwrap().len(), 2);
        assert!(infer["requestBody"].is_object());
        assert!(doc["paths"]["/score"]["post"].is_object());
        assert_eq!(doc["paths"].as_object().unwrap().len(), docs.len());
    }
}

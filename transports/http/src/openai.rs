//! OpenAI-compatible routes: `POST /v1/embeddings`, `GET /v1/models[/{model}]`. Errors
//! answer in OpenAI's shape; the protocol itself is `destino_serving::openai`.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use destino_serving::ApiError;
use destino_serving::blocking::cpu_heavy;
use destino_serving::inference::on_model;
use destino_serving::openai::{
    embeddings_response, error_body, model_object, models_list, parse_embeddings,
};
use destino_serving::text::embed;

use crate::body::RawBody;
use crate::error::HttpError;
use crate::state::AppState;

pub async fn embeddings(State(state): State<AppState>, RawBody(body): RawBody) -> Response {
    let size = body.len();
    let call = match cpu_heavy(size, "parsing", move || parse_embeddings(&body)).await {
        Ok(call) => call,
        Err(e) => return openai_error(e),
    };
    let service = &state.service;
    let name = call.model.clone();
    let result = on_model(service, &name, None, async |model| {
        let embeddings = embed(service, &model, call.request, None).await?;
        let size = embeddings.vectors.iter().map(Vec::len).sum::<usize>() * 12;
        let (name, base64) = (call.model, call.base64);
        cpu_heavy(size, "encoding", move || {
            Ok(embeddings_response(&name, &embeddings, base64))
        })
        .await
    })
    .await;
    match result {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => openai_error(e),
    }
}

pub async fn models(State(state): State<AppState>) -> Response {
    Json(models_list(&state.service.registry.served())).into_response()
}

pub async fn model(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match state.service.registry.get(&name, None) {
        Ok(model) => Json(model_object(&model)).into_response(),
        Err(e) => openai_error(e.into()),
    }
}

fn openai_error(error: ApiError) -> Response {
    let body = error_body(&error);
    HttpError(error).respond(body)
}

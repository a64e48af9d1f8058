//! Model updates over MQTT: update documents in on the update topic (one at a time, each
//! acknowledged once its update has ended, so one cut short is delivered again), and every
//! update's states out on the status topic, retained, so the last state is there for anyone
//! who subscribes later.

use std::sync::Arc;

use destino_serving::Service;
use destino_serving::update::{ModelUpdates, UpdateDocument};
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Publish;
use serde_json::{Value, json};

/// Publishes every status of `updates` (the last of each model first) to `topic`.
pub fn publish_statuses(updates: &Arc<dyn ModelUpdates>, client: AsyncClient, topic: String) {
    updates.listen(Arc::new(move |status| {
        publish_status(&client, &topic, &status.to_json());
    }));
}

fn publish_status(client: &AsyncClient, topic: &str, status: &Value) {
    if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, true, status.to_string()) {
        tracing::warn!(topic, "cannot publish an update status: {e}");
    }
}

/// Runs the update a message carries to its end, then acknowledges the message. A document
/// that does not parse gets a `failed` status naming what is wrong.
pub async fn apply(service: &Service, client: &AsyncClient, status_topic: &str, publish: Publish) {
    if let Some(updates) = service.updates.clone() {
        match UpdateDocument::parse(&publish.payload) {
            Ok(document) => {
                let ended =
                    tokio::task::spawn_blocking(move || updates.apply(document, &|_| {})).await;
                if let Err(e) = ended {
                    tracing::error!("the update stopped: {e}");
                }
            }
            Err(e) => {
                let mut status = refused_document(&publish.payload);
                status["reason"] = Value::from(e.public_message());
                status["kind"] = Value::from(e.kind.as_str());
                publish_status(client, status_topic, &status);
            }
        }
    }
    if let Err(e) = client.ack(&publish).await {
        tracing::warn!("cannot acknowledge an update message: {e}");
    }
}

/// The `failed` status of a document that does not parse, with whatever of its `id`,
/// `model` and `version` can be read.
fn refused_document(payload: &[u8]) -> Value {
    let parsed: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let mut status = json!({ "state": "failed" });
    for field in ["id", "model", "version"] {
        if let Some(value) = parsed.get(field).filter(|v| v.is_string() || v.is_u64()) {
            status[field] = value.clone();
        }
    }
    status
}

//! The MQTT bridge: messages in, predictions (or errors) out, through the same registry,
//! queues and protocol code as the HTTP API.
//!
//! Delivery is at least once: a message is acknowledged only after its answer is queued, the
//! session survives disconnects (clean start off), and the broker sends at most
//! `max_in_flight` unacknowledged messages (MQTT 5 receive maximum), so a slow model holds
//! messages at the broker instead of in memory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use destino_serving::message::{error_json, score_message};
use destino_serving::{ApiError, ServedModel, Service};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, PublishProperties, RetainForwardRule};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::args::{MqttArgs, Qos};
use crate::topics::matches;

/// Connects, subscribes and scores until the process stops; connection failures are retried
/// with exponential backoff.
pub async fn run(service: Service, args: MqttArgs, options: MqttOptions) {
    let max_in_flight = usize::from(args.max_in_flight.max(1));
    // Each message queues at most an answer and an acknowledgement: the request channel never
    // blocks a handler.
    let (client, mut events) = AsyncClient::new(options, 2 * max_in_flight + 16);
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let max_backoff = Duration::from_millis(args.max_backoff_ms.max(100));
    let update_topics = args.update_topic().zip(args.update_status_topic());
    if let (Some(updates), Some((_, status))) = (&service.updates, &update_topics) {
        crate::updates::publish_statuses(updates, client.clone(), status.clone());
    }
    let context = Arc::new(Context {
        service,
        client,
        args,
        update_topics,
    });
    let mut backoff = Duration::from_millis(100);
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(100);
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                context.subscribe(ack.session_present).await;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                tracing::info!(codes = ?ack.return_codes, "subscribed");
                // Scripts and tests read this line to know the bridge is live.
                let mut topics = context.args.subscribe.clone();
                topics.extend(
                    context
                        .update_topics
                        .iter()
                        .map(|(update, _)| update.clone()),
                );
                println!("mqtt: subscribed to {}", topics.join(", "));
            }
            Ok(Event::Incoming(Packet::Publish(publish))) if context.is_update(&publish.topic) => {
                tokio::spawn(context.clone().update(publish));
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                // The broker honours the receive maximum, so this wait is short; for QoS 0
                // floods it pushes back on the connection.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                tokio::spawn(context.clone().answer(publish, permit));
            }
            Ok(Event::Incoming(Packet::Disconnect(disconnect))) => {
                tracing::warn!(reason = ?disconnect.reason_code, "the broker disconnected");
            }
            Ok(_) => {}
            Err(e) => {
                match &e {
                    ConnectionError::ConnectionRefused(code) => {
                        tracing::error!(?code, "the MQTT broker refused the connection");
                    }
                    _ => tracing::warn!("MQTT connection lost: {e}"),
                }
                tracing::info!(delay_ms = backoff.as_millis(), "reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

struct Context {
    service: Service,
    client: AsyncClient,
    args: MqttArgs,
    /// The update topic and the status topic, when updates come over MQTT.
    update_topics: Option<(String, String)>,
}

/// Where and what to answer for one message.
struct Answer {
    topic: String,
    payload: Vec<u8>,
    /// The outcome in user properties: `status` (200, or the error kind's status code, as
    /// the HTTP API answers) and, for errors, `kind`. The one place this transport maps errors.
    status: u16,
    kind: Option<&'static str>,
    header_length: Option<usize>,
}

impl Context {
    fn qos(&self) -> QoS {
        match self.args.qos {
            Qos::AtMostOnce => QoS::AtMostOnce,
            Qos::AtLeastOnce => QoS::AtLeastOnce,
            Qos::ExactlyOnce => QoS::ExactlyOnce,
        }
    }

    fn is_update(&self, topic: &[u8]) -> bool {
        self.update_topics
            .as_ref()
            .is_some_and(|(update, _)| update.as_bytes() == topic)
    }

    async fn update(self: Arc<Self>, publish: Publish) {
        if let Some((_, status)) = &self.update_topics {
            crate::updates::apply(&self.service, &self.client, status, publish).await;
        }
    }

    /// Subscribes to the scored topics unless the broker kept this client's session, and to
    /// the update topic always (a session from before updates were on lacks it); a
    /// retained update document comes once per subscription, not once per reconnection.
    async fn subscribe(&self, session_present: bool) {
        let mut filters: Vec<Filter> = Vec::new();
        if !session_present {
            filters.extend(
                self.args
                    .subscribe
                    .iter()
                    .map(|topic| Filter::new(topic.clone(), self.qos())),
            );
        }
        if let Some((update, _)) = &self.update_topics {
            // Updates are never dropped: at least once, whatever --qos says.
            let mut filter = Filter::new(update.clone(), QoS::AtLeastOnce);
            filter.retain_forward_rule = RetainForwardRule::OnNewSubscribe;
            filters.push(filter);
        }
        if filters.is_empty() {
            return;
        }
        if let Err(e) = self.client.subscribe_many(filters).await {
            tracing::error!("cannot subscribe: {e}");
        }
    }

    async fn answer(self: Arc<Self>, publish: Publish, _permit: OwnedSemaphorePermit) {
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        let properties = publish.properties.clone().unwrap_or_default();
        let answer = self
            .score(&topic, &properties, publish.payload.clone())
            .await;
        let mut user_properties = vec![
            ("status".to_string(), answer.status.to_string()),
            ("source_topic".to_string(), topic.clone()),
        ];
        if let Some(kind) = answer.kind {
            user_properties.push(("kind".to_string(), kind.to_string()));
        }
        if let Some(length) = answer.header_length {
            user_properties.push((
                "Inference-Header-Content-Length".to_string(),
                length.to_string(),
            ));
        }
        let out = PublishProperties {
            correlation_data: properties.correlation_data.clone(),
            content_type: Some(
                if answer.header_length.is_some() {
                    "application/octet-stream"
                } else {
                    "application/json"
                }
                .into(),
            ),
            user_properties,
            ..PublishProperties::default()
        };
        let published = self
            .client
            .publish_with_properties(answer.topic, self.qos(), false, answer.payload, out)
            .await;
        match published {
            // Only an answered message is acknowledged; otherwise the broker redelivers it.
            Ok(()) => {
                if let Err(e) = self.client.ack(&publish).await {
                    tracing::warn!(%topic, "cannot acknowledge: {e}");
                }
            }
            Err(e) => tracing::error!(%topic, "cannot publish the answer: {e}"),
        }
    }

    async fn score(&self, topic: &str, properties: &PublishProperties, payload: Bytes) -> Answer {
        let filter = self
            .args
            .subscribe
            .iter()
            .find(|filter| matches(filter, topic))
            .map_or(topic, String::as_str);
        let requested = properties
            .user_properties
            .iter()
            .find(|(key, _)| key == "model")
            .map(|(_, value)| value.as_str())
            .or(self.args.model.as_deref());
        let result = match self.model(requested) {
            Ok(model) => {
                score_message(&self.service, &model, payload.clone(), self.args.top_k).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(encoded) => Answer {
                topic: properties
                    .response_topic
                    .clone()
                    .unwrap_or_else(|| self.args.predictions().render(filter, topic)),
                payload: encoded.body,
                status: 200,
                kind: None,
                header_length: encoded.header_length,
            },
            Err(e) => {
                tracing::info!(%topic, kind = e.kind.as_str(), "message refused: {}", e.public_message());
                // Only a refused message needs its id read back out of the payload.
                let mut body = error_json(&e, request_id(&payload).as_deref());
                body["topic"] = serde_json::Value::from(topic);
                Answer {
                    topic: properties
                        .response_topic
                        .clone()
                        .unwrap_or_else(|| self.args.errors().render(filter, topic)),
                    payload: body.to_string().into_bytes(),
                    status: e.kind.status_code(),
                    kind: Some(e.kind.as_str()),
                    header_length: None,
                }
            }
        }
    }

    fn model(&self, requested: Option<&str>) -> Result<Arc<ServedModel>, ApiError> {
        if let Some(name) = requested {
            return Ok(self.service.registry.get(name, None)?);
        }
        self.service.registry.only_served().map_err(|_| {
            ApiError::invalid(
                "several models are served: name one with --model or the message's `model` user property",
            )
        })
    }
}

/// The `id` of a JSON request, so that even a refused request can be matched to its answer.
fn request_id(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        id: Option<String>,
    }
    serde_json::from_slice::<Probe>(payload).ok()?.id
}

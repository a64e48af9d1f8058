//! The MQTT transport's flags: the broker, the session, the topics. (`destino-edge mqtt`
//! adds everything `serve` takes.)

use std::path::PathBuf;

use crate::topics::TopicTemplate;
use clap::{Args, ValueEnum};

/// MQTT quality of service for subscriptions and answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Qos {
    #[value(name = "0")]
    AtMostOnce,
    #[value(name = "1")]
    AtLeastOnce,
    #[value(name = "2")]
    ExactlyOnce,
}

#[derive(Debug, Clone, Args)]
pub struct MqttArgs {
    /// Broker host name or address.
    #[arg(long, env = "DESTINO_MQTT_BROKER", default_value = "localhost")]
    pub broker: String,
    /// Broker port [default: 1883, or 8883 with --tls].
    #[arg(long, env = "DESTINO_MQTT_PORT")]
    pub mqtt_port: Option<u16>,
    /// Client id; keep it stable so the broker keeps this client's session (and queued
    /// messages) across restarts [default: destino-edge-HOSTNAME].
    #[arg(long, env = "DESTINO_MQTT_CLIENT_ID")]
    pub client_id: Option<String>,
    #[arg(long, env = "DESTINO_MQTT_USERNAME")]
    pub username: Option<String>,
    #[arg(long, env = "DESTINO_MQTT_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Connect with TLS (the system's roots unless --ca-file).
    #[arg(long, env = "DESTINO_MQTT_TLS")]
    pub tls: bool,
    /// PEM file of the CA certificates that sign the broker's certificate (implies --tls).
    #[arg(long, env = "DESTINO_MQTT_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --client-key).
    #[arg(long, env = "DESTINO_MQTT_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, env = "DESTINO_MQTT_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Topic filters to score messages from (repeat or comma-separate).
    #[arg(
        long,
        env = "DESTINO_MQTT_SUBSCRIBE",
        value_delimiter = ',',
        default_value = "devices/+/frames"
    )]
    pub subscribe: Vec<String>,
    /// Where predictions go: {topic}, {parent}, {1}.. ({+} levels) and {#} come from the
    /// input topic. A message's MQTT 5 response topic takes precedence.
    #[arg(
        long,
        env = "DESTINO_MQTT_PREDICTIONS",
        default_value = "{parent}/predictions"
    )]
    pub predictions_topic: String,
    /// Where errors go (same placeholders).
    #[arg(long, env = "DESTINO_MQTT_ERRORS", default_value = "{parent}/errors")]
    pub errors_topic: String,
    /// QoS of the subscriptions and of the published answers.
    #[arg(long, env = "DESTINO_MQTT_QOS", value_enum, default_value = "1")]
    pub qos: Qos,
    /// Messages scored at once; the broker holds back the rest (MQTT 5 receive maximum).
    #[arg(long, env = "DESTINO_MQTT_MAX_IN_FLIGHT", default_value_t = 8)]
    pub max_in_flight: u16,
    /// The model that scores messages; a message's `model` user property overrides it.
    /// Needed when the repository serves several.
    #[arg(long, env = "DESTINO_MQTT_MODEL")]
    pub model: Option<String>,
    /// Classes per image in predictions of image messages.
    #[arg(long, env = "DESTINO_MQTT_TOP_K")]
    pub top_k: Option<usize>,
    #[arg(long, env = "DESTINO_MQTT_KEEP_ALIVE_SECS", default_value_t = 30)]
    pub keep_alive_secs: u64,
    /// How long the broker keeps this client's session (subscriptions, queued messages)
    /// while it is disconnected, in seconds.
    #[arg(long, env = "DESTINO_MQTT_SESSION_EXPIRY_SECS", default_value_t = 3600)]
    pub session_expiry_secs: u32,
    /// Longest wait between reconnection attempts (they back off exponentially from 100 ms).
    #[arg(long, env = "DESTINO_MQTT_MAX_BACKOFF_MS", default_value_t = 10_000)]
    pub max_backoff_ms: u64,
    /// Take model update documents on this topic (`{client_id}` is this client's id), e.g.
    /// `devices/{client_id}/models/update`. Off when unset.
    #[arg(long, env = "DESTINO_MQTT_UPDATE_TOPIC")]
    pub update_topic: Option<String>,
    /// Where each update's states go, retained (same placeholder) [default: the update
    /// topic and `/status`].
    #[arg(
        long,
        env = "DESTINO_MQTT_UPDATE_STATUS_TOPIC",
        requires = "update_topic"
    )]
    pub update_status_topic: Option<String>,
}

impl MqttArgs {
    pub fn uses_tls(&self) -> bool {
        self.tls || self.ca_file.is_some()
    }

    pub fn port(&self) -> u16 {
        self.mqtt_port
            .unwrap_or(if self.uses_tls() { 8883 } else { 1883 })
    }

    pub fn client_id(&self) -> String {
        self.client_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| "device".into());
            format!("destino-edge-{host}")
        })
    }

    /// The update topic, with the client id filled in.
    pub fn update_topic(&self) -> Option<String> {
        let topic = self.update_topic.as_ref()?;
        Some(topic.replace("{client_id}", &self.client_id()))
    }

    /// Where update statuses go, with the client id filled in.
    pub fn update_status_topic(&self) -> Option<String> {
        let topic = self.update_topic()?;
        Some(match &self.update_status_topic {
            Some(status) => status.replace("{client_id}", &self.client_id()),
            None => format!("{topic}/status"),
        })
    }

    pub fn predictions(&self) -> TopicTemplate {
        TopicTemplate(self.predictions_topic.clone())
    }

    pub fn errors(&self) -> TopicTemplate {
        TopicTemplate(self.errors_topic.clone())
    }
}

//! destino's MQTT 5 transport, for IoT pipelines: messages (encoded images, V2 JSON
//! requests, `/score` bodies) arrive on subscribed topics; predictions go to a topic derived
//! from each message's topic, with its MQTT 5 correlation data. Errors carry their kind's
//! status in the `status` user property (the one place this transport maps them). With an
//! update topic, model update documents arrive there and their states go out retained.

pub mod args;
pub mod bridge;
pub mod connection;
pub mod topics;
pub mod updates;

use std::time::Duration;

use destino_serving::Service;

pub use args::{MqttArgs, Qos};
pub use connection::options;

/// Runs the bridge once startup loading is done (messages wait at the broker until then):
/// the models that load are warm, and with none loaded the update topic still listens, so a
/// device can receive its first model.
pub async fn serve(service: Service, args: MqttArgs, options: rumqttc::v5::MqttOptions) {
    while !service.registry.startup_done() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bridge::run(service, args, options).await;
}

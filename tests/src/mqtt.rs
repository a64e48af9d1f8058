//! A real mosquitto broker on a free loopback port (persistent, so sessions survive a
//! restart), and a blocking MQTT 5 client that collects what it receives.

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::{Client, Event, MqttOptions};

/// The mosquitto executable: `$MOSQUITTO`, else Debian's path, else `PATH`.
fn mosquitto() -> PathBuf {
    if let Some(path) = std::env::var_os("MOSQUITTO") {
        return path.into();
    }
    let debian = Path::new("/usr/sbin/mosquitto");
    if debian.exists() {
        return debian.into();
    }
    "mosquitto".into()
}

/// A mosquitto process; killed when dropped.
#[derive(Debug)]
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    /// Starts an anonymous broker; `extra` lines are added to its listener configuration.
    pub fn start(extra: &str) -> Broker {
        let dir = tempfile::tempdir().expect("broker folder");
        // Run as root, mosquitto drops to its own user, which must write its database here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .expect("broker folder permissions");
        let port = crate::server::free_port();
        let config = format!(
            "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\n\
             allow_anonymous true\nlog_dest stderr\n{extra}\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), config).expect("broker config");
        let mut broker = Broker {
            port,
            dir,
            child: None,
        };
        broker.run();
        broker
    }

    /// The broker's folder, for certificates and password files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn run(&mut self) {
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(self.log_file())
            .spawn()
            .expect("starting mosquitto (Debian package `mosquitto`; scripts/test installs it)");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker's log, appended to across restarts.
    fn log_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .expect("broker log")
    }

    /// Stops the broker with SIGTERM (it saves its sessions) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A received message: topic, payload, correlation data and user properties.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub correlation: Option<String>,
    pub user_properties: HashMap<String, String>,
}

impl Message {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| {
            panic!(
                "{}: not JSON ({e}): {}",
                self.topic,
                String::from_utf8_lossy(&self.payload)
            )
        })
    }
}

/// A test device: publishes frames, receives what it subscribed to. Its session persists, so
/// it receives what was published to it while the broker restarted.
pub struct Device {
    client: Client,
    received: Receiver<Message>,
}

impl Device {
    pub fn connect(
        port: u16,
        id: &str,
        subscriptions: &[&str],
        credentials: Option<(&str, &str)>,
    ) -> Device {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_clean_start(false)
            .set_session_expiry_interval(Some(600))
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(Some(16 << 20));
        if let Some((username, password)) = credentials {
            options.set_credentials(username, password);
        }
        let (client, mut connection) = Client::new(options, 256);
        let (tx, received) = channel();
        let subscriber = client.clone();
        let subscriptions: Vec<String> = subscriptions.iter().map(|s| s.to_string()).collect();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    // A broker without our session (first connection, or one that lost it)
                    // needs the subscriptions again.
                    Ok(Event::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                        for topic in &subscriptions {
                            let _ = subscriber.try_subscribe(topic.as_str(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if tx.send(message(&publish)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // The broker is away: retry the connection shortly.
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        Device { client, received }
    }

    /// Publishes `payload` at QoS 1 with correlation data and user properties.
    pub fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        correlation: &str,
        user_properties: &[(&str, &str)],
        response_topic: Option<&str>,
    ) {
        let properties = PublishProperties {
            correlation_data: Some(correlation.as_bytes().to_vec().into()),
            response_topic: response_topic.map(str::to_string),
            user_properties: user_properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..PublishProperties::default()
        };
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload.to_vec(), properties)
            .expect("queueing a publish");
    }

    /// The next message, or `None` after `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Message> {
        self.received.recv_timeout(timeout).ok()
    }

    /// Messages until `count` have arrived or `timeout` passes.
    pub fn collect(&self, count: usize, timeout: Duration) -> Vec<Message> {
        let deadline = Instant::now() + timeout;
        let mut messages = Vec::new();
        while messages.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(message) => messages.push(message),
                None => break,
            }
        }
        messages
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Device")
    }
}

fn message(publish: &Publish) -> Message {
    let properties = publish.properties.clone().unwrap_or_default();
    Message {
        topic: String::from_utf8_lossy(&publish.topic).into_owned(),
        payload: publish.payload.to_vec(),
        correlation: properties
            .correlation_data
            .map(|c| String::from_utf8_lossy(&c).into_owned()),
        user_properties: properties.user_properties.into_iter().collect(),
    }
}

/// The arguments of `destino-edge mqtt` against the broker on `port`, serving `repository`
/// (its HTTP API on a free loopback port).
pub fn bridge_args(port: u16, repository: &Path) -> Vec<String> {
    [
        "mqtt",
        "--broker",
        "127.0.0.1",
        "--mqtt-port",
        &port.to_string(),
        "--model-repository",
        &repository.display().to_string(),
        "--http-address",
        "127.0.0.1",
        "--http-port",
        "0",
    ]
    .map(String::from)
    .to_vec()
}

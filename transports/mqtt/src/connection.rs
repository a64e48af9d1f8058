//! Broker connection options: a persistent MQTT 5 session, flow control, credentials, TLS.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::args::MqttArgs;

/// Options for `args`, with messages up to `max_message_bytes`; fails on unreadable or
/// invalid TLS files, before any connection.
pub fn options(args: &MqttArgs, max_message_bytes: usize) -> Result<MqttOptions, String> {
    let mut options = MqttOptions::new(args.client_id(), &args.broker, args.port());
    options
        .set_keep_alive(Duration::from_secs(args.keep_alive_secs.max(5)))
        // Acknowledge a message only once its answer is queued for publishing: a message the
        // broker saw acknowledged has been answered (or its answer is in flight).
        .set_manual_acks(true)
        .set_clean_start(false)
        .set_session_expiry_interval(Some(args.session_expiry_secs))
        .set_receive_maximum(Some(args.max_in_flight.max(1)))
        .set_max_packet_size(Some(u32::try_from(max_message_bytes).unwrap_or(u32::MAX)));
    if let Some(username) = &args.username {
        options.set_credentials(username, args.password.clone().unwrap_or_default());
    }
    if args.uses_tls() {
        options.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(
            tls_config(args)?,
        ))));
    }
    Ok(options)
}

fn tls_config(args: &MqttArgs) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &args.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("no CA certificate in {}", path.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("no system CA certificates found; pass --ca-file".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots);
    match (&args.client_cert, &args.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read client certificate {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read client key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("invalid client certificate or key: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

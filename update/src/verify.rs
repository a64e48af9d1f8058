//! What makes a download trustworthy: its SHA-256, and the document's ed25519 signature
//! under the public key the device was started with.

use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use destino_serving::update::UpdateDocument;
use destino_serving::{ApiError, ErrorKind};
use ring::digest::{Context, SHA256};
use ring::signature::{ED25519, UnparsedPublicKey};

/// The DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The lowercase hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut context = Context::new(&SHA256);
    let mut buffer = vec![0u8; 256 << 10];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        context.update(&buffer[..n]);
    }
    Ok(context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// An ed25519 public key updates must be signed with.
#[derive(Debug, Clone)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Reads a key file: PEM (`-----BEGIN PUBLIC KEY-----`, as `openssl pkey -pubout`
    /// writes), base64 of the 32 key bytes, or the 32 bytes themselves.
    pub fn read(path: &Path) -> Result<PublicKey, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the public key {}: {e}", path.display()))?;
        PublicKey::parse(&bytes)
            .map_err(|e| format!("the public key {} is not usable: {e}", path.display()))
    }

    pub fn parse(bytes: &[u8]) -> Result<PublicKey, String> {
        let raw = match std::str::from_utf8(bytes) {
            Ok(text) if text.contains("-----BEGIN PUBLIC KEY-----") => {
                let body: String = text
                    .lines()
                    .filter(|line| !line.starts_with("-----"))
                    .collect();
                let der = STANDARD
                    .decode(body.trim())
                    .map_err(|e| format!("bad PEM: {e}"))?;
                der.strip_prefix(&SPKI_PREFIX)
                    .ok_or("not an ed25519 public key (RFC 8410)")?
                    .to_vec()
            }
            Ok(text) if bytes.len() != 32 => STANDARD
                .decode(text.trim())
                .map_err(|e| format!("neither PEM nor base64: {e}"))?,
            _ => bytes.to_vec(),
        };
        let key: [u8; 32] = raw
            .try_into()
            .map_err(|raw: Vec<u8>| format!("{} key bytes, an ed25519 key has 32", raw.len()))?;
        Ok(PublicKey(key))
    }

    /// Checks the document's `signature` over its signed message.
    pub fn verify(&self, document: &UpdateDocument) -> Result<(), ApiError> {
        let refused = |why: &str| {
            ApiError::new(
                ErrorKind::Unauthenticated,
                "signature",
                format!("update refused: {why}"),
            )
        };
        let signature = document.signature.as_deref().ok_or_else(|| {
            refused("it is not signed, and this device takes signed updates only")
        })?;
        let signature = STANDARD
            .decode(signature.trim())
            .map_err(|_| refused("`signature` is not base64"))?;
        UnparsedPublicKey::new(&ED25519, self.0)
            .verify(document.signed_message().as_bytes(), &signature)
            .map_err(|_| refused("the signature does not verify with this device's key"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn document(signature: Option<String>) -> UpdateDocument {
        let body = serde_json::json!({
            "model": "m", "version": 2, "url": "file:///m.onnx", "sha256": "a".repeat(64),
        });
        let mut document = UpdateDocument::parse(body.to_string().as_bytes()).unwrap();
        document.signature = signature;
        document
    }

    #[test]
    fn a_signature_verifies_only_under_its_key_and_document() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public: &[u8] = pair.public_key().as_ref();
        let key = PublicKey::parse(STANDARD.encode(public).as_bytes()).unwrap();
        let mut spki = SPKI_PREFIX.to_vec();
        spki.extend_from_slice(public);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&spki)
        );
        let from_pem = PublicKey::parse(pem.as_bytes()).unwrap();
        assert_eq!(from_pem.0, key.0);

        let unsigned = document(None);
        let signature = pair.sign(unsigned.signed_message().as_bytes());
        let signed = document(Some(STANDARD.encode(signature.as_ref())));
        key.verify(&signed).unwrap();
        assert_eq!(
            key.verify(&unsigned).unwrap_err().kind,
            ErrorKind::Unauthenticated
        );
        let mut tampered = signed.clone();
        tampered.version = 3;
        assert!(key.verify(&tampered).is_err());
        assert!(PublicKey::parse(b"c2hvcnQ=").is_err());
    }

    #[test]
    fn hashes_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

//! Model updates, transport-neutral: the update document a fleet sends (MQTT or HTTP), the
//! states an update reports, the message its optional signature covers, and the
//! [`ModelUpdates`] a binary plugs in (destino-update downloads, verifies and installs).

use std::collections::BTreeMap;
use std::sync::Arc;

use destino_core::repository::{MODEL_FILE, is_valid_model_name};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorKind};

/// Where one file of a version comes from and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    pub url: String,
    pub sha256: String,
}

/// `{"model", "version", "url", "sha256", "files": {NAME: {"url", "sha256"}}, "id",
/// "signature"}`: install `model` version `version` from these files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDocument {
    pub model: String,
    pub version: u64,
    pub url: String,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Base64 of an ed25519 signature over [`UpdateDocument::signed_message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Longest `id` accepted (it is echoed in every status).
const MAX_ID_BYTES: usize = 256;

impl UpdateDocument {
    /// Parses and checks a document: names safe as paths, only `https` and `file` URLs,
    /// checksums of 64 hex digits (kept lowercase).
    pub fn parse(body: &[u8]) -> Result<UpdateDocument, ApiError> {
        let mut document: UpdateDocument = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("malformed update document: {e}")))?;
        document.check()?;
        document.sha256.make_ascii_lowercase();
        for file in document.files.values_mut() {
            file.sha256.make_ascii_lowercase();
        }
        Ok(document)
    }

    fn check(&self) -> Result<(), ApiError> {
        if !is_valid_model_name(&self.model) {
            return Err(ApiError::invalid(format!(
                "invalid model name `{}`: use letters, digits, `_`, `-` and `.`, not starting with `.`",
                self.model
            )));
        }
        if self.version == 0 {
            return Err(ApiError::invalid("`version` must be 1 or more"));
        }
        if self.id.as_ref().is_some_and(|id| id.len() > MAX_ID_BYTES) {
            return Err(ApiError::invalid(format!(
                "`id` is longer than {MAX_ID_BYTES} bytes"
            )));
        }
        for name in self.files.keys() {
            if !is_valid_file_name(name) {
                return Err(ApiError::invalid(format!(
                    "invalid file name `{name}` in `files`: a plain name of letters, digits, `_`, `-` and `.`, not starting with `.`, and not {MODEL_FILE} (the top-level `url` is)"
                )));
            }
        }
        for (name, source) in self.sources() {
            check_url(name, &source.url)?;
            if source.sha256.len() != 64 || !source.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::invalid(format!(
                    "`sha256` of {name} must be 64 hexadecimal digits"
                )));
            }
        }
        Ok(())
    }

    /// Every file of the version, `model.onnx` first, each with its source.
    pub fn sources(&self) -> Vec<(&str, FileSource)> {
        let model = FileSource {
            url: self.url.clone(),
            sha256: self.sha256.clone(),
        };
        let mut sources = vec![(MODEL_FILE, model)];
        sources.extend(self.files.iter().map(|(n, s)| (n.as_str(), s.clone())));
        sources
    }

    /// What a signature covers: the model, the version and every file's checksum (URLs are
    /// not signed: a mirror may serve the same bytes). One line each, files by name:
    /// `destino-update/1\nmodel NAME\nversion N\nfile model.onnx SHA256\n...`.
    pub fn signed_message(&self) -> String {
        let mut files: Vec<(&str, String)> = self
            .sources()
            .into_iter()
            .map(|(name, source)| (name, source.sha256.to_ascii_lowercase()))
            .collect();
        files.sort();
        let mut message = format!(
            "destino-update/1\nmodel {}\nversion {}\n",
            self.model, self.version
        );
        for (name, sha256) in files {
            message.push_str(&format!("file {name} {sha256}\n"));
        }
        message
    }
}

fn is_valid_file_name(name: &str) -> bool {
    name != MODEL_FILE && is_valid_model_name(name)
}

fn check_url(name: &str, url: &str) -> Result<(), ApiError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("https" | "file") => Ok(()),
        _ => Err(ApiError::invalid(format!(
            "the URL of {name} must be https:// or file://"
        ))),
    }
}

/// The steps an update reports, in order; `failed` ends one before anything was installed,
/// `rolled_back` one whose installed version did not load (it was removed again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Downloading,
    Verifying,
    Loading,
    Ready,
    Failed,
    RolledBack,
}

impl UpdateState {
    /// The state's name in status messages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Downloading => "downloading",
            UpdateState::Verifying => "verifying",
            UpdateState::Loading => "loading",
            UpdateState::Ready => "ready",
            UpdateState::Failed => "failed",
            UpdateState::RolledBack => "rolled_back",
        }
    }
}

/// One status message: `{"id", "model", "version", "state", "reason", "kind"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub model: String,
    pub version: u64,
    pub state: UpdateState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a failure: its kind's name, as error answers carry it.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "kind_name")]
    pub kind: Option<ErrorKind>,
}

fn kind_name<S: serde::Serializer>(kind: &Option<ErrorKind>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.map_or("", ErrorKind::as_str))
}

impl UpdateStatus {
    pub fn new(document: &UpdateDocument, state: UpdateState) -> UpdateStatus {
        UpdateStatus {
            id: document.id.clone(),
            model: document.model.clone(),
            version: document.version,
            state,
            reason: None,
            kind: None,
        }
    }

    /// The status that ends an update with `error`.
    pub fn failed(document: &UpdateDocument, state: UpdateState, error: &ApiError) -> Self {
        UpdateStatus {
            reason: Some(error.public_message().to_string()),
            kind: Some(error.kind),
            ..UpdateStatus::new(document, state)
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(
            self.state,
            UpdateState::Ready | UpdateState::Failed | UpdateState::RolledBack
        )
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Receives every status of every update, as it happens.
pub type StatusListener = Arc<dyn Fn(&UpdateStatus) + Send + Sync>;

/// Installs model versions from update documents. Blocking: call it off the executor.
pub trait ModelUpdates: Send + Sync + std::fmt::Debug {
    /// Runs one update to its end and returns its final status (`ready`, `failed` or
    /// `rolled_back`); `report` and every listener see each state on the way. Updates run
    /// one at a time.
    fn apply(
        &self,
        document: UpdateDocument,
        report: &(dyn Fn(&UpdateStatus) + Sync),
    ) -> UpdateStatus;

    /// Adds a listener; it is first given the last status of each model updated so far.
    fn listen(&self, listener: StatusListener);

    /// The last status of `model`'s updates since start (the one in progress, if any).
    fn last(&self, model: &str) -> Option<UpdateStatus>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(extra: &str) -> Result<UpdateDocument, ApiError> {
        let body = format!(
            r#"{{"model": "digits", "version": 3, "url": "https://example.org/m.onnx",
                "sha256": "{}"{extra}}}"#,
            "AB".repeat(32)
        );
        UpdateDocument::parse(body.as_bytes())
    }

    #[test]
    fn parses_and_lowercases_checksums() {
        let doc = document(r#", "id": "u-1""#).unwrap();
        assert_eq!(doc.sha256, "ab".repeat(32));
        assert_eq!(doc.id.as_deref(), Some("u-1"));
        assert_eq!(doc.sources().len(), 1);
    }

    #[test]
    fn refuses_unsafe_names_schemes_and_checksums() {
        let sha = "0".repeat(64);
        let cases = [
            format!(r#", "files": {{"../x": {{"url": "https://a/b", "sha256": "{sha}"}}}}"#),
            format!(r#", "files": {{"a/b": {{"url": "https://a/b", "sha256": "{sha}"}}}}"#),
            format!(r#", "files": {{"model.onnx": {{"url": "https://a/b", "sha256": "{sha}"}}}}"#),
            format!(r#", "files": {{"l.txt": {{"url": "http://a/b", "sha256": "{sha}"}}}}"#),
            r#", "files": {"l.txt": {"url": "https://a/b", "sha256": "xyz"}}"#.to_string(),
            r#", "size": 3"#.to_string(),
        ];
        for extra in cases {
            let error = document(&extra).unwrap_err();
            assert_eq!(error.kind, ErrorKind::InvalidArgument, "{extra}");
        }
        let body = br#"{"model": "..", "version": 1, "url": "file:///m", "sha256": "0"}"#;
        assert!(UpdateDocument::parse(body).is_err());
        let body =
            format!(r#"{{"model": "m", "version": 0, "url": "file:///m", "sha256": "{sha}"}}"#);
        assert!(UpdateDocument::parse(body.as_bytes()).is_err());
    }

    #[test]
    fn signed_message_names_every_file_in_order() {
        let sha = "c".repeat(64);
        let doc = document(&format!(
            r#", "files": {{"z.txt": {{"url": "file:///z", "sha256": "{sha}"}}, "labels.txt": {{"url": "file:///l", "sha256": "{sha}"}}}}"#
        ))
        .unwrap();
        let ab = "ab".repeat(32);
        assert_eq!(
            doc.signed_message(),
            format!(
                "destino-update/1\nmodel digits\nversion 3\nfile labels.txt {sha}\nfile model.onnx {ab}\nfile z.txt {sha}\n"
            )
        );
    }

    #[test]
    fn statuses_carry_the_failure() {
        let doc = document("").unwrap();
        let status = UpdateStatus::failed(
            &doc,
            UpdateState::Failed,
            &ApiError::new(ErrorKind::BadGateway, "download", "checksum mismatch"),
        );
        assert_eq!(
            status.to_json(),
            serde_json::json!({"model": "digits", "version": 3, "state": "failed",
                "reason": "checksum mismatch", "kind": "bad_gateway"})
        );
        assert!(status.is_final());
    }
}

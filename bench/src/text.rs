//! `--text FILE`: a text model's sentences per second over `/v1/embeddings` (one sentence per
//! request, the clients taking the file's sentences in turn; the server tokenizes), against
//! the in-process engine on the same sentences tokenized beforehand; and what tokenizing
//! costs per sentence, as a share of the server's CPU time per request.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use destino_core::text::{TextLimits, TextModel, TextSpec, Tokens};
use destino_core::{OnnxModel, Tensors};

/// The sentences of `file` (one per line), each as its own request body and its own
/// pre-tokenized engine inputs; and the mean tokenizing time per sentence, in microseconds.
pub struct TextCase {
    pub bodies: Vec<Vec<u8>>,
    pub inputs: Vec<Tensors>,
    pub tokenize_us: f64,
}

pub fn case(model_name: &str, model: &Path, tokenizer: &Path, file: &Path) -> Result<TextCase> {
    let sentences: Vec<String> = std::fs::read_to_string(file)
        .with_context(|| format!("{}", file.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    anyhow::ensure!(!sentences.is_empty(), "{} has no sentences", file.display());
    let metadata = OnnxModel::read(model)?.metadata;
    let text = TextModel::load(tokenizer, &metadata, &TextSpec::default())?;
    let limits = TextLimits::default();
    let mut inputs = Vec::new();
    for sentence in &sentences {
        let tokens: Vec<Tokens> = text.tokenize(&[sentence], &limits)?;
        inputs.push(text.tensors(&tokens.iter().collect::<Vec<_>>())?);
    }
    let rounds = 2000usize.div_ceil(sentences.len());
    let start = Instant::now();
    for _ in 0..rounds {
        for sentence in &sentences {
            std::hint::black_box(text.tokenize(&[sentence], &limits)?);
        }
    }
    let tokenize_us = start.elapsed().as_secs_f64() * 1e6 / (rounds * sentences.len()) as f64;
    let bodies = sentences
        .iter()
        .map(|s| serde_json::to_vec(&serde_json::json!({ "model": model_name, "input": s })))
        .collect::<Result<_, _>>()?;
    Ok(TextCase {
        bodies,
        inputs,
        tokenize_us,
    })
}

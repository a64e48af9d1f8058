use std::path::{Path, PathBuf};

use super::*;
use crate::npz::read_npy_file;
use crate::onnx::OnnxModel;
use crate::tensor::Tensor;

fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/models")
        .join(name)
}

fn minilm(spec: &TextSpec) -> TextModel {
    let model = OnnxModel::read(&shared("paraphrase_minilm_l3.onnx")).unwrap();
    let tokenizer = shared("paraphrase_minilm_l3.tokenizer.json");
    TextModel::load(&tokenizer, &model.metadata, spec).unwrap()
}

fn sentences() -> Vec<String> {
    std::fs::read_to_string(shared("paraphrase_minilm_l3.sentences.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn minilm_is_recognised_without_a_manifest() {
    let model = minilm(&TextSpec::default());
    assert_eq!(model.output(), "461");
    // Its tokenizer.json truncates at 128 tokens.
    assert_eq!(model.max_tokens(), Some(128));
    assert_eq!(model.truncation(), Truncation::Right);
}

#[test]
fn tokenized_sentences_equal_the_reference_inputs() {
    let model = minilm(&TextSpec::default());
    let texts = sentences();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens = model.tokenize(&texts, &TextLimits::default()).unwrap();
    let rows: Vec<&Tokens> = tokens.iter().collect();
    let tensors = model.tensors(&rows).unwrap();
    for name in ["input_ids", "attention_mask"] {
        let reference: Tensor =
            read_npy_file(&shared(&format!("paraphrase_minilm_l3.input.{name}.npy"))).unwrap();
        assert_eq!(tensors[name], reference, "{name}");
    }
}

#[test]
fn limits_and_bad_input_are_client_errors() {
    let spec = TextSpec {
        truncation: Some(Truncation::Refuse),
        max_tokens: Some(8),
        ..TextSpec::default()
    };
    let model = minilm(&spec);
    let limits = TextLimits {
        max_inputs: 2,
        max_input_bytes: 64,
        ..TextLimits::default()
    };
    let too_long = model
        .tokenize(&["one two three four five six seven eight"], &limits)
        .unwrap_err();
    assert!(matches!(too_long, Error::TextTooLong(_)), "{too_long}");
    assert!(too_long.to_string().contains("10 tokens"), "{too_long}");
    let errors = [
        model.tokenize(&[""], &limits).unwrap_err(),
        model.tokenize(&["a"; 3], &limits).unwrap_err(),
        model.tokenize(&[&"a".repeat(65)], &limits).unwrap_err(),
        model.tokenize(&[], &limits).unwrap_err(),
        model
            .tokens_from_ids(&[vec![101, 30_522]], &limits)
            .unwrap_err(),
        model.tokens_from_ids(&[vec![-1]], &limits).unwrap_err(),
    ];
    for error in errors {
        assert!(error.is_client_error(), "{error}");
    }
    let ids = model
        .tokens_from_ids(&[vec![101, 7, 102]], &limits)
        .unwrap();
    assert_eq!(ids[0].ids, [101, 7, 102]);
}

#[test]
fn truncation_keeps_the_special_tokens() {
    let spec = TextSpec {
        max_tokens: Some(5),
        ..TextSpec::default()
    };
    let model = minilm(&spec);
    let tokens = model
        .tokenize(&["one two three four five six"], &TextLimits::default())
        .unwrap();
    assert_eq!(tokens[0].ids.len(), 5);
    assert_eq!(tokens[0].ids.first(), Some(&101));
    assert_eq!(tokens[0].ids.last(), Some(&102));
}

#[test]
fn runs_group_similar_lengths_within_the_budgets() {
    let model = minilm(&TextSpec::default());
    let tokens: Vec<Tokens> = [3usize, 10, 4, 9, 2]
        .iter()
        .map(|&n| Tokens {
            ids: vec![1; n],
            type_ids: vec![0; n],
        })
        .collect();
    assert_eq!(
        model.runs(&tokens, 2, 1000),
        [vec![1, 3], vec![2, 0], vec![4]]
    );
    // 20 padded tokens per run at most: the 10-token input and the 9-token one fit together.
    assert_eq!(model.runs(&tokens, 8, 20), [vec![1, 3], vec![2, 0, 4]]);
    assert_eq!(
        model.runs(&tokens, 8, 5),
        [vec![1], vec![3], vec![2], vec![0], vec![4]]
    );
}

#[test]
fn manifest_names_output_and_pooling() {
    let spec = TextSpec {
        output: Some("onnx::Shape_422".into()),
        pooling: Some(Pooling::Mean),
        normalize: true,
        ..TextSpec::default()
    };
    let model = minilm(&spec);
    assert_eq!(model.output(), "onnx::Shape_422");
    let missing = TextSpec {
        output: Some("nope".into()),
        ..TextSpec::default()
    };
    let metadata = OnnxModel::read(&shared("paraphrase_minilm_l3.onnx"))
        .unwrap()
        .metadata;
    let tokenizer = shared("paraphrase_minilm_l3.tokenizer.json");
    assert!(TextModel::load(&tokenizer, &metadata, &missing).is_err());
}

#[test]
fn queries_and_documents_get_their_prefixes() {
    let spec = TextSpec {
        prefix: "passage: ".into(),
        query_prefix: Some("query: ".into()),
        ..TextSpec::default()
    };
    let model = minilm(&spec);
    let plain = minilm(&TextSpec::default());
    let limits = TextLimits::default();
    let tokens = |m: &TextModel, text: &str, kind| m.tokenize_as(&[text], &limits, kind).unwrap();
    let query = tokens(&model, "hello", InputType::Query);
    assert_eq!(
        query,
        tokens(&plain, "query: hello", InputType::Unspecified)
    );
    // No document prefix: the default prefix applies.
    let document = tokens(&model, "hello", InputType::Document);
    assert_eq!(
        document,
        tokens(&plain, "passage: hello", InputType::Unspecified)
    );
    assert_eq!(model.tokenize(&["hello"], &limits).unwrap(), document);
}

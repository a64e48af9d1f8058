//! A stateful model streamed frame by frame: silero VAD over 8 s of audio, its state fed back
//! each step, gives the reference per-frame speech probabilities on both engines.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use destino_core::npz::read_npy_file;
use destino_core::{Engine, EngineConfig, Tensor, Tensors};
use destino_ort::OrtEngine;
use destino_tests::{init_onnxruntime, model_path, shared_models};
use destino_tract::TractEngine;

const CONTEXT: usize = 64;
const FRAME: usize = 512;

/// Samples of a 16-bit PCM mono WAV file, scaled to [-1, 1).
fn read_wav(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(&bytes[..4], b"RIFF");
    let mut offset = 12;
    while offset + 8 <= bytes.len() {
        let id = &bytes[offset..offset + 4];
        let size = u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().unwrap()) as usize;
        if id == b"data" {
            return bytes[offset + 8..offset + 8 + size]
                .chunks_exact(2)
                .map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0)
                .collect();
        }
        offset += 8 + size;
    }
    panic!("no data chunk");
}

fn stream(engine: &mut dyn Engine, audio: &[f32]) -> Vec<f32> {
    let mut state = Tensor::new(vec![2, 1, 128], vec![0f32; 256]).unwrap();
    let mut context = vec![0f32; CONTEXT];
    let mut probabilities = Vec::new();
    for frame in audio.chunks_exact(FRAME) {
        let mut window = context.clone();
        window.extend_from_slice(frame);
        let mut inputs = Tensors::new();
        inputs.insert(
            "input".into(),
            Tensor::new(vec![1, CONTEXT + FRAME], window).unwrap(),
        );
        inputs.insert("state".into(), state);
        inputs.insert("sr".into(), Tensor::scalar(16000i64));
        let mut outputs = engine.run(&inputs).unwrap();
        probabilities.push(outputs["output"].as_f32().unwrap()[0]);
        state = outputs.remove("stateN").unwrap();
        context = frame[FRAME - CONTEXT..].to_vec();
    }
    probabilities
}

fn assert_streams_like_reference(engine: &mut dyn Engine) {
    let audio = read_wav(&std::fs::read(shared_models().join("silero_vad.speech16k.wav")).unwrap());
    let reference = read_npy_file(&shared_models().join("silero_vad.sequence_probs.npy")).unwrap();
    let reference = reference.as_f32().unwrap();
    let probabilities = stream(engine, &audio);
    assert_eq!(probabilities.len(), reference.len());
    let worst = probabilities
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst < 1e-3,
        "{}: worst per-frame difference {worst}",
        engine.name()
    );
    // Silence at both ends, speech in the middle.
    assert!(probabilities[5..30].iter().all(|&p| p < 0.1));
    assert!(probabilities[100..150].iter().filter(|&&p| p > 0.5).count() > 40);
}

#[test]
fn onnxruntime_streams_silero() {
    init_onnxruntime();
    let mut engine = OrtEngine::load(&model_path("silero_vad"), &EngineConfig::default()).unwrap();
    assert_streams_like_reference(&mut engine);
}

#[test]
fn tract_streams_silero() {
    let mut engine =
        TractEngine::load(&model_path("silero_vad"), &EngineConfig::default()).unwrap();
    assert_streams_like_reference(&mut engine);
}

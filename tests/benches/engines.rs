//! Batch-1 latency of the in-process engines on the shared models, ONNX Runtime vs tract,
//! at the thread counts named in each benchmark id. Run: `cargo bench -p destino-tests`.

#![allow(clippy::unwrap_used)] // benchmark code: a panic is a failed run

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use destino_core::{Engine, EngineConfig};
use destino_ort::OrtEngine;
use destino_tests::{init_onnxruntime, reference_case};
use destino_tract::TractEngine;

fn engines(c: &mut Criterion) {
    init_onnxruntime();
    for model in [
        "efficientnet_lite0",
        "ppocr_mobile_v2_cls",
        "silero_vad",
        "sklearn_digits_rf",
    ] {
        let case = reference_case(model, None);
        let mut group = c.benchmark_group(model);
        let configs = [
            ("ort", 1, false),
            ("ort", 2, false),
            ("ort", 2, true),
            ("tract", 1, false),
            ("tract", 2, false),
        ];
        for (engine, threads, spinning) in configs {
            let config = EngineConfig {
                threads,
                spinning,
                ..EngineConfig::default()
            };
            let mut loaded: Box<dyn Engine> = match engine {
                "ort" => Box::new(OrtEngine::load(&case.model, &config).unwrap()),
                _ => Box::new(TractEngine::load(&case.model, &config).unwrap()),
            };
            let id = format!(
                "{engine}/threads={threads}{}",
                if spinning { "/spinning" } else { "" }
            );
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter(|| loaded.run(&case.inputs).unwrap());
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = engines
}
criterion_main!(benches);

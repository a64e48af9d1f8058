//! The request and response paths around the engine, in process: V2 JSON decoding of an
//! EfficientNet-sized input (150 528 FP32 elements) in both member orders and with pixel
//! values, JSON encoding of the same tensor, its decoding from Triton's binary data, and
//! image preprocessing of each shared PNG image (decode; resize, crop,
//! normalise). Run: `cargo bench -p destino-serving --bench codecs`.

#![allow(clippy::unwrap_used)] // benchmark code: a panic is a failed run

use std::path::PathBuf;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use destino_core::Tensor;
use destino_core::manifest::Manifest;
use destino_core::preprocess::{DEFAULT_MAX_PIXELS, decode_image};
use destino_core::tensor::TensorData;
use destino_serving::v2::decode::to_tensor;
use destino_serving::v2::request::parse;
use destino_serving::v2::response::FlatData;

const SHAPE: [usize; 4] = [1, 3, 224, 224];

/// Arbitrary floats (eight or nine digits each), or normalised pixels as an image gives
/// them (`k / 128 - 1`: up to seven digits).
fn input(pixels: bool) -> Tensor {
    let count = SHAPE.iter().product::<usize>();
    let data: Vec<f32> = (0..count)
        .map(|i| match pixels {
            false => ((i * 7919) % 1000) as f32 / 997.0 - 0.5,
            true => ((i * 7919) % 256) as f32 / 128.0 - 1.0,
        })
        .collect();
    Tensor::new(SHAPE.to_vec(), data).unwrap()
}

/// A V2 request for `tensor`: `datatype` before `data` (as tritonclient sends it) or after
/// (sorted keys).
fn request(tensor: &Tensor, sorted: bool) -> Bytes {
    let data = serde_json::to_string(&FlatData(tensor.data())).unwrap();
    let input = if sorted {
        format!(r#"{{"data":{data},"datatype":"FP32","name":"input","shape":[1,3,224,224]}}"#)
    } else {
        format!(r#"{{"name":"input","shape":[1,3,224,224],"datatype":"FP32","data":{data}}}"#)
    };
    Bytes::from(format!(r#"{{"inputs":[{input}]}}"#))
}

fn decode(body: &Bytes) -> Tensor {
    let request = parse(body.clone(), None).unwrap();
    to_tensor(request.inputs.into_iter().next().unwrap()).unwrap()
}

fn json(c: &mut Criterion) {
    let tensor = input(false);
    let mut group = c.benchmark_group("v2_json");
    group.sample_size(30);
    for (id, sorted, pixels) in [
        ("decode/client_order", false, false),
        ("decode/sorted_keys", true, false),
        ("decode/client_order_pixels", false, true),
    ] {
        let tensor = input(pixels);
        let body = request(&tensor, sorted);
        assert_eq!(decode(&body), tensor);
        group.bench_function(id, |b| b.iter(|| decode(&body)));
    }
    group.bench_function("encode", |b| {
        b.iter(|| serde_json::to_vec(&FlatData(tensor.data())).unwrap())
    });
    group.finish();
}

fn image(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = Manifest::load_from_dir(&root.join("models/efficientnet_lite0")).unwrap();
    let spec = manifest.inputs["input"].image.clone().unwrap();
    let shared = std::env::var("DESTINO_SHARED_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("../shared/models"));
    for name in ["astronaut", "chelsea", "coffee"] {
        let png = std::fs::read(shared.join(format!("images/{name}.png"))).unwrap();
        let decoded = decode_image(&png, DEFAULT_MAX_PIXELS).unwrap();
        let mut group = c.benchmark_group(format!("preprocess_{name}_png"));
        group.sample_size(30);
        group.bench_function("decode", |b| {
            b.iter(|| decode_image(&png, DEFAULT_MAX_PIXELS).unwrap())
        });
        group.bench_function("tensor_from_bytes", |b| {
            b.iter(|| spec.tensor_from_bytes(&png, DEFAULT_MAX_PIXELS).unwrap())
        });
        group.bench_function("resize_crop_normalise", |b| {
            b.iter(|| {
                spec.tensor_from_image(&decoded, DEFAULT_MAX_PIXELS)
                    .unwrap()
            })
        });
        group.finish();
    }
}

/// The same input as Triton binary data (an `Inference-Header-Content-Length` body).
fn binary(c: &mut Criterion) {
    let tensor = input(false);
    let header = br#"{"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":602112}}]}"#;
    let mut body = header.to_vec();
    let TensorData::F32(values) = tensor.data() else {
        unreachable!("an FP32 input")
    };
    body.extend(values.iter().flat_map(|x| x.to_le_bytes()));
    let body = Bytes::from(body);
    let decode = |body: &Bytes| {
        let request = parse(body.clone(), Some(header.len())).unwrap();
        to_tensor(request.inputs.into_iter().next().unwrap()).unwrap()
    };
    assert_eq!(decode(&body), tensor);
    let mut group = c.benchmark_group("v2_binary");
    group.sample_size(30);
    group.bench_function("decode", |b| b.iter(|| decode(&body)));
    group.finish();
}

criterion_group!(benches, json, binary, image);
criterion_main!(benches);

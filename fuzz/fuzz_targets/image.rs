//! Encoded images (PNG, JPEG) as `/score`, `/predict` and V2 image inputs receive them:
//! decode under a pixel limit, then preprocess with three typical `model.toml` specs.
#![no_main]

use destino_core::manifest::{ChannelOrder, Filter, ImageSpec, Layout, Resize};
use destino_core::preprocess::decode_image;
use libfuzzer_sys::fuzz_target;

const MAX_PIXELS: u64 = 4096 * 4096;

fn specs() -> [ImageSpec; 3] {
    let base = ImageSpec {
        resize: Resize::ShorterSide(256),
        filter: Filter::Bilinear,
        crop: Some([224, 224]),
        pad: None,
        channel_order: ChannelOrder::Rgb,
        scale: 1.0,
        mean: [127.0; 3],
        std: [128.0; 3],
        layout: Layout::Nchw,
    };
    [
        // EfficientNet / ImageNet: shorter side 256, centre crop 224, NCHW.
        base.clone(),
        // Exact 224×224, BGR, NHWC, 0..1 scaled.
        ImageSpec {
            resize: Resize::Exact([224, 224]),
            filter: Filter::Nearest,
            crop: None,
            channel_order: ChannelOrder::Bgr,
            scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            layout: Layout::Nhwc,
            ..base.clone()
        },
        // OCR line: fit height 48, at most 192 wide, zero-padded to 48×192.
        ImageSpec {
            resize: Resize::FitHeight {
                height: 48,
                max_width: 192,
            },
            filter: Filter::Bicubic,
            crop: None,
            pad: Some([48, 192]),
            ..base
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let specs = specs();
    // `tensor_from_bytes` decodes PNGs into kept buffers: it must agree with decoding into an
    // image of its own, for one spec (every spec would make the target slow).
    let direct = specs[0].tensor_from_bytes(data, MAX_PIXELS);
    let Ok(image) = decode_image(data, MAX_PIXELS) else {
        assert!(direct.is_err(), "decoded into kept buffers only");
        return;
    };
    for (index, spec) in specs.iter().enumerate() {
        let tensor = spec.tensor_from_image(&image, MAX_PIXELS);
        if index == 0 {
            assert_eq!(direct.as_ref().ok(), tensor.as_ref().ok());
        }
    }
});

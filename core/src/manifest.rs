//! `model.toml`: what a model needs that ONNX cannot say — image preprocessing for an input,
//! postprocessing for an output, batching limits. Optional: raw-tensor models need none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::metadata::{Dim, ModelMetadata};
use crate::text::TextSpec;

pub const MANIFEST_FILE: &str = "model.toml";

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Largest batch the model is run with (0: batching off); unset: the server's default.
    pub max_batch_size: Option<usize>,
    /// Longest a request may wait for others to join its batch, in microseconds; unset: the
    /// server's default.
    pub max_queue_delay_us: Option<u64>,
    /// Most requests waiting for this model before new ones are refused; unset: the server's default.
    pub max_queue_size: Option<usize>,
    /// Engine instances serving this model in parallel, each on its own thread; unset: the
    /// server's default.
    pub instances: Option<usize>,
    /// Sample inputs for the warm-up run: an `.npz` (relative to this file) whose arrays are
    /// named after the model's inputs. Unset: inputs made from the declared shapes, when
    /// they determine one (README: "Warm-up").
    pub warmup: Option<PathBuf>,
    /// Preprocessing per input name.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    /// Postprocessing per output name.
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputSpec>,
    /// A text model's tokenizer, pooling and limits (`tokenizer.json` alone needs none).
    pub text: Option<TextSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub image: Option<ImageSpec>,
}

/// Turns an encoded image into a tensor: decode → resize → centre crop → pad → channel order
/// → `(pixel * scale - mean) / std` → layout.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    pub resize: Resize,
    #[serde(default)]
    pub filter: Filter,
    /// Centre crop to `[height, width]` after resizing.
    pub crop: Option<[u32; 2]>,
    /// Zero-pad on the right and bottom to `[height, width]` after normalising.
    pub pad: Option<[u32; 2]>,
    #[serde(default)]
    pub channel_order: ChannelOrder,
    /// Multiplies 0..255 pixel values before `mean` and `std` apply.
    #[serde(default = "one")]
    pub scale: f32,
    #[serde(default = "zeros")]
    pub mean: [f32; 3],
    #[serde(default = "ones")]
    pub std: [f32; 3],
    #[serde(default)]
    pub layout: Layout,
}

impl ImageSpec {
    /// `[height, width]` of every tensor this spec makes, when it does not depend on the
    /// image: padded, cropped or resized to an exact size.
    pub fn output_size(&self) -> Option<[u32; 2]> {
        self.pad.or(self.crop).or(match self.resize {
            Resize::Exact(size) => Some(size),
            Resize::ShorterSide(_) | Resize::FitHeight { .. } => None,
        })
    }

    /// The shape of every tensor this spec makes, when it does not depend on the image.
    pub fn output_shape(&self) -> Option<Vec<usize>> {
        let [h, w] = self.output_size()?.map(|n| n as usize);
        Some(match self.layout {
            Layout::Nchw => vec![1, 3, h, w],
            Layout::Nhwc => vec![1, h, w, 3],
        })
    }
}

fn one() -> f32 {
    1.0
}
fn zeros() -> [f32; 3] {
    [0.0; 3]
}
fn ones() -> [f32; 3] {
    [1.0; 3]
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Resize {
    /// Scale so the shorter side has this length, keeping the aspect ratio.
    ShorterSide(u32),
    /// Scale to exactly `[height, width]`.
    Exact([u32; 2]),
    /// Scale to `height`, keeping the aspect ratio, but no wider than `max_width`.
    FitHeight { height: u32, max_width: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    Nearest,
    #[default]
    Bilinear,
    Bicubic,
    Lanczos3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelOrder {
    #[default]
    Rgb,
    Bgr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    #[serde(default)]
    pub activation: Activation,
    /// Labels file, one label per line (line i names class i), relative to the manifest.
    pub labels: Option<PathBuf>,
    /// How many classes a classification answer lists.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
}

fn default_top_k() -> usize {
    5
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    None,
    Softmax,
    Sigmoid,
}

impl Manifest {
    /// Reads `model.toml` from `dir`; no file means the default manifest.
    pub fn load_from_dir(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Manifest::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(Error::Manifest {
                path,
                reason: e.to_string(),
            }),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        toml::from_str(text).map_err(|e| Error::Manifest {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Checks the manifest against the model it describes: named inputs and outputs exist,
    /// image inputs are rank-4 float tensors with 3 channels where the layout puts them.
    pub fn check(&self, metadata: &ModelMetadata, path: &Path) -> Result<()> {
        let fail = |reason: String| Error::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        for (name, spec) in &self.inputs {
            let info = metadata
                .input(name)
                .ok_or_else(|| fail(format!("the model has no input `{name}`")))?;
            let Some(image) = &spec.image else { continue };
            if !info.dtype.is_float() {
                return Err(fail(format!(
                    "image input `{name}` must be a float tensor, the model declares {}",
                    info.dtype
                )));
            }
            if let Some(dims) = &info.shape {
                let channel_axis = match image.layout {
                    Layout::Nchw => 1,
                    Layout::Nhwc => 3,
                };
                if dims.len() != 4 {
                    return Err(fail(format!(
                        "image input `{name}` must be rank 4, the model declares {}",
                        info.shape_text()
                    )));
                }
                if let Dim::Fixed(c) = dims[channel_axis]
                    && c != 3
                {
                    return Err(fail(format!(
                        "image input `{name}` has {c} channels on axis {channel_axis}; the layout needs 3"
                    )));
                }
            }
        }
        for name in self.outputs.keys() {
            if metadata.output(name).is_none() {
                return Err(fail(format!("the model has no output `{name}`")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGENET: &str = r#"
max_batch_size = 8

[inputs.input.image]
resize = { shorter_side = 256 }
crop = [224, 224]
mean = [127.0, 127.0, 127.0]
std = [128.0, 128.0, 128.0]

[outputs.logits]
activation = "softmax"
labels = "labels.txt"
"#;

    #[test]
    fn parses_an_image_classifier() {
        let m = Manifest::parse(IMAGENET, Path::new("model.toml")).unwrap();
        assert_eq!(m.max_batch_size, Some(8));
        let image = m.inputs["input"].image.as_ref().unwrap();
        assert_eq!(image.resize, Resize::ShorterSide(256));
        assert_eq!(image.layout, Layout::Nchw);
        assert_eq!(image.channel_order, ChannelOrder::Rgb);
        assert_eq!(image.scale, 1.0);
        assert_eq!(m.outputs["logits"].activation, Activation::Softmax);
        assert_eq!(m.outputs["logits"].top_k, 5);
    }

    #[test]
    fn parses_fit_height_and_rejects_typos() {
        let text = r#"
[inputs.x.image]
resize = { fit_height = { height = 48, max_width = 192 } }
pad = [48, 192]
channel_order = "bgr"
"#;
        let m = Manifest::parse(text, Path::new("m.toml")).unwrap();
        let image = m.inputs["x"].image.as_ref().unwrap();
        assert_eq!(
            image.resize,
            Resize::FitHeight {
                height: 48,
                max_width: 192
            }
        );
        let err = Manifest::parse("max_batch = 3", Path::new("m.toml")).unwrap_err();
        assert!(err.to_string().contains("max_batch"), "{err}");
    }

    #[test]
    fn missing_file_means_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Manifest::load_from_dir(dir.path()).unwrap(),
            Manifest::default()
        );
    }
}

//! The ONNX Runtime engine: the only crate that names `ort`. ONNX Runtime is loaded at run
//! time (`load-dynamic`) from the first library that loads among the candidates
//! `runtime_path` lists.

mod device_probe;
pub mod runtime_path;
mod shared_weights;
mod zipmap;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use destino_core::{
    Device, Engine, EngineConfig, Error, ModelMetadata, OnnxModel, OpType, Result, Tensor,
    TensorData, Tensors,
};
use ort::environment::Environment;
use ort::ep;
use ort::session::builder::SessionBuilder;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, TensorRef, ValueRef, ValueType};

const ENGINE: &str = "ort";

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();

/// Loads ONNX Runtime from the first of `candidates` that loads and creates the process-wide
/// environment. Later calls return the loaded runtime's version. Fails with a message listing
/// every candidate tried and why it failed.
pub fn init_runtime(candidates: &[(PathBuf, &'static str)]) -> Result<String> {
    if ENVIRONMENT.get().is_some() {
        return Ok(runtime_version());
    }
    let mut tried = Vec::new();
    for (path, origin) in candidates {
        match ort::init_from(path) {
            Ok(builder) => {
                for failure in tried.iter().filter(|(_, explicit)| *explicit) {
                    eprintln!(
                        "warning: ONNX Runtime not loaded from {}; using {}",
                        failure.0,
                        path.display()
                    );
                }
                let environment = builder.with_name("destino").build().map_err(|e| {
                    Error::RuntimeUnavailable(format!("creating the environment: {e}"))
                })?;
                let _ = ENVIRONMENT.set(environment);
                return Ok(runtime_version());
            }
            Err(e) => {
                let explicit = matches!(*origin, "--onnxruntime" | "ORT_DYLIB_PATH");
                tried.push((format!("{} ({origin}): {e}", path.display()), explicit));
            }
        }
    }
    Err(Error::RuntimeUnavailable(format!(
        "could not load the ONNX Runtime library. Tried, in order:\n{}\n\
         Fix: run `scripts/fetch-onnxruntime` in the repository, pass `--onnxruntime PATH` or set \
         ORT_DYLIB_PATH to a libonnxruntime.so of version 1.31 or newer, or use `--engine tract`.",
        tried
            .iter()
            .map(|(line, _)| format!("  {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    )))
}

/// ONNX Runtime's build description of the loaded library ("ORT Build Info: ...").
pub fn runtime_version() -> String {
    ort::info().to_string()
}

fn environment() -> Result<&'static Environment> {
    ENVIRONMENT.get().ok_or_else(|| {
        Error::RuntimeUnavailable("ONNX Runtime is not loaded; call init_runtime first".into())
    })
}

/// A model loaded into an ONNX Runtime session.
#[derive(Debug)]
pub struct OrtEngine {
    session: Session,
    metadata: ModelMetadata,
    zipmaps: Vec<destino_core::onnx::ZipMapOutput>,
    device: Device,
    /// Shared with the other instances of the same model file (when there are others).
    _weights: Option<Arc<shared_weights::SharedWeights>>,
}

fn engine_error(e: impl std::fmt::Display) -> Error {
    Error::Engine {
        engine: ENGINE,
        message: e.to_string(),
    }
}

impl OrtEngine {
    /// A session builder with `config`'s threads and device (`DeviceUnavailable` when the
    /// device's execution provider does not start).
    fn builder(config: &EngineConfig) -> Result<SessionBuilder> {
        let threads = config.threads.max(1);
        let builder = Session::builder(environment()?)
            .map_err(engine_error)?
            .with_intra_threads(threads)
            .map_err(engine_error)?
            .with_inter_threads(1)
            .map_err(engine_error)?
            .with_intra_op_spinning(config.spinning)
            .map_err(engine_error)?
            .with_inter_op_spinning(config.spinning)
            .map_err(engine_error)?;
        let Device::Cuda(id) = config.device else {
            return Ok(builder);
        };
        let cuda = ep::CUDA::default()
            .with_device_id(i32::try_from(id).map_err(engine_error)?)
            .build()
            .error_on_failure();
        builder
            .with_execution_providers([cuda])
            .map_err(|e| Error::DeviceUnavailable {
                device: config.device,
                reason: format!("its CUDA execution provider did not start: {e}"),
            })
    }

    fn session(
        path: &Path,
        model: &OnnxModel,
        config: &EngineConfig,
        weights: Option<&shared_weights::SharedWeights>,
    ) -> Result<Session> {
        let mut builder = OrtEngine::builder(config)?;
        if let Some(weights) = weights {
            builder = weights.apply(builder).map_err(engine_error)?;
        }
        builder
            .commit_from_file(path)
            .map_err(|e| classify_load_error(path, model, config.device, &e))
    }

    /// Whether `config.device` starts, tried on a one-node model: an error only when it does
    /// not. The CPU always does.
    pub fn check_device(config: &EngineConfig) -> Result<()> {
        if config.device == Device::Cpu {
            return Ok(());
        }
        OrtEngine::builder(config)?
            .commit_from_memory(&device_probe::identity_model())
            .map(drop)
            .map_err(|e| Error::DeviceUnavailable {
                device: config.device,
                reason: e.to_string(),
            })
    }
}

/// Maps ONNX Runtime's load failures onto destino's typed errors. ONNX Runtime reports
/// them as text only: this is the one place that reads it.
fn classify_load_error(path: &Path, model: &OnnxModel, device: Device, e: &ort::Error) -> Error {
    let message = e.message();
    let lower = message.to_ascii_lowercase();
    if device != Device::Cpu
        && ["cuda", "cudnn", "cublas"]
            .iter()
            .any(|w| lower.contains(w))
    {
        return Error::DeviceUnavailable {
            device,
            reason: message.to_string(),
        };
    }
    let unsupported: Vec<OpType> = model
        .ops
        .iter()
        .filter(|op| {
            message.contains(&format!("for {}(", op.name))
                || message.contains(&format!(", {}, ", op.name))
        })
        .cloned()
        .collect();
    let not_implemented = matches!(e.code(), ort::ErrorCode::NotImplemented)
        || message.contains("is not a registered function/op")
        || message.contains("Could not find an implementation");
    if not_implemented && !unsupported.is_empty() {
        return Error::UnsupportedOperators {
            engine: ENGINE,
            ops: unsupported,
            detail: Some(message.to_string()),
        };
    }
    match e.code() {
        ort::ErrorCode::InvalidGraph
        | ort::ErrorCode::InvalidProtobuf
        | ort::ErrorCode::NoModel => Error::ModelInvalid {
            path: path.to_path_buf(),
            reason: message.to_string(),
        },
        _ => engine_error(message),
    }
}

impl Engine for OrtEngine {
    fn load(path: &Path, config: &EngineConfig) -> Result<Self> {
        let model = OnnxModel::read(path)?;
        // One instance keeps ONNX Runtime's own loading: a shared copy would be an extra one.
        let weights = (config.instances > 1).then(|| shared_weights::for_model(path));
        let session = OrtEngine::session(path, &model, config, weights.as_deref())?;
        Ok(OrtEngine {
            _weights: weights,
            session,
            metadata: model.metadata,
            zipmaps: model.zipmaps,
            device: config.device,
        })
    }

    fn name(&self) -> &'static str {
        ENGINE
    }

    fn device(&self) -> Device {
        self.device
    }

    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn run_validated(&mut self, inputs: &Tensors) -> Result<Tensors> {
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(inputs.len());
        for (name, tensor) in inputs {
            if let TensorData::String(strings) = tensor.data()
                && let Some(i) = strings.iter().position(|s| s.contains('\0'))
            {
                return Err(Error::InvalidTensor(format!(
                    "input `{name}`: BYTES element {i} holds a NUL byte, which ONNX Runtime's strings cannot hold"
                )));
            }
            values.push((
                Cow::Borrowed(name.as_str()),
                to_ort(tensor).map_err(engine_error)?,
            ));
        }
        let outputs = self.session.run(values).map_err(engine_error)?;
        let mut result = Tensors::new();
        for (name, value) in &outputs {
            if let Some(zipmap) = self.zipmaps.iter().find(|z| z.name == name) {
                result.insert(name.to_string(), zipmap::to_tensor(zipmap, &value)?);
            } else if self.metadata.output(name).is_some() {
                result.insert(name.to_string(), from_ort(name, &value)?);
            }
        }
        Ok(result)
    }
}

fn to_ort(tensor: &Tensor) -> ort::Result<SessionInputValue<'_>> {
    let shape: Vec<i64> = tensor.shape().iter().map(|&d| d as i64).collect();
    match tensor.data() {
        TensorData::Bool(v) => view(shape, v),
        TensorData::U8(v) => view(shape, v),
        TensorData::U16(v) => view(shape, v),
        TensorData::U32(v) => view(shape, v),
        TensorData::U64(v) => view(shape, v),
        TensorData::I8(v) => view(shape, v),
        TensorData::I16(v) => view(shape, v),
        TensorData::I32(v) => view(shape, v),
        TensorData::I64(v) => view(shape, v),
        TensorData::F16(v) => view(shape, v),
        TensorData::F32(v) => view(shape, v),
        TensorData::F64(v) => view(shape, v),
        TensorData::String(v) => Ok(SessionInputValue::from(
            ort::value::Tensor::from_string_array((shape, v.as_slice()))?,
        )),
    }
}

fn view<T: ort::value::PrimitiveTensorElementType + Clone + std::fmt::Debug + 'static>(
    shape: Vec<i64>,
    data: &[T],
) -> ort::Result<SessionInputValue<'_>> {
    Ok(SessionInputValue::from(TensorRef::from_array_view((
        shape, data,
    ))?))
}

fn from_ort(name: &str, value: &ValueRef<'_>) -> Result<Tensor> {
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(engine_error(format!("output `{name}` is not a tensor")));
    };
    let value: &DynValue = value;
    macro_rules! extract {
        ($t:ty) => {{
            let (shape, data) = value.try_extract_tensor::<$t>().map_err(engine_error)?;
            (shape.to_vec(), TensorData::from(data.to_vec()))
        }};
    }
    let (shape, data) = match ty {
        TensorElementType::Bool => extract!(bool),
        TensorElementType::Uint8 => extract!(u8),
        TensorElementType::Uint16 => extract!(u16),
        TensorElementType::Uint32 => extract!(u32),
        TensorElementType::Uint64 => extract!(u64),
        TensorElementType::Int8 => extract!(i8),
        TensorElementType::Int16 => extract!(i16),
        TensorElementType::Int32 => extract!(i32),
        TensorElementType::Int64 => extract!(i64),
        TensorElementType::Float16 => extract!(half::f16),
        TensorElementType::Float32 => extract!(f32),
        TensorElementType::Float64 => extract!(f64),
        TensorElementType::String => {
            let (shape, data) = value.try_extract_strings().map_err(engine_error)?;
            (shape.to_vec(), TensorData::from(data))
        }
        other => {
            return Err(Error::UnsupportedDType {
                what: "output",
                name: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    };
    let shape = shape.into_iter().map(|d| d.max(0) as usize).collect();
    Tensor::new(shape, data)
}

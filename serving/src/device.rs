//! Where a model computes when an accelerator was asked for. The server checks the device
//! once at start (and exits there under `--require-gpu`); after that, each load follows
//! this policy: only a device that fails to start falls back to the CPU, loudly, or fails
//! that model's load when the device is required. A bad file or a missing operator is the
//! model's own failure and is never retried elsewhere; no load ever ends the process.

use std::sync::Arc;

use destino_core::Error;
use destino_core::engine::{Device, EngineConfig, EngineLoader};

/// `loader` with the device policy: a config's `require_device` refuses the CPU fallback.
pub fn with_device_fallback(loader: EngineLoader) -> EngineLoader {
    Arc::new(move |path, config| match loader(path, config) {
        Err(Error::DeviceUnavailable { device, reason })
            if config.device != Device::Cpu && !config.require_device =>
        {
            tracing::error!(
                model = %path.display(),
                "{device} FAILED TO START FOR THIS MODEL, FALLING BACK TO CPU ({reason}); pass --require-gpu to refuse instead"
            );
            let cpu = EngineConfig {
                device: Device::Cpu,
                ..config.clone()
            };
            loader(path, &cpu)
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use super::*;
    use crate::testing::FakeEngine;

    /// A loader that fails on CUDA with `cuda_error`, records every device it was asked for.
    fn loader(cuda_error: fn() -> Error, calls: Arc<Mutex<Vec<Device>>>) -> EngineLoader {
        Arc::new(move |_: &Path, config: &EngineConfig| {
            calls.lock().unwrap().push(config.device);
            match config.device {
                Device::Cpu => {
                    Ok(Box::new(FakeEngine::identity()) as Box<dyn destino_core::Engine>)
                }
                Device::Cuda(_) => Err(cuda_error()),
            }
        })
    }

    fn cuda(require_device: bool) -> EngineConfig {
        EngineConfig {
            device: Device::Cuda(0),
            require_device,
            ..EngineConfig::default()
        }
    }

    fn device_down() -> Error {
        Error::DeviceUnavailable {
            device: Device::Cuda(0),
            reason: "no CUDA-capable device".into(),
        }
    }

    fn bad_file() -> Error {
        Error::ModelInvalid {
            path: PathBuf::from("model.onnx"),
            reason: "truncated".into(),
        }
    }

    #[test]
    fn only_a_device_failure_falls_back_to_the_cpu() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let load = with_device_fallback(loader(device_down, calls.clone()));
        let engine = load(Path::new("m.onnx"), &cuda(false)).unwrap();
        assert_eq!(engine.device(), Device::Cpu);
        assert_eq!(*calls.lock().unwrap(), [Device::Cuda(0), Device::Cpu]);

        let calls = Arc::new(Mutex::new(Vec::new()));
        let load = with_device_fallback(loader(bad_file, calls.clone()));
        assert!(matches!(
            load(Path::new("m.onnx"), &cuda(false)),
            Err(Error::ModelInvalid { .. })
        ));
        assert_eq!(
            *calls.lock().unwrap(),
            [Device::Cuda(0)],
            "a bad file is not retried"
        );
    }

    #[test]
    fn a_required_device_fails_the_load_without_ending_the_process() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let load = with_device_fallback(loader(device_down, calls.clone()));
        assert!(matches!(
            load(Path::new("m.onnx"), &cuda(true)),
            Err(Error::DeviceUnavailable { .. })
        ));
        assert_eq!(*calls.lock().unwrap(), [Device::Cuda(0)]);
    }
}

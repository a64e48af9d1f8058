//! The device policy at start, shared by both binaries: the requested accelerator is
//! checked once, before any model loads. When it does not start, `--require-gpu` ends the
//! program there; otherwise every model runs on the CPU and the fallback is said loudly.

use std::process::ExitCode;

use destino_core::{Device, EngineConfig, Error};

/// `config` with the device models will use, or (under `require_device`) the exit code when
/// the requested device does not start. `check` is the engine's device check.
pub fn start_device(
    config: EngineConfig,
    check: impl FnOnce(&EngineConfig) -> Result<(), Error>,
    program: &str,
) -> Result<EngineConfig, ExitCode> {
    if config.device == Device::Cpu {
        return Ok(config);
    }
    let Err(e) = check(&config) else {
        return Ok(config);
    };
    if config.require_device {
        tracing::error!("{e}; --require-gpu is set: not starting");
        eprintln!("{program}: {e}; --require-gpu is set, so {program} does not start");
        return Err(ExitCode::FAILURE);
    }
    let message =
        format!("GPU START FAILED, FALLING BACK TO CPU ({e}); pass --require-gpu to exit instead");
    // Commands without logging (run, inspect) still say it, on stderr.
    if tracing::dispatcher::has_been_set() {
        tracing::error!("{message}");
    } else {
        eprintln!("{program}: {message}");
    }
    Ok(EngineConfig {
        device: Device::Cpu,
        ..config
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuda(require_device: bool) -> EngineConfig {
        EngineConfig {
            device: Device::Cuda(0),
            require_device,
            ..EngineConfig::default()
        }
    }

    fn no_gpu(config: &EngineConfig) -> Result<(), Error> {
        Err(Error::DeviceUnavailable {
            device: config.device,
            reason: "no CUDA driver".into(),
        })
    }

    #[test]
    fn a_device_that_starts_is_kept() {
        let config = start_device(cuda(true), |_| Ok(()), "test").unwrap();
        assert_eq!(config.device, Device::Cuda(0));
    }

    #[test]
    fn a_device_that_does_not_start_falls_back_to_the_cpu() {
        let config = start_device(cuda(false), no_gpu, "test").unwrap();
        assert_eq!(config.device, Device::Cpu);
        assert!(!config.require_device);
    }

    #[test]
    fn a_required_device_that_does_not_start_ends_the_program() {
        assert_eq!(
            start_device(cuda(true), no_gpu, "test"),
            Err(ExitCode::FAILURE)
        );
    }

    #[test]
    fn the_cpu_is_not_checked() {
        let config = EngineConfig::default();
        let checked = start_device(config.clone(), |_| panic!("checked"), "test");
        assert_eq!(checked.unwrap(), config);
    }
}

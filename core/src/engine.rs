//! The `Engine` trait: what each inference runtime provides. Engines are synchronous and
//! owned by one thread; everything async lives around them.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::Result;
use crate::metadata::{ModelMetadata, Tensors};

/// Where an engine computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(u32),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    /// `cpu`, `cuda` (device 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device `{s}`: use cpu, cuda or cuda:N")),
        }
    }
}

/// How an engine is set up; each engine uses what applies to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Threads one inference may use.
    pub threads: usize,
    /// Whether idle worker threads busy-wait for work (ONNX Runtime). Off by default: on a
    /// small box shared with the HTTP side, spinning threads steal the cores they wait for.
    pub spinning: bool,
    pub device: Device,
    /// Refuse to compute anywhere but `device`: an engine that cannot plan a model there
    /// fails instead of running it on the CPU.
    pub require_device: bool,
    /// Keep only what serving needs in memory, rebuilding the rest from the model file when
    /// it is needed (tract: the parsed graph, used to plan new input shapes). Devices turn it
    /// on; hosts keep planning fast.
    pub low_memory: bool,
    /// Engines of this model that will run side by side: more than one lets an engine share
    /// its weights between them.
    pub instances: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            threads: 1,
            spinning: false,
            device: Device::Cpu,
            require_device: false,
            low_memory: false,
            instances: 1,
        }
    }
}

/// An inference runtime holding one loaded model.
pub trait Engine: Send + std::fmt::Debug {
    /// Loads the model at `path`. Fails with `ModelNotFound`, `ModelInvalid`,
    /// `UnsupportedOperators` (listing every unsupported operator) or `Engine`.
    fn load(path: &Path, config: &EngineConfig) -> Result<Self>
    where
        Self: Sized;

    /// Short name of the runtime: `ort` or `tract`.
    fn name(&self) -> &'static str;

    /// Where this engine actually computes (after any fallback).
    fn device(&self) -> Device {
        Device::Cpu
    }

    /// Computing nodes of the model left on the CPU while the rest runs on `device()`
    /// (engines that place nodes one by one, after their first plan); `None` otherwise.
    fn nodes_on_cpu(&self) -> Option<usize> {
        None
    }

    fn metadata(&self) -> &ModelMetadata;

    /// What the engine decided about this model that a user may want to know (`inspect`
    /// prints each line).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Runs on inputs that already passed `ModelMetadata::validate_inputs`.
    fn run_validated(&mut self, inputs: &Tensors) -> Result<Tensors>;

    /// Checks `inputs` against the model's declared inputs, then runs.
    fn run(&mut self, inputs: &Tensors) -> Result<Tensors> {
        self.metadata().validate_inputs(inputs)?;
        self.run_validated(inputs)
    }
}

/// Loads one engine for a model file; lets callers pick the runtime (and any fallback) at
/// run time.
pub type EngineLoader = Arc<dyn Fn(&Path, &EngineConfig) -> Result<Box<dyn Engine>> + Send + Sync>;

/// The `EngineLoader` of engine type `E`.
pub fn loader<E: Engine + 'static>() -> EngineLoader {
    Arc::new(|path, config| Ok(Box::new(E::load(path, config)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("cuda".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(Device::Cuda(3)));
        assert!("gpu".parse::<Device>().is_err());
        assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
    }
}

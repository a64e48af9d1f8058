//! Where tract computes: the CPU, or with the `cuda` feature an NVIDIA GPU through tract's
//! CUDA runtime (`tract-cuda`: cuDNN convolutions, cuBLAS matrix products, its own kernels,
//! compiled by NVRTC on first use and cached under the user's cache folder). tract moves
//! every node it has a CUDA kernel for to the device and leaves the others on the CPU; what
//! went where is the plan's [`Placement`].

use std::collections::BTreeMap;
use std::fmt;

use destino_core::{Device, Error, Result};
use tract_onnx::prelude::*;

/// Whether `device` can run plans here: the CUDA driver and libraries load and a stream
/// synchronises on device 0. Called once before any model loads; never panics.
pub(crate) fn check(device: Device) -> Result<()> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda(0) => {
            cuda::start().map_err(|reason| Error::DeviceUnavailable { device, reason })
        }
        Device::Cuda(_) => Err(Error::DeviceUnavailable {
            device,
            reason: "tract runs on CUDA device 0 only: choose the GPU with CUDA_VISIBLE_DEVICES"
                .to_string(),
        }),
    }
}

/// Where the nodes of a plan run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    pub(crate) device: Device,
    /// Computing nodes on the device.
    pub(crate) on_device: usize,
    /// Computing nodes left on the CPU, counted per operator.
    pub(crate) on_cpu: BTreeMap<String, usize>,
    /// Why the plan runs on the CPU although `device` was asked for.
    pub(crate) refused: Option<String>,
}

impl Placement {
    /// A plan on the CPU because the device plan failed for `reason`.
    pub(crate) fn refused(device: Device, reason: String) -> Placement {
        Placement {
            device,
            on_device: 0,
            on_cpu: BTreeMap::new(),
            refused: Some(reason),
        }
    }

    /// Computing nodes that run on the CPU (`None` when the device refused the plan: all).
    pub(crate) fn nodes_on_cpu(&self) -> Option<usize> {
        self.refused.is_none().then(|| self.on_cpu.values().sum())
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(reason) = &self.refused {
            return write!(
                f,
                "on the CPU: {} could not plan it ({reason})",
                self.device
            );
        }
        write!(f, "on {}: {} nodes", self.device, self.on_device)?;
        let left: usize = self.on_cpu.values().sum();
        if left == 0 {
            return f.write_str("; none left on the CPU");
        }
        let ops: Vec<String> = self
            .on_cpu
            .iter()
            .map(|(op, n)| {
                if *n > 1 {
                    format!("{op} ×{n}")
                } else {
                    op.clone()
                }
            })
            .collect();
        write!(f, "; {left} left on the CPU ({})", ops.join(", "))
    }
}

/// Counts the computing nodes of a device plan (inputs, constants and the copies between
/// host and device left out): on the device when an output lives there, else on the CPU.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn placement(
    model: &TypedModel,
    device: Device,
    on_device: impl Fn(&TypedFact) -> bool,
) -> Placement {
    let mut placement = Placement {
        device,
        on_device: 0,
        on_cpu: BTreeMap::new(),
        refused: None,
    };
    for node in &model.nodes {
        let op = node.op.name();
        if ["Source", "Const"].contains(&op.as_ref()) || op.starts_with("DeviceSync") {
            continue;
        }
        if node.outputs.iter().any(|output| on_device(&output.fact)) {
            placement.on_device += 1;
        } else {
            *placement.on_cpu.entry(op.to_string()).or_default() += 1;
        }
    }
    placement
}

/// The runnable plan of `model` (decluttered) on `device`, and where its nodes run.
pub(crate) fn plan(
    model: TypedModel,
    device: Device,
    options: &RunOptions,
) -> TractResult<(Arc<TypedRunnableModel>, Placement)> {
    match device {
        Device::Cpu => Err(TractError::msg("the CPU has no device plan")),
        Device::Cuda(_) => cuda::plan(model, device, options),
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use destino_core::Device;
    use tract_cuda::CudaTransform;
    use tract_gpu::fact::DeviceTypedFactExt;
    use tract_gpu::turn_handler::DeviceTurnHandler;
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::transform::ModelTransform;

    use super::{Placement, placement};
    use crate::panics::contained;

    /// Loads the CUDA driver and libraries and synchronises a stream on device 0.
    pub(super) fn start() -> Result<(), String> {
        let started = contained("starting CUDA", || -> TractResult<()> {
            tract_cuda::utils::ensure_cuda_runtime_dependencies("tract's CUDA runtime")?;
            tract_cuda::with_cuda_stream(|stream| Ok(stream.synchronize()?))
        });
        match started {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// As tract's own CUDA runtime prepares a model: the CUDA transform (nodes with a CUDA
    /// kernel move to the device), tract's optimisations, a plan whose device memory is
    /// sized per turn, and the weights' uploads drained before any run.
    pub(super) fn plan(
        mut model: TypedModel,
        device: Device,
        options: &RunOptions,
    ) -> TractResult<(Arc<TypedRunnableModel>, Placement)> {
        CudaTransform.transform(&mut model)?;
        model.optimize()?;
        let placement = placement(&model, device, |fact| fact.as_device_fact().is_some());
        let options = RunOptions {
            skip_order_opt_ram: true,
            ..options.clone()
        };
        let mut plan = TypedSimplePlan::build(model, &options)?;
        if let Some(handler) =
            DeviceTurnHandler::for_plan(&plan, options.memory_sizing_hints.as_ref())?
        {
            plan = plan.with_turn_handler(handler);
        }
        tract_cuda::with_cuda_stream(|stream| Ok(stream.synchronize()?))?;
        Ok((Arc::new(plan), placement))
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use destino_core::Device;
    use tract_onnx::prelude::*;

    use super::Placement;

    const NOT_BUILT: &str = "this destino was built without CUDA support for tract (cargo feature `cuda` of destino-edge)";

    pub(super) fn start() -> Result<(), String> {
        Err(NOT_BUILT.to_string())
    }

    pub(super) fn plan(
        _: TypedModel,
        _: Device,
        _: &RunOptions,
    ) -> TractResult<(Arc<TypedRunnableModel>, Placement)> {
        Err(TractError::msg(NOT_BUILT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(on_device: usize, on_cpu: &[(&str, usize)]) -> Placement {
        Placement {
            device: Device::Cuda(0),
            on_device,
            on_cpu: on_cpu.iter().map(|(op, n)| (op.to_string(), *n)).collect(),
            refused: None,
        }
    }

    #[test]
    fn placements_say_what_runs_where() {
        let mixed = placed(40, &[("Clip", 2), ("TopK", 1)]);
        assert_eq!(
            mixed.to_string(),
            "on cuda:0: 40 nodes; 3 left on the CPU (Clip ×2, TopK)"
        );
        assert_eq!(mixed.nodes_on_cpu(), Some(3));
        let all = placed(12, &[]);
        assert_eq!(all.to_string(), "on cuda:0: 12 nodes; none left on the CPU");
        assert_eq!(all.nodes_on_cpu(), Some(0));
        let refused = Placement::refused(Device::Cuda(0), "no kernel".into());
        assert_eq!(
            refused.to_string(),
            "on the CPU: cuda:0 could not plan it (no kernel)"
        );
        assert_eq!(refused.nodes_on_cpu(), None);
    }

    #[test]
    fn nodes_count_where_their_outputs_live() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([2])).unwrap();
        let y = model.wire_node("y", tract_onnx::tract_core::ops::math::add(), &[x, x]);
        let y = y.unwrap();
        let z = model
            .wire_node("z", tract_onnx::tract_core::ops::math::mul(), &[y[0], x])
            .unwrap();
        model.select_output_outlets(&z).unwrap();
        // Pretend the device holds the outputs of node "y" only.
        let y_node = y[0].node;
        let on_device = |fact: &TypedFact| std::ptr::eq(fact, &model.nodes[y_node].outputs[0].fact);
        let placement = placement(&model, Device::Cuda(0), on_device);
        assert_eq!(placement.on_device, 1);
        assert_eq!(placement.on_cpu.values().sum::<usize>(), 1, "{placement}");
    }

    #[test]
    fn only_device_zero_and_the_cpu_are_offered() {
        assert!(check(Device::Cpu).is_ok());
        let Err(Error::DeviceUnavailable { reason, .. }) = check(Device::Cuda(1)) else {
            panic!("cuda:1 should be refused");
        };
        assert!(reason.contains("CUDA_VISIBLE_DEVICES"), "{reason}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_the_feature_cuda_is_refused_with_the_reason() {
        let Err(Error::DeviceUnavailable { reason, .. }) = check(Device::Cuda(0)) else {
            panic!("cuda should be refused");
        };
        assert!(reason.contains("built without CUDA"), "{reason}");
    }

    /// Built with the feature on a machine without a GPU: tract-cuda's own reason, no panic.
    #[cfg(feature = "cuda")]
    #[test]
    fn without_a_gpu_cuda_is_refused_with_the_drivers_reason() {
        match check(Device::Cuda(0)) {
            Ok(()) => eprintln!("a CUDA device is present: nothing to refuse"),
            Err(Error::DeviceUnavailable { reason, .. }) => {
                assert!(reason.contains("CUDA"), "{reason}")
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }
}

//! Channels first or channels last: ONNX convolutions are NCHW, and tract plans them so. Its
//! `conv_nhwc` transform runs them channels-last instead, where depthwise convolutions use
//! tract's SIMD-across-channels kernel: EfficientNet-Lite0 ran 1.8× faster so, while ppocr's
//! classifier ran 1.6× slower (batch norms it no longer fuses). Neither rule fits every model,
//! so for a model with float convolutions both plans are built and timed on the inputs being
//! planned for, and the faster is kept. The channels-last candidate is only ever an
//! alternative: if it fails to build, to run or panics, the default plan is used.

use std::fmt;
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::transform::get_transform;

use crate::panics::contained;

/// Timed runs per candidate, after one untimed run (which warms buffers and checks that it
/// runs); the fastest counts. One keeps the choice to about two runs of each plan at its
/// first request: the plans it has chosen between differed by 1.6-1.8×, well above noise.
const TIMED_RUNS: usize = 1;

/// How the convolutions of a plan lay out their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// As the model declares them (and models without convolutions).
    Declared,
    /// Channels-last, chosen because it ran faster: the times of both plans.
    ChannelsLast { declared: Duration, last: Duration },
    /// Declared, after timing both plans (or the channels-last one failed).
    KeptDeclared {
        declared: Duration,
        last: Option<Duration>,
    },
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        match self {
            Layout::Declared => write!(f, "convolutions as declared"),
            Layout::ChannelsLast { declared, last } => write!(
                f,
                "convolutions channels-last: {:.2} ms a run, {:.2} ms as declared",
                ms(last),
                ms(declared)
            ),
            Layout::KeptDeclared {
                declared,
                last: Some(last),
            } => write!(
                f,
                "convolutions as declared: {:.2} ms a run, {:.2} ms channels-last",
                ms(declared),
                ms(last)
            ),
            Layout::KeptDeclared { last: None, .. } => write!(
                f,
                "convolutions as declared (tract could not run them channels-last)"
            ),
        }
    }
}

/// The faster runnable plan of `model` (decluttered, not yet optimised) for `inputs`.
pub(crate) fn fastest(
    model: TypedModel,
    options: &RunOptions,
    inputs: &TVec<TValue>,
) -> TractResult<(Arc<TypedRunnableModel>, Layout)> {
    let channels_last = has_channels_first_convs(&model)
        .then(|| channels_last(&model, options))
        .and_then(|plan| plan.ok());
    let mut model = model;
    model.optimize()?;
    let declared = model.into_runnable_with_options(options)?;
    let Some(last) = channels_last else {
        return Ok((declared, Layout::Declared));
    };
    let last_time = time(&last, inputs);
    let Some(declared_time) = time(&declared, inputs) else {
        // The declared plan fails on these inputs: its run reports why; no choice to make.
        return Ok((declared, Layout::Declared));
    };
    Ok(match last_time {
        Some(last_time) if last_time < declared_time => (
            last,
            Layout::ChannelsLast {
                declared: declared_time,
                last: last_time,
            },
        ),
        last_time => (
            declared,
            Layout::KeptDeclared {
                declared: declared_time,
                last: last_time,
            },
        ),
    })
}

/// Whether any float convolution of `model` is channels-first (what `conv_nhwc` rewrites).
fn has_channels_first_convs(model: &TypedModel) -> bool {
    model.nodes.iter().any(|node| {
        node.op_as::<Conv>().is_some_and(|conv| {
            conv.q_params.is_none()
                && matches!(
                    conv.pool_spec.data_format,
                    DataFormat::NCHW | DataFormat::CHW
                )
        })
    })
}

fn channels_last(model: &TypedModel, options: &RunOptions) -> TractResult<Arc<TypedRunnableModel>> {
    let mut model = model.clone();
    contained("planning channels-last", || -> TractResult<_> {
        let transform = get_transform("conv_nhwc")?
            .ok_or_else(|| TractError::msg("tract has no conv_nhwc transform"))?;
        transform.transform(&mut model)?;
        model.into_optimized()?.into_runnable_with_options(options)
    })
    .map_err(|e| TractError::msg(e.to_string()))?
}

/// The fastest of [`TIMED_RUNS`] runs of `plan` after an untimed one; `None` if it fails.
fn time(plan: &Arc<TypedRunnableModel>, inputs: &TVec<TValue>) -> Option<Duration> {
    let run = || {
        let start = Instant::now();
        let ran = contained("timing a plan", || plan.run(inputs.clone()));
        matches!(ran, Ok(Ok(_))).then(|| start.elapsed())
    };
    run()?;
    (0..TIMED_RUNS).map(|_| run()).min().flatten()
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_hir::infer::InferenceModelExt;

    use super::*;
    use crate::tests::shared_model;

    /// ppocr's classifier, typed and decluttered for one 3×48×192 image, and that image.
    fn ppocr() -> (TypedModel, TVec<TValue>) {
        let mut model = tract_onnx::onnx()
            .model_for_path(shared_model("ppocr_mobile_v2_cls.onnx"))
            .unwrap();
        model
            .set_input_fact(0, f32::fact([1, 3, 48, 192]).into())
            .unwrap();
        let typed = model.into_typed().unwrap().into_decluttered().unwrap();
        let image: Vec<f32> = (0..3 * 48 * 192)
            .map(|i| (i % 255) as f32 / 255.0)
            .collect();
        let image = tract_ndarray::Array4::from_shape_vec((1, 3, 48, 192), image).unwrap();
        (typed, tvec!(Tensor::from(image).into_tvalue()))
    }

    #[test]
    fn channels_last_plans_compute_what_declared_plans_do() {
        let (model, inputs) = ppocr();
        assert!(has_channels_first_convs(&model));
        let options = RunOptions::default();
        let last = channels_last(&model, &options).unwrap();
        let mut declared = model;
        declared.optimize().unwrap();
        let declared = declared.into_runnable_with_options(&options).unwrap();
        let a = last.run(inputs.clone()).unwrap();
        let b = declared.run(inputs).unwrap();
        a[0].close_enough(
            &b[0],
            tract_onnx::tract_core::internal::Approximation::Approximate,
        )
        .unwrap();
        let probabilities = a[0].to_plain_array_view::<f32>().unwrap();
        assert!((probabilities.sum() - 1.0).abs() < 1e-4, "{probabilities}");
    }

    #[test]
    fn the_kept_plan_is_timed_and_said() {
        let (model, inputs) = ppocr();
        let (_, layout) = fastest(model, &RunOptions::default(), &inputs).unwrap();
        let text = layout.to_string();
        match layout {
            Layout::ChannelsLast { declared, last } => assert!(last < declared, "{text}"),
            Layout::KeptDeclared {
                declared,
                last: Some(last),
            } => assert!(declared <= last, "{text}"),
            other => panic!("both plans should have run: {other:?}"),
        }
        assert!(text.contains(" ms a run, "), "{text}");
    }

    #[test]
    fn models_without_convolutions_are_planned_once() {
        let mut model = tract_onnx::onnx()
            .model_for_path(shared_model("sklearn_digits_rf.onnx"))
            .unwrap();
        model.set_input_fact(0, f32::fact([1, 64]).into()).unwrap();
        let typed = model.into_typed().unwrap().into_decluttered().unwrap();
        assert!(!has_channels_first_convs(&typed));
        let inputs = tvec!(Tensor::zero::<f32>(&[1, 64]).unwrap().into_tvalue());
        let (_, layout) = fastest(typed, &RunOptions::default(), &inputs).unwrap();
        assert_eq!(layout, Layout::Declared);
        assert_eq!(layout.to_string(), "convolutions as declared");
    }
}

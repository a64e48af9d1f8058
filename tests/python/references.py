"""The shared models' reference files (../shared/models: <model>.input[.<name>].npy and
<model>.output[.<name>].npy) and how outputs are compared with them, for the client suites."""

import os

import numpy as np

ATOL, RTOL = 1e-4, 1e-3
TIGER_CAT = 282  # the ImageNet class of the shared tiger-cat image

# model -> ({input name: reference file}, {output name: reference file})
CASES = {
    "sklearn_digits_rf": (
        {"X": "sklearn_digits_rf.input.npy"},
        {
            "label": "sklearn_digits_rf.output.label.npy",
            "probabilities": "sklearn_digits_rf.output.probabilities.npy",
        },
    ),
    "efficientnet_lite0": (
        {"input": "efficientnet_lite0.input.npy"},
        {"logits": "efficientnet_lite0.output.npy"},
    ),
    "ppocr_mobile_v2_cls": (
        {"x": "ppocr_mobile_v2_cls.input.npy"},
        {"save_infer_model/scale_0.tmp_1": "ppocr_mobile_v2_cls.output.npy"},
    ),
    "silero_vad": (
        {
            "input": "silero_vad.input.input.npy",
            "state": "silero_vad.input.state.npy",
            "sr": "silero_vad.input.sr.npy",  # an int64 scalar: shape []
        },
        {"output": "silero_vad.output.output.npy", "stateN": "silero_vad.output.stateN.npy"},
    ),
}


def load(shared, file):
    return np.load(os.path.join(shared, file))


def reference(shared, model):
    """The reference ({input: array}, {output: array}) of a model."""
    inputs, outputs = CASES[model]
    return (
        {name: load(shared, file) for name, file in inputs.items()},
        {name: load(shared, file) for name, file in outputs.items()},
    )


def assert_close(test, got, want, name):
    """`got` has `want`'s dtype and shape and equals it (within tolerance for floats)."""
    test.assertIsNotNone(got, f"output {name!r} missing")
    test.assertEqual(got.dtype, want.dtype, name)
    test.assertEqual(got.shape, want.shape, name)
    if np.issubdtype(want.dtype, np.floating):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)

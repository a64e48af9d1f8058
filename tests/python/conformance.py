"""ONNX backend node tests (the `onnx` package's single-operator cases, all opsets) through
destino's `run` command on each engine, and through onnxruntime's Python API for comparison.

    conformance.py BINARY WORKDIR OUT_DIR [--every N] [--check] [--tract-cli PATH]

Writes each case (model.onnx, inputs.npz) under WORKDIR, runs `BINARY run --engine ort|tract`
on it, compares every output with the case's expected one (the onnx backend tests' tolerance,
rtol 1e-3 and atol 1e-7), and classifies it: pass, wrong (an output differs or is missing), error
(destino refused or failed, with a message), crash (the process died without an error: an
uncontained panic or a signal). Writes OUT_DIR/cases.csv (one row per case) and OUT_DIR/README.md (the totals
and a table per operator).

--tract-cli PATH adds tract's own command-line tool (`tract model.onnx -O
--input-facts-from-bundle io.npz run --input-from-bundle io.npz --assert-output-bundle io.npz
--approx approximate`) as a column, for comparison.

--every N runs only every Nth case and the known tract panics (a fast subset); --check then compares with the committed
OUT_DIR/cases.csv instead of writing it, and fails when a case that passed there does not pass,
or when any case crashes.
"""

import argparse
import collections
import concurrent.futures
import csv
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.test.case import node as node_cases

ENGINES = ("ort", "tract")
OUTCOMES = ("pass", "wrong", "error", "crash")
RTOL, ATOL = 1e-3, 1e-7
TIMEOUT_S = 60
# Cases on which tract 0.23.9 panics (shift overflow when running; index out of bounds and a
# negative-dim assertion when planning): --check always runs them, and they must not crash.
KNOWN_PANICS = (
    "test_bitshift_left_int32_shift_ge_width",
    "test_bitshift_right_int8_negative_shift",
    "test_center_crop_pad_crop_axes_chw_expanded",
    "test_center_crop_pad_crop_negative_axes_hwc_expanded",
    "test_layer_normalization_3d_axis2_epsilon_expanded",
    "test_rms_normalization_4d_axis3_expanded",
)


def operator(model):
    """The operator a case tests: its node's type (a function expansion lists its first)."""
    ops = [n.op_type for n in model.graph.node]
    name = ops[0] if len(ops) == 1 else "(expanded functions)"
    domain = model.graph.node[0].domain if len(ops) == 1 else ""
    return f"{domain}.{name}" if domain and domain != "ai.onnx" else name


def is_tensor(value_info):
    return value_info.type.HasField("tensor_type")


def as_array(value):
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    array = np.asarray(value)
    if array.dtype == object:
        array = array.astype(str)
    return array


def write_case(case, directory):
    """Writes the case; returns (inputs, expected outputs) or None when not all are tensors."""
    model = case.model
    inputs, outputs = case.data_sets[0]
    graph = model.graph
    if not all(is_tensor(v) for v in list(graph.input) + list(graph.output)):
        return None
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    feeds = {graph.input[i].name: as_array(v) for i, v in enumerate(inputs)}
    expected = {graph.output[i].name: as_array(v) for i, v in enumerate(outputs)}
    np.savez(os.path.join(directory, "inputs.npz"), **feeds)
    np.savez(os.path.join(directory, "io.npz"), **feeds, **expected)
    return feeds, expected


def compare(got, expected):
    """None when every expected output matches, else why not."""
    for name, want in expected.items():
        if name not in got:
            return f"output `{name}` missing"
        have = got[name]
        if have.shape != want.shape:
            return f"`{name}`: shape {have.shape}, expected {want.shape}"
        if want.dtype.kind in "fc":
            if not np.allclose(have.astype(want.dtype), want, rtol=RTOL, atol=ATOL, equal_nan=True):
                return f"`{name}`: values differ"
        elif not np.array_equal(have.astype(want.dtype), want):
            return f"`{name}`: values differ"
    return None


def run_process(command):
    """(outcome, message, stderr): outcome "crash", "error" or "" (it exited 0)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "error", f"no answer in {TIMEOUT_S} s", ""
    message = (done.stderr.strip().splitlines() or [""])[-1][:200]
    # 101: a Rust panic that nothing contained; negative: a signal.
    if done.returncode < 0 or done.returncode == 101:
        return "crash", message or f"signal {-done.returncode}", done.stderr
    return ("error" if done.returncode else ""), message, done.stderr


def run_destino(binary, engine, directory, expected):
    out = os.path.join(directory, f"out_{engine}.npz")
    if os.path.exists(out):
        os.remove(out)
    outcome, message, _ = run_process(
        [binary, "run", "--engine", engine, "--model", os.path.join(directory, "model.onnx"),
         "--inputs", os.path.join(directory, "inputs.npz"), "--outputs", out])
    if outcome:
        return outcome, message
    with np.load(out) as got:
        why = compare(dict(got), expected)
    return ("pass", "") if why is None else ("wrong", why)


def run_tract_cli(cli, directory):
    if not cli:
        return "", ""
    bundle = os.path.join(directory, "io.npz")
    outcome, message, stderr = run_process(
        [cli, os.path.join(directory, "model.onnx"), "-O", "--input-facts-from-bundle", bundle,
         "run", "--input-from-bundle", bundle, "--assert-output-bundle", bundle,
         "--approx", "approximate"])
    if outcome == "error" and any(w in stderr for w in ("Mismatch", "mismatch", "too far", "differ")):
        return "wrong", message
    return (outcome or "pass"), message


def run_onnxruntime(directory, feeds, expected):
    try:
        import onnxruntime
    except ImportError:
        return "", ""
    try:
        session = onnxruntime.InferenceSession(os.path.join(directory, "model.onnx"),
                                               providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    except Exception as e:  # noqa: BLE001 - any refusal is an error outcome
        return "error", str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    why = compare({k: np.asarray(v) for k, v in got.items()}, expected)
    return ("pass", "") if why is None else ("wrong", why)


def run_case(binary, workdir, case, tract_cli=None):
    directory = os.path.join(workdir, case.name)
    written = write_case(case, directory)
    row = {"case": case.name, "operator": operator(case.model)}
    if written is None:
        for engine in ENGINES:
            row[engine], row[f"{engine}_why"] = "error", "a sequence, map or optional input/output"
        row["onnxruntime"], row["onnxruntime_why"] = "", "not a tensor case"
        row["tract_cli"], row["tract_cli_why"] = ("error", "not a tensor case") if tract_cli else ("", "")
        return row
    feeds, expected = written
    for engine in ENGINES:
        row[engine], row[f"{engine}_why"] = run_destino(binary, engine, directory, expected)
    row["onnxruntime"], row["onnxruntime_why"] = run_onnxruntime(directory, feeds, expected)
    row["tract_cli"], row["tract_cli_why"] = run_tract_cli(tract_cli, directory)
    return row


FIELDS = ["case", "operator", "ort", "ort_why", "tract", "tract_why", "onnxruntime", "onnxruntime_why",
          "tract_cli", "tract_cli_why"]


def report(rows, every):
    total = len(rows)
    lines = ["# Conformance: the ONNX backend node tests", "",
             "Generated by `scripts/conformance` (onnx " + onnx.__version__ + ", "
             + ("every case" if every == 1 else f"every {every}th case") + "; "
             "`cases.csv` has each case and why it did not pass). pass / wrong / error / crash:",
             "", "| runner | pass | wrong | error | crash | pass % |", "|---|---|---|---|---|---|"]
    runners = [("destino, ort engine", "ort"), ("destino, tract engine", "tract")]
    if any(r["onnxruntime"] for r in rows):
        runners.append(("onnxruntime (Python)", "onnxruntime"))
    if any(r.get("tract_cli") for r in rows):
        runners.append(("tract CLI 0.23.9", "tract_cli"))
    for title, key in runners:
        counts = collections.Counter(r[key] for r in rows)
        cells = " | ".join(str(counts.get(o, 0)) for o in OUTCOMES)
        lines.append(f"| {title} | {cells} | {100 * counts.get('pass', 0) / total:.1f} |")
    if any(r["onnxruntime"] for r in rows):
        ort_passes = [r for r in rows if r["onnxruntime"] == "pass"]
        for title, key in [r for r in runners if r[1] != "onnxruntime"]:
            kept = sum(1 for r in ort_passes if r[key] == "pass")
            lines.append("")
            lines.append(f"{title}: {kept} of the {len(ort_passes)} cases onnxruntime passes "
                         f"({100 * kept / max(len(ort_passes), 1):.1f} %).")
    lines += ["", "Per operator (cases: ort pass/total, tract pass/total):", "",
              "| operator | cases | ort | tract |", "|---|---|---|---|"]
    by_op = collections.defaultdict(list)
    for r in rows:
        by_op[r["operator"]].append(r)
    for op in sorted(by_op):
        group = by_op[op]
        ort = sum(r["ort"] == "pass" for r in group)
        tract = sum(r["tract"] == "pass" for r in group)
        lines.append(f"| {op} | {len(group)} | {ort} | {tract} |")
    return "\n".join(lines) + "\n"


def check(rows, committed_path):
    with open(committed_path, newline="") as f:
        committed = {r["case"]: r for r in csv.DictReader(f)}
    failures = []
    for row in rows:
        before = committed.get(row["case"])
        for engine in ENGINES:
            if row[engine] == "crash":
                failures.append(f"{row['case']} on {engine}: crashed ({row[engine + '_why']})")
            elif before and before[engine] == "pass" and row[engine] != "pass":
                failures.append(f"{row['case']} on {engine}: passed before, now {row[engine]} "
                                f"({row[engine + '_why']})")
    return failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("workdir")
    parser.add_argument("out_dir")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--tract-cli")
    args = parser.parse_args()
    cases = sorted(node_cases.collect_testcases(None), key=lambda c: c.name)
    cases = [c for c in cases if c.model is not None and c.data_sets]
    if args.every > 1:
        cases = [c for i, c in enumerate(cases) if i % args.every == 0 or c.name in KNOWN_PANICS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        rows = list(pool.map(lambda c: run_case(args.binary, args.workdir, c, args.tract_cli), cases))
    text = report(rows, args.every)
    print(text.split("\n\nPer operator")[0])
    cases_csv = os.path.join(args.out_dir, "cases.csv")
    if args.check:
        failures = check(rows, cases_csv)
        for failure in failures:
            print("REGRESSION:", failure, file=sys.stderr)
        sys.exit(1 if failures else 0)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(cases_csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(args.out_dir, "README.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()

"""Tables for `batch`'s tests, and its output read back as one data set with pyarrow.

  batch_tables.py digits TABLE.parquet ROWS
      a Parquet table of digits rows (`pixels` list<float32>, `name` string; several row
      groups), the last two rows bad (null, too short); ONNX Runtime's labels in
      TABLE.labels.npy (-1: a bad row)
  batch_tables.py check-digits OUTPUT TABLE.parquet
      the output folder as a pyarrow data set: every row exactly once, each label ONNX
      Runtime's, each bad row an error; prints a summary line
  batch_tables.py rows OUTPUT
      the output folder's rows as JSON lines, in key order
  batch_tables.py max-rss CMD...
      runs CMD (its exit code is this one's); prints `max_rss_kib N` last
"""

import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "models"


def digits(path, rows):
    import onnxruntime

    base = np.load(SHARED / "sklearn_digits_rf.input.npy").astype(np.float32)
    rng = np.random.default_rng(7)
    session = onnxruntime.InferenceSession(str(SHARED / "sklearn_digits_rf.onnx"))
    good = rows - 2
    kept_pixels, kept_labels = [], []
    while sum(map(len, kept_labels)) < good:
        pixels = base[rng.integers(0, len(base), size=8192)].copy()
        # Each row a variation: a few pixels set at random, so the labels vary.
        cells = rng.integers(0, 64, size=(len(pixels), 6))
        values = rng.integers(0, 17, size=(len(pixels), 6)).astype(np.float32)
        np.put_along_axis(pixels, cells, values, axis=1)
        labels, probabilities = session.run(["label", "probabilities"], {"X": pixels})
        # Rows where two classes tie for the top are left out: either label would be right.
        top2 = np.sort(probabilities, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-4
        kept_pixels.append(pixels[clear])
        kept_labels.append(labels[clear])
    pixels = np.concatenate(kept_pixels)[:good]
    labels = np.concatenate(kept_labels)[:good]
    column = [list(map(float, row)) for row in pixels] + [None, [1.0, 2.0, 3.0]]
    table = pa.table(
        {
            "name": [f"d{i}" for i in range(rows)],
            "pixels": pa.array(column, type=pa.list_(pa.float32())),
        }
    )
    pq.write_table(table, path, row_group_size=7000)
    np.save(str(path) + ".labels.npy", np.concatenate([labels, [-1, -1]]).astype(np.int64))


def output_table(folder, columns=None):
    # The default ignore_prefixes ('.', '_') leave out _job.json and temporary files.
    return ds.dataset(folder, format="parquet").to_table(columns=columns)


def check_digits(folder, path):
    expected = np.load(str(path) + ".labels.npy")
    table = output_table(folder, ["key", "id", "label", "probabilities", "error"])
    keys = np.asarray(table["key"].to_numpy(zero_copy_only=False))
    order = np.argsort(keys, kind="stable")
    assert np.array_equal(keys[order], np.arange(len(expected))), (
        f"keys are not each row exactly once: {len(keys)} rows for {len(expected)}"
    )
    labels = table["label"].to_pylist()
    errors = table["error"].to_pylist()
    ids = table["id"].to_pylist()
    probabilities = table["probabilities"].to_pylist()
    for i in order:
        key = int(keys[i])
        assert ids[i] == f"d{key}", (key, ids[i])
        if expected[key] < 0:
            assert errors[i] and labels[i] is None, (key, errors[i], labels[i])
        else:
            assert errors[i] is None, (key, errors[i])
            assert labels[i] == expected[key], (key, labels[i], expected[key])
            assert len(probabilities[i]) == 10, (key, probabilities[i])
    parts = len(list(Path(folder).glob("part-*.parquet")))
    print(f"rows {len(keys)} errors {sum(e is not None for e in errors)} parts {parts}")


def rows(folder):
    table = output_table(folder).to_pylist()
    for row in sorted(table, key=lambda r: r["key"]):
        print(json.dumps(row))


def max_rss(command):
    code = subprocess.run(command).returncode
    print(f"max_rss_kib {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
    return code


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "digits":
        digits(Path(args[0]), int(args[1]))
    elif command == "check-digits":
        check_digits(args[0], Path(args[1]))
    elif command == "rows":
        rows(args[0])
    elif command == "max-rss":
        return max_rss(args)
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main())

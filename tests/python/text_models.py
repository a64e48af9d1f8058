"""A text classifier over the shared MiniLM tokenizer, built here and exported to ONNX, for
destino's text tests (tests/tests/http_text.rs).

    text_models.py ROOT   writes ROOT/intent/{model.onnx, tokenizer.json, model.toml,
                          labels.txt} and prints the model's name. The tokenizer comes from
                          $DESTINO_SHARED_MODELS, else ../shared/models beside the checkout.

`intent` is a bag-of-words classifier: each token id votes for a class through a
[vocabulary, 3] weight table (keywords of food, animals and music weigh 2, every other
token 0), summed over the attention mask: logits [batch, 3] for the labels food, animal,
music (softmax in model.toml).
"""

import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LABELS = ["food", "animal", "music"]
KEYWORDS = [
    ["eat", "eating", "food", "bread", "pizza", "pasta", "lunch", "dinner", "cheese"],
    ["horse", "dog", "cat", "monkey", "animal", "bird", "cow"],
    ["guitar", "piano", "music", "song", "sing", "singing", "violin"],
]


def intent(root, shared):
    tokenizer = os.path.join(shared, "paraphrase_minilm_l3.tokenizer.json")
    with open(tokenizer) as f:
        vocab = json.load(f)["model"]["vocab"]
    weights = np.zeros((len(vocab), len(LABELS)), np.float32)
    for label, words in enumerate(KEYWORDS):
        for word in words:
            weights[vocab[word], label] = 2.0
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(LABELS)])
    nodes = [
        helper.make_node("Gather", ["weights", "input_ids"], ["votes"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "last"], ["mask_3d"]),
        helper.make_node("Mul", ["votes", "mask_3d"], ["counted"]),
        helper.make_node("ReduceSum", ["counted", "sequence_axis"], ["logits"], keepdims=0),
    ]
    initializers = [
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(np.array([-1], np.int64), "last"),
        numpy_helper.from_array(np.array([1], np.int64), "sequence_axis"),
    ]
    graph = helper.make_graph(nodes, "intent", [ids, mask], [logits], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder = os.path.join(root, "intent")
    os.makedirs(folder, exist_ok=True)
    onnx.save(model, os.path.join(folder, "model.onnx"))
    shutil.copy(tokenizer, os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "labels.txt"), "w") as f:
        f.write("\n".join(LABELS) + "\n")
    with open(os.path.join(folder, "model.toml"), "w") as f:
        f.write('[outputs.logits]\nactivation = "softmax"\nlabels = "labels.txt"\ntop_k = 3\n')
    print("intent")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "..", "..", "shared", "models")
    intent(sys.argv[1], os.environ.get("DESTINO_SHARED_MODELS", default))

#!/usr/bin/env python3
"""Text models with the clients people use: the real `openai` package against the
OpenAI-compatible routes, and `tritonclient` (HTTP and gRPC) sending the strings as a BYTES
input.

    python tests/python/test_text_clients.py --url http://127.0.0.1:PORT/v1 \
        --grpc-url 127.0.0.1:PORT --model NAME --shared DIR

NAME serves paraphrase_minilm_l3 with its tokenizer; DIR holds its reference files. Exits
non-zero when any test fails.
"""

import argparse
import asyncio
import os
import sys
import unittest

import numpy as np
import openai
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from references import ATOL, RTOL

URL = ""  # base URL with /v1, set by main()
GRPC_URL = ""  # host:port of the gRPC server, set by main()
MODEL = ""  # the text model's name, set by main()
SHARED = ""  # reference directory, set by main()


def sentences():
    with open(os.path.join(SHARED, "paraphrase_minilm_l3.sentences.txt")) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def reference():
    return np.load(os.path.join(SHARED, "paraphrase_minilm_l3.output.461.npy"))


class OpenAIEmbeddingsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = openai.OpenAI(base_url=URL, api_key="unused", max_retries=0)

    def embeddings(self, response):
        self.assertEqual(response.object, "list")
        self.assertEqual(response.model, MODEL)
        self.assertEqual([d.index for d in response.data], list(range(len(response.data))))
        return np.array([d.embedding for d in response.data], dtype=np.float32)

    def test_sentences_equal_the_reference(self):
        # The client asks for base64 by default and decodes it itself.
        response = self.client.embeddings.create(model=MODEL, input=sentences())
        np.testing.assert_allclose(self.embeddings(response), reference(), rtol=RTOL, atol=ATOL)
        self.assertGreater(response.usage.prompt_tokens, len(sentences()))
        self.assertEqual(response.usage.total_tokens, response.usage.prompt_tokens)

    def test_float_format_and_one_string(self):
        response = self.client.embeddings.create(
            model=MODEL, input=sentences()[0], encoding_format="float"
        )
        got = self.embeddings(response)
        np.testing.assert_allclose(got, reference()[:1], rtol=RTOL, atol=ATOL)

    def test_similar_sentences_are_close(self):
        a, b, c = self.embeddings(
            self.client.embeddings.create(
                model=MODEL,
                input=[
                    "A man is eating food.",
                    "A man is eating a piece of bread.",
                    "A man is riding a horse.",
                ],
            )
        )
        cosine = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
        self.assertGreater(cosine(a, b), 0.7)
        self.assertLess(cosine(a, c), 0.3)

    def test_models_list_names_the_model(self):
        ids = [m.id for m in self.client.models.list()]
        self.assertIn(MODEL, ids)
        self.assertEqual(self.client.models.retrieve(MODEL).id, MODEL)

    def test_errors_are_openai_errors(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            self.client.embeddings.create(model=MODEL, input="")
        self.assertIn("empty", caught.exception.message)
        with self.assertRaises(openai.NotFoundError):
            self.client.embeddings.create(model="no-such-model", input="hello")
        with self.assertRaises(openai.BadRequestError):
            self.client.embeddings.create(model=MODEL, input="hello", dimensions=7)

    def test_concurrent_requests_each_get_their_own_answer(self):
        async def run():
            client = openai.AsyncOpenAI(base_url=URL, api_key="unused", max_retries=0)
            texts = sentences()
            calls = [client.embeddings.create(model=MODEL, input=t) for t in texts]
            return await asyncio.gather(*calls)

        responses = asyncio.run(run())
        got = np.concatenate([self.embeddings(r) for r in responses])
        np.testing.assert_allclose(got, reference(), rtol=RTOL, atol=ATOL)


class TritonClientTextTest(unittest.TestCase):
    """The strings go in one BYTES input (`text`); the embedding output answers."""

    def check(self, module, client):
        texts = np.array([s.encode() for s in sentences()], dtype=np.object_)
        text = module.InferInput("text", [len(texts)], "BYTES")
        text.set_data_from_numpy(texts)
        result = client.infer(MODEL, [text])
        got = result.as_numpy("461")
        np.testing.assert_allclose(got, reference(), rtol=RTOL, atol=ATOL)

    def test_http(self):
        host = URL.removeprefix("http://").removesuffix("/v1")
        self.check(httpclient, httpclient.InferenceServerClient(host))

    def test_grpc(self):
        self.check(grpcclient, grpcclient.InferenceServerClient(GRPC_URL))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="base URL, http://host:port/v1")
    parser.add_argument("--grpc-url", required=True, help="gRPC host:port")
    parser.add_argument("--model", required=True, help="the text model's name")
    parser.add_argument("--shared", required=True, help="directory of reference files")
    args, rest = parser.parse_known_args()
    global URL, GRPC_URL, MODEL, SHARED
    URL, GRPC_URL, MODEL, SHARED = args.url, args.grpc_url, args.model, args.shared
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()

"""Checks the deployment files in deploy/ (run by tests/tests/deploy.rs).

1. Schemas, offline:
   - Kubernetes manifests against the Kubernetes OpenAPI schemas that kubernetes-validate ships,
     strict (an unknown field fails), for the oldest and newest Kubernetes we support;
   - KServe resources against the KServe SDK's models (the KServe fields and their types) and the
     Kubernetes objects inside them (containers, probes, resources) against those same schemas;
   - Azure ML YAML through azure-ai-ml's own loaders (what `az ml ... create -f` validates).
2. Consistency: Services, HPAs and PDBs select the Deployment; every probe targets the port the
   server listens on; the InferenceService names the ServingRuntime and a format it supports.
3. Against the server: destino-server started with each container's args and environment (the
   volume paths mapped to this checkout's model repository, the port to a free one) answers
   every probe and scoring route the files name.

usage: check_deploy.py --server PATH/destino-server --image PATH/coffee.png
       check_deploy.py --self-test      (each check fails on a broken copy of the files)
"""

import argparse
import copy
import glob
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
KUBERNETES_VERSIONS = ["1.30", "1.37"]


class Failure(Exception):
    pass


def load_all(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def documents(folder):
    """(file, document) for every YAML document under deploy/<folder>."""
    out = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, folder, "**", "*.yaml"), recursive=True)):
        out += [(os.path.relpath(path, ROOT), doc) for doc in load_all(path)]
    return out


# --- 1. schemas -------------------------------------------------------------------------------


def validate_kubernetes(name, doc):
    import kubernetes_validate

    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            raise Failure(f"{name}: {doc['kind']} invalid for Kubernetes {version}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            raise Failure(f"{name}: {e.message}")


def kubernetes_definitions():
    import importlib_resources
    import kubernetes_validate.utils as utils

    version = utils.latest_version()
    folder = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    with open(folder.joinpath(f"v{version}-local-strict", "_definitions.json")) as f:
        return json.load(f)


def validate_kubernetes_object(value, python_type, where, definitions):
    """A Kubernetes object embedded in a KServe resource, against its strict JSON schema."""
    import jsonschema

    m = re.fullmatch(r"V(\d+(?:alpha|beta)?\d*)(\w+)", python_type)
    if not m:
        raise Failure(f"{where}: no Kubernetes schema for {python_type}")
    suffix = f".v{m[1]}.{m[2]}"
    names = sorted(n for n in definitions["$defs"] if n.endswith(suffix))
    names.sort(key=lambda n: not n.startswith(("io.k8s.api.core.", "io.k8s.apimachinery.")))
    if not names:
        raise Failure(f"{where}: no Kubernetes schema for {python_type}")
    schema = {"$ref": f"#/$defs/{names[0]}", "$defs": definitions["$defs"]}
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=str)
    if errors:
        e = errors[0]
        raise Failure(f"{where}.{'.'.join(str(p) for p in e.path)}: {e.message}")


def validate_kserve(value, type_name, where, definitions):
    """Walks a KServe resource along the KServe SDK's OpenAPI models: unknown fields and
    wrong types fail; Kubernetes objects inside go to their JSON schemas."""
    import kserve.models as kserve_models

    if value is None:
        return
    if m := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            raise Failure(f"{where}: expected a list, got {value!r}")
        for i, item in enumerate(value):
            validate_kserve(item, m[1], f"{where}[{i}]", definitions)
        return
    if m := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        if not isinstance(value, dict):
            raise Failure(f"{where}: expected a map, got {value!r}")
        for key, item in value.items():
            validate_kserve(item, m[1], f"{where}.{key}", definitions)
        return
    primitives = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float)}
    if type_name in primitives:
        if not isinstance(value, primitives[type_name]) or (type_name == "int" and isinstance(value, bool)):
            raise Failure(f"{where}: expected {type_name}, got {value!r}")
        return
    if type_name in ("object", "datetime"):
        return
    model = getattr(kserve_models, type_name, None)
    if model is None:
        validate_kubernetes_object(value, type_name, where, definitions)
        return
    if not isinstance(value, dict):
        raise Failure(f"{where}: expected a {type_name} object, got {value!r}")
    by_field = {field: attr for attr, field in model.attribute_map.items()}
    for field, item in value.items():
        if field not in by_field:
            raise Failure(f"{where}: unknown field {field!r} in {type_name}")
        validate_kserve(item, model.openapi_types[by_field[field]], f"{where}.{field}", definitions)


def validate_kserve_resource(name, doc, definitions):
    types = {
        ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
        ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
        ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
    }
    type_name = types.get((doc.get("apiVersion"), doc.get("kind")))
    if type_name is None:
        raise Failure(f"{name}: not a KServe resource this check knows: {doc.get('apiVersion')} {doc.get('kind')}")
    validate_kserve(doc, type_name, f"{name}:{doc['kind']}", definitions)
    if not doc.get("metadata", {}).get("name"):
        raise Failure(f"{name}: metadata.name is missing")


def load_azureml(path):
    from azure.ai.ml import load_job, load_online_deployment, load_online_endpoint

    kind = load_all(path)[0].get("$schema", "")
    try:
        if kind.endswith("managedOnlineEndpoint.schema.json"):
            return load_online_endpoint(path)
        if kind.endswith("managedOnlineDeployment.schema.json"):
            return load_online_deployment(path)
        if kind.endswith("commandJob.schema.json"):
            return load_job(path)
    except Exception as e:  # azure-ai-ml's ValidationError carries the whole report
        raise Failure(f"{os.path.relpath(path, ROOT)}: {str(e).split('Visit this link')[0].strip()}")
    raise Failure(f"{os.path.relpath(path, ROOT)}: unknown $schema {kind!r}")


def check_schemas():
    definitions = kubernetes_definitions()
    kubernetes = documents("kubernetes")
    kserve = documents("kserve")
    for name, doc in kubernetes:
        validate_kubernetes(name, doc)
    for name, doc in kserve:
        validate_kserve_resource(name, doc, definitions)
    azure = [load_azureml(p) for p in sorted(glob.glob(os.path.join(DEPLOY, "azureml", "*.yml")))]
    print(f"schemas: {len(kubernetes)} Kubernetes, {len(kserve)} KServe, {len(azure)} Azure ML: valid")
    return kubernetes, kserve, azure


# --- 2. consistency ---------------------------------------------------------------------------


def image_default_port():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        m = re.search(r"DESTINO_HTTP_PORT=(\d+)", f.read())
    if not m:
        raise Failure("Dockerfile: no DESTINO_HTTP_PORT default")
    return int(m[1])


def image_command():
    """The Dockerfile's CMD: the args of a container that names none."""
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        commands = re.findall(r"^CMD (\[.*\])$", f.read(), re.M)
    if not commands:
        raise Failure("Dockerfile: no CMD")
    return json.loads(commands[-1])


def flag(args, name):
    """The value of --name=V or --name V in a container's args."""
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
    return None


def env_of(container):
    return {e["name"]: str(e.get("value", "")) for e in container.get("env", [])}


def listen_port(container):
    """The port destino-server listens on in this container: flag, then env, then image."""
    port = flag(container.get("args", []), "http-port") or env_of(container).get("DESTINO_HTTP_PORT")
    return int(port) if port else image_default_port()


GRPC_DEFAULT_PORT = 8001  # destino's --grpc-port default, Triton's


def grpc_listen_port(container):
    """The gRPC port in this container (flag, then env, then the default); None when off."""
    port = flag(container.get("args", []), "grpc-port") or env_of(container).get("DESTINO_GRPC_PORT")
    port = int(port) if port else GRPC_DEFAULT_PORT
    return port or None


def probe_port(probe, container, where):
    port = (probe.get("httpGet") or probe.get("grpc"))["port"]
    if isinstance(port, str):
        named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        if port not in named:
            raise Failure(f"{where}: probe port {port!r} is not a named container port")
        port = named[port]
    return port


def probes(container):
    return {k: container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in container}


def check_container(container, where):
    port, grpc = listen_port(container), grpc_listen_port(container)
    ports = container.get("ports", [])
    declared = [p["containerPort"] for p in ports]
    grpc_named = [p["containerPort"] for p in ports if p.get("name") in ("grpc", "h2c")]
    if port not in declared and not grpc_named:
        raise Failure(f"{where}: the server listens on {port}, the container declares {declared}")
    for named in grpc_named:
        if named != grpc:
            raise Failure(f"{where}: port {named} is named for gRPC, which listens on {grpc}")
    for kind, probe in probes(container).items():
        expected = grpc if "grpc" in probe else port
        if probe_port(probe, container, f"{where}.{kind}") != expected:
            raise Failure(f"{where}.{kind}: probes a port the server does not listen on")


def check_job(name, doc, known_claims):
    """A batch Job: Indexed, its pods told the shard count, `batch` run, its claims defined."""
    spec = doc["spec"]
    if spec.get("completionMode") != "Indexed":
        raise Failure(f"{name}: shards come from an Indexed Job's JOB_COMPLETION_INDEX")
    pod = spec["template"]["spec"]
    for container in pod["containers"]:
        if container.get("args", [None])[0] != "batch":
            raise Failure(f"{name}:{container['name']}: does not run `batch`")
        if env_of(container).get("JOB_COMPLETIONS") != str(spec["completions"]):
            raise Failure(f"{name}:{container['name']}: JOB_COMPLETIONS is not spec.completions ({spec['completions']})")
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
    if claims - known_claims:
        raise Failure(f"{name}: volume claims {sorted(claims - known_claims)} are not defined")


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_consistency(kubernetes, kserve, azure):
    by_kind = {}
    for name, doc in kubernetes + kserve:
        by_kind.setdefault(doc["kind"], []).append((name, doc))
    deployments = by_kind.get("Deployment", [])
    for name, doc in deployments:
        pod = doc["spec"]["template"]
        if not selects(doc["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"]):
            raise Failure(f"{name}: the selector does not match the pod's labels")
        for container in pod["spec"]["containers"]:
            check_container(container, f"{name}:{container['name']}")
        claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"].get("volumes", []) if "persistentVolumeClaim" in v}
        known = {d["metadata"]["name"] for _, d in by_kind.get("PersistentVolumeClaim", [])}
        if claims - known:
            raise Failure(f"{name}: volume claims {sorted(claims - known)} are not defined")
    for name, doc in by_kind.get("Job", []):
        check_job(name, doc, {d["metadata"]["name"] for _, d in by_kind.get("PersistentVolumeClaim", [])})
    for kind in ("Service", "PodDisruptionBudget"):
        for name, doc in by_kind.get(kind, []):
            selector = doc["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            for dname, d in deployments:
                if not selects(selector, d["spec"]["template"]["metadata"]["labels"]):
                    raise Failure(f"{name}: {kind} does not select the pods of {dname}")
    for name, doc in by_kind.get("Service", []):
        for port in doc["spec"]["ports"]:
            for dname, d in deployments:
                container = d["spec"]["template"]["spec"]["containers"][0]
                named = {p.get("name") for p in container.get("ports", [])}
                target = port.get("targetPort")
                if isinstance(target, str) and target not in named:
                    raise Failure(f"{name}: targetPort {target!r} is not a port of {dname}")
    for name, doc in by_kind.get("HorizontalPodAutoscaler", []):
        target = doc["spec"]["scaleTargetRef"]
        if not any(d["metadata"]["name"] == target["name"] for _, d in deployments):
            raise Failure(f"{name}: scales {target['name']!r}, which no Deployment is")
    runtimes = {d["metadata"]["name"]: d for _, d in by_kind.get("ServingRuntime", [])}
    for name, doc in runtimes.items():
        for container in doc["spec"]["containers"]:
            check_container(container, f"ServingRuntime {name}:{container['name']}")
    for name, doc in by_kind.get("InferenceService", []):
        model = doc["spec"]["predictor"]["model"]
        runtime = runtimes.get(model.get("runtime"))
        if runtime is None:
            raise Failure(f"{name}: runtime {model.get('runtime')!r} is not a ServingRuntime here")
        formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
        if model["modelFormat"]["name"] not in formats:
            raise Failure(f"{name}: format {model['modelFormat']['name']!r} is not among {sorted(formats)}")
        if model.get("protocolVersion", "v1") not in runtime["spec"]["protocolVersions"]:
            raise Failure(f"{name}: protocol {model.get('protocolVersion')} is not served by the runtime")
    for deployment in azure:
        config = getattr(getattr(deployment, "environment", None), "inference_config", None)
        if config is None:
            continue
        port = int(deployment.environment_variables.get("DESTINO_HTTP_PORT", image_default_port()))
        for route, value in config.items():
            if value["port"] != port:
                raise Failure(f"Azure ML {deployment.name}: {route} uses port {value['port']}, the server listens on {port}")
    print("consistency: selectors, ports, probes, runtime references agree")


# --- 3. against the server --------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, body=None, content_type=None):
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if content_type:
        req.add_header("content-type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


class Server:
    """destino-server as a container would run it: its args and env, paths and port mapped."""

    def __init__(self, server, args, env, paths, where):
        self.where = where
        self.port = free_port()
        self.grpc_port = free_port()
        args = [self.map(a, paths) for a in args]
        for name, port in (("http-port", self.port), ("grpc-port", self.grpc_port)):
            args = [re.sub(rf"^--{name}=\d+$", f"--{name}={port}", a) for a in args]
            if f"--{name}" in args:
                args[args.index(f"--{name}") + 1] = str(port)
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("DESTINO_", "AZUREML_"))}
        child_env.update({k: self.map(v, paths) for k, v in env.items()})
        child_env["DESTINO_HTTP_PORT"] = str(self.port)
        child_env["DESTINO_GRPC_PORT"] = str(self.grpc_port)
        child_env["DESTINO_HTTP_ADDRESS"] = "127.0.0.1"
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen([server, *args], env=child_env, stdout=self.log, stderr=subprocess.STDOUT)

    @staticmethod
    def map(value, paths):
        for inside, outside in paths.items():
            value = re.sub(rf"(^|=){re.escape(inside)}(?=/|$)", rf"\g<1>{outside}", value)
        return value

    def grpc_health(self, service=""):
        """grpc.health.v1's answer for `service` on this server's gRPC port must be SERVING."""
        import grpc
        import health_check

        try:
            answer = health_check.status(f"127.0.0.1:{self.grpc_port}", service)
        except grpc.RpcError as e:
            raise Failure(f"{self.where}: gRPC health of {service!r}: {e.code()}")
        if answer != "SERVING":
            raise Failure(f"{self.where}: gRPC health of {service!r} is {answer}")
        print(f"  {self.where}: gRPC health {service!r} -> SERVING")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, path):
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise Failure(f"{self.where}: the server exited:\n{self.output()}")
            if request(self.url(path))[0] == 200:
                return
            time.sleep(0.2)
        raise Failure(f"{self.where}: not ready on {path} within 120 s:\n{self.output()}")

    def expect(self, path, body=None, content_type=None, contains=None):
        status, answer = request(self.url(path), body, content_type)
        if status != 200 or (contains and contains.encode() not in answer):
            raise Failure(f"{self.where}: {path} answered {status}: {answer[:300]!r}")
        print(f"  {self.where}: {'POST' if body else 'GET'} {path} -> 200")

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


def run_container(server, container, paths, where, image, extra):
    if "cuda" in container.get("args", []) or container.get("image", "").endswith(":cuda"):
        print(f"  {where}: a GPU container: checked statically only")
        return
    instance = Server(server, container.get("args", image_command()), env_of(container), paths, where)
    try:
        container_probes = probes(container)
        first = container_probes.get("startupProbe") or container_probes.get("readinessProbe")
        http_first = first and "httpGet" in first
        instance.wait_ready(first["httpGet"]["path"] if http_first else "/v2/health/ready")
        for probe in container_probes.values():
            if "grpc" in probe:
                instance.grpc_health(probe["grpc"].get("service", ""))
            else:
                instance.expect(probe["httpGet"]["path"])
        instance.expect("/models/efficientnet_lite0/predict", image, "image/png", "espresso")
        for path in extra:
            instance.expect(path)
    finally:
        instance.stop()


def run_job(server, name, doc, repository, image):
    """Each pod of a batch Job as Kubernetes runs it (its index in JOB_COMPLETION_INDEX): the
    models claim mapped to this checkout's repository, the data claim to a folder holding one
    image per pod; together the pods score every image once."""
    pod = doc["spec"]["template"]["spec"]
    container = pod["containers"][0]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
    with tempfile.TemporaryDirectory() as data:
        paths = {}
        for mount in container.get("volumeMounts", []):
            claim = claims.get(mount["name"])
            paths[mount["mountPath"]] = repository if claim == "destino-models" else data
        count = doc["spec"]["completions"]
        args = [Server.map(a, paths) for a in container["args"]]
        input_dir = flag(args, "input")
        os.makedirs(input_dir)
        for i in range(count):
            with open(os.path.join(input_dir, f"{i}.png"), "wb") as f:
                f.write(image)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DESTINO_", "JOB_"))}
        env.update({k: Server.map(v, paths) for k, v in env_of(container).items()})
        for index in range(count):
            env["JOB_COMPLETION_INDEX"] = str(index)
            done = subprocess.run([server, *args, "--part-size=1"], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise Failure(f"{name}: pod {index} failed: {done.stderr[-2000:]}")
        output = flag(args, "output")
        parts = sorted(p for p in os.listdir(output) if p.startswith("part-"))
        rows = scored_rows(output)
        if len(parts) != count or sorted(r["key"] for r in rows) != [f"{i}.png" for i in range(count)]:
            raise Failure(f"{name}: {count} pods wrote {parts}: {rows}")
        if not all("espresso" in json.dumps(r["logits"]) for r in rows):
            raise Failure(f"{name}: rows without espresso: {rows}")
    print(f"  {name}: {count} indexed pods scored {count} images, each once")


def scored_rows(folder):
    """The rows of a batch output folder, read as one Parquet data set (as pandas would)."""
    import pyarrow.dataset

    return pyarrow.dataset.dataset(folder, format="parquet").to_table().to_pylist()


def run_azureml_job(server, job, repository, image):
    """An Azure ML command job's command as the job runs it in the image: the inputs mounted
    (the models input is this checkout's repository, the data asset a folder of images), the
    output a writable folder."""
    where = f"Azure ML job {job.display_name}"
    with tempfile.TemporaryDirectory() as mount:
        images, scores = os.path.join(mount, "images"), os.path.join(mount, "scores")
        os.makedirs(images)
        for i in range(3):
            with open(os.path.join(images, f"{i}.png"), "wb") as f:
                f.write(image)
        places = {"inputs.models": repository, "inputs.images": images, "outputs.scores": scores}
        command = job.command
        for name, place in places.items():
            command = command.replace("${{" + name + "}}", place)
        if re.search(r"\$\{\{", command):
            raise Failure(f"{where}: the command names an input or output the check does not mount: {command}")
        args = command.split()
        if args[0] != "destino-server":
            raise Failure(f"{where}: the command does not run destino-server: {command}")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DESTINO_", "JOB_"))}
        done = subprocess.run([server, *args[1:]], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise Failure(f"{where}: failed: {done.stderr[-2000:]}")
        rows = scored_rows(scores)
        if len(rows) != 3 or not all("espresso" in json.dumps(r["logits"]) for r in rows):
            raise Failure(f"{where}: wrote {rows}")
    print(f"  {where}: the command scored 3 images into part files")


def check_against_server(server, image_path, kubernetes, kserve, azure):
    with open(image_path, "rb") as f:
        image = f.read()
    repository = os.path.join(ROOT, "models")
    models = sorted(d for d in os.listdir(repository) if os.path.isdir(os.path.join(repository, d)))
    model_ready = [f"/v2/models/{m}/ready" for m in models]
    for name, doc in kubernetes:
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        volumes = {v["name"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
        for container in pod["containers"]:
            # The claim holds a model repository: this checkout's stands in for it.
            paths = {m["mountPath"]: repository for m in container.get("volumeMounts", []) if m["name"] in volumes}
            run_container(server, container, paths, f"{name}:{container['name']}", image, model_ready)
    for name, doc in kubernetes:
        if doc["kind"] == "Job":
            run_job(server, name, doc, repository, image)
    for name, doc in kserve:
        if doc["kind"] != "ServingRuntime":
            continue
        for container in doc["spec"]["containers"]:
            # KServe's storage initializer puts the storageUri (a model repository) there.
            paths = {"/mnt/models": repository}
            run_container(server, container, paths, f"{name}:{container['name']}", image, ["/v2/health/live", *model_ready])
    for job in azure:
        if getattr(job, "type", None) == "command":
            run_azureml_job(server, job, repository, image)
    for deployment in azure:
        config = getattr(getattr(deployment, "environment", None), "inference_config", None)
        if config is None:
            continue
        where = f"Azure ML {deployment.name}"
        with tempfile.TemporaryDirectory() as mount:
            # Azure ML mounts the model folder as <model_mount_path>/<folder name>.
            model_folder = os.path.abspath(deployment.model.path)
            os.symlink(model_folder, os.path.join(mount, os.path.basename(model_folder)))
            instance = Server(server, image_command(), deployment.environment_variables, {deployment.model_mount_path: mount}, where)
            try:
                instance.wait_ready(config["readinessRoute"]["path"])
                instance.expect(config["livenessRoute"]["path"])
                instance.expect(config["readinessRoute"]["path"])
                instance.expect(config["scoringRoute"]["path"], image, "image/png", "espresso")
            finally:
                instance.stop()
    print("server: every probe and scoring route the files name answers 200")


# --- self-test --------------------------------------------------------------------------------


def expect_failure(label, check):
    try:
        check()
    except Failure as e:
        print(f"  self-test {label}: caught: {str(e).splitlines()[0][:160]}")
        return
    raise SystemExit(f"self-test {label}: a broken file passed")


def expect_azureml_failure(label, name, text, broken):
    """azure-ai-ml's loader refuses deploy/azureml/NAME with `text` replaced by `broken`."""
    source = os.path.join(DEPLOY, "azureml", name)
    with open(source) as f:
        content = f.read()
    if text not in content:
        raise Failure(f"self-test {label}: {name} has no {text!r}")
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=os.path.dirname(source)) as f:
        f.write(content.replace(text, broken))
        f.flush()
        expect_failure(label, lambda: load_azureml(f.name))


def self_test():
    kubernetes, kserve, azure = check_schemas()
    definitions = kubernetes_definitions()
    deployment = next((n, d) for n, d in kubernetes if d["kind"] == "Deployment")
    runtime = next((n, d) for n, d in kserve if d["kind"] == "ServingRuntime")
    isvc = next((n, d) for n, d in kserve if d["kind"] == "InferenceService")

    broken = copy.deepcopy(deployment[1])
    broken["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["httpGet"]["paht"] = "/"
    expect_failure("Kubernetes unknown field", lambda: validate_kubernetes(deployment[0], broken))
    broken = copy.deepcopy(deployment[1])
    broken["spec"]["replicas"] = "two"
    expect_failure("Kubernetes wrong type", lambda: validate_kubernetes(deployment[0], broken))
    broken = copy.deepcopy(isvc[1])
    broken["spec"]["predictor"]["model"]["storageUrl"] = broken["spec"]["predictor"]["model"].pop("storageUri")
    expect_failure("KServe unknown field", lambda: validate_kserve_resource(isvc[0], broken, definitions))
    broken = copy.deepcopy(runtime[1])
    del broken["spec"]["containers"][0]["name"]
    expect_failure("KServe container without a name", lambda: validate_kserve_resource(runtime[0], broken, definitions))
    broken = copy.deepcopy(runtime[1])
    broken["spec"]["supportedModelFormats"][0]["autoSelect"] = "yes"
    expect_failure("KServe wrong type", lambda: validate_kserve_resource(runtime[0], broken, definitions))
    broken = copy.deepcopy(isvc[1])
    broken["spec"]["predictor"]["model"]["runtime"] = "triton"
    runtimes = [(n, d) for n, d in kserve if d["kind"] == "ServingRuntime"]
    expect_failure("InferenceService runtime", lambda: check_consistency(kubernetes, runtimes + [(isvc[0], broken)], azure))
    broken = copy.deepcopy(deployment[1])
    broken["spec"]["template"]["spec"]["containers"][0]["args"] = ["serve", "--http-port=9000"]
    expect_failure("probe port", lambda: check_consistency([(deployment[0], broken)], [], []))
    broken = copy.deepcopy(deployment[1])
    broken["spec"]["template"]["spec"]["containers"][0]["args"] = ["serve", "--grpc-port=9001"]
    expect_failure("gRPC probe port", lambda: check_consistency([(deployment[0], broken)], [], []))
    job = next((n, d) for n, d in kubernetes if d["kind"] == "Job")
    claims = [(n, d) for n, d in kubernetes if d["kind"] == "PersistentVolumeClaim"]
    broken = copy.deepcopy(job[1])
    broken["spec"]["completions"] = 8
    expect_failure("Job shard count", lambda: check_consistency(claims + [(job[0], broken)], [], []))
    broken = copy.deepcopy(job[1])
    del broken["spec"]["completionMode"]
    expect_failure("Job not indexed", lambda: check_consistency(claims + [(job[0], broken)], [], []))
    expect_azureml_failure("Azure ML wrong type", "deployment.yml", "instance_count: 1", "instance_count: one")
    expect_azureml_failure("Azure ML job input mode", "batch-job.yml", "mode: ro_mount", "mode: read_only_please")
    print("self-test: every check fails on a broken file")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", help="destino-server binary")
    parser.add_argument("--image", help="a PNG of a cup of coffee (../shared/models/images/coffee.png)")
    parser.add_argument("--self-test", action="store_true")
    options = parser.parse_args()
    try:
        if options.self_test:
            self_test()
            return
        if not options.server or not options.image:
            parser.error("--server and --image are required")
        kubernetes, kserve, azure = check_schemas()
        check_consistency(kubernetes, kserve, azure)
        check_against_server(options.server, options.image, kubernetes, kserve, azure)
    except Failure as e:
        sys.exit(f"check_deploy: {e}")
    print("OK")


if __name__ == "__main__":
    main()

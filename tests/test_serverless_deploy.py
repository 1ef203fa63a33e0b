"""The serverless deploy steps of the docs (docs/serving.md), checked without docker: the build contexts docker
would send (honouring .dockerignore, tests/fakes/docker_context.py) hold what each Dockerfile COPYs (the project
for the base image from a clean checkout, the run's adapter for the derived one), and the create-endpoint JSON
has the shape of RunPod's v2 CreateEndpointRequest."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from fakes.docker_context import context_files, copied, ignored, instructions, read_patterns

ROOT = Path(__file__).resolve().parent.parent
SERVING = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
DEPLOY = SERVING[SERVING.index("## Deploy"):SERVING.index("## What 1,000 posts cost")]


def _checkout_files() -> list[str]:
    """The files of a clean checkout of this branch: tracked, plus new ones git does not ignore."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if (ROOT / line).is_file()]


def _commands(prefix: str) -> list[list[str]]:
    return [shlex.split(line.strip().strip("`")) for line in DEPLOY.replace(" && ", "\n").splitlines()
            if line.strip().strip("`").startswith(prefix)]


def _adapter(folder: Path) -> Path:
    """A run's adapter folder as `train` writes it (its content does not matter to docker)."""
    folder.mkdir(parents=True)
    for name, data in (("adapter_model.safetensors", b"\0" * 64), ("adapter_config.json", b"{}"),
                       ("bizsent.json", json.dumps({"base_model": "Qwen/Qwen2.5-VL-7B-Instruct"}).encode()),
                       ("README.md", b"adapter")):
        (folder / name).write_bytes(data)
    return folder


def test_the_dockerignore_rules_are_dockers():
    rules = read_patterns("# c\ndata\n/.venv/\n**/__pycache__\n*.md\n!README.md\n")
    assert ignored("data", rules) and ignored("data/runs/x/adapter/bizsent.json", rules)
    assert ignored(".venv/bin/python", rules) and ignored("core/__pycache__/a.pyc", rules)
    assert ignored("NOTES.md", rules) and not ignored("README.md", rules) and not ignored("core/data.py", rules)


def test_the_base_image_builds_from_a_clean_checkout_without_data_or_keys(tmp_path):
    (build,) = _commands("docker build -t")
    assert build[-1] == "."
    checkout = tmp_path / "checkout"
    for rel in _checkout_files():
        (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, checkout / rel)
    _adapter(checkout / "data" / "runs" / "qwen7b-v1" / "adapter")  # the user's data beside the sources
    (checkout / ".env").write_text("RUNPOD_API_KEY=x\n")
    files = context_files(checkout)
    assert {"pyproject.toml", "README.md", "constraints.txt", "__init__.py", "core/serve/handler.py"} <= files
    assert not any(f.startswith(("data/", ".venv/", ".git/")) or f == ".env" for f in files)
    for what, taken in copied(checkout / "Dockerfile", files).items():
        assert taken, what


def test_the_derived_image_gets_the_adapter_from_the_readme_command(tmp_path):
    (build,) = _commands("docker build -f")
    dockerfile = ROOT / build[build.index("-f") + 1]
    context = build[-1]
    assert context == "data/runs/qwen7b-v1/adapter" and dockerfile.name == "Dockerfile.adapter"
    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(ROOT / ".dockerignore", project / ".dockerignore")  # the checkout's, which excludes data
    adapter = _adapter(project / context)
    files = context_files(project / context, dockerfile)
    assert files == {p.name for p in adapter.iterdir()}
    (taken,) = copied(dockerfile, files).values()
    assert {"adapter_model.safetensors", "bizsent.json", "adapter_config.json"} <= taken
    steps = instructions(dockerfile)
    copy = next(args for op, args in steps if op == "COPY")
    assert copy.split()[-1] == "/opt/bizsent/adapter"
    assert ("ENV", "BIZSENT_ADAPTER=/opt/bizsent/adapter") in steps
    assert [op for op, _ in steps][:2] == ["ARG", "FROM"] and "--build-arg" in build
    # the docs' earlier step, COPY data/runs/... from the project's root, found nothing: .dockerignore has data
    root_files = context_files(project)
    assert not any(f.startswith("data/") for f in root_files)


def test_the_create_endpoint_json_has_the_v2_request_shape():
    (block,) = re.findall(r"```json\n(.*?)```", DEPLOY, flags=re.S)
    body = json.loads(block)
    # CreateEndpointRequest (RunPod OpenAPI, v2; platform-facts.md): `scaling` is required.
    scaling = body["scaling"]
    assert scaling["type"] in ("QUEUE_DELAY", "REQUEST_COUNT")
    assert isinstance(scaling.get("queueDelay" if scaling["type"] == "QUEUE_DELAY" else "requestCount"), int)
    assert body["type"] in ("QUEUE", "LOAD_BALANCER") and body["name"] and body["image"]
    workers = body["workers"]
    assert 0 <= workers["min"] <= workers["max"] and body["gpu"]["count"] == 1
    assert all(isinstance(v, str) for v in body["env"].values())
    assert not any(re.search(r"KEY|TOKEN|SECRET", k) for k in body["env"])
    assert body["env"]["BIZSENT_ADAPTER"] == "/opt/bizsent/adapter"  # where Dockerfile.adapter puts it

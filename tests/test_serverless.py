"""The serverless worker (through the runpod SDK's local test mode, on the tiny model) and `bizsent predict
--endpoint` against a fake RunPod queue API that runs the real handler."""

from __future__ import annotations

import ast
import base64
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from bizsent.core.config import ServerlessSettings
from bizsent.core.errors import BizsentError
from bizsent.core.labels import LABELS
from bizsent.core.serve import request
from bizsent.core.serve.endpoint import EndpointClient, estimate
from bizsent.core.serve.handler import ADAPTER_ENV, BASE_MODEL_ENV, handler
from fakes.openai_server import Server
from fakes.serverless_server import FakeServerless, make_handler
from fakes.train import image_bytes

CANARY = "rp-canary-5150aa77e1d2c3b4"
ROOT = Path(__file__).resolve().parent.parent


class ImageHost(BaseHTTPRequestHandler):
    """Serves /ok.png (a picture), /page.html (a web page), /slow.png (answers after 2 s); anything else 404."""

    files = {"/ok.png": image_bytes("bullish", 7), "/page.html": b"<!doctype html><p>not a picture</p>"}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/slow.png":
            time.sleep(2)
        data = self.files.get(self.path.replace("/slow.png", "/ok.png"))
        self.send_response(200 if data else 404)
        self.send_header("content-length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")


@pytest.fixture(scope="module")
def image_host():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ImageHost)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def worker_env(run: dict, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (ADAPTER_ENV, BASE_MODEL_ENV, "RUNPOD_WEBHOOK_GET_JOB")}
    return {**env, ADAPTER_ENV: str(run["result"].adapter_dir), **extra}


def sdk_test_mode(run: dict, job_input: dict) -> subprocess.CompletedProcess:
    """One job through the runpod SDK's local test mode, as `python -m bizsent.core.serve.handler` in the image."""
    return subprocess.run([sys.executable, "-m", "bizsent.core.serve.handler", "--rp_log_level", "INFO",
                           "--test_input", json.dumps({"input": job_input})],
                          capture_output=True, text=True, env=worker_env(run), timeout=240)


def job_result(out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, out.stdout + out.stderr
    line = next(x for x in out.stdout.splitlines() if "Job result: " in x)
    return ast.literal_eval(line.split("Job result: ", 1)[1])["output"]


def check_prediction(output: dict) -> None:
    assert output["label"] in LABELS
    assert set(output["probabilities"]) == set(LABELS)
    assert sum(output["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert output["label"] == max(output["probabilities"], key=output["probabilities"].get)
    assert output["latency_ms"] > 0


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_worker_answers_in_the_sdk_test_mode_with_a_base64_image(run):
    output = job_result(sdk_test_mode(run, {"text": "wagmi to the moon buy", "image": b64(image_bytes("bullish", 3))}))
    check_prediction(output)


def test_worker_reads_an_image_by_url(run, image_host):
    check_prediction(job_result(sdk_test_mode(run, {"text": "gm", "image": f"{image_host}/ok.png"})))


def test_the_image_is_read_with_the_text(run, monkeypatch):
    """Same text, another picture: other probabilities (the worker never scores the text alone)."""
    monkeypatch.setenv(ADAPTER_ENV, str(run["result"].adapter_dir))
    answers = [handler({"input": {"text": "what wallet do you use anon", "image": b64(image_bytes(label, 5))}})
               for label in ("bearish", "bullish")]
    for answer in answers:
        check_prediction(answer)
    assert answers[0]["probabilities"] != pytest.approx(answers[1]["probabilities"], abs=1e-6)


def test_bad_input_fails_the_job_with_one_line_in_the_sdk_test_mode(run):
    out = sdk_test_mode(run, {"text": "no picture"})
    assert out.returncode == 1
    assert 'failed with error: input needs "image"' in out.stdout and "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize(("job_input", "says"), [
    ({"text": "gm"}, 'input needs "image"'),
    ({"image": "aGk="}, 'input needs "text"'),
    ("just a string", "input must be an object"),
    ({"text": "gm", "image": "not base64!"}, "neither an http(s) URL nor valid base64"),
    ({"text": "gm", "image": "file:///etc/passwd"}, "scheme file:// is not allowed"),
    ({"text": "gm", "image": "ftp://example.com/a.png"}, "scheme ftp:// is not allowed"),
    ({"text": "gm", "image": b64(b"GIF89a broken")}, "image is not usable"),
    ({"text": "gm", "image": "aGk=", "label": "bullish"}, 'unknown field "label"'),
    ({"text": "gm", "image": "data:image/png,abc"}, "must be base64"),
    ({"text": "", "image": "aGk="}, "the post has no text"),  # image-only posts: out of training and scoring too
    ({"text": "<br><wbr> ", "image": "aGk="}, "the post has no text"),
])
def test_bad_input_is_one_error_line_before_any_model_loads(monkeypatch, job_input, says):
    monkeypatch.delenv(ADAPTER_ENV, raising=False)  # a handler that loaded first would answer "not set"
    answer = handler({"id": "t", "input": job_input})
    assert set(answer) == {"error"} and says in answer["error"] and "\n" not in answer["error"]


def test_image_urls_that_fail_are_one_line(image_host, monkeypatch):
    monkeypatch.delenv(ADAPTER_ENV, raising=False)
    cases = {f"{image_host}/missing.png": "answered HTTP 404", f"{image_host}/page.html": "web page",
             "http://127.0.0.1:9/none.png": "could not be fetched"}
    for url, says in cases.items():
        answer = handler({"input": {"text": "gm", "image": url}})
        assert says in answer["error"], (url, answer)
    with pytest.raises(BizsentError, match="no answer within 0.3 s"):
        request.fetch_image(f"{image_host}/slow.png", timeout_s=0.3)
    monkeypatch.setattr(request, "MAX_IMAGE_BYTES", 100)
    assert "larger than" in handler({"input": {"text": "gm", "image": f"{image_host}/ok.png"}})["error"]
    assert "larger than" in handler({"input": {"text": "gm", "image": b64(bytes(300))}})["error"]


def test_a_worker_without_an_adapter_stops_at_start_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != ADAPTER_ENV}
    out = subprocess.run([sys.executable, "-m", "bizsent.core.serve.handler", "--test_input", '{"input": {}}'],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        f"error: {ADAPTER_ENV} is not set; set it in the endpoint's environment to a trained run's adapter folder "
        "(baked into the image or on a network volume)"]


# --- bizsent predict --endpoint ---------------------------------------------------------------------------------


@pytest.fixture
def endpoint(run, monkeypatch, tmp_path):
    """The fake queue API (running the real handler on the run's adapter) and a config pointing at it."""
    monkeypatch.setenv(ADAPTER_ENV, str(run["result"].adapter_dir))
    fake = FakeServerless()
    with Server(fake, make_handler, suffix="") as server:
        cfg = tmp_path / "config.toml"
        cfg.write_text(f'[data]\ndir = "{run["settings"].data_dir}"\n[runpod]\nserverless_base = "{server.url}"\n'
                       "[serverless]\nmax_wait_s = 2.0\npoll_s = 0.05\n", encoding="utf-8")
        yield fake, cfg, server.url


def bizsent(cfg: Path, *args: str, key: str | None = CANARY, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RUNPOD_API_KEY"}
    if key is not None:
        env["RUNPOD_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "bizsent", "--config", str(cfg), *args], capture_output=True,
                          text=True, env=env, input=stdin, timeout=240)


def posts_file(run: dict, tmp_path: Path) -> tuple[Path, list[Path]]:
    images = []
    for k, label in enumerate(("bearish", "bullish")):
        images.append(tmp_path / f"{label}.png")
        images[-1].write_bytes(image_bytes(label, 11 + k))
    lines = [{"text": "it is over", "image_path": str(images[0])}, {"text": "wagmi", "image_path": str(images[1])}]
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path, images


def test_predict_endpoint_prints_one_json_line_a_post_and_keeps_the_key_to_the_header(run, endpoint, tmp_path):
    fake, cfg, _ = endpoint
    path, images = posts_file(run, tmp_path)
    out = bizsent(cfg, "predict", "--file", str(path), "--endpoint", fake.endpoint, "--yes")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["image_path"] for x in lines] == [str(p) for p in images]
    for x in lines:
        check_prediction({**x, "probabilities": x["probs"]})
    assert [i["text"] for i in fake.inputs] == ["it is over", "wagmi"]
    assert [base64.b64decode(i["image"]) for i in fake.inputs] == [p.read_bytes() for p in images]
    assert "2 post(s) to endpoint bizsent-test" in out.stderr and "0.2 s of execution" in out.stderr
    stored = run["ids"]["test"][0]
    one = bizsent(cfg, "predict", str(stored), "--endpoint", fake.endpoint)  # one post: no question asked
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["post_id"] == stored and len(fake.inputs) == 3
    assert fake.authorizations == [f"Bearer {CANARY}"] * 3
    log = run["settings"].data_dir / "bizsent.log"
    for text in (out.stdout, out.stderr, one.stdout, one.stderr, log.read_text() if log.exists() else ""):
        assert CANARY not in text


def test_predict_endpoint_asks_before_sending_more_than_one_post(run, endpoint, tmp_path):
    fake, cfg, _ = endpoint
    path, _ = posts_file(run, tmp_path)
    out = bizsent(cfg, "predict", "--file", str(path), "--endpoint", fake.endpoint, stdin="n\n")
    assert out.returncode == 0 and "nothing was sent" in out.stderr and fake.inputs == []
    assert "send 2 posts for about $" in out.stdout


def test_predict_endpoint_errors_are_one_line_without_the_key(run, endpoint, tmp_path):
    fake, cfg, _ = endpoint
    path, _ = posts_file(run, tmp_path)
    fake.script = lambda n: "401"  # the fake quotes the Authorization header back in its error body
    refused = bizsent(cfg, "predict", "--file", str(path), "--endpoint", fake.endpoint, "--yes")
    assert refused.returncode == 1 and "refused the API key (HTTP 401)" in refused.stderr
    assert CANARY not in refused.stdout + refused.stderr and "Traceback" not in refused.stderr
    no_key = bizsent(cfg, "predict", "--file", str(path), "--endpoint", fake.endpoint, "--yes", key=None)
    assert no_key.returncode == 1 and "RUNPOD_API_KEY is not set" in no_key.stderr
    bad_id = bizsent(cfg, "predict", "--file", str(path), "--endpoint", "../pods", "--yes")
    assert bad_id.returncode == 1 and "is not a RunPod endpoint ID" in bad_id.stderr


def test_endpoint_client_follows_queued_jobs_and_reports_failures(run, endpoint, tmp_path):
    fake, _, url = endpoint
    cfg = ServerlessSettings(max_wait_s=1.0, poll_s=0.05, wait_s=5)
    client = EndpointClient(url, fake.endpoint, CANARY, cfg)
    payload = {"text": "gm", "image": b64(image_bytes("neutral", 2))}
    outcomes = iter(["queued", "stuck", "500", "garbage", "bad-input"])
    fake.script = lambda n: next(outcomes)
    answer = client.predict(payload)  # IN_QUEUE from runsync, then COMPLETED on the second status check
    assert answer.label in LABELS and answer.execution_s == pytest.approx(0.12)
    assert fake.waits[0] == "5000"
    with pytest.raises(BizsentError, match="still IN_QUEUE after 1 s, so it was cancelled"):
        client.predict(payload)
    assert fake.cancelled == [list(fake.jobs)[1]]
    with pytest.raises(BizsentError, match="answered HTTP 500"):
        client.predict(payload)
    with pytest.raises(BizsentError, match="not a bizsent prediction"):
        client.predict(payload)
    with pytest.raises(BizsentError, match="ended FAILED: image is neither an http"):
        client.predict(payload)
    client.close()
    with pytest.raises(BizsentError, match="cannot reach RunPod"):
        EndpointClient("http://127.0.0.1:9", "x", CANARY, cfg).predict(payload)


def test_the_estimate_is_posts_times_seconds_plus_a_start_at_the_price():
    cost = estimate(ServerlessSettings(usd_per_s=0.00031, s_per_post=0.5, cold_start_s=60), 1000)
    assert cost.usd == pytest.approx((1000 * 0.5 + 60) * 0.00031)
    assert "1000 posts x 0.5 s + 60 s start" in cost.formula


# --- the image ---------------------------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [x for x in text.replace("\\\n", " ").splitlines() if x.strip() and not x.lstrip().startswith("#")]
    return [(x.split(None, 1)[0].upper(), x.split(None, 1)[1] if " " in x.strip() else "") for x in lines]


def test_dockerfile_installs_the_pinned_project_bakes_no_key_and_runs_the_worker():
    steps = dockerfile()
    assert steps[0][0] == "FROM" or steps[0][0] == "ARG"
    assert any(op == "FROM" and ("cuda" in arg.lower()) for op, arg in steps)
    installs = [arg for op, arg in steps if op == "RUN" and "pip install" in arg]
    assert any("-c constraints.txt" in arg and ".[train]" in arg for arg in installs)
    for op, arg in steps:
        if op in ("ENV", "ARG"):
            assert not any(word in arg.upper() for word in ("KEY", "TOKEN", "SECRET", "PASSWORD")), arg
    assert steps[-1] == ("CMD", '["python", "-m", "bizsent.core.serve.handler"]')
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {"data", ".venv", ".env"} <= set(ignored)


def test_incoming_text_is_cleaned_as_the_store_cleans_a_comment():
    """One input rule: the worker gets what training got, HTML tags out and entities decoded."""
    from bizsent.core.collect.html_text import clean_text
    from bizsent.core.serve.request import read_post

    markup = '<a href="#p1" class="quotelink">&gt;&gt;1</a><br>wagmi &amp; hodl<br><span class="quote">&gt;ngmi</span>'
    post = read_post({"text": markup, "image": b64(image_bytes("bullish", 3)), "subject": "<b>BTC</b>"})
    assert post.text == clean_text(markup) == ">>1\nwagmi & hodl\n>ngmi" and post.subject == "BTC"


def test_predict_file_applies_the_same_text_rule(tmp_path):
    from bizsent.core.errors import BizsentError
    from bizsent.core.model.predict_input import inputs_from_file

    (tmp_path / "a.png").write_bytes(image_bytes("neutral", 4))
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"text": "gm &amp; <b>gn</b>", "image_path": "a.png"}) + "\n"
                    + json.dumps({"text": " ", "image_path": "a.png"}) + "\n", encoding="utf-8")
    with pytest.raises(BizsentError, match="line 2: the post has no text"):
        inputs_from_file(path)
    path.write_text(json.dumps({"text": "gm &amp; <b>gn</b>", "image_path": "a.png"}) + "\n", encoding="utf-8")
    assert [i.text for i in inputs_from_file(path)] == ["gm & gn"]

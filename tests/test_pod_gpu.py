"""A training pod's GPU: hosts asked for by CUDA version at create (the fake RunPod places pods as RunPod does), the
agent's check of nvidia-smi and of the installed torch against the torch build and the recipe before training, the
one-line refusal on the laptop with nothing billing, the pinned installs, and no CPU training on a pod."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import httpx
import pytest
from bizsent.core.config import load_settings
from bizsent.core.errors import BizsentError
from bizsent.core.pods import gpu_fit, payload, podlock
from bizsent.core.pods.agent.config import load_config
from bizsent.core.pods.agent.gpu import Unusable, check_host, check_torch, read_host
from bizsent.core.pods.agent.job import read_job
from bizsent.core.pods.agent.trainer import install_command
from bizsent.core.pods.payload import REPO_ROOT
from fakes.pod_run import CANARY, pod_rig, venv_torch_cuda
from fakes.runpod_hosts import host, nvidia_smi
from fakes.runpod_server import FakeRunpod

RTX4090, RTX3090 = "NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090"


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def smi_host(tmp_path, the_host, gpu=RTX4090):
    """What the agent reads from a host's nvidia-smi (the fake's, run as a program)."""
    folder = nvidia_smi(tmp_path / "bin", the_host, {"id": gpu, "memory": 24}).parent

    def run(argv, **kwargs):
        return subprocess.run([str(folder / argv[0]), *argv[1:]], **kwargs)

    return read_host(run)


def test_nvidia_smi_is_read_and_checked_against_the_build_and_the_recipe(tmp_path):
    seen = smi_host(tmp_path, host("12.8"))
    assert (seen.driver, seen.cuda, seen.name, seen.capability) == ("570.133.20", "12.8", RTX4090, "8.9")
    assert seen.total_mib > seen.free_mib > 20_000
    fits = {"require_gpu": True, "min_capability": "8.0", "min_free_mib": 14_000}
    assert check_host(seen, torch_cuda="12.8", **fits)[1] == "driver fits the CUDA 12.8 build of torch"
    with pytest.raises(Unusable) as refused:
        check_host(seen, torch_cuda="13.0", **fits)
    assert str(refused.value) == "no usable GPU: driver 570.133.20 supports CUDA 12.8, torch was built for 13.0"
    with pytest.raises(Unusable, match="has 900 MiB free, the recipe needs about 14000 MiB"):
        check_host(smi_host(tmp_path, host("12.8", free_mib=900)), torch_cuda="12.8", **fits)
    with pytest.raises(Unusable, match="compute capability 7.0, the recipe needs 8.0"):
        check_host(smi_host(tmp_path, host("12.8", capability="7.0")), torch_cuda="12.8", **fits)
    with pytest.raises(Unusable, match="nvidia-smi is missing"):
        check_host(None, torch_cuda="12.8", **fits)
    # without require_gpu (tests on GPU-less machines) the driver-versus-build rule still holds
    with pytest.raises(Unusable, match="supports CUDA 12.8, torch was built for 13.0"):
        check_torch(seen, {"torch": "2.14.1", "cuda": "13.0", "available": False}, require_gpu=False)
    assert "training on the CPU" in check_torch(seen, {"torch": "2.14.1", "cuda": "12.8", "available": False},
                                                require_gpu=False)
    with pytest.raises(Unusable, match="CUDA does not work: torch 2.14.1 .CUDA 12.8. sees no GPU with driver 570"):
        check_torch(seen, {"torch": "2.14.1", "cuda": "12.8", "available": False}, require_gpu=True)
    kernels = {"torch": "2.14.1", "cuda": "12.8", "available": False,
               "why": "AcceleratorError: CUDA error: no kernel image is available for execution on the device"}
    with pytest.raises(Unusable, match="sees no GPU with driver 570.133.20 .CUDA 12.8. .AcceleratorError: CUDA err"):
        check_torch(seen, kernels, require_gpu=True)
    with pytest.raises(Unusable, match="torch 2.14.1 is a CPU-only build"):
        check_torch(seen, {"torch": "2.14.1", "cuda": None, "available": False}, require_gpu=True)


def test_the_create_asks_for_hosts_by_cuda_version_as_runpod_places_them(tmp_path, settings):
    body = {"name": "bizsent-x", "image": "img", "cloud": "SECURE"}
    with FakeRunpod(CANARY, root=tmp_path / "pods", boot_delay_s=0.05) as fake, httpx.Client(
            base_url=fake.url, headers={"Authorization": f"Bearer {CANARY}"}) as http:
        fake.hosts[RTX4090] = [host("12.4"), host("12.8")]
        catalog = {g["id"]: g for g in http.get("/v2/catalog/gpus").json()["gpus"]}
        assert catalog[RTX4090]["cudaVersions"] == ["12.4", "12.8"]

        def create(**gpu):
            return http.post("/v2/pods", json={**body, "gpu": {"id": RTX4090, "count": 1, **gpu}})

        landed = create(minCudaVersion="12.6")
        assert landed.status_code == 201 and landed.json()["cudaVersion"] == "12.8"
        assert create(allowedCudaVersions=["12.4"]).json()["cudaVersion"] == "12.4"
        # a version no host reports is a capacity error, not a fallback to another version
        for gpu in ({"allowedCudaVersions": ["12.6"]}, {"minCudaVersion": "13.0"}):
            refused = create(**gpu)
            assert refused.status_code == 400 and "no longer any instances" in refused.json()["detail"]
        assert create(allowedCudaVersions=["12.8"], minCudaVersion="12.4").status_code == 422
    settings.runpod.torch_cuda = "12.6"
    assert gpu_fit.gpu_request(settings, RTX4090) == {"id": RTX4090, "count": 1, "minCudaVersion": "12.6"}


def test_train_on_a_pod_falls_back_to_a_host_whose_driver_fits_the_torch_build(tmp_path, model_dir):
    with pod_rig(tmp_path / "laptop", model_dir) as rig:
        build = venv_torch_cuda()
        older = {"13.0": "12.8", "12.8": "12.6"}.get(build, "12.4")
        rig.fake.hosts[RTX4090] = [host(older)]  # every 4090 host's driver is too old for this torch
        rig.fake.hosts[RTX3090] = [host(older), host(build)]
        out = rig.cli("train", "--pod", "--yes", "--name", "fits", "--max-steps", "2")
        assert out.returncode == 0, out.stderr[-3000:]
        (pod,) = rig.fake.gone.values()
        assert pod.gpu == RTX3090 and pod.host.cuda == build and rig.fake.billing_now() == []
        assert all(b["gpu"]["minCudaVersion"] == build for b in rig.fake.created_bodies)
        with contextlib.closing(rig.db()) as db:
            params = json.loads(db.execute("SELECT params FROM runs WHERE name = 'fits'").fetchone()[0])
        # the agent checked the host and the torch it trained with before training, and the run keeps both
        assert params["gpu_check"]["host"]["cuda"] == build and params["gpu_check"]["torch"]["cuda"] == build
        assert params["versions"]["torch"].startswith("2.") and params["versions"]["torch_cuda"] == build


def test_a_host_whose_driver_is_older_than_the_torch_build_ends_in_one_line_with_nothing_billing(tmp_path,
                                                                                               model_dir):
    build = venv_torch_cuda()
    older = {"13.0": "12.8", "12.8": "12.6"}.get(build, "12.4")
    # runpod.torch_cuda names an older build than the torch the pod really has (this venv's): the host RunPod
    # gives fits the request, not the torch
    with pod_rig(tmp_path / "laptop", model_dir, torch_cuda=older) as rig:
        rig.fake.hosts[RTX4090] = [host(older)]
        out = rig.cli("train", "--pod", "--yes", "--name", "misfit", "--max-steps", "2")
        assert out.returncode == 1
        line = one_line(out.stderr.split("kill switches")[-1].split("\n", 1)[-1].split("\n")[-2])
        driver = host(older).driver
        assert f"no usable GPU: driver {driver} supports CUDA {older}, torch was built for {build}" in line, line
        assert rig.fake.billing_now() == [] and len(rig.fake.gone) == 1 and rig.fake.pods == {}
        with contextlib.closing(rig.db()) as db:
            assert db.execute("SELECT state FROM pods").fetchall() == [("terminated",)]
            assert db.execute("SELECT state FROM runs WHERE name = 'misfit'").fetchone() == ("failed",)


def test_training_with_require_cuda_refuses_the_cpu(tmp_path, model_dir):
    from bizsent.core.model.dataset import build_dataset, export_bundle
    from bizsent.core.model.training import train
    from bizsent.core.store import open_db
    from fakes.train import seed_store, tiny_settings

    settings = tiny_settings(tmp_path, model_dir)
    with contextlib.closing(open_db(settings.db_path)) as db:
        seed_store(db, settings.image_dir, n_train=6, n_test=2, n_unlabeled=0)
        bundle = export_bundle(build_dataset(db, settings.image_dir, settings.train), tmp_path / "bundle",
                               max_pixels=settings.train.max_pixels)
    cfg = settings.train.model_copy(update={"require_cuda": True})
    with pytest.raises(BizsentError, match="no usable GPU: torch .* sees no GPU and train.require_cuda is set"):
        train(bundle, tmp_path / "run", cfg, max_steps=1)
    assert not (tmp_path / "run" / "adapter").exists()


def test_the_pod_installs_the_laptops_pins_for_its_torch_build(tmp_path, settings):
    constraints = (REPO_ROOT / "constraints.txt").read_text(encoding="utf-8")
    laptop = [line for line in constraints.splitlines() if "==" in line and not line.startswith("#")]
    pins = podlock.pod_lock(constraints, "12.8")
    assert "torch==2.14.1+cu128" in pins and "torchvision==0.29.1+cu128" in pins
    assert not any(p.startswith(("nvidia-", "cuda-")) for p in pins)  # torch's cu128 wheel pins its own
    assert all(p in laptop for p in pins if "+cu" not in p)
    assert 'textual-image==0.14.2; python_version >= "3.12"' in pins  # per-Python pins: the pod's pip chooses
    assert podlock.pod_lock(constraints, "13.0") == laptop  # PyPI's build: as is
    with pytest.raises(BizsentError, match="not a name==version pin"):
        podlock.pod_lock("torch>=2\n", "12.8")

    job = payload.write_job(tmp_path / "job.json", name="pinned", cfg=settings.train, constraints=pins)
    read = read_job(job.path)
    assert read["constraints"] == pins
    cfg = load_config({"BIZSENT_TOKEN": "t" * 20, "BIZSENT_WORKDIR": str(tmp_path / "w")})
    (tmp_path / "w").mkdir()
    argv = install_command(cfg, read, tmp_path / "bizsent-0.1.0-py3-none-any.whl")
    assert argv[argv.index("-c") + 1] == str(tmp_path / "w" / "constraints.txt")
    assert (tmp_path / "w" / "constraints.txt").read_text().splitlines() == pins
    assert argv[argv.index("--extra-index-url") + 1] == "https://download.pytorch.org/whl/cu128"
    assert argv[-1].endswith("[train]") and argv[:3] == [sys.executable, "-m", "pip"]


def test_the_pod_env_and_settings_carry_the_gpu_rule(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[data]\ndir = "d"\n[runpod]\ntorch_cuda = "12.6"\nrequire_gpu = false\n', encoding="utf-8")
    settings = load_settings(cfg, environ={})
    env = gpu_fit.gpu_env(settings)
    assert env["BIZSENT_TORCH_CUDA"] == "12.6" and env["BIZSENT_REQUIRE_GPU"] == "0"
    assert env["BIZSENT_MIN_CAPABILITY"] == "8.0" and int(env["BIZSENT_MIN_GPU_MIB"]) > 10_000  # the 7B recipe
    cfg.write_text('[runpod]\ntorch_cuda = "11.8"\n', encoding="utf-8")
    with pytest.raises(BizsentError, match="torch_cuda"):
        load_settings(cfg, environ={})


def test_a_gpu_refused_at_boot_ends_the_run_before_any_upload(tmp_path, model_dir):
    with pod_rig(tmp_path / "laptop", model_dir) as rig:
        build = venv_torch_cuda()
        rig.fake.hosts[RTX4090] = [host(build, capability="7.0")]  # a Volta-class GPU: no bf16
        out = rig.cli("train", "--pod", "--yes", "--name", "volta", "--max-steps", "2")
        assert out.returncode == 1
        line = one_line(out.stderr.split("kill switches")[-1].split("\n", 1)[-1].split("\n")[-2])
        assert "failed: no usable GPU: the NVIDIA GeForce RTX 4090 has compute capability 7.0, the recipe needs " \
               "8.0 (bf16)" in line, line
        assert rig.fake.billing_now() == [] and rig.fake.pods == {}
        assert not any(method == "PUT" for method, _, _ in rig.fake.proxied)  # nothing was uploaded

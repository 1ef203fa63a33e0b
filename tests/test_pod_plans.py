"""Plans per GPU type (time and cost on each, a GPU where the run would pass max_hours never tried) and the optional
network volume that keeps the model and the wheels across runs, against the fake RunPod."""

from __future__ import annotations

import pytest
from bizsent.core.errors import BizsentError
from bizsent.core.pods import api, estimate, launch, plan
from fakes.runpod_server import STUB_AGENT, USER_KEY, FakeRunpod

RTX4090, RTX3090, A5000 = "NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090", "NVIDIA RTX A5000"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", USER_KEY)
    with FakeRunpod(USER_KEY, root=tmp_path / "pods", boot_delay_s=0.1) as server:
        yield server


@pytest.fixture
def client(settings, fake):
    settings.runpod.api_base, settings.runpod.proxy_url = fake.url, fake.proxy_url
    settings.runpod.install_deps = False
    with api.client(settings, sleep=lambda s: None) as c:
        yield c


def test_time_and_cost_are_estimated_per_gpu_type_and_slower_ones_are_slower(settings, client):
    shown = plan.plan_pod(client, settings, "r1", 2_000)
    hours = {(c.gpu, c.cloud): c.hours for c in shown.candidates}
    assert hours[(RTX3090, "COMMUNITY")] > hours[(RTX4090, "COMMUNITY")] * 1.3  # a fallback is slower, not faster
    assert hours[(A5000, "COMMUNITY")] > hours[(RTX3090, "COMMUNITY")]
    four = shown.candidates[0]
    assert four.gpu == RTX4090 and four.hours == pytest.approx(0.3 + 2_000 * 2 * 0.6 / 3600)
    assert f"{RTX3090} (COMMUNITY, $0.22/h, stock high): about {hours[(RTX3090, 'COMMUNITY')]:.1f} h, $" \
        in shown.render()


def test_a_gpu_on_which_the_run_would_pass_max_hours_is_never_tried(settings, client, fake, db):
    # 10k posts x 2 epochs: about 3.6 h on a 4090, but 5.9 h on a 3090 and 7 h on an A5000, past max_hours = 5
    shown = plan.plan_pod(client, settings, "big", 10_000)
    assert {c.gpu for c in shown.candidates} == {RTX4090}
    text = shown.render()
    assert f"skipped: {RTX3090} (COMMUNITY): about 5.9 h here, past runpod.max_hours (5 h)" in text
    assert f"skipped: {A5000} (SECURE): about 7.0 h here" in text
    fake.no_capacity.add(RTX4090)  # the only GPU it fits: no fallback to one where it would be cut
    with pytest.raises(api.NoCapacity):
        launch.start_pod(db, settings, client, shown, agent_path=STUB_AGENT)
    creates = [r for r in fake.requests if r[:2] == ("POST", "/v2/pods")]
    assert len(creates) == 2 and fake.billing_now() == []  # the 4090 in each cloud, and nothing else


def test_a_run_past_max_hours_everywhere_is_refused_before_anything_bills(settings, client, fake):
    settings.runpod.max_hours = 3.0
    with pytest.raises(BizsentError) as err:
        plan.plan_pod(client, settings, "big", 10_000)
    assert str(err.value).startswith("this run would pass runpod.max_hours (3 h) on every GPU it may get"
                                     f" ({RTX4090} 3.6 h, ")
    assert fake.requests and all(method == "GET" for method, _, _ in fake.requests)


def test_the_plan_shows_start_up_with_and_without_a_network_volume(settings, client):
    text = plan.plan_pod(client, settings, "r1", 2_000).render()
    assert "start-up without a network volume: about 18 min ($0.10)" in text
    assert "start-up with a network volume: about 6 min ($0.03) once it holds the model and the wheels; 50 GB bill" \
           " $3.50 a month, used or not (set runpod.network_volume_id)" in text
    settings.runpod.network_volume_id = "vol123"
    shown = plan.plan_pod(client, settings, "r1", 2_000)
    assert shown.hours == pytest.approx(0.1 + 2_000 * 2 * 0.6 / 3600)
    assert "network volume vol123 (runpod.network_volume_id) holds the Hugging Face and wheel caches" in shown.render()


def test_a_network_volume_holds_the_caches_of_every_run(settings, client, fake, db):
    settings.runpod.network_volume_id = "vol123"
    fake.network_volumes.add("vol123")
    shown = plan.plan_pod(client, settings, "cached", 100)
    assert {c.cloud for c in shown.candidates} == {"SECURE"}  # network volumes are Secure Cloud only
    assert "a network volume (runpod.network_volume_id) needs Secure Cloud" in shown.render()
    handle = launch.start_pod(db, settings, client, shown, agent_path=STUB_AGENT)
    body = fake.created_bodies[-1]
    assert body["mounts"]["network"] == {"id": "vol123", "path": "/runpod-volume"}
    assert body["env"]["HF_HOME"] == "/runpod-volume/huggingface"
    assert body["env"]["PIP_CACHE_DIR"] == "/runpod-volume/pip"
    launch.terminate_and_confirm(db, client, handle.pod_id, poll_s=0.05)
    settings.runpod.network_volume_id = "nope"
    with pytest.raises(api.RunpodError, match="network volume nope not found"):
        launch.start_pod(db, settings, client, plan.plan_pod(client, settings, "other", 100), agent_path=STUB_AGENT)
    assert fake.billing_now() == []


def test_a_stopped_pods_volume_costs_what_the_settings_say(settings):
    assert estimate.stopped_usd_per_month(settings) == pytest.approx(8.0)  # 40 GB x $0.20
    assert estimate.stopped_usd_per_hour(settings) == pytest.approx(8.0 / 730)


@pytest.mark.parametrize(("epochs", "shown"), [(2.46, "2.5"), (2.96, "3"), (2.04, "2"), (2.11765, "2.1"), (2.0, "2")])
def test_the_plan_rounds_epochs_to_one_decimal(settings, client, epochs, shown):
    """Rounded, not cut (2.46 reads 2.5, where truncation gives 2.4), and a whole number after rounding reads as
    one (2.96 reads 3, as 3.0 does; "3.0 epochs" beside "3 epochs" would look like two different plans)."""
    text = plan.plan_pod(client, settings, "r1", 2_000, epochs).render()
    assert f"2,000 training examples x {shown} epochs," in text


def test_a_scoring_pods_kill_switches_wait_for_its_scores_not_an_adapter(settings, client):
    scoring = plan.plan_pod(client, settings, "r1-eval", 0, scored_posts=500).render()
    assert "adapter" not in scoring and "after scoring ends if the scores are not collected" in scoring
    training = plan.plan_pod(client, settings, "r1", 2_000).render()
    assert "after training ends if the adapter is not collected" in training
    both = plan.plan_pod(client, settings, "r1", 2_000, scored_posts=80).render()
    assert "if the adapter and the scores are not collected" in both

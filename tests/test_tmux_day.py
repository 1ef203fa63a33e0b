"""A whole day at the keyboard (issue 21): the real console in tmux at 80x24 on the demo data, driven by keys only,
with a stand-in OpenAI server and a stand-in RunPod: label posts in random order (the test reservation, then the
training pool) with undo in between, label posts opened from Posts, start and collect a batch job, build, train
and evaluate the demo model, read its confusion matrix, spot-check ten predictions, cancel a pod run while it
connects, quit and reopen. Each step waits on what the screen shows and then checks the rows in the store:
split and sampling of every human label, one human label per post, the ledger, the runs, the pod's billing.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from bizsent.core.demo.model import demo_model_dir
from bizsent.core.label.human import current_human, not_labelable
from fakes.pod_run import CANARY, config_text
from fakes.readonly_store import human, one_human_label_per_post, rows, store, wait_human, wait_rows
from fakes.runpod_server import FakeRunpod
from fakes.tmux import (
    BIZSENT,
    close,
    console_command,
    cursor,
    open_console,
    press,
    screen,
    type_text,
    wait_for,
    wait_match,
    wait_until,
)

pytestmark = [pytest.mark.terminal,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
              pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the demo model needs torch")]

SIZE = (80, 24)
HEADER = r"post (\d+) +(\d+)/(\d+) in queue"  # the Label screen's header: the post on screen, its place
LABEL_WRITER = "%via console Label screen"
KEYS = {"bearish": "1", "neutral": "2", "bullish": "3"}


# -- the day's world: demo data, the stand-ins, the console's config ----------------------------------------------

@pytest.fixture
def day(tmp_path, fake_openai):
    """(config, db path, fake RunPod) for a demo store whose labeler is the fake OpenAI server and whose RunPod is
    the fake one; its pods run the real agent, whose port never answers, so a pod run waits in `connecting`."""
    env = {"BIZSENT_WATCHDOG_S": "0.2", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with FakeRunpod(CANARY, root=tmp_path / "pods", boot_delay_s=0.1, extra_env=env) as runpod:
        runpod.proxy_down = True
        config = tmp_path / "config.toml"
        # A long boot timeout: the pod run must stop on the user's terminate, not time out by itself.
        config.write_text(config_text(runpod, demo_model_dir(tmp_path / "data"), boot_timeout_min=30.0)
                          + f'[labeling]\nprovider = "openai"\n[labeling.openai]\nbase_url = "{fake_openai.url}"\n'
                          'requests_per_minute = 60000\n[tui]\nimage_renderer = "halfcell"\n'
                          '[images]\nread_text = false\n', encoding="utf-8")
        db_path = tmp_path / "data" / "bizsent.db"
        seeded = subprocess.run([str(BIZSENT), "--config", str(config), "--db", str(db_path), "demo", "--no-tui"],
                                capture_output=True, text=True, timeout=120)
        assert seeded.returncode == 0, seeded.stderr
        yield config, db_path, runpod


def start(config: Path, db_path: Path) -> str:
    env = {"OPENAI_API_KEY": "sk-fake-day", "RUNPOD_API_KEY": CANARY, "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    return open_console(console_command(config, db_path, str(BIZSENT), env=env), SIZE)


def text_pane(shown: str) -> str:
    """The Label screen's right-hand pane as one line (it wraps at 80 columns)."""
    return " ".join(line.split("│", 1)[1].strip() for line in shown.splitlines() if "│" in line)


# -- Label: random order, the test reservation, then the training pool --------------------------------------------

def answer(session: str, db_path: Path, label: str, count: int) -> int:
    pid = int(wait_match(session, HEADER).group(1))
    press(session, KEYS[label])
    wait_for(session, f" {count}/50 bear")
    wait_human(db_path, pid, lambda found: len(found) == 1 and found[0][0] == label)
    return pid


def undo_and_answer_again(session: str, db_path: Path, answered: list[int], label: str) -> None:
    """`u` takes the last answer back (its row goes, the lines say so); the answer again lands where it did."""
    pid, count = answered[-1], len(answered)
    (_, split, sampling, _), = human(db_path, pid)
    wait_until(session, lambda shown: f"last {pid} " in shown, "the answer on the last-answers line")
    press(session, "u")
    wait_for(session, f" {count - 1}/50 bear")
    assert int(wait_match(session, HEADER).group(1)) == pid
    wait_human(db_path, pid, lambda found: found == [])
    wait_until(session, lambda shown: f"last {answered[-2]} " in shown, "the last answers without the undone one")
    assert answer(session, db_path, label, count) == pid
    assert human(db_path, pid) == [(label, split, sampling, "human")]


def label_in_random_order(session: str, db_path: Path) -> list[int]:
    press(session, "F2")
    reserved = int(wait_match(session, HEADER).group(3))
    assert "split TEST" in screen(session) and "order random" in screen(session)
    assert 0 < reserved < 20, reserved  # the demo's test reservation leaves some, not all, of the 20 to train
    answered: list[int] = []
    for k in range(20):
        if k == reserved:  # the reservation is done: the screen says what to do, `t` goes to the training pool
            wait_until(session, lambda shown: "press `t` to label the training pool" in text_pane(shown),
                       "the end of the test reservation")
            press(session, "t")
            wait_for(session, "split TRAIN")
        answered.append(answer(session, db_path, list(KEYS)[k % 3], len(answered) + 1))
        if k in (4, reserved + 2):
            undo_and_answer_again(session, db_path, answered, "bullish" if k % 3 != 2 else "neutral")
    test, train = answered[:reserved], answered[reserved:]
    for pid in answered:
        assert human(db_path, pid)[0][1:] == (("test", "reserved", "human") if pid in test
                                              else ("train", "random", "human"))
    assert len(set(answered)) == 20 and len(train) == 20 - reserved
    mine = rows(db_path, "SELECT count(*) FROM labels WHERE source = 'human' AND changed_by LIKE ?", LABEL_WRITER)
    assert mine == [(20,)]
    one_human_label_per_post(db_path)
    return answered


def answer_the_blind_repeat(session: str, db_path: Path, answered: list[int]) -> None:
    """After 20 answers a post answered earlier comes back blind: the answer is kept apart, the label stays."""
    wait_for(session, "split REPEAT")
    pid = int(wait_match(session, HEADER).group(1))
    assert pid in answered
    stored = human(db_path, pid)
    press(session, "2")
    wait_rows(db_path, "SELECT post_id FROM label_repeats", until=lambda found: found == [(pid,)])
    assert human(db_path, pid) == stored


# -- Posts -> enter: posts chosen by hand ------------------------------------------------------------------------

def post_list(db_path: Path) -> list[tuple[int, int, bool, tuple | None]]:
    """The Posts screen's rows in its order: (id, post_no, a labeling candidate?, its human label)."""
    with store(db_path) as db:
        posts = db.execute("SELECT id, post_no FROM posts ORDER BY time DESC, id DESC").fetchall()
        return [(pid, no, not_labelable(db, pid) is None, current_human(db, pid)) for pid, no in posts]


def open_from_posts(session: str, row: int, post_no: int) -> None:
    press(session, "F1")
    wait_for(session, "300 posts │")
    press(session, "Home", *["j"] * row)
    wait_for(session, f"No.{post_no} ")  # the detail pane follows the cursor
    press(session, "Enter")


def label_from_posts(session: str, db_path: Path) -> None:
    listed = post_list(db_path)
    first_pid, first_no, first_candidate, _ = listed[0]
    assert not first_candidate  # the newest demo post has no text: Posts says so and opens nothing
    open_from_posts(session, 0, first_no)
    wait_until(session, lambda shown: f"post {first_pid} has no" in shown.replace("▌", " "), "the refusal")
    assert "300 posts │" in screen(session) and human(db_path, first_pid) == []
    fresh = [(k, pid, no) for k, (pid, no, ok, found) in enumerate(listed) if ok and found is None]
    demo_test = next((k, pid, no) for k, (pid, no, ok, found) in enumerate(listed)
                     if ok and found and found[0] == "human:demo" and found[1].split == "test")
    # The keys, on a post with no human label: F1 Home j.. Enter 1 u 1 lands in train, picked by hand.
    k, pid, no = fresh[0]
    open_from_posts(session, k, no)
    wait_for(session, f"post {pid} ")
    wait_for(session, "split TRAIN (opened from Posts)")
    press(session, "1")
    wait_human(db_path, pid, lambda found: found == [("bearish", "train", "picked", "human")])
    press(session, "u")
    wait_human(db_path, pid, lambda found: found == [])
    wait_for(session, "split TRAIN (opened from Posts)")
    press(session, "1")
    wait_human(db_path, pid, lambda found: found == [("bearish", "train", "picked", "human")])
    # A correction of the demo's human test label asks first, replaces it and keeps its split.
    k, pid, no = demo_test
    old = listed[k][3][1].label
    new = "bearish" if old != "bearish" else "bullish"
    open_from_posts(session, k, no)
    wait_for(session, f"post {pid} ")
    wait_for(session, "split TEST (correction keeps it)")
    press(session, KEYS[new])
    wait_for(session, f"Post {pid} is in the human test set as {old}")
    press(session, "y")
    wait_human(db_path, pid, lambda found: found == [(new, "test", "random", "human:demo")])
    history = rows(db_path, "SELECT old_label, new_label FROM label_history WHERE post_id = ? AND change = 'update'",
                   pid)
    assert history == [(old, new)]
    for (k, pid, no), label in zip(fresh[1:4], ("neutral", "bullish", "neutral"), strict=True):
        open_from_posts(session, k, no)
        wait_for(session, f"post {pid} ")
        wait_for(session, "split TRAIN (opened from Posts)")
        press(session, KEYS[label])
        wait_human(db_path, pid, lambda found, label=label: found == [(label, "train", "picked", "human")])
    assert rows(db_path, "SELECT count(*) FROM labels WHERE sampling = 'picked'") == [(4,)]
    one_human_label_per_post(db_path)


# -- Jobs: a batch job against the stand-in OpenAI server ---------------------------------------------------------

def tab_to_field(session: str, label: str) -> None:
    """Tab through the dialog until the text field after `label` has the cursor, as a person tabs and looks."""
    def there() -> bool:
        x, y = cursor(session)
        line = screen(session).splitlines()[y]
        return f"{label} " in line and x > line.index(f"{label} ") + len(label)

    for _ in range(8):
        if there():
            return
        press(session, "Tab")
        try:
            wait_until(session, lambda _: there(), f"the cursor in the {label} field", timeout=3)
        except AssertionError:
            continue  # on another field: Tab again
    raise AssertionError(f"Tab never reached the {label} field:\n{screen(session)}")


def batch_job(session: str, db_path: Path) -> None:
    humans = rows(db_path, "SELECT count(*) FROM labels WHERE source = 'human'")
    press(session, "F3")
    wait_for(session, "n new job")
    press(session, "n")
    wait_for(session, "posts to label as openai:")  # the estimate comes first
    press(session, "Tab")  # the mode's list: live -> batch, once its overlay is open
    closed = screen(session)
    press(session, "Enter")
    wait_until(session, lambda shown: shown != closed, "the mode's list")
    press(session, "Down", "Enter")
    wait_for(session, "mode batch")
    tab_to_field(session, "limit")
    type_text(session, "5")
    wait_for(session, "5 posts to label as openai:")
    press(session, "Tab", "y")
    job_id, = wait_rows(db_path, "SELECT id FROM jobs WHERE kind = 'label'", until=lambda found: len(found) == 1)[0]
    for _ in range(10):  # collect until it is done: the stand-in finishes a batch after a retrieve or two
        press(session, "b")
        try:
            wait_rows(db_path, "SELECT state FROM jobs WHERE id = ?", job_id, until=lambda found: found == [("done",)],
                      timeout=10)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(f"batch job {job_id} was never collected:\n{screen(session)}")
    wait_match(session, rf" {job_id} +gpt-5-mini +done ")
    params = rows(db_path, "SELECT json_extract(params, '$.mode'), json_extract(params, '$.limit') FROM jobs "
                           "WHERE id = ?", job_id)
    assert params == [("batch", 5)]
    ledger = rows(db_path, "SELECT status, count(*), sum(usd) > 0 FROM api_calls WHERE job_id = ? GROUP BY status",
                  job_id)
    assert ledger == [("ok", 5, 1)]
    labelled = rows(db_path, "SELECT count(*) FROM labels WHERE source = 'api' AND labeler LIKE 'openai:gpt-5-mini@%'"
                             " AND labeler NOT LIKE '%@demo-v1'")
    assert labelled == [(5,)]
    assert rows(db_path, "SELECT count(*) FROM labels WHERE source = 'human'") == humans  # no human label moved


# -- Eval: the demo model, trained, evaluated, its test confusion matrix read off the screen ------------------------

def demo_model_and_its_matrix(session: str, db_path: Path) -> int:
    press(session, "F4")
    wait_for(session, "m demo model")
    press(session, "m")
    wait_for(session, "Build and train (y)")
    press(session, "y")
    wait_rows(db_path, "SELECT kind, state FROM jobs WHERE kind IN ('demo-model', 'train', 'eval', 'score-pool')",
              until=lambda found: sorted(found) == [("demo-model", "done"), ("eval", "done"), ("score-pool", "done"),
                                                    ("train", "done")], timeout=400)
    (run_id, state), = rows(db_path, "SELECT id, state FROM runs WHERE kind = 'train'")
    assert state == "done"
    wait_match(session, rf"run {run_id} (dev|val|test) \(\d+ posts\)")
    press(session, "T")  # score the test split: asked first, counted
    wait_for(session, "Score test (y)")
    press(session, "y")
    test_eval = ("SELECT json_extract(data, '$.n'), confusion FROM metrics WHERE run_id = ? AND kind = 'eval' "
                 "AND json_extract(data, '$.split') = 'test' AND coalesce(json_extract(data, '$.live'), 0) = 0")
    (n, confusion), = wait_rows(db_path, test_eval, run_id, until=lambda found: len(found) == 1, timeout=180)
    shown = wait_for(session, f"run {run_id} test ({n} posts)")
    matrix = [[int(cell) for cell in m.groups()] for m in
              re.finditer(r"^ (?:bearish|neutral|bullish) +(\d+) +(\d+) +(\d+) ", shown, re.MULTILINE)]
    assert matrix == json.loads(confusion)  # what the screen shows is what the store holds
    return run_id


# -- Spot-check: ten predictions, one undone ------------------------------------------------------------------------

def spot_check_ten(session: str, db_path: Path) -> None:
    press(session, "F5")
    wait_match(session, r" 1/\d+ by uncertainty")
    at = 1
    for key in ("a", "a", "1", "a", "2", "u", "3", "a", "a", "3", "a", "a"):
        press(session, key)
        at += -1 if key == "u" else 1
        wait_match(session, rf" {at}/\d+ by uncertainty")
    spot = wait_rows(db_path, "SELECT post_id, label, split, sampling FROM labels WHERE sampling = 'spot-check' "
                              "ORDER BY id", until=lambda found: len(found) == 10)
    assert {(split, sampling) for _, _, split, sampling in spot} == {("train", "spot-check")}
    labels = [label for _, label, _, _ in spot]
    assert [labels[2], labels[4], labels[7]] == ["bearish", "bullish", "bullish"]  # the corrections
    undone = rows(db_path, "SELECT old_label FROM label_history WHERE change = 'delete' AND changed_by LIKE ?",
                  "%via console Spot-check screen")
    assert undone == [("neutral",)]
    one_human_label_per_post(db_path)


# -- Pods: a run cancelled while its pod connects --------------------------------------------------------------------

def pod_run_terminated_while_connecting(session: str, db_path: Path, runpod: FakeRunpod) -> str:
    press(session, "F6")
    wait_for(session, "n start run")
    press(session, "n")
    wait_for(session, "the run's name")
    press(session, "Enter")  # the name it offers
    wait_for(session, "Start pod (y)", timeout=120)  # the buttons stay in sight under a plan taller than 24 rows
    press(session, "G")  # which scrolls to its end: the question
    wait_for(session, "Start this pod? It bills by the hour")
    press(session, "y")
    (job_id,), = wait_rows(db_path, "SELECT id FROM jobs WHERE kind = 'pod'", until=lambda found: len(found) == 1)
    wait_rows(db_path, "SELECT json_extract(counts, '$.state') FROM jobs WHERE id = ?", job_id,
              until=lambda found: found == [("connecting",)], timeout=120)
    (pod_id,), = rows(db_path, "SELECT pod_id FROM pods WHERE job_id = ?", job_id)
    assert runpod.billing_now() == [pod_id]
    wait_for(session, pod_id[:10])
    press(session, "t")
    wait_for(session, f"Terminate pod {pod_id}")
    press(session, "y")
    wait_rows(db_path, "SELECT j.state, p.state, r.state FROM jobs j JOIN pods p ON p.job_id = j.id "
                       "JOIN runs r ON r.job_id = j.id WHERE j.id = ?", job_id,
              until=lambda found: found == [("cancelled", "terminated", "cancelled")])
    deadline = time.monotonic() + 60
    while runpod.billing_now():
        assert time.monotonic() < deadline, f"pod {pod_id} still bills"
        time.sleep(0.1)
    wait_for(session, "terminated")
    return pod_id


def quit_and_reopen(session: str, config: Path, db_path: Path, pod_id: str, tally: str) -> str:
    press(session, "q")
    assert "[exit 0]" in wait_for(session, "[exit ")
    close(session)
    session = start(config, db_path)
    wait_for(session, f"pod {pod_id} (")  # back on Pods, its pod selected
    press(session, "F2")
    wait_for(session, tally)  # the labeling session goes on where it was
    return session


def test_a_whole_day_at_the_keyboard(day):
    config, db_path, runpod = day
    session = start(config, db_path)
    try:
        wait_for(session, "300 posts │")
        answered = label_in_random_order(session, db_path)
        answer_the_blind_repeat(session, db_path, answered)
        label_from_posts(session, db_path)
        tally = " 25/50 bear"  # 20 in random order and 5 from Posts
        wait_for(session, tally)
        batch_job(session, db_path)
        demo_model_and_its_matrix(session, db_path)
        spot_check_ten(session, db_path)
        pod_id = pod_run_terminated_while_connecting(session, db_path, runpod)
        session = quit_and_reopen(session, config, db_path, pod_id, tally)
        press(session, "q")
        wait_for(session, "Quit bizsent?")
        press(session, "y")
        assert "[exit 0]" in wait_for(session, "[exit ")
    finally:
        close(session)
    one_human_label_per_post(db_path)

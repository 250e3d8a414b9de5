"""Training runs, app side: the repository, the runner (real worker processes), recovery after a
restart, cancel, a crashing worker, the service's role checks, and ``endolite train`` /
``endolite runs``.

The project: image groups ("videos" of the split) of 40x40 PNGs whose labels are their colour
("red" present iff the red channel is high, "green" likewise), set as frame labels.  Workers
train a random-init resnet18 at 32 px on one thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from endolite.errors import InvalidInput, NotFound, PermissionDenied
from endolite.ingest import ingest_paths
from endolite.media import write_image_atomic
from endolite.records import LabelKind, Presence, Role
from endolite.services import Actor, Ctx
from endolite.services import training as service
from endolite.storage import annotations, audit, connect, labels, media
from endolite.storage import training as repo
from endolite.storage.training import RunStatus
from endolite.train import runner

LABELS = ["red", "green"]
TINY = {"backbone": "resnet18", "image_size": 32, "batch_size": 8, "device": "cpu"}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("ENDOLITE_TRAIN_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _ctx(con, settings, role=Role.LEAD, name="lead") -> Ctx:
    return Ctx(con=con, settings=settings, actor=Actor(name=name, role=role))


def make_project(con, settings, root: Path, *, groups: int = 6, per_group: int = 4) -> None:
    """``groups`` image groups of ``per_group`` colour images, labels red / green on all."""
    for name in LABELS:
        labels.add(con, name, kind=LabelKind.OTHER)
    rng = np.random.default_rng(0)
    n = 0
    for g in range(groups):
        folder = root / f"group{g}"
        folder.mkdir(parents=True)
        truth = []
        for i in range(per_group):
            red, green = n % 4 in (1, 3), n % 4 in (2, 3)
            base = np.full((40, 40, 3), 60.0)
            base[..., 0] += 160 * red
            base[..., 1] += 160 * green
            img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            write_image_atomic(folder / f"img{i}.png", img, fmt="png")
            truth.append((red, green))
            n += 1
        [group] = ingest_paths(con, settings, [folder], user="t")
        frames = sorted(media.frames_of(con, group_id=group.id), key=lambda f: f.frame_number)
        for frame, values in zip(frames, truth):
            for name, present in zip(LABELS, values):
                annotations.set_frame_label(
                    con, frame_id=frame.id, video_id=None, frame_number=frame.frame_number,
                    label_id=labels.get_by_name(con, name).id, annotator="ann",
                    value=Presence.PRESENT if present else Presence.ABSENT)


@pytest.fixture
def project(con, settings, tmp_path):
    make_project(con, settings, tmp_path / "pictures")
    return settings


def _wait_for(predicate, timeout: float = 120.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _gone(pid: int) -> bool:
    """The process is gone (or a zombie nobody reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


# --- repository -------------------------------------------------------------------------------

def test_repository_round_trips(con):
    run = repo.create_run(con, backbone="resnet18", labels=["a", "b"], label_ids=[3, 4],
                          config={"epochs": 2}, dataset={"frames": 10}, nproc=2,
                          created_by="lead", owner="me")
    assert (run.status, run.labels, run.label_ids, run.nproc) == (RunStatus.QUEUED, ("a", "b"), (3, 4), 2)
    assert run.config == {"epochs": 2, "run_id": run.id} and run.dataset == {"frames": 10}
    assert run.run_dir == f"models/run_{run.id}" and run.result == {} and not run.finished
    other = repo.create_run(con, backbone="resnet34", labels=["a"], label_ids=[3], config={},
                            dataset={})
    assert [r.id for r in repo.list_runs(con)] == [other.id, run.id]
    assert [r.id for r in repo.unfinished_runs(con)] == [run.id, other.id]

    assert repo.update_run(con, run.id, status=RunStatus.RUNNING, progress=1.7, message="epoch 1",
                           worker_pid=123, worker_host="h", started=True)
    got = repo.get_run(con, run.id)
    assert (got.status, got.progress, got.message, got.worker_pid) == ("running", 1.0, "epoch 1", 123)
    assert got.started_at is not None and got.finished_at is None
    assert repo.update_run(con, run.id, status=RunStatus.DONE, result={"state": "done"},
                           best_epoch=2, best_val_macro_f1=0.5, finished=True)
    assert not repo.update_run(con, run.id, status=RunStatus.FAILED, only_if=repo.UNFINISHED), \
        "a final state is not overwritten"
    done = repo.get_run(con, run.id)
    assert (done.status, done.best_epoch, done.result, done.finished) == ("done", 2, {"state": "done"}, True)
    assert [r.id for r in repo.list_runs(con, status=["done"])] == [run.id]

    rows = [("train", "", "loss", 0.7), ("val", "a", "f1", 0.5), ("val", "a", "auroc", None),
            ("val", "b", "auroc", float("nan"))]
    assert repo.insert_metrics(con, run.id, 1, rows) == 4
    repo.insert_metrics(con, run.id, 1, rows)                           # again: no duplicates
    repo.insert_metrics(con, run.id, 2, rows[:2])
    repo.insert_metrics(con, run.id, 2, [("test", "a", "f1", 0.9)], split="test")
    got_rows = repo.metrics(con, run.id)
    assert len(got_rows) == 4 + 2 + 1
    assert got_rows[0] == {"epoch": 1, "split": "train", "label": "", "metric": "loss", "value": 0.7}
    assert [r["value"] for r in repo.metrics(con, run.id, split="val", label="b")] == [None]
    assert repo.recorded_epochs(con, run.id) == {1, 2}
    assert repo.recorded_epochs(con, run.id, split="test") == {2}
    with pytest.raises(NotFound):
        repo.get_run(con, 999)


def test_epoch_rows_flatten_a_metrics_line():
    line = {"epoch": 3, "train_loss": 0.4, "val_loss": None, "images_per_s": 12.0, "seconds": 2.0,
            "val": {"macro_f1": 0.8, "per_label": {"red": {"f1": 0.8, "auroc": None, "support": 4,
                                                           "confusion": [1, 2]}}}}
    rows = runner.epoch_rows(line)
    assert ("train", "", "loss", 0.4) in rows and ("val", "", "macro_f1", 0.8) in rows
    assert ("val", "red", "auroc", None) in rows and ("val", "red", "support", 4) in rows
    assert not any(r[2] == "confusion" for r in rows) and not any(r[2] == "loss" and r[0] == "val"
                                                                   for r in rows)


# --- recovery without a worker ----------------------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_recover_marks_a_run_whose_worker_is_gone_failed_with_the_reason(con, settings):
    run = repo.create_run(con, backbone="resnet18", labels=["a"], label_ids=[1], config={},
                          dataset={})
    folder = settings.absolute(run.run_dir)
    folder.mkdir(parents=True)
    (folder / "log.txt").write_text("epoch 1/5: train loss 0.6\nsomething went on\n")
    import socket

    repo.update_run(con, run.id, status=RunStatus.RUNNING, worker_pid=_dead_pid(),
                    worker_host=socket.gethostname(), started=True)
    queued = repo.create_run(con, backbone="resnet18", labels=["a"], label_ids=[1], config={},
                             dataset={}, owner="another-process")
    [a, b] = runner.recover(con, settings)
    assert (a.id, a.status) == (run.id, RunStatus.FAILED)
    assert "the worker stopped while the dashboard was down" in a.error
    assert "something went on" in a.error and a.finished_at is not None
    assert (b.id, b.status) == (queued.id, RunStatus.FAILED)
    assert "before the worker started" in b.error
    assert runner.recover(con, settings) == [], "nothing left to recover"


def test_a_worker_on_another_host_is_judged_by_the_age_of_its_progress_file(con, settings):
    """A run whose worker runs on another host sharing the data directory (its pid means
    nothing here): kept running while progress.json is fresh, failed once it has been silent
    for runner.STALE_OTHER_HOST_S."""
    run = repo.create_run(con, backbone="resnet18", labels=["a"], label_ids=[1], config={},
                          dataset={})
    folder = settings.absolute(run.run_dir)
    folder.mkdir(parents=True)
    (folder / "log.txt").write_text("epoch 2/5: train loss 0.4\nlast words from gpu-node-7\n")
    progress = folder / "progress.json"
    progress.write_text(json.dumps({"state": "running", "epoch": 2, "epochs": 5}))
    repo.update_run(con, run.id, status=RunStatus.RUNNING, worker_pid=_dead_pid(),
                    worker_host="gpu-node-7.invalid", started=True)
    [fresh] = runner.recover(con, settings)
    assert fresh.status == RunStatus.RUNNING, "a fresh progress file: the worker is alive there"

    old = time.time() - runner.STALE_OTHER_HOST_S - 5
    os.utime(progress, (old, old))
    [stale] = runner.recover(con, settings)
    assert stale.status == RunStatus.FAILED
    assert "last words from gpu-node-7" in stale.error
    assert runner.recover(con, settings) == []


# --- real workers -----------------------------------------------------------------------------

@pytest.mark.slow
def test_a_run_trains_records_metrics_and_a_restart_keeps_its_true_state(project, con):
    """The CLI starts a run and exits (the app is gone while the worker trains); the next
    open of the database records the worker's result."""
    settings = project
    con.close()                        # the CLI is another process: it needs the file
    code = subprocess.run(
        [sys.executable, "-m", "endolite.cli", "--data", str(settings.data_dir), "--json", "train",
         "--labels", "red,green", "--backbone", "resnet18", "--epochs", "2", "--batch-size", "8",
         "--image-size", "32", "--device", "cpu", "--seed", "1"],
        capture_output=True, text=True, timeout=120)
    assert code.returncode == 0, code.stderr
    run_id = json.loads(code.stdout)["run_id"]
    folder = settings.absolute(f"models/run_{run_id}")
    assert json.loads((folder / "config.json").read_text())["labels"] == LABELS
    _wait_for(lambda: (folder / "result.json").exists(), 240, "the worker's result")
    _wait_for(lambda: _gone(json.loads((folder / "progress.json").read_text())["pid"]), 30,
              "the worker to exit")

    con = connect(settings)            # the "restarted" app: a new connection
    try:
        assert repo.get_run(con, run_id).status == RunStatus.RUNNING, "nobody recorded it yet"
        service.watch(con, settings)
        run = repo.get_run(con, run_id)
        assert run.status == RunStatus.DONE, run.error
        assert run.best_epoch in (1, 2) and run.finished_at is not None and run.progress == 1.0
        assert set(run.result["test"]["per_label"]) == set(LABELS)
        rows = repo.metrics(con, run_id)
        assert {r["epoch"] for r in rows if r["split"] == "val"} == {1, 2}
        assert {r["label"] for r in rows if r["split"] == "val" and r["metric"] == "f1"} == set(LABELS)
        assert any(r["split"] == "test" and r["label"] == "red" and r["metric"] == "tp" for r in rows)
        assert (folder / "best.pt").is_file()
    finally:
        con.close()


@pytest.mark.slow
def test_cancel_stops_a_running_worker(project, con):
    settings = project
    ctx = _ctx(con, settings)
    run = service.start(ctx, labels=LABELS, epochs=200, **TINY)
    assert run.status == RunStatus.RUNNING and run.worker_pid
    folder = settings.absolute(run.run_dir)
    _wait_for(lambda: (runner.read_json(folder / "progress.json") or {}).get("step", 0) > 0, 120,
              "the first training step")
    with pytest.raises(PermissionDenied):
        service.cancel(_ctx(con, settings, Role.ANNOTATOR, "ann"), run.id)
    service.cancel(ctx, run.id, grace=20.0)
    done = service.wait(ctx, run.id, timeout=90)
    assert done.status == RunStatus.CANCELLED and done.finished_at is not None
    assert _wait_for(lambda: _gone(run.worker_pid), 30, "the worker process to end")
    assert [e.action for e in audit.search(con, entity="training_run")][:2] == ["model.cancel",
                                                                                "model.train"]
    with pytest.raises(InvalidInput, match="already ended"):
        service.cancel(ctx, run.id)


@pytest.mark.slow
def test_a_crashing_worker_marks_the_run_failed_with_its_error(project, con):
    settings = project
    ctx = _ctx(con, settings)
    run = service.start(ctx, labels=LABELS, epochs=2, **TINY)
    manifest = json.loads((settings.absolute(run.run_dir) / "manifest.json").read_text())
    victim = Path(manifest["rows"][0]["path"])
    victim.unlink()                       # after the manifest was written
    done = service.wait(ctx, run.id, timeout=180)
    assert done.status == RunStatus.FAILED
    assert victim.name in done.error, done.error
    _wait_for(lambda: not runner.pid_alive(run.worker_pid), 30, "the failed worker to exit")


@pytest.mark.slow
def test_a_killed_worker_is_marked_failed_with_the_log_tail(project, con):
    settings = project
    ctx = _ctx(con, settings)
    run = service.start(ctx, labels=LABELS, epochs=200, **TINY)
    folder = settings.absolute(run.run_dir)
    _wait_for(lambda: (folder / "log.txt").exists(), 120, "the worker's log")
    os.killpg(run.worker_pid, signal.SIGKILL)
    done = service.wait(ctx, run.id, timeout=30)
    assert done.status == RunStatus.FAILED
    assert "stopped without a result" in done.error
    assert (folder / "log.txt").read_text().splitlines()[-1].split(" ", 2)[-1] in done.error


def test_start_checks_role_and_options(project, con, tmp_path):
    settings = project
    annotator = _ctx(con, settings, Role.ANNOTATOR, "ann")
    with pytest.raises(PermissionDenied, match="ann \\(annotator\\) may not model.train"):
        service.start(annotator, labels=LABELS, **TINY)
    assert repo.list_runs(con) == []
    lead = _ctx(con, settings)
    with pytest.raises(InvalidInput, match="backbone 'nope'"):
        service.start(lead, labels=LABELS, backbone="nope")
    with pytest.raises(InvalidInput, match="no label named 'blue'"):
        service.start(lead, labels=["red", "blue"], **TINY)
    with pytest.raises(InvalidInput, match="pretrained checkpoint .*missing.pt: no such file"):
        service.start(lead, labels=LABELS, pretrained_checkpoint=str(tmp_path / "missing.pt"), **TINY)
    with pytest.raises(InvalidInput, match="loss"):
        service.start(lead, labels=LABELS, loss="hinge", **TINY)
    with pytest.raises(InvalidInput, match="epochs"):
        service.start(lead, labels=LABELS, epochs=0, **TINY)
    labels.add(con, "blue", kind=LabelKind.OTHER)
    with pytest.raises(InvalidInput, match="no frame has a known value"):
        service.start(lead, labels=["blue"], **TINY)
    assert repo.list_runs(con) == [], "nothing refused left a run behind"
    summary = service.preview(lead, labels=LABELS)
    assert summary.frames == 24 and summary.media == 6
    assert summary.split_media == {"train": 4, "val": 1, "test": 1}


@pytest.mark.slow
def test_cli_train_wait_json_prints_per_split_metrics_and_runs_lists_it(project, con, capsys):
    from endolite.cli import main

    settings = project
    con.close()
    code = main(["--data", str(settings.data_dir), "--json", "train", "--labels", "red,green",
                 "--backbone", "resnet18", "--epochs", "2", "--batch-size", "8", "--image-size",
                 "32", "--device", "cpu", "--wait", "--sampler", "balanced", "--loss", "focal"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["status"] == "done" and out["best_epoch"] in (1, 2)
    for split in ("val", "test"):
        assert set(out[split]) == set(LABELS)
        for label in LABELS:
            assert {"f1", "precision", "recall", "auroc", "ap"} <= set(out[split][label])
    run_id = out["run_id"]

    assert main(["--data", str(settings.data_dir), "--json", "runs"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["run_id"], listed["status"], listed["labels"]) == (run_id, "done", LABELS)
    assert main(["--data", str(settings.data_dir), "runs", str(run_id)]) == 0
    text = capsys.readouterr().out
    assert f"run {run_id}: done" in text and "epoch 2: train loss" in text and "test: macro F1" in text
    assert main(["--data", str(settings.data_dir), "runs"]) == 0
    assert f"{run_id:>5} done" in capsys.readouterr().out


APP = """
import sys, time
from endolite.config import Settings
from endolite.records import Role
from endolite.services import Actor, Ctx
from endolite.services import training
from endolite.storage import connect

settings = Settings.resolve(sys.argv[1])
con = connect(settings)
ctx = Ctx(con=con, settings=settings, actor=Actor(name="lead", role=Role.LEAD))
run = training.start(ctx, labels=["red", "green"], backbone="resnet18", epochs=int(sys.argv[2]),
                     image_size=32, batch_size=8, device="cpu")
training.watch(con, settings)          # the page's call: the watcher thread records the run
deadline = time.monotonic() + 120
while con.cursor().execute("SELECT max(epoch) FROM training_metrics").fetchone()[0] is None:
    assert time.monotonic() < deadline, "no epoch recorded by the watcher"
    time.sleep(0.2)
print(run.id, flush=True)
"""  # exits with the watcher thread running: its atexit hook must take it out of DuckDB first


@pytest.mark.slow
def test_the_watcher_records_a_run_and_a_restarted_app_keeps_watching_its_live_worker(project, con):
    settings = project
    con.close()
    app = subprocess.run([sys.executable, "-c", APP, str(settings.data_dir), "30"],
                         capture_output=True, text=True, timeout=240)
    assert app.returncode == 0, app.stderr          # no abort at exit with the watcher running
    run_id = int(app.stdout.split()[-1])
    con = connect(settings)                          # the restarted app
    try:
        run = repo.get_run(con, run_id)
        assert run.status == RunStatus.RUNNING and run.worker_pid
        assert runner.pid_alive(run.worker_pid), "the worker outlived the app that started it"
        service.watch(con, settings)                 # recover (alive: kept) + watcher
        run = repo.get_run(con, run_id)
        assert run.status == RunStatus.RUNNING and run.error is None
        epochs = _wait_for(lambda: len(repo.recorded_epochs(con.cursor(), run_id)) >= 2 or None,
                           120, "the watcher to record a further epoch")
        assert epochs
        service.cancel(_ctx(con, settings), run_id, grace=20.0)
        done = _wait_for(lambda: repo.get_run(con.cursor(), run_id).finished
                         and repo.get_run(con.cursor(), run_id), 90, "the watcher to record the end")
        assert done.status == RunStatus.CANCELLED
        _wait_for(lambda: _gone(run.worker_pid), 30, "the worker to exit")
    finally:
        runner.stop_watchers()
        con.close()


def _group_gone(pgid: int) -> bool:
    """No process of the group is left (zombies aside)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            return False
    return True


@pytest.mark.slow
def test_two_process_run_under_torchrun_is_cancelled_as_a_whole_group(project, con):
    settings = project
    ctx = _ctx(con, settings)
    run = service.start(ctx, labels=LABELS, epochs=200, nproc=2, **TINY)
    folder = settings.absolute(run.run_dir)
    _wait_for(lambda: (runner.read_json(folder / "progress.json") or {}).get("step", 0) > 0, 180,
              "the first training step")
    assert not _group_gone(run.worker_pid)
    service.cancel(ctx, run.id, grace=1.0)          # SIGTERM to the group after 1 s
    done = service.wait(ctx, run.id, timeout=90)
    assert done.status == RunStatus.CANCELLED, done.error
    _wait_for(lambda: _group_gone(run.worker_pid), 30, "every process of the run to end")

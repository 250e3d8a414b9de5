"""Predictions with a trained model: the Predictor (probabilities, features, the precision it
chooses agreeing with float32), the video pass over a real PyAV video (every n-th frame), the
pure smoothing + hysteresis of predicted segments, the service (stored rows, frame ids of
extracted frames, audit, the lead-only rule), decisions on predicted segments and on frame-label
suggestions, and ``endolite predict``.  Models are random-init timm networks made here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from endolite.errors import InvalidInput, PermissionDenied
from endolite.ingest import ingest_paths
from endolite.media import write_image_atomic
from endolite.records import LabelKind, Presence, Role
from endolite.services import Actor, Ctx
from endolite.services import media as media_service
from endolite.services import predictions as service
from endolite.storage import annotations as ann_store
from endolite.storage import audit, connect, labels
from endolite.storage import predictions as store
from endolite.storage.rows import dumps
from endolite.train.model import CHECKPOINT_FORMAT, IMAGENET_MEAN, IMAGENET_STD
from endolite.train.predict import TOLERANCE, Predictor
from endolite.train.segments import SegmentOptions, find_segments, hysteresis, smooth

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32


@pytest.fixture(autouse=True)
def _threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def save_checkpoint(path: Path, labels_: list[str], *, size: int = SIZE, bias: list[float] | None = None,
                    seed: int = 0) -> Path:
    """A random-init resnet18 in the endolite-classifier/1 format.  ``bias``: a head with zero
    weights and these logits (a model whose probabilities are known), else a random head
    scaled down so the probabilities are not saturated."""
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model("resnet18", pretrained=False, num_classes=len(labels_))
    with torch.no_grad():
        if bias is not None:
            model.fc.weight.zero_()
            model.fc.bias.copy_(torch.tensor(bias))
        else:
            model.fc.weight.mul_(0.05)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "backbone": "resnet18", "timm_name": "resnet18",
                "labels": list(labels_), "image_size": size, "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD), "state_dict": model.state_dict(), "epoch": 1,
                "val_macro_f1": 0.5, "thresholds": [0.5] * len(labels_)}, path)
    return path


def make_run(con, settings, names: list[str], *, bias: list[float] | None = None,
             status: str = "done") -> int:
    """Labels (created when missing), a training_runs row and its best.pt; returns the run id."""
    ids = []
    for name in names:
        lab = labels.get_by_name(con, name, missing_ok=True) or labels.add(con, name, kind=LabelKind.OTHER)
        ids.append(lab.id)
    run_id = con.execute("SELECT nextval('seq_training_runs')").fetchone()[0]
    con.execute("INSERT INTO training_runs (id, status, backbone, labels, label_ids, run_dir) "
                "VALUES (?, ?, 'resnet18', ?, ?, ?)",
                [run_id, status, dumps(names), dumps(ids), f"models/run_{run_id}"])
    save_checkpoint(settings.absolute(f"models/run_{run_id}") / "best.pt", names, bias=bias)
    return run_id


def ctx_of(con, settings, name: str, role: Role) -> Ctx:
    return Ctx(con=con, settings=settings, actor=Actor(name=name, role=role))


@pytest.fixture
def video(con, settings, disc_video):
    """The 100-frame disc video ingested, with frames 12, 37, 62, 87 extracted."""
    [res] = ingest_paths(con, settings, [disc_video], user="t")
    media_service.extract(ctx_of(con, settings, "lee", Role.LEAD), res.id, method="uniform",
                          count=4, context=0)
    return res.id


def decode_at(path: Path, size: int) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(width=size, height=size, format="rgb24") for f in c.decode(video=0)]


# --- Predictor ------------------------------------------------------------------------------

def test_predictor_probabilities_features_and_auto_precision_agree_with_float32(tmp_path):
    ckpt = save_checkpoint(tmp_path / "best.pt", ["polyp", "blood", "tool"], size=48)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 60, 90, 3), dtype=np.uint8)     # any size: squashed to 48

    ref = Predictor.load(ckpt, device="cpu", precision="float32")
    assert ref.labels == ("polyp", "blood", "tool") and ref.image_size == 48
    out = ref.predict(images)
    assert out.probs.shape == (6, 3) and out.probs.dtype == np.float32
    assert out.features.shape == (6, 512) and out.features.dtype == np.float32
    assert ((out.probs > 0) & (out.probs < 1)).all() and out.probs.std() > 1e-4

    auto = Predictor.load(ckpt, device="cpu")
    assert auto.precision == "auto"
    got = auto.predict(images)
    cal = auto.calibration
    assert cal is not None and auto.precision == cal.chosen != "auto"
    assert cal.max_abs_diff[cal.chosen] <= TOLERANCE
    assert "float32" in cal.seconds_per_image
    assert np.abs(got.probs - out.probs).max() <= TOLERANCE
    # the feature vector is the classifier's input: logits = fc(features)
    import torch
    fc = ref.model.get_classifier()
    with torch.no_grad():
        again = torch.sigmoid(fc(torch.from_numpy(out.features))).numpy()
    np.testing.assert_allclose(again, out.probs, atol=1e-5)

    assert Predictor.load(ckpt, device="cpu").predict(images[:0]).probs.shape == (0, 3)
    with pytest.raises(InvalidInput, match="uint8"):
        ref.predict(images.astype(np.float32))
    with pytest.raises(InvalidInput, match="precision"):
        Predictor.load(ckpt, device="cpu", precision="int4")
    with pytest.raises(InvalidInput, match="no such file"):
        Predictor.load(tmp_path / "missing.pt")


def test_bfloat16_forms_agree_with_float32_within_tolerance(tmp_path):
    from endolite.train.predict import candidate_precisions

    ckpt = save_checkpoint(tmp_path / "best.pt", ["a", "b"], size=SIZE)
    images = np.random.default_rng(1).integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)
    ref = Predictor.load(ckpt, device="cpu", precision="float32").predict(images).probs
    forms = [p for p in candidate_precisions("cpu") if p != "float32"]
    assert "float32+cl" in forms
    for form in forms:
        got = Predictor.load(ckpt, device="cpu", precision=form).predict(images).probs
        assert np.abs(got - ref).max() <= TOLERANCE, form


def test_video_pass_predicts_every_nth_frame_like_single_images(tmp_path, disc_video):
    ckpt = save_checkpoint(tmp_path / "best.pt", ["a", "b"], size=SIZE)
    pred = Predictor.load(ckpt, device="cpu", precision="float32")
    calls = []
    res = pred.predict_video(disc_video, every=4, batch_size=8,
                             progress=lambda f, m: calls.append(f))
    assert res.frame_numbers.tolist() == list(range(0, 100, 4))
    assert res.probs.shape == (25, 2) and res.decoded == 100
    assert (res.frame_ids == -1).all() and res.precision == "float32" and res.fps > 0
    frames = decode_at(disc_video, SIZE)
    direct = pred.predict(np.stack(frames[::4])).probs
    np.testing.assert_allclose(res.probs, direct, atol=1e-5)
    assert calls and all(0 <= f < 1 for f in calls) and calls == sorted(calls)

    with pytest.raises(InvalidInput, match="every"):
        pred.predict_video(disc_video, every=0)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(InvalidInput, match="cannot be decoded"):
        pred.predict_video(bad)


def test_cancelled_video_pass_stops_after_the_batch_and_stops_its_decoder(tmp_path, disc_video):
    import threading

    ckpt = save_checkpoint(tmp_path / "best.pt", ["a"], size=SIZE)
    pred = Predictor.load(ckpt, device="cpu", precision="float32")
    res = pred.predict_video(disc_video, every=2, batch_size=4, cancelled=lambda: True)
    assert res.frame_numbers.tolist() == [0, 2, 4, 6] and res.probs.shape == (4, 1)
    assert res.decoded < 100, "the decoder stopped before the end of the video"
    assert not [t for t in threading.enumerate() if t.name == "endolite-predict-decode"]


# --- segments (pure) ------------------------------------------------------------------------

def test_smooth_keeps_length_and_averages_inside_the_track():
    np.testing.assert_allclose(smooth(np.array([0, 0, 3, 0, 0.0]), 3), [0, 1, 1, 1, 0])
    np.testing.assert_allclose(smooth(np.array([1.0, 1.0]), 5), [1, 1])       # ends not pulled to 0
    assert smooth(np.zeros(0), 3).shape == (0,)
    with pytest.raises(InvalidInput):
        smooth(np.ones(3), 0)


def test_hysteresis_enters_high_stays_above_low():
    track = np.array([0.1, 0.7, 0.5, 0.45, 0.3, 0.55, 0.58, 0.9, 0.2])
    # enters at 0.7, a dip to 0.45 keeps it, 0.3 ends it; 0.55 / 0.58 < high do not enter; 0.9 does
    assert hysteresis(track, high=0.6, low=0.4) == [(1, 4), (7, 8)]
    assert hysteresis(np.array([0.8, 0.8]), high=0.6, low=0.4) == [(0, 2)]  # runs to the end
    assert hysteresis(np.array([0.59] * 5), high=0.6, low=0.1) == []
    with pytest.raises(InvalidInput):
        hysteresis(track, high=0.3, low=0.5)


def test_find_segments_end_exclusive_in_video_frames_min_length_and_clipping():
    p = np.array([0.0, 0.9, 0.9, 0.0, 0.0, 0.9, 0.0, 0.9, 0.9])
    opts = SegmentOptions(window=1, high=0.6, low=0.4, min_frames=1)
    segs = find_segments(p, every=10, options=opts, total_frames=85)
    assert [(s.start, s.end) for s in segs] == [(10, 30), (50, 60), (70, 85)]  # last clipped
    assert segs[0].mean_probability == pytest.approx(0.9)
    longer = find_segments(p, every=10, options=SegmentOptions(window=1, min_frames=20))
    assert [(s.start, s.end) for s in longer] == [(10, 30), (70, 90)]
    # smoothing bridges a one-sample gap and removes a one-sample spike
    q = np.array([0, 0, 0, 1, 1, 1, 0.3, 1, 1, 1, 0, 0, 0, 0, 0.9, 0, 0, 0])
    smoothed = find_segments(q, options=SegmentOptions(window=3, high=0.6, low=0.4))
    assert [(s.start, s.end) for s in smoothed] == [(3, 10)]
    nums = np.array([0, 4, 8, 12])
    assert [(s.start, s.end) for s in find_segments(np.array([0, 1, 1, 0.0]), every=4,
                                                    frame_numbers=nums, options=opts)] == [(4, 12)]
    assert find_segments(np.zeros(0), every=3) == []


# --- the service ----------------------------------------------------------------------------

def test_predict_video_stores_rows_frame_ids_segments_and_audit(con, settings, video):
    run_id = make_run(con, settings, ["polyp", "tool"], bias=[3.0, -3.0])
    lead = ctx_of(con, settings, "lee", Role.LEAD)
    calls = []
    pset = service.predict(lead, run_id, video_id=video, every=3,
                           progress=lambda f, m: calls.append(f))
    assert (pset.run_id, pset.video_id, pset.group_id, pset.every) == (run_id, video, None, 3)
    assert pset.frames == 34 and pset.fps > 0 and pset.precision and pset.created_by == "lee"
    polyp, tool = (labels.get_by_name(con, n).id for n in ("polyp", "tool"))
    tr = store.track(con, pset.id)
    assert tr.frame_numbers.tolist() == list(range(0, 100, 3))
    assert tr.label_ids == (polyp, tool) and tr.labels == ("polyp", "tool")
    np.testing.assert_allclose(tr.probs[:, 0], 1 / (1 + np.exp(-3)), atol=0.01)
    np.testing.assert_allclose(tr.probs[:, 1], 1 / (1 + np.exp(3)), atol=0.01)
    extracted = {f.frame_number: f.id for f in media_service_frames(con, video)}
    assert sorted(extracted) == [12, 37, 62, 87]
    with_ids = {int(n): int(f) for n, f in zip(tr.frame_numbers, tr.frame_ids) if f >= 0}
    assert with_ids == {12: extracted[12], 87: extracted[87]}       # 37 and 62 not predicted
    rows = con.execute("SELECT count(*), min(source), min(run_id), max(run_id) FROM predictions "
                       "WHERE set_id = ?", [pset.id]).fetchone()
    assert rows == (68, "model", run_id, run_id)
    [seg] = store.predicted_segments(con, pset.id)
    assert (seg.label, seg.start_frame, seg.end_frame, seg.status) == ("polyp", 0, 100, "proposed")
    assert store.latest_set(con, video_id=video).id == pset.id
    [entry] = audit.recent(con, action="model.predict")
    assert (entry.username, entry.entity, entry.entity_id) == ("lee", "prediction_set", pset.id)
    assert entry.details["run_id"] == run_id and entry.details["frames"] == 34
    assert entry.details["extracted_frames"] == 2 and entry.details["predicted_segments"] == 1
    assert calls and calls == sorted(calls)


def media_service_frames(con, video_id):
    from endolite.storage import media

    return media.frames_of(con, video_id=video_id)


def test_predict_image_group_fills_every_frame_id(con, settings, tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    for i in range(3):
        write_image_atomic(folder / f"img{i}.png", np.full((40, 50, 3), 60 * i, np.uint8), fmt="png")
    [group] = ingest_paths(con, settings, [folder], user="t")
    run_id = make_run(con, settings, ["polyp"])
    pset = service.predict(ctx_of(con, settings, "lee", Role.LEAD), run_id, group_id=group.id, every=5)
    assert pset.frames == 3 and pset.every == 1
    tr = store.track(con, pset.id)
    assert sorted(tr.frame_ids.tolist()) == sorted(group.frame_ids)
    assert tr.probs.shape == (3, 1) and not np.isnan(tr.probs).any()
    assert store.predicted_segments(con, pset.id) == []


def test_predict_refuses_annotators_unfinished_runs_and_bad_requests(con, settings, video):
    run_id = make_run(con, settings, ["polyp"])
    with pytest.raises(PermissionDenied, match="model.predict"):
        service.predict(ctx_of(con, settings, "ann", Role.ANNOTATOR), run_id, video_id=video)
    lead = ctx_of(con, settings, "lee", Role.LEAD)
    running = make_run(con, settings, ["polyp"], status="running")
    with pytest.raises(InvalidInput, match="status running"):
        service.predict(lead, running, video_id=video)
    with pytest.raises(InvalidInput, match="exactly one"):
        service.predict(lead, run_id)
    with pytest.raises(InvalidInput, match="every"):
        service.predict(lead, run_id, video_id=video, every=0)
    assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM prediction_sets").fetchone()[0] == 0


def test_prediction_job_records_its_set(con, settings, video):
    run_id = make_run(con, settings, ["polyp"], bias=[2.0])
    job = service.start_predict_job(ctx_of(con, settings, "lee", Role.LEAD), run_id,
                                    video_id=video, every=10, background=False)
    assert str(job.status) == "done", job.message
    pset = store.get_set(con, job.result["set_id"])
    assert pset.job_id == job.id and pset.frames == 10 and job.result["frames"] == 10
    with pytest.raises(PermissionDenied):
        service.start_predict_job(ctx_of(con, settings, "ann", Role.ANNOTATOR), run_id,
                                  video_id=video)


def test_decide_segment_accept_with_edited_bounds_and_reject(con, settings, video):
    run_id = make_run(con, settings, ["polyp", "tool"], bias=[3.0, 3.0])
    pset = service.predict(ctx_of(con, settings, "lee", Role.LEAD), run_id, video_id=video, every=5)
    first, second = store.predicted_segments(con, pset.id)
    ann = ctx_of(con, settings, "ann", Role.ANNOTATOR)

    done = service.decide_segment(ann, first.id, accept=True, start=10, end=40)
    assert done.status == "accepted" and done.decided_by == "ann" and done.segment_id
    [seg] = ann_store.segments_of(con, video_id=video)
    assert (seg.id, seg.label, seg.start_frame, seg.end_frame, seg.annotator) == \
        (done.segment_id, first.label, 10, 40, "ann")
    with pytest.raises(InvalidInput, match="already accepted"):
        service.decide_segment(ann, first.id, accept=False)

    rejected = service.decide_segment(ann, second.id, accept=False)
    assert rejected.status == "rejected" and rejected.segment_id is None
    assert len(ann_store.segments_of(con, video_id=video)) == 1
    assert [e.details["status"] for e in audit.recent(con, action="model.predicted_segment")] \
        == ["rejected", "accepted"]
    assert len(audit.recent(con, action="segment.add")) == 1


def test_suggestions_accept_sets_the_frame_label_and_reject_hides_it(con, settings, video):
    lead = ctx_of(con, settings, "lee", Role.LEAD)
    old = make_run(con, settings, ["polyp", "tool", "blood"], bias=[3.0, 3.0, -3.0])
    service.predict(lead, old, video_id=video)
    run_id = make_run(con, settings, ["polyp", "tool", "blood"], bias=[1.0, 2.0, -3.0])
    service.predict(lead, run_id, video_id=video)
    frame = media_service_frames(con, video)[0]

    got = service.suggestions(con, frame.id, user="ann")
    assert [(s.label, s.run_id) for s in got] == [("tool", run_id), ("polyp", run_id)]  # newest run
    assert got[0].probability == pytest.approx(1 / (1 + np.exp(-2)), abs=0.01)

    ann = ctx_of(con, settings, "ann", Role.ANNOTATOR)
    assert service.decide_suggestion(ann, frame.id, "tool", run_id, accept=True) == "accepted"
    [row] = ann_store.frame_labels_of(con, frame.id, annotator="ann")
    assert (row.label, row.value) == ("tool", Presence.PRESENT)
    assert service.decide_suggestion(ann, frame.id, "polyp", run_id, accept=False) == "rejected"
    assert service.suggestions(con, frame.id, user="ann") == []
    assert len(ann_store.frame_labels_of(con, frame.id, annotator="ann")) == 1   # reject sets nothing
    # another user still sees both; a frame without predictions has none
    assert [s.label for s in service.suggestions(con, frame.id, user="bob")] == ["tool", "polyp"]
    decided = store.decisions_of(con, frame.id)
    assert [(d["decision"], d["decided_by"]) for d in decided] == [("accepted", "ann"), ("rejected", "ann")]
    assert [e.details["decision"] for e in audit.recent(con, action="model.suggestion")] == \
        ["rejected", "accepted"]
    other = media_service_frames(con, video)[1]
    con.execute("DELETE FROM predictions WHERE frame_id = ?", [other.id])
    assert service.suggestions(con, other.id) == []


@pytest.mark.slow
def test_cli_predict_prints_the_set(settings, disc_video, tmp_path):
    con = connect(settings)
    [res] = ingest_paths(con, settings, [disc_video], user="t")
    run_id = make_run(con, settings, ["polyp"], bias=[3.0])
    con.close()
    env = {k: v for k, v in os.environ.items() if k not in ("ENDOLITE_DATA", "ENDOLITE_USER")}
    env["OMP_NUM_THREADS"] = "1"
    base = [sys.executable, "-m", "endolite.cli", "--data", str(settings.data_dir)]
    r = subprocess.run([*base, "--json", "predict", str(run_id), "--video", str(res.id),
                        "--every", "20"], capture_output=True, text=True, cwd=ROOT, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["frames"] == 5 and data["every"] == 20 and data["predicted_segments"] == 1
    assert data["video_fps"] == pytest.approx(25.0) and data["fps"] > 0 and data["precision"]
    r = subprocess.run([*base, "predict", str(run_id), "--group", "999"], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


# --- the timeline and the predicted-segments panel (Streamlit glue) ------------------------

def _panel_script(ctx, set_id, length):
    import timeline_predictions as tp

    tp.predicted_segments_panel(ctx, set_id, length=length, key="ps")


def test_timeline_figure_and_panel_accept_with_edited_bounds(con, settings, video):
    from streamlit.testing.v1 import AppTest

    import timeline_predictions as tp

    run_id = make_run(con, settings, ["polyp", "tool"], bias=[3.0, -3.0])
    pset = service.predict(ctx_of(con, settings, "lee", Role.LEAD), run_id, video_id=video, every=2)
    ann = ctx_of(con, settings, "ann", Role.ANNOTATOR)
    from endolite.services import annotations as ann_service
    ann_service.add_segment(ann, video, label="tool", start=5, end=20)

    fig = tp.figure(store.track(con, pset.id), segments=ann_store.segments_of(con, video_id=video),
                    predicted=store.predicted_segments(con, pset.id),
                    colors={"polyp": "#ff0000", "tool": "#00ff00"}, length=100)
    lines = [t for t in fig.data if t.type == "scatter"]
    assert [t.name for t in lines] == ["polyp", "tool"] and len(lines[0].x) == 50
    [bar] = [t for t in fig.data if t.type == "bar"]
    assert list(bar.base) == [5] and list(bar.x) == [15]
    [span] = fig.layout.shapes
    assert (span.x0, span.x1) == (0, 100)

    at = AppTest.from_function(_panel_script, args=(ann, pset.id, 100), default_timeout=30)
    at.run()
    assert not at.exception
    [pred] = store.predicted_segments(con, pset.id)
    at.number_input(key=f"ps_start_{pred.id}").set_value(30)
    at.number_input(key=f"ps_end_{pred.id}").set_value(60)
    at.button(key=f"ps_accept_{pred.id}").click()
    at.run()
    assert not at.exception
    assert "added" in at.success[0].value
    segs = [(s.label, s.start_frame, s.end_frame, s.annotator)
            for s in ann_store.segments_of(con, video_id=video)]
    assert ("polyp", 30, 60, "ann") in segs
    assert store.get_predicted_segment(con, pred.id).status == "accepted"
    assert f"ps_accept_{pred.id}" not in [b.key for b in at.button]     # decided: no buttons

"""Active learning and likely mislabels: the uncertainty scores and the ``uncertain`` picker on
fixed predictions, ``endolite extract --method uncertain --model RUN`` end to end on a real
video with a random-init checkpoint, confident learning on fixed arrays, the lead's review of a
likely mislabel, and the Visual Layer ``mislabels`` issues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from endolite import media
from endolite.errors import InvalidInput, NotFound, PermissionDenied
from endolite.export.validation import validate
from endolite.export.visual_layer import visual_layer_document
from endolite.extract import extract_frames
from endolite.ingest import ingest_paths
from endolite.records import Role
from endolite.sampling import Candidates, select
from endolite.services import Actor, Ctx
from endolite.services import mislabels as mislabel_service
from endolite.storage import audit, connect
from endolite.storage import labels as label_store
from endolite.storage import media as store
from endolite.storage.rows import fetch_dicts
from endolite.synthetic import write_disc_video
from endolite.train import mislabels, uncertainty
from endolite.train.active import score_range
from endolite.train.model import CHECKPOINT_FORMAT, IMAGENET_MEAN, IMAGENET_STD
from tests.format_project import build

ROOT = Path(__file__).resolve().parents[1]


# --- scores -----------------------------------------------------------------------------------

def test_scores_on_fixed_probabilities():
    p = np.array([[0.5, 0.0], [1.0, 0.0], [0.9, 0.1], [0.5, 0.5]])
    assert uncertainty.entropy_scores(p) == pytest.approx([0.5, 0.0, 0.4689956, 1.0])
    assert uncertainty.margin_scores(p) == pytest.approx([1.0, 0.0, 0.2, 1.0])
    # |diff| rows: 0->1 mean(0.5, 0) = .25, 1->2 mean(.1, .1) = .1, 2->3 mean(.4, .4) = .4
    assert uncertainty.flicker_scores(p) == pytest.approx([0.25, (0.25 + 0.1) / 2, (0.1 + 0.4) / 2, 0.4])
    combined = uncertainty.uncertainty_scores(p)
    expected = (0.4 * uncertainty.entropy_scores(p) + 0.4 * uncertainty.margin_scores(p)
                + 0.2 * uncertainty.flicker_scores(p))
    assert combined == pytest.approx(expected)
    assert uncertainty.uncertainty_scores(p, weights={"margin": 1}) == pytest.approx([1, 0, 0.2, 1])
    for empty in (np.zeros((0, 2)), np.zeros((3, 0))):
        assert uncertainty.uncertainty_scores(empty).shape == (len(empty),)
        assert not uncertainty.uncertainty_scores(empty).any()
    with pytest.raises(InvalidInput, match="probs"):
        uncertainty.entropy_scores(np.array([[1.5]]))
    with pytest.raises(InvalidInput, match="weights"):
        uncertainty.uncertainty_scores(p, weights={"entropy": 0})


def test_flicker_raises_the_score_of_a_jumpy_frame():
    steady = np.array([[0.9], [0.9], [0.9], [0.9], [0.9]])
    jumpy = steady.copy()
    jumpy[2] = 0.1          # just as confident, but the opposite answer between its neighbours
    assert uncertainty.entropy_scores(jumpy)[2] == pytest.approx(uncertainty.entropy_scores(steady)[2])
    assert uncertainty.flicker_scores(jumpy)[2] == pytest.approx(0.8)
    assert uncertainty.uncertainty_scores(jumpy)[2] > uncertainty.uncertainty_scores(steady)[2] + 0.1


def _two_scenes(seed: int = 0):
    """40 frames: scene A (rows 0-19) and scene B (20-39) with distinct features; the model is
    unsure of rows 3, 5, 8 (scene A) and 27, 30 (scene B) only."""
    rng = np.random.default_rng(seed)
    features = np.zeros((40, 8), np.float32)
    features[:20, 0] = 1.0
    features[20:, 1] = 1.0
    features += rng.normal(0, 0.05, features.shape).astype(np.float32)
    probs = np.full((40, 2), 0.02)
    probs[:, 1] = 0.97
    unsure = {3: 0.5, 5: 0.52, 8: 0.47, 27: 0.62, 30: 0.35}
    for row, value in unsure.items():
        probs[row, 0] = value
    return probs, features, sorted(unsure)


def test_pick_uncertain_spreads_over_clusters_and_skips_certain_frames():
    probs, features, unsure = _two_scenes()
    scores = uncertainty.uncertainty_scores(probs, weights={"entropy": 1, "margin": 1})
    # the 2 most uncertain rows are both in scene A; spreading takes one from each scene
    assert set(uncertainty.top_candidates(scores, 2)) <= {3, 5, 8}
    picks = uncertainty.pick_uncertain(scores, features, count=2, candidates_factor=2.5, seed=0)
    assert picks.dtype == np.int64 and list(picks) == sorted(picks)
    assert len(picks) == 2 and set(picks) <= set(unsure)
    assert list(uncertainty.pick_uncertain(scores, features, count=2, candidates_factor=2.5,
                                           seed=0)) == list(picks), "a seed reproduces the picks"
    assert {p < 20 for p in picks} == {True, False}, "one pick per scene"
    # more picks than uncertain frames in the candidate pool: still only uncertain frames
    picks = uncertainty.pick_uncertain(scores, features, count=5, candidates_factor=1, seed=3)
    assert list(picks) == unsure
    # no features: the most uncertain rows; identical features: clusters are made up in order
    assert set(uncertainty.pick_uncertain(scores, None, count=2)) <= {3, 5, 8}
    same = np.ones_like(features)
    assert len(uncertainty.pick_uncertain(scores, same, count=3, seed=1)) == 3
    assert len(uncertainty.pick_uncertain(np.zeros(0), np.zeros((0, 8)), count=3)) == 0
    assert list(uncertainty.pick_uncertain(scores[:2], features[:2], count=5)) == [0, 1]
    with pytest.raises(InvalidInput, match="features"):
        uncertainty.pick_uncertain(scores, features[:5], count=2)


def test_uncertain_selector_returns_frame_numbers():
    probs, features, unsure = _two_scenes()
    numbers = np.arange(40) * 5 + 100                       # every 5th frame from 100
    candidates = Candidates(frame_numbers=numbers, scores=uncertainty.uncertainty_scores(probs))
    picks = select("uncertain", candidates, count=2, rng=np.random.default_rng(0),
                   features=features, candidates_factor=2.5)
    assert set(picks) <= {int(numbers[r]) for r in unsure}
    assert {int(p) < 200 for p in picks} == {True, False}
    with pytest.raises(InvalidInput, match="needs scores"):
        select("uncertain", Candidates(frame_numbers=numbers), count=2, rng=np.random.default_rng(0))


# --- mislabels (pure) --------------------------------------------------------------------------

def test_confident_learning_flags_flipped_labels_and_ignores_unknown():
    labels = ["polyp", "blood"]
    ids = [10, 11, 12, 13, 14, 15, 16, 17]
    p = np.array([[0.90, 0.10], [0.85, 0.05], [0.10, 0.10], [0.05, 0.92],
                  [0.97, 0.08], [0.20, 0.95], [0.99, 0.30], [0.08, 0.60]])
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 1],
                  [0, 0], [1, 1], [0, 0], [0, 1]])
    k = np.ones_like(y)
    k[6, 0] = 0                # unknown: never flagged, however sure the model is
    t_pos, t_neg = mislabels.thresholds(p, y, k)
    assert t_pos[0] == pytest.approx((0.90 + 0.85 + 0.20) / 3)
    found = mislabels.find_mislabels(p, y, k, frame_ids=ids, labels=labels)
    assert [(m.frame_id, m.label, m.given, m.suggested) for m in found] == [
        (14, "polyp", False, True),         # annotated absent, model 0.97 present
        (15, "polyp", True, False),         # annotated present, model 0.20
    ]
    assert found[0].confidence == pytest.approx(0.97) and found[1].confidence == pytest.approx(0.80)
    assert all(m.frame_id != 16 for m in found)
    assert all(m.frame_id != 17 for m in found), "0.60 on a given positive is not a confident no"
    assert mislabels.find_mislabels(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2)),
                                    frame_ids=[], labels=labels) == []
    with pytest.raises(InvalidInput, match="given"):
        mislabels.find_mislabels(p, y * 2, k, frame_ids=ids, labels=labels)


# --- a trained run (random-init checkpoint) ------------------------------------------------------

def add_done_run(con, settings, labels, *, label_ids=None, backbone="resnet18", image_size=32,
                 checkpoint=True) -> tuple[int, Path]:
    """A ``done`` training_runs row with its run directory (and a random-init best.pt)."""
    run_id = int(con.execute("SELECT nextval('seq_training_runs')").fetchone()[0])
    run_dir = f"models/run_{run_id}"
    label_ids = label_ids or list(range(1, len(labels) + 1))
    con.execute("INSERT INTO training_runs (id, status, backbone, labels, label_ids, run_dir) "
                "VALUES (?, 'done', ?, ?, ?, ?)",
                [run_id, backbone, json.dumps(labels), json.dumps(label_ids), run_dir])
    path = settings.absolute(run_dir)
    path.mkdir(parents=True)
    if checkpoint:
        import torch

        from endolite.train.model import create

        torch.manual_seed(0)
        model, _ = create(backbone, len(labels))
        torch.save({"format": CHECKPOINT_FORMAT, "backbone": backbone, "timm_name": backbone,
                    "labels": list(labels), "image_size": image_size, "mean": list(IMAGENET_MEAN),
                    "std": list(IMAGENET_STD), "state_dict": model.state_dict(), "epoch": 1,
                    "val_macro_f1": 0.5, "thresholds": [0.5] * len(labels)}, path / "best.pt")
    return run_id, path


def test_extract_uncertain_needs_a_done_run(con, settings, tmp_path):
    [video] = ingest_paths(con, settings, [write_disc_video(tmp_path / "v.mp4", 30, gop=10)], user="t")
    with pytest.raises(InvalidInput, match="model"):
        extract_frames(con, settings, video.id, method="uncertain", count=3)
    with pytest.raises(InvalidInput, match="only for method uncertain"):
        extract_frames(con, settings, video.id, method="uniform", count=3, model=1)
    with pytest.raises(NotFound, match="training run"):
        extract_frames(con, settings, video.id, method="uncertain", count=3, model=99)
    run_id, _ = add_done_run(con, settings, ["polyp"], checkpoint=False)
    with pytest.raises(NotFound, match="best.pt"):
        extract_frames(con, settings, video.id, method="uncertain", count=3, model=run_id)
    con.execute("UPDATE training_runs SET status = 'running' WHERE id = ?", [run_id])
    with pytest.raises(InvalidInput, match="running, not done"):
        extract_frames(con, settings, video.id, method="uncertain", count=3, model=run_id)
    assert store.frames_of(con, video_id=video.id) == []


def test_extract_uncertain_in_process(con, settings, tmp_path):
    [video] = ingest_paths(con, settings, [write_disc_video(tmp_path / "v.mp4", 24, gop=8)], user="t")
    run_id, _ = add_done_run(con, settings, ["polyp"])
    result = extract_frames(con, settings, video.id, method="uncertain", model=run_id, count=3,
                            context=0, seed=1)
    assert str(result.method) == "uncertain" and len(result.picked) == 3
    [row] = fetch_dicts(con, "SELECT params FROM extractions WHERE id = ?", [result.extraction_id])
    params = json.loads(row["params"])
    assert params["model"] == run_id and params["scored"] == 24
    assert sorted(map(int, params["pick_scores"])) == [f.frame_number for f in result.picked]
    # the picks are among the 4 x count most uncertain frames of the model's own scores
    path = settings.absolute(video.path)
    scored = score_range(con, settings, path, media.index_video(path), 0, 24, run_id=run_id, count=3)
    top = scored.candidates.frame_numbers[uncertainty.top_candidates(scored.candidates.scores, 12)]
    assert {f.frame_number for f in result.picked} <= set(top.tolist())
    assert params["pick_scores"] == {str(n): round(float(s), 6) for n, s in zip(
        scored.candidates.frame_numbers, scored.candidates.scores) if str(n) in params["pick_scores"]}
    # frames already extracted are never picked again: the next picks are new frames
    uniform = extract_frames(con, settings, video.id, method="uniform", count=6, context=1)
    taken = {f.frame_number for f in store.frames_of(con, video_id=video.id)}
    again = extract_frames(con, settings, video.id, method="uncertain", model=run_id, count=3,
                           context=0, seed=1)
    assert len(again.picked) == 3 and not {f.frame_number for f in again.picked} & taken
    assert uniform.picked
    with pytest.raises(InvalidInput, match="already extracted"):
        extract_frames(con, settings, video.id, method="uncertain", model=run_id, count=3,
                       context=0, seed=1, start=0, end=1 / 24)


@pytest.mark.slow
def test_cli_extract_uncertain_end_to_end(settings, tmp_path):
    con = connect(settings)
    [video] = ingest_paths(con, settings, [write_disc_video(tmp_path / "v.mp4", 60, gop=15)], user="t")
    run_id, _ = add_done_run(con, settings, ["polyp", "blood"])
    con.close()
    env = {k: v for k, v in os.environ.items() if k not in ("ENDOLITE_DATA", "ENDOLITE_USER")}
    r = subprocess.run([sys.executable, "-m", "endolite.cli", "--data", str(settings.data_dir),
                        "--json", "extract", str(video.id), "--method", "uncertain", "--model",
                        str(run_id), "--count", "4", "--context", "1"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["method"] == "uncertain" and len(out["picked"]) == 4

    con = connect(settings)
    try:
        frames = store.frames_of(con, video_id=video.id)
        picked = sorted(f.frame_number for f in frames if not f.is_context)
        assert picked == sorted(p["frame_number"] for p in out["picked"])
        assert all(settings.absolute(f.path).is_file() for f in frames)
        assert any(f.is_context for f in frames)
        [row] = fetch_dicts(con, "SELECT method, params FROM extractions WHERE video_id = ?", [video.id])
        params = json.loads(row["params"])
        assert row["method"] == "uncertain" and params["model"] == run_id
        assert params["labels"] == ["polyp", "blood"] and params["scored"] == 60
        assert sorted(int(n) for n in params["pick_scores"]) == picked
        assert all(0.0 <= s <= 1.0 for s in params["pick_scores"].values())
        assert all(len(v) == 2 for v in params["pick_probs"].values())
    finally:
        con.close()


# --- review and export of likely mislabels -------------------------------------------------------

def _mislabel_run(p):
    """A done run over the format project's plan frames: the model disputes frame f0's polyp
    (annotated absent, p = 0.97) and still c's blood (annotated present, p = 0.04); f2's polyp
    is unknown (p = 0.99, never flagged)."""
    frames = [*p.f, *p.g, *(p.stills[k] for k in "abc")]
    run_id, run_dir = add_done_run(p.con, p.settings, ["polyp", "blood"],
                                   label_ids=[p.polyp.id, p.blood.id], checkpoint=False)
    pos = {(p.f[1].id, 0): 0.9, (p.g[0].id, 0): 0.85, (p.stills["a"].id, 1): 0.9}
    given = {**pos, (p.stills["c"].id, 1): 0.04}
    rows, held = [], []
    for fr in frames:
        y = [int((fr.id, i) in given) for i in range(2)]
        known = [0 if (fr.id == p.f[2].id and i == 0) else 1 for i in range(2)]
        probs = [given.get((fr.id, i), 0.05) for i in range(2)]
        if fr.id in (p.f[0].id, p.f[2].id):
            probs[0] = 0.97 if fr.id == p.f[0].id else 0.99
        rows.append({"frame_id": fr.id, "path": "x.jpg", "split": "val", "y": y, "known": known})
        held.append({"frame_id": fr.id, "split": "val", "p": probs})
    (run_dir / "manifest.json").write_text(json.dumps({"labels": ["polyp", "blood"], "rows": rows}))
    (run_dir / "heldout.json").write_text(json.dumps({"labels": ["polyp", "blood"], "rows": held}))
    return run_id


def test_review_likely_mislabels(con, settings, tmp_path):
    p = build(con, settings, tmp_path)
    run_id = _mislabel_run(p)
    listed = mislabel_service.likely_mislabels(con, settings, run_id)
    assert [(m.frame_id, m.label, m.given, m.suggested, m.decision) for m in listed] == [
        (p.f[0].id, "polyp", False, True, None), (p.stills["c"].id, "blood", True, False, None)]
    assert listed[0].label_id == p.polyp.id and listed[0].confidence == pytest.approx(0.97)
    assert mislabel_service.likely_mislabels(con, settings) == listed     # newest done run

    annotator = Ctx(con=con, settings=settings, actor=Actor(name="ann", role=Role.ANNOTATOR))
    with pytest.raises(PermissionDenied, match="model.mislabel_review"):
        mislabel_service.review(annotator, run_id, p.f[0].id, "polyp", "dismissed")
    assert mislabel_service.likely_mislabels(con, settings, run_id)[0].decision is None

    lead = Ctx(con=con, settings=settings, actor=Actor(name="lena", role=Role.LEAD))
    done = mislabel_service.review(lead, run_id, p.f[0].id, "polyp", "confirmed")
    assert done.decision == "confirmed" and done.decided_by == "lena"
    mislabel_service.review(lead, run_id, p.stills["c"].id, "blood", "dismissed")
    again = mislabel_service.likely_mislabels(con, settings, run_id)
    assert [(m.decision, m.decided_by) for m in again] == [("confirmed", "lena"), ("dismissed", "lena")]
    assert len(mislabel_service.likely_mislabels(con, settings, run_id, include_dismissed=False)) == 1
    entries = audit.recent(con, action="model.mislabel_review")
    assert {(e.entity_id, e.details["decision"]) for e in entries} == {
        (p.f[0].id, "confirmed"), (p.stills["c"].id, "dismissed")}
    with pytest.raises(InvalidInput, match="not a likely mislabel"):
        mislabel_service.review(lead, run_id, p.f[1].id, "polyp", "confirmed")
    with pytest.raises(InvalidInput, match="decision"):
        mislabel_service.review(lead, run_id, p.f[0].id, "polyp", "maybe")


def test_visual_layer_export_carries_mislabel_issues(con, settings, tmp_path):
    p = build(con, settings, tmp_path)
    run_id = _mislabel_run(p)

    def issues(doc, frame):
        item = next(i for i in doc["media_items"] if i["file_path"] == p.plan.frame(frame.id).arcname)
        return [m["properties"] for m in item["metadata_items"]
                if m["type"] == "issue" and m["properties"]["issue_type"] == "mislabels"]

    doc = visual_layer_document(con, p.plan, dataset="d", exported_by="lena", settings=settings)
    validate(doc, "visual_layer")
    assert issues(doc, p.f[0]) == [{"issue_type": "mislabels", "confidence": pytest.approx(0.97),
                                    "actual_label": "not polyp", "suggested_label": "polyp"}]
    assert issues(doc, p.stills["c"]) == [{"issue_type": "mislabels",
                                           "confidence": pytest.approx(0.96),
                                           "actual_label": "blood", "suggested_label": "not blood"}]
    assert issues(doc, p.f[2]) == [] and issues(doc, p.f[1]) == []
    without = visual_layer_document(con, p.plan, dataset="d", exported_by="lena")
    assert issues(without, p.f[0]) == []
    # the export a lead writes (Export page / CLI: the service and the zip) carries them too
    from endolite.export.formats import ExportOptions, contents
    body = contents(con, settings, p.plan, "visual-layer", ExportOptions(), exported_by="lena")
    [zipped] = [json.loads(d) for name, d in body.documents if name == "visual_layer.json"]
    assert issues(zipped, p.f[0]) == issues(doc, p.f[0])

    lead = Ctx(con=con, settings=settings, actor=Actor(name="lena", role=Role.LEAD))
    mislabel_service.review(lead, run_id, p.f[0].id, "polyp", "dismissed")
    doc = visual_layer_document(con, p.plan, dataset="d", exported_by="lena", settings=settings,
                                mislabel_run=run_id)
    assert issues(doc, p.f[0]) == [], "a dismissed mislabel is not exported"
    assert len(issues(doc, p.stills["c"])) == 1
    label_store.rename(con, "blood", "bleeding")          # the export names labels as they are now
    doc = visual_layer_document(con, p.plan, dataset="d", exported_by="lena", settings=settings)
    [issue] = issues(doc, p.stills["c"])
    assert (issue["actual_label"], issue["suggested_label"]) == ("bleeding", "not bleeding")


@pytest.mark.slow
def test_real_worker_run_finds_flipped_test_labels(tmp_path):
    """The worker trains on correct colour labels; two test frames annotated wrongly in the
    manifest come back from its heldout.json as likely mislabels with the right suggestion."""
    from tests.test_train_worker import make_run, run_worker

    run = make_run(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    rows = {r["frame_id"]: r for r in manifest["rows"]}
    assert rows[61]["split"] == rows[64]["split"] == "test"
    assert rows[61]["y"][0] == 1 and rows[64]["y"][0] == 0          # red present / absent
    rows[61]["y"][0], rows[64]["y"][0] = 0, 1
    (run / "manifest.json").write_text(json.dumps(manifest))
    r = run_worker(run)
    assert r.returncode == 0, r.stderr
    found = {(m.frame_id, m.label): m for m in mislabels.load_run(run)}
    assert (61, "red") in found and (64, "red") in found, sorted(found)
    assert found[(61, "red")].suggested and not found[(61, "red")].given
    assert not found[(64, "red")].suggested and found[(64, "red")].given
    assert len(found) <= 4, f"only the flipped frames (and at most a couple of noisy ones): {sorted(found)}"

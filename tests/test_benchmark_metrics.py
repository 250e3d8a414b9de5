"""Hand-worked cases for endolite.benchmark on tiny synthetic masks (H != W to catch transposes)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from endolite.benchmark import (
    UNMATCHED,
    BenchObject,
    FrameInput,
    SequenceInput,
    binary_agreement,
    boxes_of,
    build_report,
    evaluate_frame,
    iou_matrix,
    match_objects,
    presence,
    prf,
    segments_to_presence,
)
from endolite.benchmark import matching as matching_module
from endolite.errors import InvalidInput

H, W = 20, 30   # rows, columns: H != W


def grid(y0: int, y1: int, x0: int, x1: int, *, h: int = H, w: int = W) -> np.ndarray:
    a = np.zeros((h, w), dtype=np.uint8)
    a[y0:y1, x0:x1] = 1
    return a


def rle(arr: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(arr.astype(np.uint8)))


def mobj(oid, label: str, arr: np.ndarray) -> BenchObject:
    return BenchObject(oid, label, "mask", rle=rle(arr))


def np_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


# --- IoU -------------------------------------------------------------------------------------

def test_iou_matrix_matches_numpy_and_orientation():
    rng = np.random.default_rng(0)
    ann = [rng.random((H, W)) < 0.4 for _ in range(3)]
    gold = [rng.random((H, W)) < 0.5 for _ in range(2)]
    out = iou_matrix([mobj(i, "x", a) for i, a in enumerate(ann)],
                     [mobj(i, "x", g) for i, g in enumerate(gold)])
    assert out.shape == (3, 2) and out.dtype == np.float64        # rows annotator, cols gold
    for i, a in enumerate(ann):
        for j, g in enumerate(gold):
            assert out[i, j] == pytest.approx(np_iou(a, g), abs=1e-12)


def test_boxes_are_x_y_w_h_not_transposed():
    # a wide mask: rows 2..4, columns 5..24 -> x=5, y=2, w=20, h=3
    obj = mobj(1, "x", grid(2, 5, 5, 25))
    box = BenchObject(2, "x", "box", box=(5, 2, 20, 3))
    np.testing.assert_array_equal(boxes_of([obj, box]), [[5, 2, 20, 3], [5, 2, 20, 3]])
    assert iou_matrix([box], [obj])[0, 0] == pytest.approx(1.0)


def test_box_iou_hand_worked():
    a = BenchObject(1, "x", "box", box=(0, 0, 4, 2))
    b = BenchObject(2, "x", "box", box=(2, 0, 4, 2))
    c = BenchObject(3, "x", "box", box=(10, 10, 0, 5))      # zero width: IoU 0 with anything
    out = iou_matrix([a, c], [b, c])
    assert out[0, 0] == pytest.approx(4 / 12)
    assert out[1, 1] == 0.0 and out[0, 1] == 0.0


def test_mask_vs_box_uses_box_of_the_mask():
    # an L-shaped mask: its box is (x=0, y=0, w=4, h=3) but its area is 6 of 12 pixels
    arr = np.zeros((H, W), np.uint8)
    arr[0:3, 0] = 1
    arr[2, 0:4] = 1
    m = mobj(1, "x", arr)
    box = BenchObject(2, "x", "box", box=(0, 0, 4, 3))
    half = BenchObject(3, "x", "box", box=(0, 0, 2, 3))
    out = iou_matrix([box, half], [m])
    assert out[0, 0] == pytest.approx(1.0)                      # box vs box of the mask
    assert out[1, 0] == pytest.approx(6 / 12)
    assert np_iou(grid(0, 3, 0, 4), arr) == pytest.approx(0.5)  # the pixel IoU would differ


def test_mixed_frame_one_iou_call_for_masks_one_for_boxes(monkeypatch):
    calls = []
    real = matching_module.mask_utils.iou

    def counting(dt, gt, crowd):
        calls.append((len(dt), len(gt)))
        return real(dt, gt, crowd)

    monkeypatch.setattr(matching_module.mask_utils, "iou", counting)
    gold = [mobj(1, "p", grid(0, 5, 0, 5)), mobj(2, "p", grid(10, 15, 10, 20))]
    frame = FrameInput(7, "u", gold, {"a": [mobj(3, "p", grid(0, 5, 0, 5))],
                                      "b": [mobj(4, "p", grid(10, 15, 10, 18)), mobj(5, "p", grid(0, 2, 0, 2))]})
    evaluate_frame(frame)
    assert calls == [(3, 2)]                                    # all annotators x all gold, once
    calls.clear()
    frame = FrameInput(8, "u", gold, {"a": [BenchObject(6, "p", "box", box=(0, 0, 5, 5))],
                                      "b": [mobj(7, "p", grid(0, 5, 0, 5))]})
    evaluate_frame(frame)
    assert sorted(calls) == [(1, 2), (2, 2)]                    # RLE call + bbox-array call


def test_dice_per_matched_pair_matches_numpy():
    g = grid(0, 10, 0, 10)
    a = grid(2, 10, 0, 12)
    report = build_report([FrameInput(0, "u", [mobj(1, "p", g)], {"ann": [mobj(2, "p", a)]})])
    (row,) = [r for r in report.matches if r.status == "match"]
    inter = (g & a).sum()
    assert row.dice == pytest.approx(2 * inter / (g.sum() + a.sum()))
    assert row.iou == pytest.approx(np_iou(a, g))
    assert report.iou_rows[0].dice == pytest.approx(row.dice)


# --- matching --------------------------------------------------------------------------------

def test_labels_first_then_leftovers():
    # A1 (polyp) IoU 0.7 with G1 (polyp); A2 (bleed) IoU 0.9 with G1: labels first -> A1-G1.
    g1 = grid(0, 10, 0, 10)
    ann = [mobj("A1", "polyp", grid(0, 10, 0, 7)), mobj("A2", "bleed", grid(0, 10, 0, 9))]
    iou = iou_matrix(ann, [mobj("G1", "polyp", g1)])
    np.testing.assert_allclose(iou[:, 0], [0.7, 0.9])
    m = match_objects(iou, ["polyp", "bleed"], ["polyp"])
    assert m.pairs == ((0, 0),) and m.mismatches == () and m.missing == () and m.extra == (1,)


def test_leftovers_match_as_label_mismatch():
    gold = [mobj("G1", "polyp", grid(0, 10, 0, 10)), mobj("G2", "bleed", grid(10, 20, 20, 30))]
    ann = [mobj("A1", "bleed", grid(0, 10, 0, 10)), mobj("A2", "bleed", grid(10, 20, 22, 30))]
    iou = iou_matrix(ann, gold)
    m = match_objects(iou, ["bleed", "bleed"], ["polyp", "bleed"])
    assert m.pairs == ((1, 1),)
    assert m.mismatches == ((0, 0),)
    assert m.missing == () and m.extra == ()


def test_hungarian_beats_greedy():
    iou = np.array([[0.9, 0.6],
                    [0.6, 0.0]])
    m = match_objects(iou, ["p", "p"], ["p", "p"])
    assert m.pairs == ((0, 1), (1, 0))       # 0.6 + 0.6 > 0.9 + nothing
    assert m.missing == () and m.extra == ()


def test_threshold_is_inclusive_and_keyword_option():
    g = mobj("G", "p", grid(0, 10, 0, 10))
    a = mobj("A", "p", grid(0, 10, 0, 5))       # IoU exactly 0.5
    iou = iou_matrix([a], [g])
    assert iou[0, 0] == 0.5
    assert match_objects(iou, ["p"], ["p"]).pairs == ((0, 0),)
    strict = match_objects(iou, ["p"], ["p"], iou_threshold=0.6)
    assert strict.pairs == () and strict.missing == (0,) and strict.extra == (0,)
    zero = match_objects(np.zeros((1, 1)), ["p"], ["p"], iou_threshold=0.0)
    assert zero.pairs == ()                    # IoU 0 never matches
    with pytest.raises(InvalidInput):
        match_objects(iou, ["p"], ["p"], iou_threshold=1.5)
    with pytest.raises(InvalidInput):
        build_report([], iou_threshold=-0.1)
    with pytest.raises(TypeError):
        match_objects(iou, ["p"], ["p"], 0.5)  # keyword-only


def _hand_frame():
    """Gold: G1 polyp, G2 bleed, G3 polyp.  Annotator: A1 polyp ~ G1 (match), A2 polyp = G2
    (label mismatch), A3 bleed far from everything (extra); G3 is missed."""
    gold = [mobj("G1", "polyp", grid(0, 8, 0, 8)), mobj("G2", "bleed", grid(10, 20, 0, 10)),
            mobj("G3", "polyp", grid(0, 5, 20, 30))]
    ann = [mobj("A1", "polyp", grid(0, 8, 0, 6)), mobj("A2", "polyp", grid(10, 20, 0, 10)),
           mobj("A3", "bleed", grid(12, 20, 14, 18))]
    return FrameInput(3, "video_1/frame_3.jpg", gold, {"ann": ann}, task_id="t1")


def test_counts_prf_and_confusion_matrix_hand_worked():
    report = build_report([_hand_frame()], labels=["polyp", "bleed"])
    (s,) = report.annotators
    assert (s.n_gold, s.n_annotator, s.matched, s.mismatched, s.missing, s.extra) == (3, 3, 1, 1, 1, 1)
    assert (s.precision, s.recall, s.f1) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert s.mean_matched_iou == pytest.approx(0.75)            # A1 vs G1: 48 / 64
    assert s.tasks == 1 and s.frames == 1
    by_label = {r.label_name: r for r in report.annotator_labels}
    polyp, bleed = by_label["polyp"], by_label["bleed"]
    assert (polyp.n_gold, polyp.n_annotator, polyp.matched, polyp.missing, polyp.extra) == (2, 2, 1, 1, 0)
    assert (polyp.precision, polyp.recall) == pytest.approx((0.5, 0.5))
    assert (bleed.n_gold, bleed.n_annotator, bleed.matched, bleed.mismatched, bleed.extra) == (1, 1, 0, 1, 1)
    assert (bleed.precision, bleed.recall, bleed.f1) == (0.0, 0.0, 0.0)
    cm = report.confusion["ann"]
    assert cm.labels == ("polyp", "bleed", UNMATCHED)
    assert cm.counts == ((1, 0, 1),     # gold polyp: matched polyp, missed (G3)
                         (1, 0, 0),     # gold bleed: labelled polyp (A2)
                         (0, 1, 0))     # extra: bleed (A3)
    assert report.confusion_total == cm
    (frame,) = report.frames
    assert frame.score == pytest.approx(0.75 / 4)
    statuses = sorted((r.status, r.annotator_object, r.gold_object) for r in report.matches)
    assert statuses == [("extra", "A3", None), ("match", "A1", "G1"), ("mismatch", "A2", "G2"),
                        ("missing", None, "G3")]


def test_encord_scores_best_iou_any_label():
    report = build_report([_hand_frame()], labels={"polyp": 11, "bleed": 12})
    rows = {r.object_id: r for r in report.iou_rows}
    assert (rows["A1"].iou_score, rows["A1"].class_score, rows["A1"].best_gold_object) == (0.75, 1, "G1")
    assert (rows["A2"].iou_score, rows["A2"].class_score, rows["A2"].matched_gold_object) == (1.0, 0, "G2")
    assert (rows["A3"].iou_score, rows["A3"].class_score, rows["A3"].best_gold_object) == (0.0, 0, None)
    assert rows["A1"].label_id == 11 and rows["A3"].label_id == 12
    (s,) = report.annotators
    assert s.mean_iou == pytest.approx((0.75 + 1.0 + 0.0) / 3)
    assert s.class_score == pytest.approx(1 / 3)


def test_encord_best_match_differs_from_one_to_one_match():
    gold = [mobj("Gp", "polyp", grid(0, 10, 0, 10)), mobj("Gb", "bleed", grid(0, 10, 10, 20))]
    a = mobj("A", "polyp", grid(0, 10, 6, 16))       # 40/160 with Gp, 60/140 with Gb
    report = build_report([FrameInput(0, "u", gold, {"ann": [a]})], iou_threshold=0.4)
    (row,) = report.iou_rows
    assert row.iou_score == pytest.approx(60 / 140) and row.class_score == 0
    assert row.best_gold_object == "Gb" and row.matched_gold_object == "Gb"
    assert report.annotators[0].mismatched == 1


# --- frame labels and segments ----------------------------------------------------------------

def test_binary_agreement_hand_worked_and_sklearn():
    gold = [1, 1, 0, 0, 1, "unknown", 0, True]
    ann = ["present", "absent", False, 1, 1, 1, None, "yes"]
    ag = binary_agreement(gold, ann)
    assert (ag.n, ag.n_excluded, ag.tp, ag.fp, ag.fn, ag.tn) == (6, 2, 3, 1, 1, 1)
    assert ag.accuracy == pytest.approx(4 / 6)
    assert ag.f1 == pytest.approx(0.75)
    assert ag.kappa == pytest.approx(0.25)
    sk = pytest.importorskip("sklearn.metrics")
    g = [1, 1, 0, 0, 1, 1]
    a = [1, 0, 0, 1, 1, 1]
    assert ag.kappa == pytest.approx(sk.cohen_kappa_score(g, a))
    assert ag.f1 == pytest.approx(sk.f1_score(g, a))


def test_binary_agreement_degenerate_cases():
    assert binary_agreement([1, 1], [1, 1]).kappa == 1.0
    none = binary_agreement([0, 0], [0, 0])
    assert (none.f1, none.kappa, none.accuracy) == (1.0, 1.0, 1.0)
    empty = binary_agreement(["unknown"], [1])
    assert (empty.n, empty.n_excluded, empty.accuracy, empty.f1, empty.kappa) == (0, 1, None, None, None)
    with pytest.raises(InvalidInput):
        binary_agreement([1], [1, 0])
    with pytest.raises(InvalidInput):
        presence("maybe")


def test_segments_to_presence():
    assert segments_to_presence([(2, 5)], n_frames=8) == (False, False, True, True, True, False, False, False)
    assert segments_to_presence([(2, 5), (7, 20)], n_frames=8, known=(1, 7)) == (
        None, False, True, True, True, False, False, None)


def test_report_agreement_pools_sequences_and_ignores_out_of_scope():
    seqs = [SequenceInput("ann", "bleeding", [1, 0, 1], [1, 0, 0], data_unit_name="v1"),
            SequenceInput("ann", "bleeding", [0, 0], [0, 1], data_unit_name="v2"),
            SequenceInput("ann", "blur", [1], [1]),
            SequenceInput("ann", "bleeding", *map(list, zip(*[(s, s) for s in segments_to_presence(
                [(0, 2)], n_frames=4)])), kind="segment")]
    report = build_report([], labels=["bleeding"], sequences=seqs)
    assert report.ignored_labels == ("blur",)
    rows = {r.kind: r for r in report.agreement}
    fl = rows["frame_label"]
    assert (fl.sequences, fl.n, fl.tp, fl.fp, fl.fn, fl.tn) == (2, 5, 1, 1, 1, 2)
    assert fl.accuracy == pytest.approx(3 / 5)
    assert rows["segment"].kappa == 1.0 and rows["segment"].n == 4


# --- edge cases -------------------------------------------------------------------------------

def test_both_empty_frame_is_agreement_without_iou_rows():
    report = build_report([FrameInput(0, "u", [], {"ann": []})], labels=["polyp"])
    (frame,) = report.frames
    assert frame.both_empty and frame.score == 1.0 and frame.f1 == 1.0
    assert report.iou_rows == () and report.matches == ()
    (s,) = report.annotators
    assert (s.frames, s.empty_frames, s.precision, s.recall, s.f1) == (1, 1, 1.0, 1.0, 1.0)
    assert s.mean_iou is None and s.mean_matched_iou is None


def test_gold_empty_all_extra():
    ann = [mobj(1, "polyp", grid(0, 5, 0, 5)), BenchObject(2, "polyp", "box", box=(1, 1, 3, 3))]
    report = build_report([FrameInput(0, "u", [], {"ann": ann})], labels=["polyp"])
    (s,) = report.annotators
    assert (s.matched, s.missing, s.extra, s.precision, s.recall, s.f1) == (0, 0, 2, 0.0, 0.0, 0.0)
    assert [(r.iou_score, r.class_score, r.best_gold_object) for r in report.iou_rows] == [(0.0, 0, None)] * 2
    assert report.frames[0].score == 0.0


def test_annotator_empty_all_missing_and_absent_annotator_not_evaluated():
    gold = [mobj(1, "polyp", grid(0, 5, 0, 5)), mobj(2, "polyp", grid(6, 9, 0, 5))]
    frames = [FrameInput(0, "u0", gold, {"ann": [], "other": [mobj(3, "polyp", grid(0, 5, 0, 5))]}),
              FrameInput(1, "u1", gold, {"other": []})]
    report = build_report(frames, labels=["polyp"])
    by = {s.annotator: s for s in report.annotators}
    assert (by["ann"].frames, by["ann"].missing, by["ann"].extra, by["ann"].recall) == (1, 2, 0, 0.0)
    assert report.iou_rows and all(r.annotator == "other" for r in report.iou_rows)
    assert (by["other"].frames, by["other"].tasks, by["other"].matched, by["other"].missing) == (2, 2, 1, 3)


def test_masks_of_different_frame_sizes_raise_naming_the_frame():
    gold = [mobj(1, "polyp", grid(0, 5, 0, 5))]
    other = mobj(2, "polyp", grid(0, 5, 0, 5, h=W, w=H))        # transposed frame
    with pytest.raises(InvalidInput, match=r"frame 42 \('clip_7/frame_42.jpg'\).*20x30.*30x20"):
        build_report([FrameInput(42, "clip_7/frame_42.jpg", gold, {"ann": [other]})])
    with pytest.raises(InvalidInput, match="frame 5"):          # no gold: annotators still checked
        evaluate_frame(FrameInput(5, "u", [], {"a": [gold[0]], "b": [other]}))


def test_label_out_of_scope_is_ignored_and_reported():
    gold = [mobj(1, "polyp", grid(0, 5, 0, 5)), mobj(2, "tool", grid(10, 20, 0, 10))]
    ann = [mobj(3, "polyp", grid(0, 5, 0, 5)), mobj(4, "smoke", grid(10, 20, 20, 30))]
    report = build_report([FrameInput(0, "u", gold, {"ann": ann})], labels=["polyp"])
    assert report.ignored_labels == ("smoke", "tool")
    (s,) = report.annotators
    assert (s.n_gold, s.n_annotator, s.matched, s.missing, s.extra) == (1, 1, 1, 0, 0)
    assert {r.label_name for r in report.iou_rows} == {"polyp"}
    assert report.labels == ("polyp",)


def test_empty_mask_is_an_object_that_never_matches():
    empty = np.zeros((H, W), np.uint8)
    report = build_report([FrameInput(0, "u", [mobj(1, "p", empty)], {"ann": [mobj(2, "p", empty)]})])
    (s,) = report.annotators
    assert (s.matched, s.missing, s.extra) == (0, 1, 1)


def test_object_validation_and_rle_forms():
    with pytest.raises(InvalidInput, match="kind"):
        BenchObject(1, "p", "ellipse", box=(0, 0, 1, 1))
    with pytest.raises(InvalidInput, match="box"):
        BenchObject(1, "p", "box")
    with pytest.raises(InvalidInput, match="rle"):
        BenchObject(1, "p", "mask")
    with pytest.raises(InvalidInput, match="w, h >= 0"):
        BenchObject(1, "p", "box", box=(0, 0, -1, 2))
    arr = grid(0, 4, 0, 6)
    compressed = rle(arr)
    as_str = {"size": compressed["size"], "counts": compressed["counts"].decode()}
    # column-major runs: 6 columns of (4 ones, 16 zeros), the last zeros run to the end
    counts = [0] + [4, 16] * 5 + [4, H * W - 104]
    objs = [BenchObject(1, "p", "mask", rle=as_str),
            BenchObject(2, "p", "polygon", rle=mask_utils.frPyObjects({"size": [H, W], "counts": counts}, H, W)),
            BenchObject(3, "p", "mask", rle={"size": [H, W], "counts": counts})]
    out = iou_matrix(objs, [mobj(9, "p", arr)])
    np.testing.assert_allclose(out[:, 0], [1.0, 1.0, 1.0])
    with pytest.raises(InvalidInput, match="sum"):
        BenchObject(4, "p", "mask", rle={"size": [H, W], "counts": [1, 2]})


def test_prf_policy():
    assert prf(0, 0, 0) == (1.0, 1.0, 1.0)
    assert prf(0, 0, 3) == (0.0, 0.0, 0.0)
    assert prf(0, 2, 0) == (0.0, 0.0, 0.0)
    assert prf(1, 2, 4) == pytest.approx((0.5, 0.25, 1 / 3))


# --- aggregation and rendering ------------------------------------------------------------------

def test_report_rows_sorted_worst_first_and_rendered():
    good = FrameInput(1, "u1", [mobj(1, "polyp", grid(0, 8, 0, 8))], {"ann": [mobj(2, "polyp", grid(0, 8, 0, 8))]})
    seen = []
    report = build_report([good, _hand_frame()], labels=["polyp", "bleed"],
                          progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
    assert [f.frame_id for f in report.frames] == [3, 1]          # worst first
    assert report.frames[-1].score == 1.0
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["overall"]["matched"] == 2
    files = report.csvs()
    assert set(files) == {"iou_results.csv", "matches.csv", "frames.csv", "annotators.csv",
                          "annotator_labels.csv", "labels.csv", "label_agreement.csv", "confusion.csv"}
    rows = list(csv.DictReader(io.StringIO(files["iou_results.csv"].decode())))
    header = files["iou_results.csv"].decode().splitlines()[0].split(",")
    assert header[:5] == ["annotator", "data_unit_name", "label_id", "iou_score", "class_score"]
    assert {"frame_id", "label_name", "matched_gold_object", "dice"} <= set(header)
    assert len(rows) == len(report.iou_rows) == 4
    assert float(rows[0]["iou_score"]) == report.iou_rows[0].iou_score
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(io.BytesIO(files["labels.csv"]))
    assert list(df["label_name"]) == ["polyp", "bleed"]
    conf = pd.read_csv(io.BytesIO(files["confusion.csv"]))
    assert int(conf[(conf.annotator == "ann") & (conf.gold_label == "bleed")
                    & (conf.annotator_label == "polyp")]["count"].iloc[0]) == 1


def test_labels_none_scope_is_everything_seen():
    report = build_report([_hand_frame()])
    assert report.labels == ("bleed", "polyp") and report.ignored_labels == ()

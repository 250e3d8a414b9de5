"""Benchmark service and CLI against a real DuckDB: tasks, completion gating, the blind queue,
IoU rows checked against pycocotools on the stored RLEs, frame-label / segment agreement, runs,
and every ``endolite benchmark`` command end to end."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from endolite import auth
from endolite.annotate import NewMask, save_mask
from endolite.frame_labels import add_segment, set_frame_labels
from endolite.benchmark import service
from endolite.cli import main
from endolite.errors import InvalidInput, NotFound
from endolite.ingest import ingest_paths
from endolite.masks import box_to_mask
from endolite.records import LabelKind, Role, ShapeKind, TaskStatus
from endolite.storage import annotations, audit, benchmarks, connect, labels, media, users
from endolite.synthetic import disc_mask

H, W = 48, 64          # H != W catches transposes
IOU_COLUMNS = ["annotator", "data_unit_name", "label_id", "iou_score", "class_score", "frame_id",
               "label_name", "object_id", "kind", "best_gold_object", "matched_gold_object",
               "matched_iou", "dice", "task_id"]


def write_pngs(folder: Path, names=("img_a.png", "img_b.png", "img_c.png")) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for seed, name in enumerate(names):
        rgb = np.random.default_rng(seed).integers(0, 255, size=(H, W, 3), dtype=np.uint8)
        path = folder / name
        Image.fromarray(rgb).save(path)
        out.append(path)
    return out


def add_user(con, name: str, role: Role) -> None:
    """A user row with a cheap hash (these tests are not about hashing)."""
    users.add(con, name, role, auth.hash_password(f"{name}-pass-1", n=2**10))


def make_benchmark_data(con, settings, folder: Path) -> dict:
    """Users, labels, an image group of 3 synthetic PNGs and masks by gold (gina), ann and bob.

    Frame a: gold polyp disc; ann the disc shifted 3 px right; bob a box around the disc.
    Frame b: gold polyp disc + tool box; ann the exact disc (tool missing).
    Frame c: gold polyp disc; ann the same disc labelled tool (mismatch) + a blood mask (out of
    scope).  Nobody else draws on b / c.
    """
    add_user(con, "lena", Role.LEAD)
    for name in ("gina", "ann", "bob"):
        add_user(con, name, Role.ANNOTATOR)
    for name, kind in (("polyp", LabelKind.PATHOLOGY), ("tool", LabelKind.OTHER), ("blood", LabelKind.OTHER)):
        labels.add(con, name, kind=kind)
    results = ingest_paths(con, settings, write_pngs(folder), user="lena")
    fa, fb, fc = (r.frame_ids[0] for r in results)

    def put(frame_id, mask, label, who, kind=ShapeKind.MASK):
        return save_mask(con, settings, NewMask(frame_id=frame_id, mask=mask, kind=kind), label=label,
                         annotator=who).id

    disc = disc_mask(H, W, 24, 20, 10)
    ids = {
        "gold_a": put(fa, disc, "polyp", "gina"),
        "ann_a": put(fa, disc_mask(H, W, 27, 20, 10), "polyp", "ann"),
        "bob_a": put(fa, box_to_mask((14, 10, 35, 31), H, W), "polyp", "bob", ShapeKind.BOX),
        "gold_b": put(fb, disc_mask(H, W, 40, 24, 8), "polyp", "gina"),
        "gold_b_tool": put(fb, box_to_mask((2, 2, 12, 40), H, W), "tool", "gina", ShapeKind.BOX),
        "ann_b": put(fb, disc_mask(H, W, 40, 24, 8), "polyp", "ann"),
        "gold_c": put(fc, disc_mask(H, W, 30, 30, 9), "polyp", "gina"),
        "ann_c": put(fc, disc_mask(H, W, 30, 30, 9), "tool", "ann"),
        "ann_c_blood": put(fc, disc_mask(H, W, 50, 10, 5), "blood", "ann"),
    }
    return {"frames": [fa, fb, fc], "group": results[0].id, "masks": ids}


@pytest.fixture
def data(con, settings, tmp_path):
    return make_benchmark_data(con, settings, tmp_path / "pngs")


def _create(con, data, **kw):
    options = dict(name="polyp check", gold="gina", annotators=["ann", "bob"], labels=["polyp", "tool"],
                   frame_ids=data["frames"], created_by="lena")
    options.update(kw)
    return service.create_benchmark(con, **options)


# --- creating, tasks, the blind queue -------------------------------------------------------------

def test_create_makes_a_todo_task_per_user_and_frame(con, data):
    bench = _create(con, data)
    assert bench.annotators == ("ann", "bob") and bench.gold == "gina"
    assert set(bench.frame_ids) == set(data["frames"])
    assert {lb.name for lb in map(lambda i: labels.get(con, i), bench.label_ids)} == {"polyp", "tool"}
    rows = {r["annotator"]: r for r in service.status_rows(con, bench.id)}
    assert set(rows) == {"gina", "ann", "bob"}
    assert all(r["todo"] == 3 and r["complete"] == 0 and r["total"] == 3 for r in rows.values())
    assert rows["gina"]["role"] == "gold" and rows["ann"]["role"] == "annotator"


def test_create_refuses_unknown_users_labels_frames_and_gold_as_annotator(con, data):
    with pytest.raises(NotFound, match="no user named 'zed'"):
        _create(con, data, annotators=["ann", "zed"])
    with pytest.raises(NotFound, match="no user named 'nobody'"):
        _create(con, data, gold="nobody")
    with pytest.raises(NotFound, match="no label named 'tumour'"):
        _create(con, data, labels=["polyp", "tumour"])
    with pytest.raises(NotFound, match="no frame with id 9999"):
        _create(con, data, frame_ids=[data["frames"][0], 9999])
    with pytest.raises(InvalidInput, match="gold annotator"):
        _create(con, data, annotators=["gina", "ann"])
    with pytest.raises(InvalidInput, match="at least one annotator"):
        _create(con, data, annotators=[])
    assert benchmarks.list_all(con) == [], "a refused benchmark leaves nothing behind"


def test_blind_queue_lists_open_tasks_with_frame_ids_and_names(con, data):
    bench = _create(con, data)
    fa, fb, fc = data["frames"]
    queue = service.tasks_for(con, "ann")
    assert [t.frame_id for t in queue] == [fa, fb, fc]
    assert [t.data_unit_name for t in queue] == ["img_a.png", "img_b.png", "img_c.png"]
    assert all(t.blind and t.benchmark_id == bench.id and t.status == TaskStatus.TODO for t in queue)
    assert set(queue[0].label_ids) == set(bench.label_ids)
    assert all(not t.blind for t in service.tasks_for(con, "gina")), "the gold user is not evaluated"

    service.start(con, bench.id, "ann", fb)
    service.complete(con, bench.id, "ann", frame_ids=[fa])
    queue = service.tasks_for(con, "ann")
    assert [(t.frame_id, t.status) for t in queue] == [(fb, TaskStatus.IN_PROGRESS), (fc, TaskStatus.TODO)]
    assert len(service.tasks_for(con, "ann", include_complete=True)) == 3
    assert service.tasks_for(con, "lena") == []


def test_assign_and_add_frames_create_the_missing_tasks(con, settings, data, tmp_path):
    fa, fb, fc = data["frames"]
    bench = _create(con, data, annotators=["ann"], frame_ids=[fa, fb])
    assert service.assign(con, bench.id, ["bob"], by="lena") == 2
    assert service.add_frames(con, bench.id, [fc], by="lena") == 3    # gina, ann, bob
    assert service.add_frames(con, bench.id, [fc], by="lena") == 0
    bench = benchmarks.get(con, bench.id)
    assert bench.annotators == ("ann", "bob") and len(bench.frame_ids) == 3
    with pytest.raises(InvalidInput, match="gold"):
        service.assign(con, bench.id, ["gina"])
    with pytest.raises(NotFound):
        service.complete(con, bench.id, "lena")


# --- gating and the metrics -----------------------------------------------------------------

def test_only_frames_complete_for_gold_and_annotator_are_evaluated(con, data):
    bench = _create(con, data)
    fa, fb, fc = data["frames"]
    result = service.build_benchmark_report(con, bench.id)
    assert result.report.frames == () and result.report.iou_rows == ()
    assert [r["evaluated"] for r in result.leaderboard] == [0, 0]

    service.complete(con, bench.id, "ann")                    # annotator done, gold not yet
    assert service.build_benchmark_report(con, bench.id).report.frames == ()
    before = service.fingerprint(con, bench.id)
    service.complete(con, bench.id, "gina", frame_ids=[fa, fb])
    assert service.fingerprint(con, bench.id) != before, "task changes change the cache key"
    result = service.build_benchmark_report(con, bench.id)
    assert {(r.annotator, r.frame_id) for r in result.report.frames} == {("ann", fa), ("ann", fb)}
    assert result.evaluated == {"ann": (fa, fb), "bob": ()}
    board = {r["annotator"]: r for r in result.leaderboard}
    assert board["ann"]["tasks_done"] == 3 and board["ann"]["evaluated"] == 2
    assert board["ann"]["missing"] == 1 and board["ann"]["extra"] == 0      # the tool box on b
    assert board["bob"]["evaluated"] == 0 and board["bob"]["mean_iou"] is None

    service.complete(con, bench.id, "gina", frame_ids=[fc])
    service.complete(con, bench.id, "bob", frame_ids=[fa])
    result = service.build_benchmark_report(con, bench.id)
    assert {(r.annotator, r.frame_id) for r in result.report.frames} == {
        ("ann", fa), ("ann", fb), ("ann", fc), ("bob", fa)}
    board = {r["annotator"]: r for r in result.leaderboard}
    assert board["ann"]["mismatched"] == 1, "frame c: the polyp drawn as tool"
    assert "blood" in result.report.ignored_labels and "blood" not in result.report.labels
    assert board["bob"]["evaluated"] == 1 and board["bob"]["matched"] == 1
    assert [r["annotator"] for r in result.leaderboard][0] == "bob", "best F1 first"


def _expected_iou(a, b) -> float:
    """pycocotools on the stored rows: RLE vs RLE for masks; a box meets anything as boxes."""
    if ShapeKind.BOX not in (a.kind, b.kind):
        return float(mask_utils.iou([a.coco_rle], [b.coco_rle], [0])[0][0])

    def box(m):
        return list(m.bbox) if m.kind == ShapeKind.BOX else mask_utils.toBbox(m.coco_rle).tolist()
    return float(mask_utils.iou([box(a)], [box(b)], [0])[0][0])


def test_iou_rows_equal_pycocotools_iou_on_the_stored_rles(con, data):
    bench = _create(con, data)
    for who in ("gina", "ann", "bob"):
        service.complete(con, bench.id, who)
    result = service.build_benchmark_report(con, bench.id)
    stored = {m.id: m for m in annotations.masks_of(con, frame_ids=data["frames"])}
    assert len(result.report.iou_rows) == 4                  # ann a, b, c (blood out of scope) + bob a
    for row in result.report.iou_rows:
        mine = stored[row.object_id]
        golds = [m for m in stored.values() if m.frame_id == row.frame_id and m.annotator == "gina"]
        ious = np.array([_expected_iou(mine, g) for g in golds])
        assert row.iou_score == pytest.approx(float(ious.max()), abs=1e-12)
        assert row.dice == pytest.approx(2 * row.iou_score / (1 + row.iou_score))
        assert row.data_unit_name == media.get_frame(con, row.frame_id).original_name
    by_obj = {r.object_id: r for r in result.report.iou_rows}
    exact = by_obj[data["masks"]["ann_b"]]
    assert exact.iou_score == 1.0 and exact.class_score == 1
    assert exact.matched_gold_object == data["masks"]["gold_b"]
    wrong = by_obj[data["masks"]["ann_c"]]
    assert wrong.iou_score == 1.0 and wrong.class_score == 0 and wrong.label_name == "tool"
    shifted = by_obj[data["masks"]["ann_a"]]
    a, g = stored[data["masks"]["ann_a"]].coco_rle, stored[data["masks"]["gold_a"]].coco_rle
    assert shifted.iou_score == pytest.approx(float(mask_utils.iou([a], [g], [0])[0][0]))
    assert 0.5 < shifted.iou_score < 1.0


def test_deleting_a_mask_changes_the_report(con, data):
    from endolite.annotate import delete_masks

    bench = _create(con, data, annotators=["ann"])
    service.complete(con, bench.id, "gina")
    service.complete(con, bench.id, "ann")
    before = service.fingerprint(con, bench.id)
    delete_masks(con, [data["masks"]["ann_b"]], by="ann")
    assert service.fingerprint(con, bench.id) != before
    board = service.build_benchmark_report(con, bench.id).leaderboard[0]
    assert board["missing"] == 2      # b: the polyp and the tool box


def test_files_have_the_encord_columns_and_the_json_round_trips(con, data):
    bench = _create(con, data)
    for who in ("gina", "ann", "bob"):
        service.complete(con, bench.id, who)
    result = service.build_benchmark_report(con, bench.id)
    files = result.files()
    rows = list(csv.DictReader(io.StringIO(files["iou_results.csv"].decode())))
    assert list(rows[0]) == IOU_COLUMNS
    assert {r["data_unit_name"] for r in rows} == {"img_a.png", "img_b.png", "img_c.png"}
    polyp = labels.get_by_name(con, "polyp")
    ann_b = next(r for r in rows if r["object_id"] == str(data["masks"]["ann_b"]))
    assert ann_b["label_id"] == str(polyp.id) and float(ann_b["iou_score"]) == 1.0
    summary = list(csv.DictReader(io.StringIO(files[service.SUMMARY_CSV].decode())))
    assert {(r["annotator"], r["label_name"]) for r in summary} >= {("ann", "polyp"), ("(all)", "polyp"),
                                                                     ("(all)", "tool")}
    doc = json.loads(files[service.REPORT_JSON])
    assert doc["benchmark"]["id"] == bench.id
    assert [r["annotator"] for r in doc["leaderboard"]] == [r["annotator"] for r in result.leaderboard]
    assert len(doc["report"]["iou_rows"]) == len(rows)


def test_heatmap_gallery_and_overlays(con, settings, data):
    bench = _create(con, data)
    for who in ("gina", "ann", "bob"):
        service.complete(con, bench.id, who)
    result = service.build_benchmark_report(con, bench.id)
    names, label_names, z = service.heatmap(result.report)
    assert names == ["ann", "bob"] and label_names == ["polyp", "tool"]
    assert z[1][1] is None and z[1][0] is not None      # bob drew no tool
    _, _, matched = service.heatmap(result.report, metric="mean_matched_iou")
    assert z[0][1] == 1.0 and matched[0][1] is None, "ann's tool covers the gold polyp: no match"
    worst = service.worst_frames(result.report, "ann", count=5)
    assert worst and all(r.annotator == "ann" and r.score < 1 for r in worst)
    assert worst[0].score <= worst[-1].score
    gold_img, ann_img = service.frame_overlays(con, settings, bench, worst[0].frame_id, "ann")
    assert gold_img.shape == ann_img.shape == (H, W, 3) and gold_img.dtype == np.uint8
    assert not np.array_equal(gold_img, ann_img)


def test_saved_runs_compare_over_time(con, data):
    bench = _create(con, data, annotators=["ann"])
    service.complete(con, bench.id, "gina")
    service.complete(con, bench.id, "ann", frame_ids=[data["frames"][0]])
    first = service.save_run(con, service.build_benchmark_report(con, bench.id), created_by="lena")
    service.complete(con, bench.id, "ann")
    second = service.save_run(con, service.build_benchmark_report(con, bench.id), created_by="lena")
    table = service.runs_table(con, bench.id)
    assert [(r["run"], r["annotator"], r["evaluated"]) for r in table] == [(first, "ann", 1), (second, "ann", 3)]
    assert table[0]["mean_iou"] != table[1]["mean_iou"] and table[0]["saved_by"] == "lena"


# --- frame selection ------------------------------------------------------------------------

def test_sampling_is_seeded_and_stratified_spreads_over_the_sequence():
    ids = list(range(100, 200))
    a = service.sample_frame_ids(ids, 10, seed=1)
    assert a == service.sample_frame_ids(ids, 10, seed=1) and len(set(a)) == 10
    assert a != service.sample_frame_ids(ids, 10, seed=2)
    assert a == sorted(a)
    strat = service.sample_frame_ids(ids, 10, seed=3, method="stratified")
    assert [(v - 100) // 10 for v in strat] == list(range(10))
    assert service.sample_frame_ids(ids[:3], 10) == ids[:3]
    with pytest.raises(InvalidInput):
        service.sample_frame_ids(ids, 0)


@pytest.fixture
def video_data(con, settings, disc_video):
    from endolite.extract import extract_frames

    for name in ("gina", "ann"):
        add_user(con, name, Role.ANNOTATOR)
    labels.add(con, "polyp", kind=LabelKind.PATHOLOGY)
    labels.add(con, "blurry", kind=LabelKind.QUALITY)
    [video] = ingest_paths(con, settings, [disc_video], user="gina")
    result = extract_frames(con, settings, video.id, method="uniform", count=4, context=1)
    return video.id, result


def test_video_frames_use_title_and_frame_number_and_skip_context(con, video_data):
    video_id, result = video_data
    picked = [f.id for f in result.picked]
    assert service.select_frames(con, video_id=video_id) == picked, "context frames are not labeled"
    sample = service.select_frames(con, video_id=video_id, sample=2, seed=5)
    assert len(sample) == 2 and set(sample) <= set(picked)
    assert sample == service.select_frames(con, video_id=video_id, sample=2, seed=5)
    assert service.select_frames(con, extraction_id=result.extraction_id) == picked
    title = media.get_video(con, video_id).title
    names = service.data_unit_names(con, result.picked)
    assert [names[f.id] for f in result.picked] == [f"{title}#{f.frame_number}" for f in result.picked]
    with pytest.raises(InvalidInput, match="exactly one"):
        service.select_frames(con, video_id=video_id, frame_ids=picked)
    with pytest.raises(NotFound):
        service.select_frames(con, video_id=9999)


def test_frame_labels_and_segments_agreement(con, video_data):
    video_id, result = video_data
    frames = result.picked
    bench = service.create_benchmark(con, name="labels", gold="gina", annotators=["ann"],
                                     labels=["polyp", "blurry"], frame_ids=[f.id for f in frames])
    gold_values = ["1", "1", "0", "0"]
    ann_values = ["1", "0", "0", "unknown"]
    for f, g, a in zip(frames, gold_values, ann_values):
        set_frame_labels(con, f.id, [("blurry", *_presence(g))], annotator="gina")
        set_frame_labels(con, f.id, [("blurry", *_presence(a))], annotator="ann")
    add_segment(con, video_id, label="polyp", start=10, end=30, annotator="gina")   # [10, 30)
    add_segment(con, video_id, label="polyp", start=20, end=40, annotator="ann")    # [20, 40)
    service.complete(con, bench.id, "gina")
    service.complete(con, bench.id, "ann", frame_ids=[f.id for f in frames[:3]])
    report = service.build_benchmark_report(con, bench.id).report
    rows = {(r.label_name, r.kind): r for r in report.agreement}
    fl = rows["blurry", "frame_label"]
    assert (fl.tp, fl.fp, fl.fn, fl.tn, fl.n) == (1, 0, 1, 1, 3), "the 4th frame is not complete"
    seg = rows["polyp", "segment"]
    n = media.get_video(con, video_id).frame_count
    assert (seg.tp, seg.fp, seg.fn) == (10, 10, 10) and seg.n == n
    assert ("polyp", "frame_label") not in rows, "nobody set polyp as a frame label"


def _presence(text: str):
    from endolite.frame_labels import parse_presence
    return parse_presence(text), None


# --- the CLI ------------------------------------------------------------------------------

def _run(capsys, settings, *argv) -> tuple[int, str, str]:
    code = main(["--data", str(settings.data_dir), "--user", "lena", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_create_complete_status_report(con, settings, data, tmp_path, capsys):
    con.close()                                          # the CLI opens the database itself
    fa, fb, fc = data["frames"]
    code, out, _ = _run(capsys, settings, "--json", "benchmark", "create", "cli check", "--gold", "gina",
                        "--annotators", "ann,bob", "--labels", "polyp,tool",
                        "--frames", f"{fa},{fb}")
    assert code == 0
    bench_id = json.loads(out)["id"]
    code, out, _ = _run(capsys, settings, "benchmark", "add-frames", str(bench_id), "--frames", str(fc))
    assert code == 0 and out.strip() == "3 new tasks"
    code, out, _ = _run(capsys, settings, "benchmark", "complete", str(bench_id), "--annotator", "gina")
    assert code == 0 and "3 tasks of gina marked complete" in out
    code, out, _ = _run(capsys, settings, "benchmark", "complete", str(bench_id), "--annotator", "ann",
                        "--frames", f"{fa},{fb}")
    assert code == 0
    code, out, _ = _run(capsys, settings, "--json", "benchmark", "status", str(bench_id))
    status = {r["annotator"]: r for r in json.loads(out)}
    assert (status["ann"]["complete"], status["ann"]["todo"]) == (2, 1)
    assert status["bob"]["todo"] == 3 and status["gina"]["complete"] == 3
    code, out, _ = _run(capsys, settings, "benchmark", "status", str(bench_id))
    assert "in_progress" in out.splitlines()[0] and any(line.startswith("ann") for line in out.splitlines())

    iou_csv, summary, report = tmp_path / "out" / "iou.csv", tmp_path / "out" / "sum.csv", tmp_path / "r.json"
    code, out, _ = _run(capsys, settings, "benchmark", "report", str(bench_id), "--csv", str(iou_csv),
                        "--summary-csv", str(summary), "--json", str(report))
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["annotator", "tasks_done", "evaluated"]
    assert lines[2].split()[:3] == ["ann", "2", "2"]
    rows = list(csv.DictReader(iou_csv.open()))
    assert list(rows[0]) == IOU_COLUMNS and {r["annotator"] for r in rows} == {"ann"}
    assert {r["frame_id"] for r in rows} == {str(fa), str(fb)}
    assert "label_name" in summary.read_text().splitlines()[0]
    assert json.loads(report.read_text())["benchmark"]["name"] == "cli check"

    code, out, _ = _run(capsys, settings, "--json", "benchmark", "report", str(bench_id),
                        "--iou-threshold", "0.99")
    assert json.loads(out)["iou_threshold"] == 0.99

    code, out, _ = _run(capsys, settings, "benchmark", "assign", str(bench_id), "--annotators", "lena")
    assert code == 0 and out.strip() == "3 new tasks"
    code, out, _ = _run(capsys, settings, "benchmark", "list")
    assert code == 0 and out.split()[:2] == [str(bench_id), "cli"] and "annotators=ann,bob,lena" in out
    con2 = connect(settings)
    try:
        [made] = audit.search(con2, action="benchmark.create")
        assert (made.username, made.entity_id, made.details["gold"]) == ("lena", bench_id, "gina")
        done = audit.search(con2, action="benchmark.task")
        assert sorted((e.username, e.details["annotator"], e.details["tasks"]) for e in done) == [
            ("lena", "ann", 2), ("lena", "gina", 3)]
        assert [e.details["tasks"] for e in audit.search(con2, action="benchmark.assign")] == [3, 3]
    finally:
        con2.close()


def test_cli_sequence_sample_and_clear_errors(con, settings, data, capsys):
    con.close()
    group = data["group"]
    base = ["benchmark", "create", "sampled", "--gold", "gina", "--annotators", "ann", "--labels", "polyp"]
    code, out, _ = _run(capsys, settings, "--json", *base, "--group", str(group), "--sample", "2",
                        "--seed", "7")
    assert code == 0
    first = json.loads(out)
    assert len(first["frames"]) == 2 and set(first["frames"]) <= set(data["frames"])
    code, out, _ = _run(capsys, settings, "--json", *base, "--group", str(group), "--sample", "2",
                        "--seed", "7")
    assert json.loads(out)["frames"] == first["frames"], "same seed, same sample"

    for argv, message in (
        (["--annotators", "ann,zed"], "no user named 'zed'"),
        (["--gold", "nobody"], "no user named 'nobody'"),
        (["--labels", "polyp,tumour"], "no label named 'tumour'"),
        (["--frames", "9999"], "no frame with id 9999"),
        (["--frames", "1,x"], "'x' is not a number"),
    ):
        args = list(base)
        for i in range(0, len(argv), 2):
            if argv[i] in args:
                args[args.index(argv[i]) + 1] = argv[i + 1]
            else:
                args += argv[i:i + 2]
        if "--frames" not in args:
            args += ["--group", str(group)]
        code, out, err = _run(capsys, settings, *args)
        assert code == 2, argv
        assert message in err and err.startswith("error: ")
    code, _, err = _run(capsys, settings, "benchmark", "status", "77")
    assert code == 2 and "no benchmark with id 77" in err
    code, _, err = _run(capsys, settings, "benchmark", "complete", str(first["id"]), "--annotator", "bob")
    assert code == 2 and "bob has no tasks" in err
    con2 = connect(settings)
    try:
        assert len(benchmarks.list_all(con2)) == 2, "failed commands created nothing"
        assert annotations.masks_of(con2, frame_ids=data["frames"])
    finally:
        con2.close()

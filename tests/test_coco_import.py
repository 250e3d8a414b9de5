"""COCO import (issue #10): the files CVAT and Label Studio write (polygons, iscrowd=1 RLE with
uncompressed list counts, bbox-only rectangles) onto a small synthetic image group, checked
pixel for pixel against pycocotools; every refusal reason leaves no new row or file; the real
EndoCV2021 ``train_coco.json`` (boxes only); and a round trip endolite export -> import as
another annotator -> benchmark at IoU 1.0."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from endolite import auth
from endolite import masks as mask_ops
from endolite.annotate import NewMask, save_mask
from endolite.cli import main
from endolite.errors import InvalidInput, NotFound, PermissionDenied
from endolite.export.coco import coco_document
from endolite.ingest import ingest_paths
from endolite.records import MaskSource, Role, ShapeKind
from endolite.services import Actor, Ctx
from endolite.services import benchmarks as bench_service
from endolite.services.coco_import import import_coco
from endolite.storage import annotations, audit, labels, media, users

H, W = 48, 64                 # H != W catches transposes
POLY = [30.0, 6.0, 58.0, 12.0, 50.0, 40.0, 34.0, 30.0]
POLY_B = [2.5, 2.5, 20.0, 4.0, 12.0, 18.5]


def _disc(cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def _list_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts (column-major runs, zeros first), as CVAT writes them."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    counts, value, run = [], 0, 0
    for v in flat:
        if v != value:
            counts.append(run)
            value, run = v, 0
        run += 1
    counts.append(run)
    return counts


def _add_user(con, name: str, role: Role) -> None:
    users.add(con, name, role, auth.hash_password(f"{name}-pass-1", n=2**10))


@pytest.fixture
def project(con, settings, tmp_path):
    folder = tmp_path / "case 7"
    folder.mkdir()
    names = ["img_0.png", "img_1.png", "img_2.png"]
    for i, name in enumerate(names):
        rgb = np.random.default_rng(i).integers(0, 255, size=(H, W, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(folder / name)
    [result] = ingest_paths(con, settings, [folder], user="t")
    assert result.id is not None, result.reason
    frames = media.frames_of(con, group_id=result.id)
    assert [f.original_name for f in frames] == names
    _add_user(con, "lena", Role.LEAD)
    _add_user(con, "ann", Role.ANNOTATOR)
    _add_user(con, "bob", Role.ANNOTATOR)
    lead = Ctx(con=con, settings=settings, actor=Actor("lena", Role.LEAD))
    return SimpleNamespace(con=con, settings=settings, frames=frames, group_id=result.id,
                           names=names, ctx=lead, tmp=tmp_path)


def _image(i: int, name: str, w: int = W, h: int = H) -> dict:
    return {"id": i, "file_name": name, "width": w, "height": h}


def cvat_doc(p) -> dict:
    """CVAT 'COCO 1.0': 1-based ids, polygons with iscrowd 0, masks as iscrowd 1 RLE with
    uncompressed list counts, a rectangle with segmentation []."""
    disc = _disc(20, 24, 9)
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "",
                 "version": "", "year": ""},
        "categories": [{"id": 1, "name": "polyp", "supercategory": ""},
                       {"id": 2, "name": "instrument", "supercategory": ""}],
        "images": [{**_image(1, p.names[0]), "license": 0, "flickr_url": "", "coco_url": "",
                    "date_captured": 0},
                   {**_image(2, p.names[1]), "license": 0, "flickr_url": "", "coco_url": "",
                    "date_captured": 0},
                   _image(3, "not_in_this_project.png")],        # no annotations: not matched
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [POLY], "area": 600.0,
             "bbox": [30.0, 6.0, 28.0, 34.0], "iscrowd": 0, "attributes": {"occluded": False}},
            {"id": 2, "image_id": 2, "category_id": 1,
             "segmentation": {"counts": _list_counts(disc), "size": [H, W]},
             "area": float(disc.sum()), "bbox": [11.0, 15.0, 19.0, 19.0], "iscrowd": 1,
             "attributes": {"occluded": False}},
            {"id": 3, "image_id": 2, "category_id": 2, "segmentation": [POLY, POLY_B],
             "area": 700.0, "bbox": [2.5, 2.5, 55.5, 37.5], "iscrowd": 0},
        ],
    }


def label_studio_doc(p) -> dict:
    """Label Studio's COCO export: 0-based category ids, file names 'images/<8 hex>-<name>',
    rectangles as bbox with segmentation [], polygons with a bbox."""
    return {
        "images": [{"width": W, "height": H, "id": 0,
                    "file_name": f"images/1a2b3c4d-{p.names[2]}"}],
        "categories": [{"id": 0, "name": "Polyp"}, {"id": 1, "name": "Bleeding"}],
        "annotations": [
            {"id": 0, "image_id": 0, "category_id": 1, "segmentation": [],
             "bbox": [10.2, 5.7, 20.5, 12.25], "ignore": 0, "iscrowd": 0, "area": 251.1},
            {"id": 1, "image_id": 0, "category_id": 0, "segmentation": [POLY_B],
             "bbox": [2.5, 2.5, 17.5, 16.0], "ignore": 0, "iscrowd": 0, "area": 150.0},
        ],
        "info": {"year": 2024, "version": "1.0", "description": "", "contributor": "Label Studio",
                 "url": "", "date_created": "2024-05-01 10:00:00"},
    }


def _write(p, doc: dict, name: str = "coco.json") -> Path:
    path = p.tmp / name
    path.write_text(json.dumps(doc))
    return path


def _expected(ann: dict) -> np.ndarray:
    """What pycocotools makes of an annotation (annToMask's rules)."""
    seg = ann["segmentation"]
    if isinstance(seg, list) and seg:
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, H, W))
    elif isinstance(seg, dict):
        rle = mask_utils.frPyObjects(seg, H, W)
    else:
        x, y, w, h = ann["bbox"]
        return mask_ops.box_to_mask((x, y, x + w, y + h), H, W)
    return mask_utils.decode(rle).astype(bool)


def _snapshot(p) -> tuple:
    con = p.con
    return (con.execute("SELECT count(*) FROM masks").fetchone()[0],
            con.execute("SELECT count(*) FROM labels").fetchone()[0],
            sorted(str(f) for f in p.settings.masks_dir.rglob("*") if f.is_file())
            if p.settings.masks_dir.exists() else [])


# --- CVAT / Label Studio files ---------------------------------------------------------------

def test_cvat_polygons_and_list_count_rle_are_pixel_equal(project):
    p = project
    doc = cvat_doc(p)
    result = import_coco(p.ctx, _write(p, doc, "cvat.json"), annotator="ann")
    assert result.kinds == {"polygon": 2, "mask": 1} and len(result.mask_ids) == 3
    assert set(result.labels_created) == {"polyp", "instrument"}
    assert result.images == 3 and result.annotations == 3
    assert result.frame_ids == (p.frames[0].id, p.frames[1].id)
    stored = {m.id: m for m in annotations.masks_of(p.con, frame_ids=list(result.frame_ids))}
    for ann, mask_id in zip(doc["annotations"], result.mask_ids):
        m = stored[mask_id]
        assert m.annotator == "ann" and m.source == MaskSource.IMPORT
        assert np.array_equal(mask_ops.decode(m.coco_rle), _expected(ann)), ann["id"]
        assert m.prompt["coco"]["annotation_id"] == ann["id"]
        png = np.asarray(Image.open(p.settings.masks_dir / f"frame_{m.frame_id}" / f"mask_{m.id}.png")) > 0
        assert np.array_equal(png, _expected(ann)), "the PNG mirror holds the same pixels"
    one, rle, two = (stored[i] for i in result.mask_ids)
    assert one.kind == ShapeKind.POLYGON and one.prompt["polygon"] == np.reshape(POLY, (-1, 2)).tolist()
    assert rle.kind == ShapeKind.MASK and rle.label == "polyp"
    assert two.kind == ShapeKind.POLYGON and len(two.prompt["polygons"]) == 2
    assert two.label == "instrument"
    # endolite's export writes a one-part polygon back as the same polygon
    out = coco_document(p.con, frame_ids=[p.frames[0].id])
    assert out["annotations"][0]["segmentation"] == [POLY]
    entries = audit.search(p.con, action="import.coco")
    assert len(entries) == 1 and entries[0].username == "lena"
    assert entries[0].details["masks"] == 3 and entries[0].details["annotator"] == "ann"
    made = audit.search(p.con, action="label.add")
    assert {e.details["name"] for e in made} == {"polyp", "instrument"}
    assert all(e.details["via"] == "import.coco" for e in made)


def test_label_studio_boxes_and_polygons(project):
    p = project
    doc = label_studio_doc(p)
    labels.add(p.con, "Polyp")                          # existing label reused, not duplicated
    result = import_coco(p.ctx, json.dumps(doc).encode(), annotator="bob", name="project-1.json")
    assert result.labels_created == ("Bleeding",)
    assert result.kinds == {"box": 1, "polygon": 1} and result.frame_ids == (p.frames[2].id,)
    box, poly = (annotations.get_mask(p.con, i) for i in result.mask_ids)
    assert box.kind == ShapeKind.BOX and box.label == "Bleeding"
    assert box.prompt["box"] == [10.2, 5.7, 30.7, 17.95]
    assert np.array_equal(mask_ops.decode(box.coco_rle),
                          mask_ops.box_to_mask((10.2, 5.7, 30.7, 17.95), H, W)), "as the box tool fills"
    assert poly.kind == ShapeKind.POLYGON and poly.label == "Polyp"
    assert np.array_equal(mask_ops.decode(poly.coco_rle), _expected(doc["annotations"][1]))
    assert [lb.name for lb in labels.list_all(p.con)].count("Polyp") == 1


def test_labels_reused_ignoring_case_and_chunked_storing(project, monkeypatch):
    from endolite.services import coco_import

    p = project
    monkeypatch.setattr(coco_import, "CHUNK", 1)
    polyp = labels.add(p.con, "polyp")
    doc = cvat_doc(p)
    doc["categories"][0]["name"] = "POLYP"
    result = import_coco(p.ctx, _write(p, doc), annotator="ann")
    assert result.labels_created == ("instrument",)
    stored = [annotations.get_mask(p.con, i) for i in result.mask_ids]
    assert [m.label_id for m in stored[:2]] == [polyp.id, polyp.id]
    for ann, m in zip(doc["annotations"], stored):
        assert m.prompt["coco"]["annotation_id"] == ann["id"]
        assert np.array_equal(mask_ops.decode(m.coco_rle), _expected(ann))


def test_compressed_string_rle_and_frame_id_names(project):
    p = project
    disc = _disc(40, 20, 7)
    rle = mask_ops.encode(disc)
    f = p.frames[1]
    doc = {"images": [_image(5, f"export/frame_{f.id}.jpg")],
           "categories": [{"id": 3, "name": "polyp"}],
           "annotations": [{"id": 9, "image_id": 5, "category_id": 3, "segmentation": rle,
                            "iscrowd": 0, "bbox": [0, 0, 1, 1]}]}
    result = import_coco(p.ctx, _write(p, doc), annotator="ann")
    [m] = annotations.masks_of(p.con, frame_ids=[f.id])
    assert result.mask_ids == (m.id,) and m.kind == ShapeKind.MASK
    assert np.array_equal(mask_ops.decode(m.coco_rle), disc)


# --- refusals: all or nothing ----------------------------------------------------------------

def _bad(p, mutate) -> dict:
    doc = cvat_doc(p)
    mutate(doc)
    return doc


CASES = {
    "unknown image name": (lambda d: d["images"][1].update(file_name="nope.png"),
                           r"annotation 2: unknown image 'nope.png'"),
    "unknown image id": (lambda d: d["annotations"][2].update(image_id=77),
                         r"annotation 3: unknown image id 77"),
    "image size mismatch": (lambda d: d["images"][1].update(width=W + 1),
                            r"annotation 2: image size mismatch.*65x48.*64x48"),
    "bad polygon": (lambda d: d["annotations"][2].update(segmentation=[[1, 2, 3]]),
                    r"annotation 3: bad segmentation: a polygon"),
    "bad RLE sum": (lambda d: d["annotations"][1]["segmentation"]["counts"].append(5),
                    r"annotation 2: bad segmentation: RLE runs"),
    "RLE of another size": (lambda d: d["annotations"][1]["segmentation"].update(size=[W, H]),
                            r"annotation 2: bad segmentation: RLE size 48x64"),
    "bad RLE string": (lambda d: d["annotations"][1]["segmentation"].update(counts="\x7f\x7f"),
                       r"annotation 2: bad segmentation: RLE counts string"),
    "polygon outside": (lambda d: d["annotations"][0].update(
        segmentation=[[70.0, 50.0, 80.0, 50.0, 75.0, 60.0]]),
        r"annotation 1: bad segmentation: covers no pixel"),
    "polygon far outside": (lambda d: d["annotations"][0].update(
        segmentation=[[0.0, 0.0, 1e12, 0.0, 5.0, 5.0]]),
        r"annotation 1: bad segmentation: a polygon point lies far outside"),
    "polygon outline too long": (lambda d: d["annotations"][0].update(
        segmentation=[[0.0, 0.0, 63.0, 47.0] * 20000]),
        r"annotation 1: bad segmentation: polygon outline longer"),
    "bad bbox": (lambda d: d["annotations"][2].update(segmentation=[], bbox=[1, 1, 0, 5]),
                 r"annotation 3: bad bbox"),
    "no segmentation or bbox": (lambda d: d["annotations"][2].update(segmentation=[], bbox=None),
                                r"annotation 3: bad segmentation: neither"),
    "unknown category": (lambda d: d["annotations"][2].update(category_id=42),
                         r"annotation 3: unknown category id 42"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_refusal_names_the_annotation_and_stores_nothing(project, case):
    p = project
    mutate, message = CASES[case]
    before = _snapshot(p)
    with pytest.raises(InvalidInput, match=message):
        import_coco(p.ctx, _write(p, _bad(p, mutate)), annotator="ann")
    assert _snapshot(p) == before, "no new mask row, label or PNG"


def test_a_failure_while_storing_rolls_back_rows_labels_and_files(project, monkeypatch):
    """A failure after some masks and labels were written (the last label group) undoes all."""
    from endolite import annotate

    p = project
    before = _snapshot(p)
    real_store = annotate.store_prepared
    calls = []

    def failing(con, rows, pngs):
        calls.append(len(rows))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_store(con, rows, pngs)

    monkeypatch.setattr(annotate, "store_prepared", failing)
    with pytest.raises(OSError):
        import_coco(p.ctx, _write(p, cvat_doc(p)), annotator="ann")
    assert len(calls) == 2
    assert _snapshot(p) == before


def test_file_level_refusals(project):
    p = project
    with pytest.raises(InvalidInput, match="broken.json: not a JSON file"):
        import_coco(p.ctx, b"{nope", annotator="ann", name="broken.json")
    with pytest.raises(InvalidInput, match="deep.json: not a JSON file"):
        import_coco(p.ctx, b"[" * 100_000, annotator="ann", name="deep.json")
    with pytest.raises(InvalidInput, match="list.json: a COCO file is a JSON object"):
        import_coco(p.ctx, b"[]", annotator="ann", name="list.json")
    with pytest.raises(InvalidInput, match="x.json: 'annotations' must be a list"):
        import_coco(p.ctx, b'{"images": [], "categories": []}', annotator="ann", name="x.json")
    with pytest.raises(NotFound, match="no user named 'zed'"):
        import_coco(p.ctx, _write(p, cvat_doc(p)), annotator="zed")
    annotator = Ctx(con=p.con, settings=p.settings, actor=Actor("ann", Role.ANNOTATOR))
    with pytest.raises(PermissionDenied, match="may not import.coco"):
        import_coco(annotator, _write(p, cvat_doc(p)), annotator="ann")
    assert p.con.execute("SELECT count(*) FROM masks").fetchone()[0] == 0


def test_same_name_in_two_groups_needs_a_scope(project, tmp_path):
    p = project
    other = tmp_path / "case 8"
    other.mkdir()
    rgb = np.random.default_rng(99).integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(other / p.names[0])
    [second] = ingest_paths(p.con, p.settings, [other], user="t")
    doc = {"images": [_image(1, p.names[0])], "categories": [{"id": 1, "name": "polyp"}],
           "annotations": [{"id": 4, "image_id": 1, "category_id": 1, "segmentation": [POLY]}]}
    with pytest.raises(InvalidInput, match="annotation 4: image 'img_0.png' .* matches 2 frames"):
        import_coco(p.ctx, _write(p, doc), annotator="ann")
    result = import_coco(p.ctx, _write(p, doc), annotator="ann", group_id=second.id)
    [frame] = media.frames_of(p.con, group_id=second.id)
    assert result.frame_ids == (frame.id,)


# --- the real EndoCV2021 file ----------------------------------------------------------------

def test_real_train_coco_boxes(con, settings, tmp_path, real):
    doc = json.loads((real / "annotations" / "train_coco.json").read_text())
    folder = tmp_path / "kvasir"
    folder.mkdir()
    names = [im["file_name"] for im in doc["images"]]
    present = [n for n in names if (real / "images" / n).is_file()]
    assert present, "SOURCES.md: all three images of train_coco.json are in images/"
    for n in present:
        shutil.copy(real / "images" / n, folder / n)
    if len(present) < len(names):           # import only what the sample folder holds
        keep = {im["id"] for im in doc["images"] if im["file_name"] in present}
        doc["images"] = [im for im in doc["images"] if im["id"] in keep]
        doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in keep]
    [group] = ingest_paths(con, settings, [folder], user="t")
    assert group.id is not None, group.reason
    _add_user(con, "lena", Role.LEAD)
    _add_user(con, "expert", Role.ANNOTATOR)
    ctx = Ctx(con=con, settings=settings, actor=Actor("lena", Role.LEAD))
    source = tmp_path / "train_coco.json"
    source.write_text(json.dumps(doc))
    result = import_coco(ctx, source, annotator="expert")
    assert result.kinds == {"box": len(doc["annotations"])} == {"box": 3}
    assert result.labels_created == ("polyp",)
    by_id = {a["id"]: a for a in doc["annotations"]}
    for ann_id, mask_id in zip(by_id, result.mask_ids):
        m = annotations.get_mask(con, mask_id)
        frame = media.get_frame(con, m.frame_id)
        image = next(im for im in doc["images"] if im["id"] == by_id[ann_id]["image_id"])
        assert frame.original_name == image["file_name"]
        assert (frame.width, frame.height) == (image["width"], image["height"])
        assert m.kind == ShapeKind.BOX and list(m.bbox) == by_id[ann_id]["bbox"]
        assert m.area == by_id[ann_id]["area"]


# --- round trip: export -> import as another annotator -> benchmark --------------------------

def test_round_trip_export_import_benchmark_iou_1(project):
    p = project
    for name in ("polyp", "tool"):
        labels.add(p.con, name)
    f0, f1, f2 = p.frames
    poly = np.reshape(POLY, (-1, 2)).tolist()

    def put(frame, mask, label, kind=ShapeKind.MASK, prompt=None):
        save_mask(p.con, p.settings, NewMask(frame_id=frame.id, mask=mask, kind=kind,
                                             prompt=prompt), label=label, annotator="ann")

    put(f0, mask_ops.polygon_to_mask(poly, H, W), "polyp", ShapeKind.POLYGON, {"polygon": poly})
    put(f0, _disc(15, 30, 8), "tool")
    put(f1, _disc(40, 20, 10), "polyp")
    put(f1, mask_ops.box_to_mask((4, 6, 22, 40), H, W), "tool", ShapeKind.BOX, {"box": [4, 6, 22, 40]})
    put(f2, _disc(10, 10, 6) | _disc(50, 35, 7), "polyp")          # two parts in one RLE
    ids = [f.id for f in p.frames]
    doc = coco_document(p.con, frame_ids=ids, annotator="ann")
    result = import_coco(p.ctx, json.dumps(doc).encode(), annotator="bob", name="export.json")
    assert result.kinds == {"polygon": 1, "mask": 4} and result.labels_created == ()
    bob = annotations.masks_of(p.con, frame_ids=ids, annotator="bob")
    assert len(bob) == 5

    bench = bench_service.create(p.ctx, name="round trip", gold="ann", annotators=["bob"],
                                 labels=["polyp", "tool"], frame_ids=ids)
    for who in ("ann", "bob"):
        bench_service.complete(p.ctx, bench.id, annotator=who)
    report = bench_service.report(p.ctx, bench.id)
    rows = report.report.iou_rows
    assert len(rows) == 5
    assert all(r.iou_score == 1.0 and r.class_score == 1 for r in rows), rows
    [board] = report.leaderboard
    assert board["mean_iou"] == 1.0 and board["missing"] == 0 and board["extra"] == 0


# --- the command line ------------------------------------------------------------------------

def test_cli_import_coco_prints_counts_and_exits_1_on_refusal(project, capsys):
    p = project
    data = str(p.settings.data_dir)
    path = _write(p, label_studio_doc(p), "ls.json")
    p.con.close()
    assert main(["--data", data, "--user", "lena", "import", "coco", str(path),
                 "--annotator", "ann"]) == 0
    out = capsys.readouterr().out
    assert "imported 2 annotations (1 box, 1 polygon) on 1 frames as ann" in out
    assert "new labels: Bleeding, Polyp" in out or "new labels: Polyp, Bleeding" in out
    bad = _write(p, _bad(p, lambda d: d["annotations"][2].update(category_id=42)), "bad.json")
    assert main(["--data", data, "import", "coco", str(bad), "--annotator", "ann"]) == 1
    err = capsys.readouterr().err
    assert "bad.json: annotation 3: unknown category id 42" in err
    assert main(["--data", data, "--user", "ann", "import", "coco", str(path),
                 "--annotator", "ann"]) == 1
    assert "may not import.coco" in capsys.readouterr().err


def test_importing_the_same_file_again_adds_nothing_and_a_changed_annotation_is_added(project):
    p = project
    doc = cvat_doc(p)
    path = _write(p, doc, "cvat.json")
    first = import_coco(p.ctx, path, annotator="ann")
    before = _snapshot(p)
    again = import_coco(p.ctx, path, annotator="ann")
    assert again.mask_ids == () and again.skipped == 3
    assert _snapshot(p) == before, "a re-import stored no row, label or PNG"
    assert any("already imported" in line for line in again.lines())
    # another annotator's import of the same file is theirs: stored
    other = import_coco(p.ctx, path, annotator="bob")
    assert len(other.mask_ids) == 3 and other.skipped == 0
    # one annotation's polygon moved: only that one is new
    moved = json.loads(json.dumps(doc))
    moved["annotations"][0]["segmentation"] = [[x + 2 for x in moved["annotations"][0]["segmentation"][0]]]
    third = import_coco(p.ctx, _write(p, moved, "cvat-moved.json"), annotator="ann")
    assert len(third.mask_ids) == 1 and third.skipped == 2
    assert annotations.get_mask(p.con, third.mask_ids[0]).frame_id == first.frame_ids[0]

"""COCO instance-segmentation export (endolite.export.coco) on a small synthetic image group,
checked with pycocotools (COCO, annToMask, COCOeval)."""

from __future__ import annotations

import copy
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from endolite import masks as mask_ops
from endolite.annotate import NewMask, delete_masks, save_mask
from endolite.errors import NotFound
from endolite.export.coco import coco_document, mask_pngs
from endolite.ingest import ingest_paths
from endolite.records import LabelKind, ShapeKind
from endolite.storage import labels, media

H, W = 48, 64
POLYGON = [[30.0, 6.0], [58.0, 12.0], [50.0, 40.0], [34.0, 30.0]]
BOX = [4.0, 20.0, 24.0, 44.0]
SECRET_FOLDER = "Patient Jane Doe 1970"
SECRET_FILE = "jane_doe_scan"


def _disc(cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


@pytest.fixture
def project(con, settings, tmp_path):
    folder = tmp_path / SECRET_FOLDER
    folder.mkdir()
    for i in range(3):
        rgb = np.random.default_rng(i).integers(0, 255, size=(H, W, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(folder / f"{SECRET_FILE}_{i}.png")
    [result] = ingest_paths(con, settings, [folder], user="t")
    assert result.id is not None, result.reason
    frames = media.frames_of(con, group_id=result.id)
    assert len(frames) == 3 and all((f.height, f.width) == (H, W) for f in frames)
    polyp = labels.add(con, "polyp", kind=LabelKind.PATHOLOGY)
    blood = labels.add(con, "blood")
    unused = labels.add(con, "unused")
    f0, f1, f2 = frames
    disc = save_mask(con, settings, NewMask(frame_id=f0.id, mask=_disc(15, 14, 9)),
                     label=polyp, annotator="ann_alice")
    poly = save_mask(con, settings, NewMask(frame_id=f0.id, mask=mask_ops.polygon_to_mask(POLYGON, H, W),
                                            kind=ShapeKind.POLYGON, prompt={"polygon": POLYGON}),
                     label=polyp, annotator="ann_alice")
    box = save_mask(con, settings, NewMask(frame_id=f0.id, mask=mask_ops.box_to_mask(BOX, H, W),
                                           kind=ShapeKind.BOX, prompt={"box": BOX}),
                    label=blood, annotator="ann_alice")
    other = save_mask(con, settings, NewMask(frame_id=f1.id, mask=_disc(40, 30, 12)),
                      label=blood, annotator="ann_bob")
    gone = save_mask(con, settings, NewMask(frame_id=f1.id, mask=_disc(10, 10, 5)),
                     label=polyp, annotator="ann_alice")
    assert delete_masks(con, [gone.id], by="ann_alice") == [gone.id]
    return SimpleNamespace(con=con, settings=settings, frames=frames, f0=f0, f1=f1, f2=f2,
                           polyp=polyp, blood=blood, unused=unused, disc=disc, poly=poly, box=box,
                           other=other, gone=gone, group_id=result.id)


def _load(doc: dict, tmp_path) -> COCO:
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    return COCO(str(path))


def _stored(mask) -> np.ndarray:
    return mask_ops.decode({"size": [mask.height, mask.width], "counts": mask.rle})


def test_document_fields(project, tmp_path):
    p = project
    doc = coco_document(p.con, frame_ids=[f.id for f in p.frames])
    assert set(doc) >= {"info", "images", "categories", "annotations"}
    coco = _load(doc, tmp_path)
    assert [im["id"] for im in doc["images"]] == sorted(f.id for f in p.frames)
    for fr in p.frames:
        im = coco.imgs[fr.id]
        assert im == {"id": fr.id, "file_name": fr.path.rsplit("/", 1)[-1], "width": W, "height": H}
    assert doc["categories"] == sorted([                       # the unused label is left out
        {"id": p.polyp.id, "name": "polyp", "supercategory": "pathology"},
        {"id": p.blood.id, "name": "blood", "supercategory": "other"},
    ], key=lambda c: c["id"])
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"polyp", "blood"}
    anns = {a["id"]: a for a in doc["annotations"]}
    assert sorted(anns) == sorted([p.disc.id, p.poly.id, p.box.id, p.other.id])   # deleted left out
    expected = [(p.disc, p.f0, p.polyp), (p.poly, p.f0, p.polyp), (p.box, p.f0, p.blood),
                (p.other, p.f1, p.blood)]
    for mask, frame, label in expected:
        a = anns[mask.id]
        assert a["image_id"] == frame.id and a["category_id"] == label.id
        assert a["iscrowd"] == 0 and "score" not in a
        assert a["area"] == mask.area and isinstance(a["area"], float)
        assert all(isinstance(v, float) for v in a["bbox"])
        assert a["bbox"] == [float(v) for v in mask.bbox]
    # bbox order is x, y, w, h
    x0, y0, x1, y1 = BOX
    assert anns[p.box.id]["bbox"] == [x0, y0, x1 - x0, y1 - y0]
    assert anns[p.box.id]["area"] == (x1 - x0) * (y1 - y0)
    assert anns[p.disc.id]["bbox"] == [6.0, 5.0, 19.0, 19.0]
    # segmentation: polygon for the drawn polygon, RLE otherwise
    assert anns[p.poly.id]["segmentation"] == [[v for pt in POLYGON for v in pt]]
    for mask in (p.disc, p.box, p.other):
        assert anns[mask.id]["segmentation"] == {"size": [H, W], "counts": mask.rle}
    # decode each annotation with pycocotools and compare with the stored mask
    for mask, _, _ in expected:
        decoded = coco.annToMask(coco.anns[mask.id]).astype(bool)
        stored = _stored(mask)
        assert decoded.shape == (H, W)
        if mask.id == p.poly.id:
            assert mask_ops.array_iou(decoded, stored) >= 0.95
        else:
            assert np.array_equal(decoded, stored)
    assert coco.getAnnIds(imgIds=[p.f2.id]) == []


def test_no_patient_identifiers(project):
    p = project
    ids = [f.id for f in p.frames]
    group_title = media.get_group(p.con, p.group_id).title
    default = json.dumps(coco_document(p.con, frame_ids=ids))
    text = json.dumps(coco_document(p.con, frame_ids=ids, frame_id_names=True))
    for doc in (default, text):
        for secret in (SECRET_FOLDER, group_title, "annotator", "ann_alice", "ann_bob", "original"):
            assert secret not in doc
        for fr in p.frames:
            assert fr.original_path not in doc
    # Uploaded PNG frames keep the uploaded name as their stored file name (documented caveat);
    # frame_id_names leaves it out.
    assert SECRET_FILE in default and SECRET_FILE not in text
    images = json.loads(text)["images"]
    assert [im["file_name"] for im in images] == [f"frame_{i}.png" for i in sorted(ids)]


def test_annotator_filter_and_frame_choice(project):
    p = project
    doc = coco_document(p.con, frame_ids=[f.id for f in p.frames], annotator="ann_bob")
    assert [a["id"] for a in doc["annotations"]] == [p.other.id]
    assert [c["id"] for c in doc["categories"]] == [p.blood.id]
    assert len(doc["images"]) == 3
    doc = coco_document(p.con, frame_ids=[p.f1.id, p.f1.id])
    assert [im["id"] for im in doc["images"]] == [p.f1.id]
    assert [a["id"] for a in doc["annotations"]] == [p.other.id]
    empty = coco_document(p.con, frame_ids=[])
    assert empty["images"] == [] and empty["annotations"] == [] and empty["categories"] == []
    with pytest.raises(NotFound):
        coco_document(p.con, frame_ids=[10**9])


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_cocoeval_against_itself(project, tmp_path, iou_type):
    p = project
    doc = coco_document(p.con, frame_ids=[f.id for f in p.frames])
    gt = _load(doc, tmp_path)
    dets = copy.deepcopy(doc["annotations"])
    for d in dets:
        d["score"] = 1.0
        del d["id"]
    dt = gt.loadRes(dets)
    ev = COCOeval(gt, dt, iouType=iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_mask_pngs_are_label_unions(project):
    p = project
    pngs = dict(mask_pngs(p.con, p.settings, frame_ids=[f.id for f in p.frames]))
    assert sorted(pngs) == sorted([f"masks/frame_{p.f0.id}/label_{p.polyp.id}.png",
                                   f"masks/frame_{p.f0.id}/label_{p.blood.id}.png",
                                   f"masks/frame_{p.f1.id}/label_{p.blood.id}.png"])
    unions = {(p.f0.id, p.polyp.id): _stored(p.disc) | _stored(p.poly),
              (p.f0.id, p.blood.id): _stored(p.box),
              (p.f1.id, p.blood.id): _stored(p.other)}
    assert (unions[(p.f0.id, p.polyp.id)] != _stored(p.disc)).any()   # really a union of two
    for (frame_id, label_id), union in unions.items():
        data = pngs[f"masks/frame_{frame_id}/label_{label_id}.png"]
        image = Image.open(io.BytesIO(data))
        assert image.format == "PNG" and image.size == (W, H)
        array = np.asarray(image)
        assert set(np.unique(array).tolist()) <= {0, 255}
        assert np.array_equal(array == 255, union)
    assert list(mask_pngs(p.con, p.settings, frame_ids=[p.f2.id])) == []

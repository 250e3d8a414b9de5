"""Annotation core (endolite.annotate), the mask / segment services that audit it
(endolite.services), and benchmark storage, on a real DuckDB file in tmp.

Frames come from real ingests (PNG image groups written here, the real CVC / Kvasir samples,
a synthetic PyAV video); masks are checked by decoding the stored COCO RLE with pycocotools
and by reading the PNG mirror back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from endolite import annotate, frame_labels
from endolite.annotate import NewMask
from endolite.errors import InvalidInput, NotFound
from endolite.ingest import ingest_paths
from endolite.media import encode_image, sha256_file, write_image_atomic
from endolite.records import MaskSource, Presence, Role, TaskStatus
from endolite.services import Actor, Ctx
from endolite.services import annotations as annotations_service
from endolite.services import masks as masks_service
from endolite.services import settings as settings_service
from endolite.storage import annotations as store
from endolite.storage import audit, benchmarks, labels
from endolite.storage import media as media_store
from endolite.synthetic import disc_mask, moving_disc_frames

H, W = 90, 120  # H != W so a transposed mask cannot pass


# --- helpers ----------------------------------------------------------------------------------

def count(con, table: str, where: str = "TRUE") -> int:
    return con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def mask_files(settings) -> list[Path]:
    return sorted(p for p in settings.masks_dir.rglob("*") if p.is_file())


def image_group(con, settings, folder: Path, *, n: int = 3, seed: int = 0, h: int = H, w: int = W):
    """Ingest a folder of ``n`` PNGs (img_0.png ...) of h x w; returns (group id, frames)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        rgb = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        (folder / f"img_{i}.png").write_bytes(encode_image(rgb, fmt="png"))
    [result] = ingest_paths(con, settings, [folder], user="alice")
    assert result.status == "imported", result.reason
    return result.id, media_store.frames_of(con, group_id=result.id)


def l_shape() -> np.ndarray:
    """A 90x120 mask whose tight box is x 5..114, y 10..60: COCO bbox (5, 10, 110, 51)."""
    mask = np.zeros((H, W), dtype=bool)
    mask[10:40, 70:115] = True
    mask[60, 5] = True
    return mask


def as_user(con, settings, name: str, role: Role = Role.ANNOTATOR) -> Ctx:
    """A service context acting as ``name`` with ``role``."""
    return Ctx(con=con, settings=settings, actor=Actor(name=name, role=role))


def decode_row(m) -> np.ndarray:
    """Decode a stored mask row with pycocotools directly (not through endolite)."""
    return coco_mask.decode({"size": [m.height, m.width], "counts": m.rle.encode("ascii")}).astype(bool)


def ingest_video(con, settings, path: Path):
    [result] = ingest_paths(con, settings, [path], user="alice")
    assert result.status == "imported", result.reason
    return media_store.get_video(con, result.id)


def store_video_frames(con, settings, video, numbers: list[int]) -> dict[int, int]:
    """Frame rows + files for the given frame numbers of the synthetic disc video (the same
    generator that encoded it); returns frame number -> frame id."""
    pictures = [f for f, _ in moving_disc_frames(max(numbers) + 1, height=video.height, width=video.width)]
    ids = media_store.reserve_frame_ids(con, len(numbers))
    rows = []
    for fid, n in zip(ids, numbers):
        target = settings.video_frames_dir(video.id) / f"frame_{fid}.png"
        write_image_atomic(target, pictures[n], fmt="png")
        rows.append({"id": fid, "video_id": video.id, "group_id": None, "frame_number": n,
                     "timestamp": n / video.fps, "path": settings.relative(target),
                     "original_name": None, "original_path": None, "width": video.width,
                     "height": video.height, "sha256": sha256_file(target), "is_context": False,
                     "parent_id": None, "extraction_id": None, "created_by": "alice"})
    media_store.insert_frames(con, rows)
    return dict(zip(numbers, ids))


@pytest.fixture
def polyp(con):
    return labels.add(con, "polyp")


@pytest.fixture
def group(con, settings, tmp_path):
    return image_group(con, settings, tmp_path / "imgs")


# --- saving masks -----------------------------------------------------------------------------

def test_save_mask_stores_rle_area_bbox_and_png_mirror(con, settings, group, polyp):
    _, frames = group
    frame = frames[1]
    assert (frame.height, frame.width) == (H, W)
    mask = l_shape()
    saved = annotate.save_mask(con, settings, NewMask(frame_id=frame.id, mask=mask),
                               label="polyp", annotator="alice")

    row = store.get_mask(con, saved.id)
    assert (row.frame_id, row.label, row.label_id, row.annotator) == (frame.id, "polyp", polyp.id, "alice")
    assert row.source == MaskSource.MANUAL and (row.height, row.width) == (H, W)
    assert np.array_equal(decode_row(row), mask)
    assert np.array_equal(annotate.load_mask(row), mask)
    assert row.area == int(mask.sum()) == 30 * 45 + 1
    assert tuple(row.bbox) == (5, 10, 110, 51)  # (x, y, w, h), not (y, x, h, w)

    png = settings.masks_dir / f"frame_{frame.id}" / f"mask_{saved.id}.png"
    assert annotate.mask_png_path(settings, frame.id, saved.id) == png
    with Image.open(png) as im:
        assert im.size == (W, H)
        mirror = np.asarray(im.convert("L"))
    assert np.array_equal(mirror > 127, mask)
    assert [m.id for m in store.masks_of(con, frame_ids=[frame.id])] == [saved.id]


@pytest.mark.parametrize("bad", ["transposed", "empty"])
def test_wrong_size_or_empty_mask_is_refused_and_nothing_is_stored(con, settings, group, polyp, bad):
    _, frames = group
    mask = l_shape().T if bad == "transposed" else np.zeros((H, W), dtype=bool)
    with pytest.raises(InvalidInput, match="differs from the frame's 120x90" if bad == "transposed" else "empty"):
        annotate.save_mask(con, settings, NewMask(frame_id=frames[0].id, mask=mask),
                           label=polyp, annotator="alice")
    assert count(con, "masks") == 0
    assert mask_files(settings) == []


def test_one_bad_mask_in_a_batch_stores_none_of_it(con, settings, group, polyp):
    _, frames = group
    good = NewMask(frame_id=frames[0].id, mask=l_shape())
    with pytest.raises(InvalidInput):
        annotate.save_masks(con, settings, [good, good, NewMask(frames[1].id, np.zeros((H, W), bool))],
                            label="polyp", annotator="alice")
    with pytest.raises(NotFound, match="no frame with id 9999"):
        annotate.save_masks(con, settings, [good, NewMask(frame_id=9999, mask=l_shape())],
                            label="polyp", annotator="alice")
    assert count(con, "masks") == 0 and mask_files(settings) == []


def test_a_mirror_that_cannot_be_written_leaves_no_row_history_or_audit(con, settings, group, polyp):
    """The PNG mirror fails (its folder is blocked by a file): the save raises the OSError the
    page turns into a message, and no mask row, undo step or audit entry is left behind."""
    from endolite.services import Actor, Ctx
    from endolite.services import masks as mask_service

    _, frames = group
    blocked = settings.masks_dir / f"frame_{frames[2].id}"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("not a folder")
    ctx = Ctx(con=con, settings=settings, actor=Actor.server_shell())
    with pytest.raises(OSError):
        mask_service.save(ctx, NewMask(frame_id=frames[2].id, mask=l_shape()), label=polyp)
    assert count(con, "masks") == 0 and count(con, "mask_history") == 0
    assert count(con, "audit_log") == 0
    blocked.unlink()
    assert mask_files(settings) == []
    saved = mask_service.save(ctx, NewMask(frame_id=frames[2].id, mask=l_shape()), label=polyp)
    assert count(con, "masks") == 1 and mask_service.undoable(ctx, frames[2].id).added == (saved.id,)


def test_bulk_save_masks_keeps_order_and_each_mask(con, settings, group, polyp):
    _, frames = group
    items, arrays = [], []
    for i in range(60):
        frame = frames[i % len(frames)]
        arr = disc_mask(H, W, cx=10 + i, cy=20 + (i % 40), radius=3 + i % 7)
        arrays.append(arr)
        items.append(NewMask(frame_id=frame.id, mask=arr, source=MaskSource.SAM,
                             prompt={"points": [[10 + i, 20, 1]]}, confidence=i / 100))
    saved = annotate.save_masks(con, settings, items, label=polyp.id, annotator="bob")

    assert len(saved) == 60 and len({m.id for m in saved}) == 60
    for item, arr, m in zip(items, arrays, saved):
        assert m.frame_id == item.frame_id and m.source == MaskSource.SAM
        assert m.prompt == item.prompt and m.confidence == pytest.approx(item.confidence)
        assert np.array_equal(decode_row(m), arr) and m.area == int(arr.sum())
    assert count(con, "masks") == 60 and len(mask_files(settings)) == 60
    group_masks = store.masks_of(con, group_id=frames[0].group_id)
    assert len(group_masks) == 60
    assert [m.frame_id for m in group_masks] == sorted(m.frame_id for m in group_masks)


# --- delete / restore -------------------------------------------------------------------------

def test_delete_hides_mask_logs_audit_and_undo_brings_it_back(con, settings, group, polyp):
    _, frames = group
    keep, gone = annotate.save_masks(
        con, settings, [NewMask(frames[0].id, l_shape()), NewMask(frames[0].id, disc_mask(H, W, 30, 50, 9))],
        label="polyp", annotator="alice")
    bob = as_user(con, settings, "bob", Role.LEAD)

    masks_service.delete(bob, [gone.id])
    assert [m.id for m in store.masks_of(con, frame_ids=[frames[0].id])] == [keep.id]
    with pytest.raises(NotFound):
        store.get_mask(con, gone.id)
    [entry] = audit.recent(con, action="mask.delete")
    assert (entry.username, entry.entity, entry.entity_id) == ("bob", "mask", gone.id)
    assert entry.details["mask_ids"] == [gone.id] and entry.details["owners"] == ["alice"]

    step = masks_service.undo(bob, frames[0].id)
    assert (step.action, step.removed) == ("delete", (gone.id,))
    back = store.get_mask(con, gone.id)
    assert back.rle == gone.rle and back.label == "polyp"
    assert [m.id for m in store.masks_of(con, frame_ids=[frames[0].id])] == [keep.id, gone.id]
    [undo] = audit.recent(con, action="mask.undo")
    assert undo.username == "bob" and undo.details["restored"] == [gone.id]
    assert undo.details["deleted"] == [] and undo.details["frame_id"] == frames[0].id


def test_delete_label_masks_only_touches_that_label_in_that_sequence(con, settings, tmp_path, polyp):
    gid_a, frames_a = image_group(con, settings, tmp_path / "a", seed=1)
    gid_b, frames_b = image_group(con, settings, tmp_path / "b", seed=2)
    labels.add(con, "tool")
    a_polyps = annotate.save_masks(con, settings, [NewMask(f.id, l_shape()) for f in frames_a],
                                   label="polyp", annotator="alice")
    a_tools = annotate.save_masks(con, settings, [NewMask(frames_a[0].id, disc_mask(H, W, 60, 45, 10))],
                                  label="tool", annotator="alice")
    b_polyps = annotate.save_masks(con, settings, [NewMask(f.id, l_shape()) for f in frames_b],
                                   label="polyp", annotator="alice")

    deleted = masks_service.delete_label(as_user(con, settings, "bob", Role.LEAD), label="polyp",
                                         group_id=gid_a)
    assert sorted(deleted) == sorted(m.id for m in a_polyps)
    assert [m.id for m in store.masks_of(con, group_id=gid_a)] == [m.id for m in a_tools]
    assert [m.id for m in store.masks_of(con, group_id=gid_b)] == [m.id for m in b_polyps]
    [entry] = audit.recent(con, action="mask.delete")
    assert sorted(entry.details["mask_ids"]) == sorted(deleted) and entry.username == "bob"

    # an annotator's "delete all" removes only the masks they made
    carols = annotate.save_masks(con, settings, [NewMask(frames_b[1].id, disc_mask(H, W, 40, 40, 8))],
                                 label="polyp", annotator="carol")
    gone = masks_service.delete_label(as_user(con, settings, "carol"), label="polyp", group_id=gid_b)
    assert gone == [carols[0].id]
    assert [m.id for m in store.masks_of(con, group_id=gid_b)] == [m.id for m in b_polyps]


def test_delete_label_masks_without_a_sequence_is_refused(con, settings, tmp_path, polyp):
    _, frames_a = image_group(con, settings, tmp_path / "a", seed=1)
    _, frames_b = image_group(con, settings, tmp_path / "b", seed=2)
    annotate.save_masks(con, settings, [NewMask(f.id, l_shape()) for f in frames_a + frames_b],
                        label="polyp", annotator="alice")
    with pytest.raises(InvalidInput):
        annotate.delete_label_masks(con, label="polyp", by="bob")


def test_rename_label_keeps_masks_attached(con, settings, group, polyp):
    _, frames = group
    saved = annotate.save_mask(con, settings, NewMask(frames[2].id, l_shape()), label="polyp",
                               annotator="alice")
    labels.rename(con, "polyp", "adenoma")
    [m] = store.masks_of(con, frame_ids=[frames[2].id])
    assert (m.id, m.label, m.label_id) == (saved.id, "adenoma", polyp.id)
    with pytest.raises(NotFound):
        labels.get_by_name(con, "polyp")
    more = annotate.save_mask(con, settings, NewMask(frames[2].id, l_shape()), label="adenoma",
                              annotator="alice")
    assert more.label_id == polyp.id


# --- importing mask files ---------------------------------------------------------------------

def test_import_real_cvc_tif_masks_onto_real_cvc_images(con, settings, real, polyp):
    images = sorted((real / "images").glob("*.tif"))
    assert len(images) == 10
    results = ingest_paths(con, settings, images, user="alice")
    assert {r.status for r in results} == {"imported"}
    group_id = results[0].id

    masks = sorted((real / "masks").glob("*.tif"))
    settings_service.set_import_roots(as_user(con, settings, "root", Role.ADMIN), [str(real / "masks")])
    out = masks_service.import_files(as_user(con, settings, "lena", Role.LEAD), masks, label="polyp",
                                     annotator="gold")
    assert [r["status"] for r in out] == ["imported"] * 10, [r["reason"] for r in out]
    for path, r in zip(masks, out):
        frame = media_store.get_frame(con, r["frame_id"])
        assert frame.group_id == group_id and Path(frame.original_name).stem == path.stem
        m = store.get_mask(con, r["mask_id"])
        import tifffile

        expected = tifffile.imread(path) >= 128
        assert (m.height, m.width) == expected.shape == (288, 384)
        assert np.array_equal(decode_row(m), expected)
        assert m.source == MaskSource.IMPORT and m.prompt == {"file": path.name}
    [entry] = audit.recent(con, action="mask.import", limit=1)
    assert entry.entity == "mask" and sorted(entry.details["mask_ids"]) == sorted(r["mask_id"] for r in out)
    assert (entry.username, entry.details["annotator"], entry.details["rejected"]) == ("lena", "gold", 0)


def test_import_real_kvasir_jpeg_masks_thresholds_at_128(con, settings, real, polyp):
    stems = sorted(p.stem for p in (real / "masks").glob("cju*.jpg"))[:3]
    results = ingest_paths(con, settings, [real / "images" / f"{s}.jpg" for s in stems], user="alice")
    assert {r.status for r in results} == {"imported"}

    paths = [real / "masks" / f"{s}.jpg" for s in stems]
    out = annotate.import_mask_files(con, settings, paths, label="polyp", annotator="gold")
    assert [r["status"] for r in out] == ["imported"] * 3, [r["reason"] for r in out]
    for path, r in zip(paths, out):
        with Image.open(path) as im:
            grey = np.asarray(im.convert("L"))
        m = store.get_mask(con, r["mask_id"])
        stored = decode_row(m)
        assert np.array_equal(stored, grey >= 128)
        assert not np.array_equal(stored, grey > 0), "JPEG ringing must not count as foreground"
        frame = media_store.get_frame(con, r["frame_id"])
        assert (frame.height, frame.width) == grey.shape and frame.original_name == f"{path.stem}.jpg"


def test_import_rejects_bad_files_with_a_reason_and_keeps_going(con, settings, group, tmp_path, polyp):
    _, frames = group
    masks = tmp_path / "masks"
    masks.mkdir()
    good = masks / "img_0.png"
    good.write_bytes(encode_image((l_shape() * 255).astype(np.uint8), fmt="png"))
    wrong_size = masks / "img_1.png"
    wrong_size.write_bytes(encode_image((l_shape().T * 255).astype(np.uint8), fmt="png"))
    unmatched = masks / "nothing_like_it.png"
    unmatched.write_bytes(good.read_bytes())
    garbage = masks / "img_2.png"
    garbage.write_text("not an image")
    missing = masks / "img_0_missing.png"

    out = annotate.import_mask_files(con, settings, [unmatched, good, wrong_size, garbage, missing],
                                     label="polyp", annotator="alice")
    status = {Path(r["path"]).name: (r["status"], r["reason"]) for r in out}
    assert status["img_0.png"] == ("imported", None)
    assert status["nothing_like_it.png"][0] == "rejected"
    assert "no frame named nothing_like_it" in status["nothing_like_it.png"][1]
    assert status["img_1.png"][0] == "rejected" and "differs from the frame's" in status["img_1.png"][1]
    assert status["img_2.png"][0] == "rejected" and "cannot decode" in status["img_2.png"][1]
    assert status["img_0_missing.png"] == ("rejected", "img_0_missing.png: no such file")
    [m] = store.masks_of(con)
    assert m.frame_id == frames[0].id and np.array_equal(decode_row(m), l_shape())
    assert len(mask_files(settings)) == 1


def test_import_ambiguous_stem_is_rejected_and_frame_id_name_resolves_it_for_video_frames(
        con, settings, tmp_path, disc_video, polyp):
    image_group(con, settings, tmp_path / "a", seed=1)
    image_group(con, settings, tmp_path / "b", seed=2)
    masks = tmp_path / "masks"
    masks.mkdir()
    ambiguous = masks / "img_0.png"
    ambiguous.write_bytes(encode_image((l_shape() * 255).astype(np.uint8), fmt="png"))
    [r] = annotate.import_mask_files(con, settings, [ambiguous], label="polyp", annotator="alice")
    assert r["status"] == "rejected" and "2 frames are named img_0" in r["reason"]
    assert "frame_<id>" in r["reason"]

    video = ingest_video(con, settings, disc_video)
    ids = store_video_frames(con, settings, video, [7])
    named = masks / f"frame_{ids[7]}.png"
    truth = disc_mask(video.height, video.width, 50, 40, 15)
    named.write_bytes(encode_image((truth * 255).astype(np.uint8), fmt="png"))
    [r] = annotate.import_mask_files(con, settings, [named], label="polyp", annotator="alice")
    assert (r["status"], r["frame_id"]) == ("imported", ids[7])
    [m] = store.masks_of(con, video_id=video.id)
    assert np.array_equal(decode_row(m), truth)


def test_frame_id_name_resolves_ambiguity_for_png_image_groups(con, settings, tmp_path, polyp):
    _, frames_a = image_group(con, settings, tmp_path / "a", seed=1)
    image_group(con, settings, tmp_path / "b", seed=2)
    masks = tmp_path / "masks"
    masks.mkdir()
    named = masks / f"frame_{frames_a[0].id}.png"
    named.write_bytes(encode_image((l_shape() * 255).astype(np.uint8), fmt="png"))
    [r] = annotate.import_mask_files(con, settings, [named], label="polyp", annotator="alice")
    assert (r["status"], r["frame_id"]) == ("imported", frames_a[0].id), r["reason"]


# --- frame labels -----------------------------------------------------------------------------

def test_frame_labels_set_overwrite_and_per_annotator(con, group, polyp):
    _, frames = group
    fid = frames[0].id
    labels.add(con, "blur", allowed=("frame_label",))
    [row] = frame_labels.set_frame_labels(con, fid, [frame_labels.parse_assignment("polyp=1:0.8")], annotator="alice")
    assert (row.frame_id, row.label, row.value, row.float_value) == (fid, "polyp", Presence.PRESENT, 0.8)
    assert row.source == "manual"

    [again] = frame_labels.set_frame_labels(con, fid, [("polyp", Presence.ABSENT, None)], annotator="alice")
    assert again.id == row.id and (again.value, again.float_value) == (Presence.ABSENT, None)
    frame_labels.set_frame_labels(con, fid, [frame_labels.parse_assignment("polyp=unknown"),
                                         frame_labels.parse_assignment("blur=yes:0.25")], annotator="bob")
    by = {(r.annotator, r.label): (r.value, r.float_value) for r in store.frame_labels_of(con, fid)}
    assert by == {("alice", "polyp"): (Presence.ABSENT, None), ("bob", "polyp"): (Presence.UNKNOWN, None),
                  ("bob", "blur"): (Presence.PRESENT, 0.25)}
    assert [r.label for r in store.frame_labels_of(con, fid, annotator="alice")] == ["polyp"]


def test_frame_label_refused_for_label_without_frame_labels_and_unknown_frame(con, group):
    _, frames = group
    labels.add(con, "outline", allowed=("mask",))
    with pytest.raises(InvalidInput, match="does not allow frame labels"):
        frame_labels.set_frame_labels(con, frames[0].id, [("outline", Presence.PRESENT, None)], annotator="a")
    with pytest.raises(NotFound):
        frame_labels.set_frame_labels(con, 9999, [("outline", Presence.PRESENT, None)], annotator="a")
    with pytest.raises(NotFound, match="no label named 'nope'"):
        frame_labels.set_frame_labels(con, frames[0].id, [("nope", Presence.PRESENT, None)], annotator="a")
    assert count(con, "frame_labels") == 0


@pytest.mark.parametrize("text, expected", [
    ("polyp=1", ("polyp", Presence.PRESENT, None)),
    ("polyp=0", ("polyp", Presence.ABSENT, None)),
    (" Cecum = present ", ("Cecum", Presence.PRESENT, None)),
    ("bbps=unknown:2.5", ("bbps", Presence.UNKNOWN, 2.5)),
    ("polyp=no", ("polyp", Presence.ABSENT, None)),
])
def test_parse_assignment_accepts(text, expected):
    assert frame_labels.parse_assignment(text) == expected


@pytest.mark.parametrize("text, message", [
    ("polyp", "use LABEL=1"),
    ("=1", "use LABEL=1"),
    ("polyp=maybe", "use 1, 0 or unknown"),
    ("polyp=1:high", "must be a number"),
])
def test_parse_assignment_rejects(text, message):
    with pytest.raises(InvalidInput, match=message):
        frame_labels.parse_assignment(text)


# --- segments ---------------------------------------------------------------------------------

@pytest.fixture
def video(con, settings, disc_video):
    return ingest_video(con, settings, disc_video)


@pytest.mark.parametrize("start, end, message", [
    (0, 101, "past the video's end: at most 100"),
    (-1, 5, "must satisfy 0 <= start < end"),
    (20, 10, "must satisfy 0 <= start < end"),
    (7, 7, "must satisfy 0 <= start < end"),        # end exclusive: an empty segment
])
def test_segment_bounds_are_checked_against_the_video(con, video, polyp, start, end, message):
    assert video.frame_count == 100
    with pytest.raises(InvalidInput, match=message):
        frame_labels.add_segment(con, video.id, label="polyp", start=start, end=end, annotator="alice")
    assert store.segments_of(con, video_id=video.id) == []


def test_segment_accepts_whole_video_and_checks_label_and_video(con, video, polyp):
    seg = frame_labels.add_segment(con, video.id, label="polyp", start=0, end=100, annotator="alice")
    assert (seg.start_frame, seg.end_frame, seg.label, seg.for_export) == (0, 100, "polyp", True)
    one = frame_labels.add_segment(con, video.id, label="polyp", start=99, end=100, annotator="alice")
    assert (one.start_frame, one.end_frame) == (99, 100)     # the last frame alone
    labels.add(con, "only_masks", allowed=("mask",))
    with pytest.raises(InvalidInput, match="does not allow time segments"):
        frame_labels.add_segment(con, video.id, label="only_masks", start=0, end=5, annotator="alice")
    with pytest.raises(NotFound):
        frame_labels.add_segment(con, 999, label="polyp", start=0, end=5, annotator="alice")


def test_materialize_segments_counts_dedups_skips_unexported_and_is_idempotent(con, settings, video, polyp):
    """lx-annotate's semantics: frame rows with start <= n < end (end exclusive) get 'present';
    frames without a frame row get nothing; a second run adds and changes nothing."""
    labels.add(con, "tool")
    numbers = [0, 3, 4, 5, 9, 10, 12, 15, 19, 28, 29, 30, 40, 55]
    ids = store_video_frames(con, settings, video, numbers)
    frame_labels.add_segment(con, video.id, label="polyp", start=10, end=20, annotator="alice")
    frame_labels.add_segment(con, video.id, label="polyp", start=15, end=30, annotator="alice")  # overlaps
    frame_labels.add_segment(con, video.id, label="polyp", start=0, end=5, annotator="bob")
    hidden = frame_labels.add_segment(con, video.id, label="tool", start=50, end=60, annotator="alice")
    store.set_segment_export(con, hidden.id, False)
    # alice already said "absent" on frame 12 by hand: that row is kept, not duplicated
    frame_labels.set_frame_labels(con, ids[12], [("polyp", Presence.ABSENT, None)], annotator="alice")
    alice_frames = [10, 15, 19, 28, 29]          # in [10, 20) or [15, 30), not 12, not 30 (= end)
    bob_frames = [0, 3, 4]                       # [0, 5): not 5
    expected = len(alice_frames) + len(bob_frames)

    lead = as_user(con, settings, "lena", Role.LEAD)
    assert annotations_service.materialize(lead, video.id, dry_run=True) == expected
    assert count(con, "frame_labels") == 1
    assert annotations_service.materialize(lead, video.id) == expected
    assert count(con, "frame_labels") == 1 + expected
    snapshot = con.execute("SELECT * FROM frame_labels ORDER BY id").fetchall()
    assert annotations_service.materialize(lead, video.id) == 0
    assert annotations_service.materialize(lead, video.id, dry_run=True) == 0
    assert con.execute("SELECT * FROM frame_labels ORDER BY id").fetchall() == snapshot, \
        "a second run changes nothing"

    rows = con.execute("SELECT annotator, frame_number, value, frame_id, source, segment_id "
                       "FROM frame_labels WHERE source = 'segment' ORDER BY annotator, frame_number"
                       ).fetchall()
    assert [r[1] for r in rows if r[0] == "alice"] == alice_frames
    assert [r[1] for r in rows if r[0] == "bob"] == bob_frames
    assert {r[2] for r in rows} == {"present"}
    assert all(r[3] == ids[r[1]] for r in rows), "every row names its frame row"
    first_seg = min(s.id for s in store.segments_of(con, video_id=video.id) if s.start_frame == 10)
    assert {r[5] for r in rows if r[0] == "alice" and r[1] in (15, 19)} == {first_seg}
    assert con.execute("SELECT value FROM frame_labels WHERE frame_id = ? AND annotator = 'alice'",
                       [ids[12]]).fetchall() == [("absent",)]
    assert count(con, "frame_labels", "frame_number >= 50") == 0
    first, second = audit.recent(con, action="segment.materialize")[::-1]
    assert (first.username, first.entity_id, first.details) == ("lena", video.id, {"rows": expected})
    assert second.details == {"rows": 0}

    # frames extracted later: a new run covers exactly them
    late = store_video_frames(con, settings, video, [11, 30, 31])
    assert annotations_service.materialize(lead, video.id) == 1
    assert con.execute("SELECT frame_id FROM frame_labels WHERE source = 'segment' AND frame_number "
                       "IN (11, 30, 31)").fetchall() == [(late[11],)]


def test_materialize_unknown_video_is_not_found(con):
    with pytest.raises(NotFound):
        frame_labels.materialize_segments(con, 4242, dry_run=True)


# --- benchmarks (storage) ---------------------------------------------------------------------

def test_benchmark_tasks_status_and_blind_frames(con, group, polyp):
    _, frames = group
    f1, f2, f3 = (f.id for f in frames)
    bench = benchmarks.create(con, name=" round 1 ", gold="gina", annotators=["bob", "ann"],
                              label_ids=[polyp.id], frame_ids=[f1, f2, f3], created_by="gina")
    assert (bench.name, bench.gold, bench.annotators) == ("round 1", "gina", ("ann", "bob"))
    assert bench.frame_ids == (f1, f2, f3) and bench.label_ids == (polyp.id,)
    tasks = benchmarks.tasks(con, benchmark_id=bench.id)
    assert len(tasks) == 9 and {t.status for t in tasks} == {TaskStatus.TODO}
    assert {t.annotator for t in tasks} == {"gina", "ann", "bob"}
    assert benchmarks.add_tasks(con, bench.id, ["ann"], [f1, f2, f3]) == 0

    assert benchmarks.set_status(con, bench.id, "ann", TaskStatus.IN_PROGRESS, frame_ids=[f1]) == 1
    assert benchmarks.set_status(con, bench.id, "ann", "complete", frame_ids=[f2, f3]) == 2
    assert benchmarks.set_status(con, bench.id, "bob", TaskStatus.COMPLETE) == 3
    with pytest.raises(NotFound):
        benchmarks.set_status(con, bench.id, "zoe", TaskStatus.COMPLETE)
    table = {r["annotator"]: (r["todo"], r["in_progress"], r["complete"], r["total"])
             for r in benchmarks.status_table(con, bench.id)}
    assert table == {"ann": (0, 1, 2, 3), "bob": (0, 0, 3, 3), "gina": (3, 0, 0, 3)}

    # ann is gold of a second benchmark on another frame: that frame is not blind for her
    other = benchmarks.create(con, name="round 2", gold="ann", annotators=["bob"],
                              label_ids=[polyp.id], frame_ids=[f3])
    assert benchmarks.benchmark_frames_for(con, "ann") == {f1, f2, f3}
    assert benchmarks.benchmark_frames_for(con, "bob") == {f1, f2, f3}
    assert benchmarks.benchmark_frames_for(con, "gina") == set()
    assert benchmarks.benchmark_frames_for(con, "nobody") == set()
    assert [b.id for b in benchmarks.list_all(con)] == [bench.id, other.id]


def test_gold_cannot_also_be_an_annotator(con, group, polyp):
    _, frames = group
    with pytest.raises(InvalidInput, match="gold annotator and cannot also be evaluated"):
        benchmarks.create(con, name="b", gold="gina", annotators=["ann", "gina"],
                          label_ids=[polyp.id], frame_ids=[frames[0].id])
    with pytest.raises(InvalidInput, match="empty"):
        benchmarks.create(con, name="  ", gold="gina", annotators=["ann"],
                          label_ids=[polyp.id], frame_ids=[frames[0].id])
    assert count(con, "benchmarks") == 0 and count(con, "benchmark_tasks") == 0

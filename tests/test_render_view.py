"""render.render_view: the canvas picture of a viewport (crop at canvas size), masks at the
chosen opacity or as outlines only, ids at each mask's bbox corner, masks outside the view
skipped."""

from __future__ import annotations

import numpy as np

from endolite import annotate, render
from endolite.ingest import ingest_paths
from endolite.media import write_image_atomic
from endolite.storage import annotations, labels, media
from endolite.zoom import Viewport

H, W = 60, 80


def _frame_with_mask(con, settings, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[:, W // 2:] = 100                                  # left half black, right half grey
    write_image_atomic(folder / "a.png", image, fmt="png")
    [group] = ingest_paths(con, settings, [folder], user="ann")
    labels.add(con, "polyp", color="#ff0000")
    mask = np.zeros((H, W), dtype=bool)
    mask[10:30, 10:30] = True
    frame = media.get_frame(con, group.frame_ids[0])
    annotate.save_mask(con, settings, annotate.NewMask(frame.id, mask), label="polyp", annotator="ann")
    return frame, annotations.masks_of(con, frame_ids=[frame.id])


def test_whole_view_blends_masks_at_the_opacity_and_outline_only_keeps_the_inside(con, settings, tmp_path):
    frame, shown = _frame_with_mask(con, settings, tmp_path)
    view = Viewport(W, H, 160, 120)
    half = render.render_view(settings, frame, shown, view, opacity=0.5, show_ids=False)
    assert half.shape == (120, 160, 3) and half.dtype == np.uint8
    red, green, _ = (int(v) for v in half[40, 40])        # black under red at 0.5
    assert abs(red - 128) <= 1 and green == 0
    clear = render.render_view(settings, frame, shown, view, outline_only=True, show_ids=False)
    assert tuple(clear[40, 40]) == (0, 0, 0), "outline only: the inside shows the frame"
    assert clear[20:22, 20:60, 0].max() == 255, "the outline is drawn"
    plain = render.render_view(settings, frame, [], view, show_ids=False)
    assert tuple(plain[100, 150]) == (100, 100, 100)


def test_ids_are_drawn_at_the_bbox_corner_and_zoom_crops(con, settings, tmp_path):
    frame, shown = _frame_with_mask(con, settings, tmp_path)
    view = Viewport(W, H, 160, 120)
    with_ids = render.render_view(settings, frame, shown, view, opacity=0.0)
    without = render.render_view(settings, frame, shown, view, opacity=0.0, show_ids=False)
    changed = np.argwhere((with_ids != without).any(axis=2))
    assert len(changed), "the id is written"
    assert changed[:, 0].min() >= 0 and changed[:, 0].max() <= 24, "just above the corner (y 20)"
    assert changed[:, 1].min() >= 18, "from the corner (x 20) rightwards"
    zoomed = view.zoomed(4, at=(60, 50))                     # the grey half only, no mask
    crop = render.render_view(settings, frame, shown, zoomed, opacity=1.0)
    assert (crop == 100).all(), "a view outside the mask shows only frame pixels"


def test_a_mask_id_stays_on_screen_when_the_view_starts_inside_its_bbox(con, settings, tmp_path):
    frame, shown = _frame_with_mask(con, settings, tmp_path)
    view = Viewport(W, H, 160, 120).zoomed(4, at=(20, 20))     # shows x 15..35, y 15..30
    with_ids = render.render_view(settings, frame, shown, view, opacity=0.0)
    without = render.render_view(settings, frame, shown, view, opacity=0.0, show_ids=False)
    changed = np.argwhere((with_ids != without).any(axis=2))
    assert len(changed) and changed[:, 0].max() <= 16, "written at the view's top edge"


def test_canvas_jpeg_is_reused_for_the_same_picture_and_redone_when_anything_changes(con, settings,
                                                                                        tmp_path):
    """render_view_jpeg: a click's own run (same frame, view, masks, preview) gets the bytes the
    run before made, without rendering; a new preview, a mask edit or a zoom re-renders."""
    import cv2

    def decode_image_bytes(data: bytes) -> np.ndarray:
        return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                            cv2.COLOR_BGR2RGB)

    frame, shown = _frame_with_mask(con, settings, tmp_path)
    view = Viewport(W, H, 160, 120)
    first = render.render_view_jpeg(settings, frame, shown, view)
    picture = decode_image_bytes(first)
    expected = render.render_view(settings, frame, shown, view)
    assert picture.shape == expected.shape == (120, 160, 3)
    assert np.abs(picture.astype(int) - expected.astype(int)).mean() < 4      # JPEG q92
    assert render.render_view_jpeg(settings, frame, shown, view) is first, "cached, not re-encoded"

    preview = np.zeros((H, W), dtype=bool)
    preview[40:55, 50:70] = True
    with_preview = render.render_view_jpeg(settings, frame, shown, view, preview=preview,
                                           preview_color="#00ff00")
    assert with_preview != first
    green = decode_image_bytes(with_preview)[95:105, 125:135].astype(int)
    assert (green[..., 1] - green[..., 0]).mean() > 40, "the preview is drawn"
    same = preview.copy()                              # another array, same pixels: same picture
    assert render.render_view_jpeg(settings, frame, shown, view, preview=same,
                                   preview_color="#00ff00") is with_preview
    moved = np.roll(preview, 5, axis=1)
    assert render.render_view_jpeg(settings, frame, shown, view, preview=moved,
                                   preview_color="#00ff00") != with_preview

    grown = np.zeros((H, W), dtype=bool)
    grown[10:50, 10:50] = True
    new_id = annotate.replace_mask(con, settings, shown[0].id, grown, by="ann")
    edited = annotations.masks_of(con, frame_ids=[frame.id])
    assert [m.id for m in edited] == [new_id]
    assert render.render_view_jpeg(settings, frame, edited, view) != first, "an edit re-renders"
    zoomed = view.zoomed(2.0)
    assert render.render_view_jpeg(settings, frame, shown, zoomed) != first
    assert render.render_view_jpeg(settings, frame, [], view) != first, "hiding the mask re-renders"

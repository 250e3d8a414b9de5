"""annotate.render_view: the canvas picture of a viewport (crop at canvas size), masks at the
chosen opacity or as outlines only, ids at each mask's bbox corner, masks outside the view
skipped."""

from __future__ import annotations

import numpy as np

from endolite import annotate
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
    half = annotate.render_view(settings, frame, shown, view, opacity=0.5, show_ids=False)
    assert half.shape == (120, 160, 3) and half.dtype == np.uint8
    red, green, _ = (int(v) for v in half[40, 40])        # black under red at 0.5
    assert abs(red - 128) <= 1 and green == 0
    clear = annotate.render_view(settings, frame, shown, view, outline_only=True, show_ids=False)
    assert tuple(clear[40, 40]) == (0, 0, 0), "outline only: the inside shows the frame"
    assert clear[20:22, 20:60, 0].max() == 255, "the outline is drawn"
    plain = annotate.render_view(settings, frame, [], view, show_ids=False)
    assert tuple(plain[100, 150]) == (100, 100, 100)


def test_ids_are_drawn_at_the_bbox_corner_and_zoom_crops(con, settings, tmp_path):
    frame, shown = _frame_with_mask(con, settings, tmp_path)
    view = Viewport(W, H, 160, 120)
    with_ids = annotate.render_view(settings, frame, shown, view, opacity=0.0)
    without = annotate.render_view(settings, frame, shown, view, opacity=0.0, show_ids=False)
    changed = np.argwhere((with_ids != without).any(axis=2))
    assert len(changed), "the id is written"
    assert changed[:, 0].min() >= 0 and changed[:, 0].max() <= 24, "just above the corner (y 20)"
    assert changed[:, 1].min() >= 18, "from the corner (x 20) rightwards"
    zoomed = view.zoomed(4, at=(60, 50))                     # the grey half only, no mask
    crop = annotate.render_view(settings, frame, shown, zoomed, opacity=1.0)
    assert (crop == 100).all(), "a view outside the mask shows only frame pixels"


def test_a_mask_id_stays_on_screen_when_the_view_starts_inside_its_bbox(con, settings, tmp_path):
    frame, shown = _frame_with_mask(con, settings, tmp_path)
    view = Viewport(W, H, 160, 120).zoomed(4, at=(20, 20))     # shows x 15..35, y 15..30
    with_ids = annotate.render_view(settings, frame, shown, view, opacity=0.0)
    without = annotate.render_view(settings, frame, shown, view, opacity=0.0, show_ids=False)
    changed = np.argwhere((with_ids != without).any(axis=2))
    assert len(changed) and changed[:, 0].max() <= 16, "written at the view's top edge"

"""The annotation canvas's viewport maths (endolite.zoom) and the canvas parser through it:
canvas <-> frame round trips with x right / y down, zoom about a point, pan, clamping."""

from __future__ import annotations

import numpy as np
import pytest

from endolite import canvas
from endolite.zoom import MAX_ZOOM, Viewport, fit_size, window_box


def test_fit_size_keeps_the_aspect_and_fills_the_box():
    assert fit_size(1280, 1024, box_width=640, box_height=480) == (600, 480)
    assert fit_size(320, 240, box_width=640, box_height=480) == (640, 480)     # enlarged
    assert fit_size(1920, 1080, box_width=640, box_height=480) == (640, 360)
    with pytest.raises(ValueError):
        fit_size(0, 10, box_width=640, box_height=480)


def test_window_box_fits_width_beside_the_side_column_and_height_below_the_top():
    # 1366x768 as measured in Chromium: main column 906 px, canvas top 190 px
    assert window_box(column_width=906, window_height=768, top=190, side_width=290) == (616, 562)
    # a 4:3 frame in it: width-bound, its bottom (190 + 462) above the window's 768 px
    assert fit_size(320, 240, box_width=616, box_height=562) == (616, 462)
    # a wide window: height-bound, the bottom 16 px above the window's
    box = window_box(column_width=1460, window_height=1080, top=163, side_width=290)
    assert box == (1170, 901)
    w, h = fit_size(1280, 1024, box_width=box[0], box_height=box[1])
    assert 163 + h <= 1080 - 16 and w <= 1170 and abs(w / h - 1.25) < 0.01
    # a tiny window keeps a usable canvas (the page scrolls), a huge one a bounded one
    assert window_box(column_width=300, window_height=200, top=190, side_width=290) == (320, 240)
    assert window_box(column_width=9000, window_height=9000, top=0, side_width=290) == (2400, 1800)


def test_whole_frame_view_maps_corners_and_keeps_x_and_y_apart():
    v = Viewport(320, 240, 640, 480)
    assert v.scale == 0.5
    got = v.to_frame(np.array([[0, 0], [640, 0], [0, 480], [100, 20]]))
    np.testing.assert_allclose(got, [[0, 0], [320, 0], [0, 240], [50, 10]])
    assert v.crop() == (0, 0, 320, 240)


@pytest.mark.parametrize("x0,y0,zoom", [(0, 0, 1), (40, 30, 2), (100.5, 7.25, 4), (300, 220, 16)])
def test_canvas_frame_round_trip(x0, y0, zoom):
    v = Viewport(320, 240, 640, 480, x0, y0, zoom).clamped()
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, [640, 480], size=(50, 2))
    np.testing.assert_allclose(v.to_canvas(v.to_frame(pts)), pts, atol=1e-3)
    frame_pts = rng.uniform([v.x0, v.y0], [v.x0 + v.span[0], v.y0 + v.span[1]], size=(50, 2))
    back = v.to_frame(v.to_canvas(frame_pts))
    np.testing.assert_allclose(back, frame_pts, atol=1e-3)
    on_canvas = v.to_canvas(frame_pts)
    assert (on_canvas >= -1e-3).all() and (on_canvas <= [640 + 1e-3, 480 + 1e-3]).all()


def test_zoom_keeps_the_centre_and_clamps_at_the_edges():
    v = Viewport(320, 240, 640, 480)
    z = v.zoomed(2)
    assert z.zoom == 2 and (z.x0, z.y0) == (80, 60)            # centre (160, 120) stays put
    np.testing.assert_allclose(z.to_frame(np.array([[320, 240]])), [[160, 120]])
    corner = v.zoomed(4, at=(0, 0))
    assert (corner.x0, corner.y0) == (0, 0)
    assert corner.zoomed(1 / 4) == v
    assert v.zoomed(1000).zoom == MAX_ZOOM and v.zoomed(0.1).zoom == 1
    far = z.panned(10, 10)                                       # clamped to the frame
    assert (far.x0, far.y0) == (160, 120) and far.crop() == (160, 120, 320, 240)
    assert z.panned(0.5, 0).x0 == 80 + 80
    assert v.zoomed(2).centred_on(0, 240).state() == (0.0, 120.0, 2.0)


def test_canvas_parser_maps_clicks_through_a_zoomed_view():
    """A click drawn on a 4x view at canvas (100, 60) is frame pixel x0 + 100/8, y0 + 60/8."""
    v = Viewport(320, 240, 640, 480).zoomed(4, at=(200, 90))
    drawing = canvas.point_objects(np.array([[210.0, 95.0]]), np.array([1]), scale=v.scale,
                                   offset=(v.x0, v.y0))
    pts, signs = canvas.points(drawing, scale=v.scale, offset=(v.x0, v.y0))
    np.testing.assert_allclose(pts, [[210, 95]], atol=1e-3)
    assert signs.tolist() == [1]
    rect = {"objects": [{"type": "rect", "left": 100, "top": 60, "width": 80, "height": 40}]}
    [box] = canvas.boxes(rect, scale=v.scale, offset=(v.x0, v.y0))
    expect = [*v.to_frame(np.array([[100, 60]]))[0], *v.to_frame(np.array([[180, 100]]))[0]]
    np.testing.assert_allclose(box, expect, atol=1e-3)
    path = {"objects": [{"type": "path", "strokeWidth": 8,
                         "path": [["M", 100, 60], ["L", 180, 60]]}]}
    mask = canvas.brush_mask(path, scale=v.scale, height=240, width=320, offset=(v.x0, v.y0))
    ys, xs = np.nonzero(mask)
    (fx0, fy), (fx1, _) = v.to_frame(np.array([[100, 60], [180, 60]]))
    assert abs(ys.mean() - fy) < 1 and xs.min() >= fx0 - 2 and xs.max() <= fx1 + 2
    assert mask.sum() < 40, "an 8 canvas px stroke at 8 canvas px per frame px is 1 frame px wide"

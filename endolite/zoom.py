"""The annotation canvas's viewport over a frame: pure maths, no drawing.

A frame of ``(W, H)`` pixels is shown on a canvas of ``(cw, ch)`` CSS pixels (the frame fitted
into the page's canvas box, aspect kept).  The viewport is ``(x0, y0, zoom)``: the frame pixel
at the canvas's top-left corner and the magnification over the fitted view (1 = whole frame).
Coordinates are ``(x, y)`` with x to the right (column) and y down (row), in float pixels;
frame pixel ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``.

    canvas -> frame:  x = x0 + cx / (fit * zoom),   y = y0 + cy / (fit * zoom)
    frame -> canvas:  cx = (x - x0) * fit * zoom,   cy = (y - y0) * fit * zoom

where ``fit = cw / W`` (canvas px per frame px at zoom 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

MAX_ZOOM = 16.0
ZOOM_STEP = 2.0


def fit_size(width: int, height: int, *, box_width: int, box_height: int) -> tuple[int, int]:
    """The canvas ``(cw, ch)`` showing a ``width`` x ``height`` frame whole inside the box
    ``box_width`` x ``box_height`` with its aspect ratio kept (small frames are enlarged)."""
    if width < 1 or height < 1:
        raise ValueError(f"frame size {width}x{height}: both must be >= 1")
    factor = min(box_width / width, box_height / height)
    return max(1, round(width * factor)), max(1, round(height * factor))


def window_box(*, column_width: int, window_height: int, top: int, side_width: int,
               bottom_margin: int = 16, minimum: tuple[int, int] = (320, 240),
               maximum: tuple[int, int] = (2400, 1800)) -> tuple[int, int]:
    """The canvas box ``(box_width, box_height)`` in CSS px that fits the browser's window: the
    page's main column is ``column_width`` px wide and shares it with a side column of
    ``side_width`` px (gaps included); the canvas starts ``top`` px below the page's top and
    must end ``bottom_margin`` px above the window's bottom (``window_height`` px tall), so the
    whole frame shows without scrolling.  Clamped to ``[minimum, maximum]`` (a tiny window gets
    a scrollable page rather than a useless canvas).  Pass the result to ``fit_size``."""
    width = min(max(column_width - side_width, minimum[0]), maximum[0])
    height = min(max(window_height - top - bottom_margin, minimum[1]), maximum[1])
    return int(width), int(height)


@dataclass(frozen=True)
class Viewport:
    """What part of a ``frame_w`` x ``frame_h`` frame a ``canvas_w`` x ``canvas_h`` canvas shows.

    ``x0, y0``: frame pixel at the canvas's top-left; ``zoom`` >= 1 (1: the whole frame)."""

    frame_w: int
    frame_h: int
    canvas_w: int
    canvas_h: int
    x0: float = 0.0
    y0: float = 0.0
    zoom: float = 1.0

    @property
    def fit(self) -> float:
        """Canvas px per frame px at zoom 1."""
        return self.canvas_w / self.frame_w

    @property
    def scale(self) -> float:
        """Frame px per canvas px at this zoom (what ``endolite.canvas`` calls ``scale``)."""
        return 1.0 / (self.fit * self.zoom)

    @property
    def span(self) -> tuple[float, float]:
        """``(w, h)`` of the frame region shown, in frame px."""
        return self.frame_w / self.zoom, self.frame_h / self.zoom

    def crop(self) -> tuple[int, int, int, int]:
        """The integer frame region ``(x0, y0, x1, y1)`` (exclusive ends) the canvas shows."""
        w, h = self.span
        x0, y0 = int(np.floor(self.x0)), int(np.floor(self.y0))
        x1 = min(self.frame_w, int(np.ceil(self.x0 + w)))
        y1 = min(self.frame_h, int(np.ceil(self.y0 + h)))
        return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        """Canvas points ``(N, 2) (x, y)`` -> frame pixels ``(N, 2) float32 (x, y)``."""
        pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return (pts * self.scale + (self.x0, self.y0)).astype(np.float32)

    def to_canvas(self, xy: np.ndarray) -> np.ndarray:
        """Frame pixels ``(N, 2) (x, y)`` -> canvas points ``(N, 2) float32 (x, y)``."""
        pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return ((pts - (self.x0, self.y0)) / self.scale).astype(np.float32)

    def clamped(self) -> Viewport:
        """The same view with zoom in ``[1, MAX_ZOOM]`` and the region inside the frame."""
        zoom = float(min(max(self.zoom, 1.0), MAX_ZOOM))
        w, h = self.frame_w / zoom, self.frame_h / zoom
        x0 = float(min(max(self.x0, 0.0), self.frame_w - w))
        y0 = float(min(max(self.y0, 0.0), self.frame_h - h))
        return replace(self, x0=x0, y0=y0, zoom=zoom)

    def zoomed(self, factor: float, *, at: tuple[float, float] | None = None) -> Viewport:
        """Zoom by ``factor`` keeping frame point ``at`` (default: the view's centre) where it is
        on the canvas (as far as the frame's edges allow)."""
        w, h = self.span
        ax, ay = at if at is not None else (self.x0 + w / 2, self.y0 + h / 2)
        zoom = float(min(max(self.zoom * factor, 1.0), MAX_ZOOM))
        ratio = self.zoom / zoom               # new span / old span
        return replace(self, zoom=zoom, x0=ax - (ax - self.x0) * ratio,
                       y0=ay - (ay - self.y0) * ratio).clamped()

    def panned(self, dx: float, dy: float) -> Viewport:
        """Move the view by ``(dx, dy)`` fractions of its own span (e.g. 0.5 = half a view right)."""
        w, h = self.span
        return replace(self, x0=self.x0 + dx * w, y0=self.y0 + dy * h).clamped()

    def centred_on(self, x: float, y: float) -> Viewport:
        """The view of the same zoom centred on frame pixel ``(x, y)`` (clamped to the frame)."""
        w, h = self.span
        return replace(self, x0=x - w / 2, y0=y - h / 2).clamped()

    def state(self) -> tuple[float, float, float]:
        """``(x0, y0, zoom)``: what the page keeps between reruns."""
        return (round(self.x0, 3), round(self.y0, 3), round(self.zoom, 4))

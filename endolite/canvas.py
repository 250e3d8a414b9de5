"""Turn the drawing canvas's Fabric.js JSON into prompts and masks in image pixels.

The annotation page shows a frame of ``(H, W)`` pixels on a canvas through a viewport
(``endolite.zoom``): image coordinates are canvas coordinates times ``scale`` (frame px per
canvas px) plus ``offset`` ``(x0, y0)``, the frame pixel at the canvas's top-left (default 0, 0).
Points are ``(x, y)`` (x = column, y = row); boxes ``(x0, y0, x1, y1)``; masks ``(H, W) bool``.
Click signs come from the fill colour the page draws them with (POSITIVE / NEGATIVE).
"""

from __future__ import annotations

from typing import Any

import numpy as np

POSITIVE = "rgba(0, 200, 0, 0.9)"
NEGATIVE = "rgba(230, 0, 0, 0.9)"


def _objects(drawing: dict[str, Any] | None, *types: str) -> list[dict[str, Any]]:
    wanted = {t.lower() for t in types}
    return [o for o in (drawing or {}).get("objects", []) if str(o.get("type", "")).lower() in wanted]


Offset = tuple[float, float]


def points(drawing: dict[str, Any] | None, *, scale: float,
           offset: Offset = (0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Clicks drawn in "point" mode -> (points (N, 2) float32 (x, y) in image pixels,
    labels (N,) int32: 1 for a positive click, 0 for a negative one)."""
    xy, signs = [], []
    for obj in _objects(drawing, "circle"):
        radius = float(obj.get("radius", 0)) * float(obj.get("scaleX", 1))
        stroke = float(obj.get("strokeWidth", 0))
        left, top = float(obj.get("left", 0)), float(obj.get("top", 0))
        origin_x, origin_y = obj.get("originX", "left"), obj.get("originY", "center")
        x = left + radius + stroke / 2 if origin_x == "left" else left
        y = top if origin_y == "center" else top + radius + stroke / 2
        xy.append((x * scale + offset[0], y * scale + offset[1]))
        signs.append(0 if str(obj.get("fill", "")).replace(" ", "") == NEGATIVE.replace(" ", "") else 1)
    return np.asarray(xy, dtype=np.float32).reshape(-1, 2), np.asarray(signs, dtype=np.int32)


def boxes(drawing: dict[str, Any] | None, *, scale: float,
          offset: Offset = (0.0, 0.0)) -> list[tuple[float, float, float, float]]:
    """Rectangles -> boxes ``(x0, y0, x1, y1)`` in image pixels."""
    out = []
    for obj in _objects(drawing, "rect", "labeledrect"):
        width = float(obj.get("width", 0)) * float(obj.get("scaleX", 1))
        height = float(obj.get("height", 0)) * float(obj.get("scaleY", 1))
        left = float(obj.get("left", 0)) - (width / 2 if obj.get("originX") == "center" else 0)
        top = float(obj.get("top", 0)) - (height / 2 if obj.get("originY") == "center" else 0)
        ox, oy = offset
        out.append((left * scale + ox, top * scale + oy, (left + width) * scale + ox,
                    (top + height) * scale + oy))
    return out


def polygons(drawing: dict[str, Any] | None, *, scale: float,
             offset: Offset = (0.0, 0.0)) -> list[np.ndarray]:
    """Closed polygons -> vertex arrays ``(N, 2) float32 (x, y)`` in image pixels."""
    out = []
    for obj in _objects(drawing, "polygon"):
        pts = np.asarray([(p["x"], p["y"]) for p in obj.get("points", [])], dtype=np.float32)
        if len(pts) >= 3:
            out.append((pts * scale + np.asarray(offset, dtype=np.float32)).astype(np.float32))
    return out


def _path_points(path: list[list[Any]]) -> np.ndarray:
    pts = []
    for cmd in path:
        if not cmd:
            continue
        op, args = str(cmd[0]).upper(), [float(v) for v in cmd[1:]]
        if op in ("M", "L") and len(args) >= 2:
            pts.append(args[:2])
        elif op == "Q" and len(args) >= 4:
            pts.extend([args[0:2], args[2:4]])
        elif op == "C" and len(args) >= 6:
            pts.extend([args[0:2], args[2:4], args[4:6]])
    return np.asarray(pts, dtype=np.float32).reshape(-1, 2)


def brush_mask(drawing: dict[str, Any] | None, *, scale: float, height: int, width: int,
               offset: Offset = (0.0, 0.0)) -> np.ndarray:
    """Free-hand strokes -> ``(H, W) bool``: every pixel a stroke of its width covers."""
    import cv2

    canvas = np.zeros((height, width), dtype=np.uint8)
    for obj in _objects(drawing, "path"):
        pts = _path_points(obj.get("path", []))
        if len(pts) == 0:
            continue
        thickness = max(1, int(round(float(obj.get("strokeWidth", 1)) * scale)))
        poly = np.round(pts * scale + np.asarray(offset)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [poly], isClosed=False, color=1, thickness=thickness, lineType=cv2.LINE_8)
        for x, y in poly.reshape(-1, 2):
            cv2.circle(canvas, (int(x), int(y)), thickness // 2, 1, -1)
    return canvas.astype(bool)


def point_objects(xy: np.ndarray, labels: np.ndarray, *, scale: float, radius: int = 5,
                  offset: Offset = (0.0, 0.0)) -> dict[str, Any]:
    """The inverse of :func:`points`: an initial drawing showing clicks at image pixels ``xy``."""
    objects = []
    for (x, y), sign in zip(np.asarray(xy).reshape(-1, 2), np.asarray(labels).reshape(-1)):
        objects.append({"type": "Circle", "left": (float(x) - offset[0]) / scale - radius - 1,
                        "top": (float(y) - offset[1]) / scale,
                        "originX": "left", "originY": "center", "radius": radius, "strokeWidth": 2,
                        "stroke": "white", "fill": POSITIVE if sign else NEGATIVE,
                        "selectable": False, "evented": False})
    return {"objects": objects}

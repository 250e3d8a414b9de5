"""Static redaction of a video or image: what to black out, blacking it out, and re-encoding.

A :class:`Redaction` is one fixed mask for every frame of a video (the processor prints patient
text at fixed places of the screen): everything **outside the field of view**, plus every text
box OCR found on any sampled frame (padded by ``pad`` pixels), plus the rectangles a person
drew.  :func:`apply_redaction` blacks those pixels out; :func:`anonymize_video` re-encodes a
whole video with the mask applied to every frame and without container metadata.

Conventions: images are ``(H, W, 3) uint8`` RGB; masks ``(H, W) bool`` with True = blacked out;
boxes and rectangles are pixel coordinates ``(x0, y0, x1, y1)``, x the column (right), y the row
(down), ``x1``/``y1`` exclusive.  The FOV polygon is ``(x, y)`` vertices of its convex hull.
Empty-FOV policy: when no field of view was found (every sampled frame dark) nothing counts as
inside it, so the whole frame is blacked out (safe by default).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from endolite.errors import InvalidInput

Box = tuple[int, int, int, int]
Progress = Callable[[float, str], None]
DEFAULT_PAD = 4


@dataclass(frozen=True)
class Redaction:
    """One static mask for frames of ``width`` x ``height`` pixels.

    ``fov_polygon``: ``(x, y)`` int vertices of the field of view (convex hull; empty = none
    found, everything outside).  ``text_boxes``: OCR boxes as found (unpadded); ``rectangles``:
    boxes a person drew.  Both are ``(x0, y0, x1, y1)`` ints clipped to the frame.  ``pad``:
    pixels added on every side of each text box (not of the drawn rectangles).
    """

    width: int
    height: int
    fov_polygon: tuple[tuple[int, int], ...]
    text_boxes: tuple[Box, ...] = ()
    rectangles: tuple[Box, ...] = ()
    pad: int = DEFAULT_PAD

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def mask(self) -> np.ndarray:
        """``(H, W) bool``: True where the frame is blacked out."""
        import cv2

        inside = np.zeros(self.shape, np.uint8)
        if len(self.fov_polygon) >= 3:
            cv2.fillConvexPoly(inside, np.asarray(self.fov_polygon, np.int32).reshape(-1, 1, 2), 1)
        mask = inside == 0
        for x0, y0, x1, y1 in self.text_boxes:
            mask[max(0, y0 - self.pad):min(self.height, y1 + self.pad),
                 max(0, x0 - self.pad):min(self.width, x1 + self.pad)] = True
        for x0, y0, x1, y1 in self.rectangles:
            mask[y0:y1, x0:x1] = True
        return mask

    def to_json(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height,
                "fov_polygon": [list(p) for p in self.fov_polygon],
                "text_boxes": [list(b) for b in self.text_boxes],
                "rectangles": [list(b) for b in self.rectangles], "pad": self.pad}


def check_rectangle(value: Any, *, width: int, height: int, name: str = "rectangle") -> Box:
    """``[x0, y0, x1, y1]`` (numbers or a "x0,y0,x1,y1" string) -> ints clipped to the frame.

    Raises InvalidInput naming ``name`` when it is not four numbers with x0 < x1 and y0 < y1,
    or lies wholly outside the ``width`` x ``height`` frame.
    """
    parts = value.split(",") if isinstance(value, str) else value
    try:
        numbers = [float(v) for v in parts]
    except (TypeError, ValueError):
        raise InvalidInput(f"{name}: {value!r} is not four numbers x0,y0,x1,y1") from None
    if len(numbers) != 4 or not all(np.isfinite(numbers)):
        raise InvalidInput(f"{name}: {value!r} is not four numbers x0,y0,x1,y1")
    x0, y0, x1, y1 = numbers
    if not (x0 < x1 and y0 < y1):
        raise InvalidInput(f"{name}: {value!r} needs x0 < x1 and y0 < y1 (x right, y down)")
    box = (max(0, int(np.floor(x0))), max(0, int(np.floor(y0))),
           min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1))))
    if box[0] >= box[2] or box[1] >= box[3]:
        raise InvalidInput(f"{name}: {value!r} lies outside the {width}x{height} frame")
    return box


def build_redaction(width: int, height: int, *, fov_polygon: Any = (),
                    text_boxes: Iterable[Sequence[int]] = (),
                    rectangles: Iterable[Any] = (), pad: int = DEFAULT_PAD) -> Redaction:
    """A :class:`Redaction` from a FOV polygon (``(N, 2)`` ``(x, y)``; a ``FieldOfView``'s
    ``polygon``), OCR boxes and drawn rectangles (see :func:`check_rectangle`)."""
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise InvalidInput(f"pad: {pad!r} is not a whole number >= 0")
    polygon = tuple((int(x), int(y)) for x, y in np.asarray(fov_polygon, np.int64).reshape(-1, 2))
    boxes = tuple(check_rectangle(b, width=width, height=height, name=f"text box {b}")
                  for b in text_boxes)
    rects = tuple(check_rectangle(r, width=width, height=height, name=f"redaction {i + 1}")
                  for i, r in enumerate(rectangles))
    return Redaction(width=int(width), height=int(height), fov_polygon=polygon,
                     text_boxes=tuple(dict.fromkeys(boxes)), rectangles=rects, pad=int(pad))


def redaction_from_json(data: dict[str, Any]) -> Redaction:
    """Inverse of :meth:`Redaction.to_json`."""
    return build_redaction(data["width"], data["height"], fov_polygon=data.get("fov_polygon") or (),
                           text_boxes=data.get("text_boxes") or (),
                           rectangles=data.get("rectangles") or (), pad=data.get("pad", DEFAULT_PAD))


def apply_redaction(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``image`` ``(H, W, 3) uint8`` with the ``mask`` ``(H, W) bool`` pixels set to 0."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise InvalidInput(f"expected an (H, W, 3) uint8 RGB image, got {arr.shape} {arr.dtype}")
    if mask.shape != arr.shape[:2]:
        raise InvalidInput(f"image size {arr.shape[1]}x{arr.shape[0]} differs from the redaction's "
                           f"{mask.shape[1]}x{mask.shape[0]}")
    out = arr.copy()
    out[mask] = 0
    return out


def _rate(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(25)


def anonymize_video(src: str | os.PathLike[str], dst: str | os.PathLike[str], redaction: Redaction, *,
                    crf: int = 18, preset: str = "veryfast", progress: Progress | None = None
                    ) -> dict[str, Any]:
    """Re-encode ``src`` into ``dst`` (MP4, H.264 libx264 yuv420p) with ``redaction`` applied to
    every decoded frame; returns ``{"frames", "width", "height", "fps"}``.

    Same frame rate (the source's average rate) and one output frame per decoded frame, in
    presentation order, so frame numbers carry over.  Width and height stay; an odd one (which
    yuv420p cannot hold) gets one black column / row added on the right / bottom.  Audio,
    subtitles and data streams are dropped.  No metadata is written: no container or stream
    tags (title, date, comment, creation_time, encoder: ``fflags=+bitexact``) and the x264 SEI
    with the encoder's settings is removed (``filter_units=remove_types=6``).  Written under a
    temporary name beside ``dst`` and moved into place; a failure leaves no file.
    Raises InvalidInput for an unreadable video or one whose size differs from the redaction's.
    """
    import av
    from av.bitstream import BitStreamFilterContext

    src, dst = Path(src), Path(dst)
    mask = redaction.mask()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{dst.name}")
    frames = 0
    try:
        with av.open(str(src)) as source:
            if not source.streams.video:
                raise InvalidInput(f"{src.name}: no video stream")
            stream_in = source.streams.video[0]
            stream_in.thread_type = "AUTO"
            width, height = stream_in.codec_context.width, stream_in.codec_context.height
            if (width, height) != (redaction.width, redaction.height):
                raise InvalidInput(f"{src.name}: {width}x{height} frames, but the redaction is for "
                                   f"{redaction.width}x{redaction.height}")
            out_w, out_h = width + width % 2, height + height % 2
            total = int(stream_in.frames or 0)
            rate = _rate(stream_in)
            with av.open(str(tmp), mode="w", format="mp4", options={"fflags": "+bitexact"}) as out:
                stream = out.add_stream("libx264", rate=rate)
                stream.width, stream.height, stream.pix_fmt = out_w, out_h, "yuv420p"
                stream.options = {"crf": str(int(crf)), "preset": preset}
                stream.codec_context.flags |= av.codec.context.Flags.bitexact
                bsf: list[BitStreamFilterContext] = []

                def mux(packets) -> None:
                    if not bsf:
                        bsf.append(BitStreamFilterContext("filter_units=remove_types=6", stream))
                    for packet in packets:
                        for filtered in bsf[0].filter(packet):
                            out.mux(filtered)

                for frame in source.decode(stream_in):
                    rgb = apply_redaction(frame.to_ndarray(format="rgb24"), mask)
                    if (out_w, out_h) != (width, height):
                        rgb = np.pad(rgb, ((0, out_h - height), (0, out_w - width), (0, 0)))
                    mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
                    frames += 1
                    if progress is not None and total and frames % 25 == 0:
                        progress(min(frames / total, 1.0), f"re-encoded {frames} of {total} frames")
                mux(stream.encode())
                if bsf:
                    for filtered in bsf[0].filter(None):
                        out.mux(filtered)
        if frames == 0:
            raise InvalidInput(f"{src.name}: no frame could be decoded")
        os.replace(tmp, dst)
    except av.error.FFmpegError as exc:
        raise InvalidInput(f"{src.name}: cannot re-encode ({exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    if progress is not None:
        progress(1.0, f"re-encoded {frames} frames")
    return {"frames": frames, "width": out_w, "height": out_h, "fps": float(rate)}


__all__ = ["DEFAULT_PAD", "Redaction", "anonymize_video", "apply_redaction", "build_redaction",
           "check_rectangle", "redaction_from_json"]

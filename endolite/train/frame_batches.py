"""Frames for prediction, in batches of uint8 RGB images at the model's size.

``VideoBatches`` decodes a video with PyAV (frame threading, each frame scaled to S x S RGB by
the decoder) in a thread that fills a small queue while the caller works on the previous batch;
``image_batches`` reads frame files and squashes them to S x S (``squash``).  Frame numbers of
a video are its decoded frame index (0-based): every ``every``-th frame, 0, n, 2n, ...
``endolite.train.predict`` runs the network over these batches; nothing here touches torch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from endolite.errors import InvalidInput

#: Batches the decoder thread may hold ready before it waits for the consumer.
QUEUE_BATCHES = 3


def squash(rgb: np.ndarray, size: int) -> np.ndarray:
    """An image resized to size x size (cv2 INTER_AREA when shrinking, else INTER_LINEAR);
    grey ``(H, W)`` is repeated to 3 channels and a 4th channel dropped; uint8 ``(S, S, 3)``."""
    import cv2

    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    rgb = rgb[..., :3]
    if rgb.shape[:2] == (size, size):
        return np.ascontiguousarray(rgb)
    shrink = rgb.shape[0] > size or rgb.shape[1] > size
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def image_batches(paths: Sequence[str | Path], *, size: int,
                  batch_size: int = 16) -> Iterator[np.ndarray]:
    """The image files at ``paths`` in order, as uint8 ``(B, S, S, 3)`` batches of at most
    ``batch_size`` (``endolite.media.images.read_image``, then ``squash``)."""
    from endolite.media.images import read_image

    for start in range(0, len(paths), batch_size):
        yield np.stack([squash(read_image(p), size) for p in paths[start:start + batch_size]])


def frame_count(path: Path) -> int:
    """The video stream's frame count from the container (0 when it does not say or the file
    cannot be opened: decoding reports the real error)."""
    import av

    try:
        with av.open(str(path)) as container:
            return int(container.streams.video[0].frames or 0)
    except Exception:  # noqa: BLE001 - decoding reports the real error
        return 0


class VideoBatches:
    """Every ``every``-th decoded frame of the video at ``path`` as ``(frame_numbers int64 (B,),
    images uint8 (B, S, S, 3))`` batches of at most ``batch_size``, decoded in a thread.

    Use as a context manager and iterate inside it; leaving the block (also early, on a break
    or an error) stops the decoder thread and waits for it.  Afterwards ``decoded`` is the
    number of frames the decoder produced (every frame is decoded, even when every n-th is
    kept) and ``error`` the decoder's error message (None when it decoded to the end or was
    stopped).  ``total``: the container's frame count (0 when unknown).  InvalidInput for a
    missing file or ``every`` < 1.
    """

    def __init__(self, path: str | Path, *, size: int, every: int = 1, batch_size: int = 16):
        if every < 1:
            raise InvalidInput(f"every: must be at least 1, got {every}")
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidInput(f"video {self.path}: no such file")
        self.size, self.every, self.batch_size = int(size), int(every), int(batch_size)
        self.total = frame_count(self.path)
        self.decoded = 0
        self.error: str | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> VideoBatches:
        self._thread = threading.Thread(target=self._decode, name="endolite-predict-decode",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        thread = self._thread
        if thread is None:
            return
        while thread.is_alive():         # unblock a decoder waiting on a full queue
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self._thread is None:
            raise RuntimeError("VideoBatches: iterate inside its `with` block")
        while True:
            item = self._queue.get()
            if item is None:
                return
            yield item

    def _decode(self) -> None:
        """The decoder thread: batches onto the queue, then None.  Errors go to ``error``."""
        import av

        nums: list[int] = []
        imgs: list[np.ndarray] = []
        size, out = self.size, self._queue
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                index = 0
                for frame in container.decode(stream):
                    if self._stop.is_set():
                        return
                    if index % self.every == 0:
                        imgs.append(frame.to_ndarray(width=size, height=size, format="rgb24"))
                        nums.append(index)
                        if len(imgs) == self.batch_size:
                            out.put((np.asarray(nums, np.int64), np.stack(imgs)))
                            nums, imgs = [], []
                    index += 1
                    self.decoded = index
            if imgs:
                out.put((np.asarray(nums, np.int64), np.stack(imgs)))
        except Exception as exc:  # noqa: BLE001 - reported by the consumer
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            out.put(None)

"""Media primitives: hashing, PyAV probing, image reading, atomic file writes.

Images are numpy arrays ``(H, W, 3) uint8`` in RGB order unless said otherwise.  Frame numbers
count from 0 in presentation order; timestamps are seconds from the stream start.

Modules: ``files`` (sha256, atomic writes), ``images`` (read / encode / write still images),
``video`` (probe, demux-only ``StreamIndex``), ``plan`` (sparse decoding plans, pure),
``decode`` (PyAV decoding: thumbnails, target frames).  Every name is re-exported here:
callers write ``from endolite import media`` and ``media.decode_frames(...)``.
"""

from endolite.media.decode import (
    DecodeCounter,
    decode_frames,
    frame_to_bgr,
    luma_thumbnail,
    scan_thumbnails,
)
from endolite.media.files import copy_file_atomic, sha256_bytes, sha256_file, write_bytes_atomic
from endolite.media.images import (
    BROWSER_EXTENSIONS,
    IMAGE_EXTENSIONS,
    encode_bgr,
    encode_image,
    read_image,
    write_image_atomic,
)
from endolite.media.plan import DecodeRun, full_scan_cost, plan_cost, plan_sparse, seek_each_cost
from endolite.media.video import StreamIndex, VideoInfo, index_video, probe

__all__ = [
    "BROWSER_EXTENSIONS", "IMAGE_EXTENSIONS", "DecodeCounter", "DecodeRun", "StreamIndex",
    "VideoInfo", "copy_file_atomic", "decode_frames", "encode_bgr", "encode_image",
    "frame_to_bgr", "full_scan_cost", "index_video", "luma_thumbnail", "plan_cost",
    "plan_sparse", "probe", "read_image", "scan_thumbnails", "seek_each_cost", "sha256_bytes",
    "sha256_file", "write_bytes_atomic", "write_image_atomic",
]

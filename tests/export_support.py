"""Test set-up for exports: a small project whose media carry a recorded anonymization.

``mark_anonymized`` records an anonymization the way ``services.anonymization`` does (blanked
copies under ``anonymized/``, their hashes, the status row) but with the media copied as they
are, so gate and format tests run in milliseconds; the real redaction and its OCR check are
tested in tests/test_anonymize*.py.
"""

from __future__ import annotations

import hashlib
import shutil

from endolite.storage import anonymizations as anon
from endolite.storage.tx import transaction


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mark_anonymized(con, settings, *, video_id=None, group_id=None, validate=True, by="lena"):
    folder = settings.anonymized_media_dir(video_id=video_id, group_id=group_id)
    folder.mkdir(parents=True, exist_ok=True)
    column = "video_id" if video_id is not None else "group_id"
    media_id = video_id if video_id is not None else group_id
    rows = []
    for fid, path in con.execute(f"SELECT id, path FROM frames WHERE {column} = ? ORDER BY id",
                                 [media_id]).fetchall():
        src = settings.absolute(path)
        dst = folder / f"frame_{fid}{src.suffix.lower()}"
        shutil.copyfile(src, dst)
        rows.append((fid, settings.relative(dst), _sha(dst)))
    rel = None
    if video_id is not None:
        raw = con.execute("SELECT path FROM videos WHERE id = ?", [video_id]).fetchone()[0]
        dst = folder / "video.mp4"
        shutil.copyfile(settings.absolute(raw), dst)
        rel, digest = settings.relative(dst), _sha(dst)
    else:
        digest = anon.group_digest((fid, sha) for fid, _, sha in rows)
    with transaction(con):
        anon.save(con, video_id=video_id, group_id=group_id, fov={}, text_boxes=[], redactions=[],
                  residual=[], sampled_frames=50, path=rel, sha256=digest, created_by=by)
        anon.set_frames(con, rows)
    if validate:
        anon.decide(con, video_id=video_id, group_id=group_id, validated=True, reason=None,
                    decided_by=by)

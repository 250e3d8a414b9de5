-- endolite schema, version 7: perceptual hashes of frames (near-duplicate search).
-- frame_phash: one row per frame (kept by the repository; no unique index, since DuckDB's trip
--   on delete + insert of the same key in one transaction).  ``sha256`` is the frame file's hash
--   the phash was computed from: a row whose sha256 no longer matches the frame is stale.
--   ``phash``: imagehash.phash (64-bit DCT hash) as 16 hex digits.

CREATE TABLE frame_phash (
    frame_id BIGINT NOT NULL,
    sha256 VARCHAR NOT NULL,
    phash VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
);
CREATE INDEX idx_frame_phash ON frame_phash (frame_id);

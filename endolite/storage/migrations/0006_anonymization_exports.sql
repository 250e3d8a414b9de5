-- endolite schema, version 6: anonymization, its validation, frame tags, exports.
-- anonymizations: one row per video or image group that has been anonymized (no row = raw).
--   status: anonymized | validated | rejected.  Re-anonymizing replaces the row's content and
--   sets status back to anonymized (validation cleared).  ``sha256`` is the anonymized video
--   file's hash (image group: the hash over its blanked frames' hashes, in frame id order);
--   ``validated_sha256`` is what the lead validated; the export gate compares them.
-- anonymized_frames: each frame's blanked copy (path below data/anonymized/, its sha256).
-- frame_tags: user tags on frames (reviewed, accepted, needs-second-look, ...), who and when.
-- exports: the zips written to data/exports/, who asked, what went in.

CREATE SEQUENCE seq_anonymizations START 1;
CREATE TABLE anonymizations (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_anonymizations'),
    video_id BIGINT,
    group_id BIGINT,
    status VARCHAR NOT NULL,            -- anonymized | validated | rejected
    fov VARCHAR NOT NULL DEFAULT '{}',  -- JSON: the field of view (video) / per frame (group)
    text_boxes VARCHAR NOT NULL DEFAULT '[]',   -- JSON: OCR boxes found on the raw media
    redactions VARCHAR NOT NULL DEFAULT '[]',   -- JSON: rectangles a person drew [x0, y0, x1, y1]
    residual VARCHAR NOT NULL DEFAULT '[]',     -- JSON: OCR boxes left on the anonymized media
    sampled_frames INTEGER NOT NULL DEFAULT 0,  -- frames the residual check read
    path VARCHAR,                       -- anonymized video file (relative to the data dir)
    sha256 VARCHAR NOT NULL,
    validated_sha256 VARCHAR,
    reason VARCHAR,                     -- why it was sent back
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR,
    decided_at TIMESTAMP,
    decided_by VARCHAR
);
-- one row per video / group: kept by the repository (DuckDB's unique indexes trip on updates)
CREATE INDEX idx_anonymizations_video ON anonymizations (video_id);
CREATE INDEX idx_anonymizations_group ON anonymizations (group_id);

CREATE TABLE anonymized_frames (
    frame_id BIGINT PRIMARY KEY,
    path VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
);

CREATE SEQUENCE seq_frame_tags START 1;
CREATE TABLE frame_tags (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_frame_tags'),
    frame_id BIGINT NOT NULL,
    tag VARCHAR NOT NULL,
    username VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
);
CREATE INDEX idx_frame_tags ON frame_tags (frame_id);

CREATE SEQUENCE seq_exports START 1;
CREATE TABLE exports (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_exports'),
    format VARCHAR NOT NULL,
    path VARCHAR NOT NULL,              -- relative to the data dir
    size_bytes BIGINT NOT NULL,
    sha256 VARCHAR NOT NULL,
    encrypted_to VARCHAR,
    video_ids BIGINT[] NOT NULL,
    group_ids BIGINT[] NOT NULL,
    options VARCHAR NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);

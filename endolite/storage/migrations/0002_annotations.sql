-- endolite schema, version 2: annotations (masks / boxes / polygons), frame labels, time segments.
-- Masks are COCO RLE (column-major, pycocotools) with size, area and bbox in the row.
-- Deleting sets deleted_at (so "undo" can restore); every query filters deleted_at IS NULL.

CREATE SEQUENCE seq_masks START 1;
CREATE TABLE masks (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_masks'),
    frame_id BIGINT NOT NULL,
    label_id BIGINT NOT NULL,
    annotator VARCHAR NOT NULL,
    source VARCHAR NOT NULL,            -- manual | sam | propagated | model | import
    kind VARCHAR NOT NULL,              -- mask | box | polygon
    height INTEGER NOT NULL,
    width INTEGER NOT NULL,
    rle VARCHAR NOT NULL,               -- COCO RLE counts string
    area BIGINT NOT NULL,
    bbox DOUBLE[] NOT NULL,             -- x, y, w, h in pixels
    prompt VARCHAR NOT NULL DEFAULT '{}',  -- {"points": [[x, y, 1|0], ...], "box": [x0, y0, x1, y1]}
    confidence DOUBLE,
    flagged BOOLEAN NOT NULL DEFAULT FALSE,
    origin_mask_id BIGINT,              -- the mask a propagated one was carried from
    deleted_at TIMESTAMP,
    deleted_by VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);
CREATE INDEX idx_masks_frame ON masks (frame_id);

CREATE SEQUENCE seq_frame_labels START 1;
CREATE TABLE frame_labels (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_frame_labels'),
    frame_id BIGINT,                    -- NULL for rows materialised from a segment before frames exist
    video_id BIGINT,
    frame_number BIGINT,
    label_id BIGINT NOT NULL,
    annotator VARCHAR NOT NULL,
    value VARCHAR NOT NULL,             -- present | absent | unknown
    float_value DOUBLE,
    source VARCHAR NOT NULL DEFAULT 'manual',   -- manual | segment | model | import
    segment_id BIGINT,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    updated_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
);
CREATE INDEX idx_frame_labels_frame ON frame_labels (frame_id);
CREATE INDEX idx_frame_labels_video ON frame_labels (video_id, frame_number);

CREATE SEQUENCE seq_segments START 1;
CREATE TABLE segments (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_segments'),
    video_id BIGINT NOT NULL,
    label_id BIGINT NOT NULL,
    start_frame BIGINT NOT NULL,
    end_frame BIGINT NOT NULL,
    annotator VARCHAR NOT NULL,
    for_export BOOLEAN NOT NULL DEFAULT TRUE,
    deleted_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);

-- endolite schema, version 1: users, media (videos, image groups, frames), labels, jobs, audit.
-- JSON lives in VARCHAR columns (json.dumps / json.loads in the repositories).
-- No FOREIGN KEY constraints: DuckDB rewrites updated rows, which trips them; the
-- repositories keep references consistent instead.

CREATE SEQUENCE seq_users START 1;
CREATE TABLE users (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_users'),
    name VARCHAR NOT NULL UNIQUE,
    role VARCHAR NOT NULL,
    password_hash VARCHAR NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);

CREATE SEQUENCE seq_videos START 1;
CREATE TABLE videos (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_videos'),
    sha256 VARCHAR NOT NULL UNIQUE,
    title VARCHAR NOT NULL,
    original_name VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    container VARCHAR NOT NULL,
    codec VARCHAR NOT NULL,
    fps DOUBLE NOT NULL,
    frame_count BIGINT NOT NULL,
    duration DOUBLE NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    size_bytes BIGINT NOT NULL,
    source_url VARCHAR,
    client_metadata VARCHAR NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);

CREATE SEQUENCE seq_image_groups START 1;
CREATE TABLE image_groups (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_image_groups'),
    title VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    source_url VARCHAR,
    client_metadata VARCHAR NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);

CREATE SEQUENCE seq_extractions START 1;
CREATE TABLE extractions (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_extractions'),
    video_id BIGINT NOT NULL,
    method VARCHAR NOT NULL,
    params VARCHAR NOT NULL DEFAULT '{}',
    frames_decoded BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);

CREATE SEQUENCE seq_frames START 1;
CREATE TABLE frames (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_frames'),
    video_id BIGINT,
    group_id BIGINT,
    frame_number BIGINT NOT NULL,
    timestamp DOUBLE,
    path VARCHAR NOT NULL,
    original_name VARCHAR,
    original_path VARCHAR,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    sha256 VARCHAR NOT NULL,
    is_context BOOLEAN NOT NULL DEFAULT FALSE,
    parent_id BIGINT,
    extraction_id BIGINT,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);
CREATE INDEX idx_frames_video ON frames (video_id, frame_number);
CREATE INDEX idx_frames_group ON frames (group_id, frame_number);

CREATE SEQUENCE seq_labels START 1;
CREATE TABLE labels (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_labels'),
    name VARCHAR NOT NULL UNIQUE,
    kind VARCHAR NOT NULL,
    color VARCHAR NOT NULL,
    allowed VARCHAR[] NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);

CREATE SEQUENCE seq_jobs START 1;
CREATE TABLE jobs (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_jobs'),
    kind VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    progress DOUBLE NOT NULL DEFAULT 0,
    message VARCHAR NOT NULL DEFAULT '',
    params VARCHAR NOT NULL DEFAULT '{}',
    result VARCHAR NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    updated_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);

CREATE SEQUENCE seq_audit START 1;
CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_audit'),
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    username VARCHAR,
    action VARCHAR NOT NULL,
    entity VARCHAR NOT NULL,
    entity_id BIGINT,
    details VARCHAR NOT NULL DEFAULT '{}'
);

-- endolite schema, version 4: team safety.
-- masks.version: an edit names the version it read; a stale one is a conflict, never a silent loss.
-- mask_history: each user's own mask actions per frame, so undo is server-side and per user.
-- login_attempts: failed logins per user name and per client, for throttling (and the audit).
-- app_settings: administrator settings (session idle timeout, server-side import folders).

-- DuckDB cannot alter a table that an index depends on: drop the index, alter, re-create it.
DROP INDEX idx_masks_frame;
ALTER TABLE masks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
CREATE INDEX idx_masks_frame ON masks (frame_id);

CREATE SEQUENCE seq_mask_history START 1;
CREATE TABLE mask_history (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_mask_history'),
    frame_id BIGINT NOT NULL,
    username VARCHAR NOT NULL,
    action VARCHAR NOT NULL,            -- create | delete | edit
    added BIGINT[] NOT NULL,            -- masks the action created
    removed BIGINT[] NOT NULL,          -- masks the action (soft-)deleted
    undone BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
);
CREATE INDEX idx_mask_history_user ON mask_history (username, frame_id);

CREATE SEQUENCE seq_login_attempts START 1;
CREATE TABLE login_attempts (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_login_attempts'),
    username VARCHAR NOT NULL,
    client VARCHAR NOT NULL,
    ok BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
);
CREATE INDEX idx_login_attempts ON login_attempts (username, created_at);

ALTER TABLE users ADD COLUMN password_changed_at TIMESTAMP;
ALTER TABLE users ADD COLUMN deactivated_at TIMESTAMP;

CREATE TABLE app_settings (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL,             -- JSON
    updated_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    updated_by VARCHAR
);

-- endolite schema, version 9: browser sessions that survive a reload.
-- The browser keeps an opaque random token in an HttpOnly cookie; only its sha256 is stored.
-- A session ends when revoked (logout, deactivation, password change), after idle_minutes
-- without activity (last_seen), or at expires_at, whichever comes first.
CREATE SEQUENCE seq_sessions START 1;
CREATE TABLE sessions (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_sessions'),
    token_sha256 VARCHAR NOT NULL UNIQUE,
    user_id BIGINT NOT NULL,
    client VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    last_seen TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    revoked_why VARCHAR
);
CREATE INDEX idx_sessions_user ON sessions (user_id);

-- Refresh-token sessions: every token of one sign-in's chain carries the
-- session's ID (its first token's), and a used token stays (used_at, micros;
-- 0: unused) until the session expires, so that replaying it is recognised
-- and ends the whole session.
ALTER TABLE refresh_tokens ADD COLUMN session_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refresh_tokens ADD COLUMN used_at BIGINT NOT NULL DEFAULT 0;
UPDATE refresh_tokens SET session_id = id;

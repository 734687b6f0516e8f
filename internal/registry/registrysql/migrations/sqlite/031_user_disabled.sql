-- Users an admin disabled (SetUserDisabled): 1 refuses sign-in and tokens.
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;

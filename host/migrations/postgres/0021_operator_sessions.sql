-- Dashboard logins (auth/sessions.rs): a random token per login, stored as its SHA-256, tied
-- to the operator key it was opened with. Logging out deletes the row; revoking the key
-- ends every session it opened, since each check joins the key.
CREATE TABLE operator_sessions (
    token_hash  TEXT    PRIMARY KEY,
    key_id      BIGINT  NOT NULL REFERENCES api_keys(id),
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX operator_sessions_by_expiry ON operator_sessions (expires_at);

-- Dialect logins (owned by `auth`): password accounts and OAuth2-style client applications
-- that the operator provisions for one plugin (its `realm`), and the bearer tokens they earn.
CREATE TABLE login_accounts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    BIGINT  NOT NULL REFERENCES tenants(id),
    realm        TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('user', 'client')),
    name         TEXT    NOT NULL,
    -- Argon2id PHC string (salted, slow).
    secret_hash  TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    disabled_at  BIGINT
);
CREATE UNIQUE INDEX login_accounts_live_name
    ON login_accounts (realm, kind, name) WHERE disabled_at IS NULL;

-- Bearer tokens: SHA-256 of the random token, never the token itself. An access token and
-- the refresh token issued with it share a `grant_id`, so they die together.
CREATE TABLE login_tokens (
    token_hash   TEXT    PRIMARY KEY,
    grant_id     TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('access', 'refresh')),
    realm        TEXT    NOT NULL,
    tenant_id    BIGINT  NOT NULL REFERENCES tenants(id),
    account_id   BIGINT  NOT NULL REFERENCES login_accounts(id),
    client_id    BIGINT  REFERENCES login_accounts(id),
    issued_at    BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX login_tokens_by_grant ON login_tokens (grant_id);
CREATE INDEX login_tokens_by_account ON login_tokens (account_id);
CREATE INDEX login_tokens_by_client ON login_tokens (client_id);

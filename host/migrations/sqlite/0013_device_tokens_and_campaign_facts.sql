-- Device logins (XLINK's `device_login`): a token pair may belong to a device instead of a
-- login account, so `account_id` becomes optional and `device_id` names the device;
-- `device_product_id` is the product whose key the device logged in with (a new key revokes
-- those pairs). SQLite cannot relax NOT NULL in place, so the table is rebuilt.
CREATE TABLE login_tokens_new (
    token_hash   TEXT    PRIMARY KEY,
    grant_id     TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('access', 'refresh')),
    realm        TEXT    NOT NULL,
    tenant_id    BIGINT  NOT NULL REFERENCES tenants(id),
    account_id   BIGINT  REFERENCES login_accounts(id),
    device_id    BIGINT  REFERENCES devices(id),
    device_product_id BIGINT REFERENCES products(id),
    client_id    BIGINT  REFERENCES login_accounts(id),
    issued_at    BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    revoked_at   BIGINT,
    CHECK ((account_id IS NULL) <> (device_id IS NULL))
);
INSERT INTO login_tokens_new (token_hash, grant_id, kind, realm, tenant_id, account_id,
                              client_id, issued_at, expires_at, revoked_at)
    SELECT token_hash, grant_id, kind, realm, tenant_id, account_id, client_id, issued_at,
           expires_at, revoked_at FROM login_tokens;
DROP TABLE login_tokens;
ALTER TABLE login_tokens_new RENAME TO login_tokens;
CREATE INDEX login_tokens_by_grant ON login_tokens (grant_id);
CREATE INDEX login_tokens_by_account ON login_tokens (account_id);
CREATE INDEX login_tokens_by_client ON login_tokens (client_id);
CREATE INDEX login_tokens_by_device ON login_tokens (device_id);
CREATE INDEX login_tokens_by_device_product ON login_tokens (device_product_id);

-- Dialect-kept facts about a campaign the common record has no field for (e.g. XLINK's
-- from-version file and its manual/auto flag), owned by `rollout`.
CREATE TABLE campaign_attributes (
    campaign_id  BIGINT  NOT NULL REFERENCES campaigns(id),
    name         TEXT    NOT NULL,
    value        TEXT    NOT NULL,
    PRIMARY KEY (campaign_id, name)
);

-- Counting a campaign's jobs in a state (XLINK's `upgrade_count` on every device check) reads
-- the index alone.
CREATE INDEX jobs_by_campaign_state ON jobs (campaign_id, state);

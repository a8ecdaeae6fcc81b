-- Login names are the tenant's own: two tenants may both have a client `mobile_1` or a user
-- `aa` for one plugin. A login finds its account by name and secret (and by the client's
-- tenant for a user logging in through a client).
DROP INDEX login_accounts_live_name;
CREATE UNIQUE INDEX login_accounts_live_name
    ON login_accounts (tenant_id, realm, kind, name) WHERE disabled_at IS NULL;
CREATE INDEX login_accounts_by_name ON login_accounts (realm, kind, name);

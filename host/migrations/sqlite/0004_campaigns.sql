-- Campaigns: one release rolled out to a product's devices (owned by `rollout`).
CREATE TABLE campaigns (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     BIGINT  NOT NULL REFERENCES tenants(id),
    product_id    BIGINT  NOT NULL REFERENCES products(id),
    release_id    BIGINT  NOT NULL REFERENCES releases(id),
    name          TEXT    NOT NULL,
    module        TEXT    NOT NULL,
    identify      BIGINT  NOT NULL,
    target_version TEXT   NOT NULL,
    from_version  TEXT,
    scope         TEXT    NOT NULL CHECK (scope IN ('all', 'devices', 'group')),
    scope_group   TEXT,
    mode          TEXT    NOT NULL CHECK (mode IN ('auto', 'manual')),
    tag           TEXT    NOT NULL CHECK (tag IN ('test', 'formal')),
    status        TEXT    NOT NULL CHECK (status IN ('draft', 'pending', 'running', 'paused', 'stopped', 'finished', 'cancelled')),
    approver      TEXT,
    retries       BIGINT  NOT NULL CHECK (retries BETWEEN 0 AND 3),
    timeout_secs  BIGINT  NOT NULL,
    created_by    TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX campaigns_active ON campaigns (product_id, status);

-- The explicit device list of a campaign with scope 'devices'.
CREATE TABLE campaign_devices (
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    device_id   BIGINT NOT NULL REFERENCES devices(id),
    PRIMARY KEY (campaign_id, device_id)
);

-- Every change to a campaign: who, what, when.
CREATE TABLE campaign_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id BIGINT  NOT NULL REFERENCES campaigns(id),
    at          BIGINT  NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);

-- One device in one campaign.
CREATE TABLE jobs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id    BIGINT  NOT NULL REFERENCES campaigns(id),
    device_id      BIGINT  NOT NULL REFERENCES devices(id),
    state          TEXT    NOT NULL,
    previous_state TEXT    NOT NULL,
    retry_count    BIGINT  NOT NULL,
    result_code    BIGINT,
    result_text    TEXT    NOT NULL,
    version_before TEXT,
    version_after  TEXT,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    deadline_at    BIGINT,
    UNIQUE (campaign_id, device_id)
);
CREATE INDEX jobs_open ON jobs (state, deadline_at);

-- Tenants and credentials (owned by `auth`).
CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL for operator keys (admin API), set for tenant keys (dialect requests).
    tenant_id   BIGINT  REFERENCES tenants(id),
    role        TEXT    NOT NULL CHECK (role IN ('operator', 'tenant')),
    name        TEXT    NOT NULL,
    key_hash    TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);

-- Products, devices and install configurations (owned by `catalog`).
CREATE TABLE products (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   BIGINT  NOT NULL REFERENCES tenants(id),
    sn          TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    UNIQUE (tenant_id, sn)
);

CREATE TABLE devices (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id  BIGINT  NOT NULL REFERENCES products(id),
    sn          TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    UNIQUE (product_id, sn)
);

CREATE TABLE install_configs (
    device_id        BIGINT PRIMARY KEY REFERENCES devices(id),
    software_version TEXT   NOT NULL,
    os               TEXT   NOT NULL,
    cpu_arch         TEXT   NOT NULL,
    mode             TEXT   NOT NULL,
    password         TEXT   NOT NULL,
    report_url       TEXT   NOT NULL,
    updated_at       BIGINT NOT NULL
);

-- Device credentials (owned by `auth`); device_key is public, only the secret's hash is kept.
CREATE TABLE device_credentials (
    device_id    BIGINT PRIMARY KEY REFERENCES devices(id),
    device_key   TEXT   NOT NULL UNIQUE,
    secret_hash  TEXT   NOT NULL,
    issued_at    BIGINT NOT NULL
);

-- IoTStack deployments and their history (owned by `rollout`).
CREATE TABLE deployments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   BIGINT  NOT NULL REFERENCES tenants(id),
    device_id   BIGINT  NOT NULL REFERENCES devices(id),
    keep_local  BIGINT  NOT NULL,
    status      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    deadline_at BIGINT  NOT NULL
);
CREATE INDEX deployments_open ON deployments (status, deadline_at);

CREATE TABLE deployment_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id BIGINT  NOT NULL REFERENCES deployments(id),
    at            BIGINT  NOT NULL,
    status        TEXT    NOT NULL,
    message       TEXT    NOT NULL
);
CREATE INDEX deployment_events_by_deployment ON deployment_events (deployment_id, id);

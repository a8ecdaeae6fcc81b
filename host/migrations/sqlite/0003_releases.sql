-- Device identity and state beyond the serial number (owned by `catalog`).
ALTER TABLE devices ADD COLUMN imei TEXT;
ALTER TABLE devices ADD COLUMN mac TEXT;
ALTER TABLE devices ADD COLUMN name TEXT;
ALTER TABLE devices ADD COLUMN group_name TEXT;
ALTER TABLE devices ADD COLUMN online_at BIGINT;
ALTER TABLE devices ADD COLUMN offline_at BIGINT;

-- The version a device runs, per module (wifi / mcu / sub-device + identify).
CREATE TABLE device_modules (
    device_id   BIGINT  NOT NULL REFERENCES devices(id),
    module      TEXT    NOT NULL CHECK (module IN ('wifi', 'mcu', 'sub')),
    identify    BIGINT  NOT NULL,
    version     TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (device_id, module, identify)
);

-- Firmware / software releases (owned by `catalog`): a stored blob or an external URL.
CREATE TABLE releases (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     BIGINT  NOT NULL REFERENCES tenants(id),
    product_id    BIGINT  NOT NULL REFERENCES products(id),
    module        TEXT    NOT NULL CHECK (module IN ('wifi', 'mcu', 'sub')),
    identify      BIGINT  NOT NULL,
    name          TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    from_version  TEXT,
    blob_sha256   TEXT    REFERENCES blobs(sha256),
    external_url  TEXT,
    md5           TEXT    NOT NULL,
    size          BIGINT  NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('test', 'online', 'invalid')),
    description   TEXT    NOT NULL,
    customize     TEXT    NOT NULL,
    mac_range     TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    deleted_at    BIGINT,
    CHECK ((blob_sha256 IS NULL) <> (external_url IS NULL))
);
CREATE UNIQUE INDEX releases_unique_live
    ON releases (product_id, module, identify, version, COALESCE(from_version, ''))
    WHERE deleted_at IS NULL;
CREATE INDEX releases_by_product ON releases (product_id, module, identify);

-- Application keys for HMAC-signed dialects (owned by `auth`), e.g. CTWing's App Key and App
-- Secret. The secret is kept as given: verifying an HMAC needs it, unlike a password.
CREATE TABLE hmac_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   BIGINT  NOT NULL REFERENCES tenants(id),
    realm       TEXT    NOT NULL,
    app_key     TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);
CREATE UNIQUE INDEX hmac_keys_live ON hmac_keys (realm, app_key) WHERE revoked_at IS NULL;

-- A product-level key some dialects send with every call (CTWing's MasterKey), owned by
-- `auth`: SHA-256 only.
CREATE TABLE product_keys (
    product_id  BIGINT  PRIMARY KEY REFERENCES products(id),
    key_hash    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

-- Operator-set facts about a product that dialects read (e.g. `ctwing.protocol`), owned by
-- `catalog`.
CREATE TABLE product_attributes (
    product_id  BIGINT  NOT NULL REFERENCES products(id),
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    PRIMARY KEY (product_id, name)
);

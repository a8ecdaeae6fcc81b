-- Browser-form upload credentials, one per tenant (owned by `uploads`): the secret signs
-- OSS-style POST policies, so it is kept as generated (an HMAC needs it).
CREATE TABLE upload_keys (
    tenant_id   BIGINT  PRIMARY KEY REFERENCES tenants(id),
    access_id   TEXT    NOT NULL UNIQUE,
    secret      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

-- Objects uploaded through the OSS-compatible endpoint (owned by `uploads`): a key in the
-- tenant's bucket naming a stored blob. Uploading the same key again replaces it.
CREATE TABLE upload_objects (
    tenant_id     BIGINT  NOT NULL REFERENCES tenants(id),
    object_key    TEXT    NOT NULL,
    blob_sha256   TEXT    NOT NULL REFERENCES blobs(sha256),
    content_type  TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, object_key)
);

-- Dialect-kept facts about a release the common record has no field for (e.g. MXChip's
-- free-text `size` and the `file_url` as registered), owned by `catalog`.
CREATE TABLE release_attributes (
    release_id  BIGINT  NOT NULL REFERENCES releases(id),
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    PRIMARY KEY (release_id, name)
);

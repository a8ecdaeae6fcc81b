-- Firmware files, content-addressed on disk by SHA-256 (owned by `blobs`).
CREATE TABLE blobs (
    sha256      TEXT    PRIMARY KEY,
    md5         TEXT    NOT NULL,
    size        BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL
);

-- Host-wide secrets shared by every replica (e.g. the download-URL signing key).
CREATE TABLE host_secrets (
    name        TEXT    PRIMARY KEY,
    value       TEXT    NOT NULL
);

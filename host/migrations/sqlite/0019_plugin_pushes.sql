-- Plugins pushed once for every replica (pushes.rs): each version's component is a blob;
-- per plugin name one version is serving, one is kept for rollback, and a canary may take a
-- share of the requests.
CREATE TABLE plugin_pushes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT   NOT NULL,
    version    TEXT   NOT NULL,
    sha256     TEXT   NOT NULL,
    size       BIGINT NOT NULL,
    state      TEXT   NOT NULL CHECK (state IN ('serving', 'previous', 'canary', 'retired')),
    canary_percent BIGINT,
    pushed_by  TEXT   NOT NULL,
    pushed_at  BIGINT NOT NULL
);
CREATE INDEX plugin_pushes_by_name_state ON plugin_pushes (name, state);

-- Each running replica says what it serves, every few seconds (GET /admin/plugins).
CREATE TABLE replicas (
    id         TEXT   PRIMARY KEY,
    url        TEXT   NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL,
    serving    TEXT   NOT NULL
);

-- IoTStack deployments become jobs of kind 'deployment': one device, no campaign, the same
-- canonical states (init = queued, processing = installing, success = succeeded, failed,
-- timeout = timed-out) and the same scheduler. Their history moves to job_events, which any
-- job may use. Deployment ids are renumbered as job ids (no release carried deployments).
CREATE TABLE jobs_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL DEFAULT 'campaign' CHECK (kind IN ('campaign', 'deployment')),
    campaign_id    BIGINT  REFERENCES campaigns(id),
    tenant_id      BIGINT  REFERENCES tenants(id),
    device_id      BIGINT  NOT NULL REFERENCES devices(id),
    keep_local     BIGINT,
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
    legacy_deployment_id BIGINT,
    CHECK ((kind = 'campaign') = (campaign_id IS NOT NULL)),
    UNIQUE (campaign_id, device_id)
);
INSERT INTO jobs_new (id, kind, campaign_id, device_id, state, previous_state, retry_count,
    result_code, result_text, version_before, version_after, created_at, updated_at, deadline_at)
SELECT id, 'campaign', campaign_id, device_id, state, previous_state, retry_count,
    result_code, result_text, version_before, version_after, created_at, updated_at, deadline_at
FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_open ON jobs (state, deadline_at);

CREATE TABLE job_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id   BIGINT  NOT NULL REFERENCES jobs(id),
    at       BIGINT  NOT NULL,
    state    TEXT    NOT NULL,
    message  TEXT    NOT NULL
);
CREATE INDEX job_events_by_job ON job_events (job_id, id);

INSERT INTO jobs (kind, tenant_id, device_id, keep_local, state, previous_state, retry_count,
    result_text, created_at, updated_at, deadline_at, legacy_deployment_id)
SELECT 'deployment', tenant_id, device_id, keep_local,
    CASE status WHEN 'init' THEN 'queued' WHEN 'processing' THEN 'installing'
        WHEN 'success' THEN 'succeeded' WHEN 'timeout' THEN 'timed-out' ELSE 'failed' END,
    'queued', 0, '', created_at, updated_at, deadline_at, id
FROM deployments ORDER BY id;
INSERT INTO job_events (job_id, at, state, message)
SELECT j.id, e.at,
    CASE e.status WHEN 'init' THEN 'queued' WHEN 'processing' THEN 'installing'
        WHEN 'success' THEN 'succeeded' WHEN 'timeout' THEN 'timed-out' ELSE 'failed' END,
    e.message
FROM deployment_events e JOIN jobs j ON j.legacy_deployment_id = e.deployment_id
ORDER BY e.id;
ALTER TABLE jobs DROP COLUMN legacy_deployment_id;
DROP TABLE deployment_events;
DROP TABLE deployments;

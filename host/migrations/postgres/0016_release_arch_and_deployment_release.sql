-- Releases built for one CPU architecture (IoTStack gateways: x86_64, arm7, ARMv8_64). NULL
-- means the file runs on every architecture, which is what every release so far is. The
-- same version may now exist once per architecture.
ALTER TABLE releases ADD COLUMN arch TEXT;
DROP INDEX releases_unique_live;
CREATE UNIQUE INDEX releases_unique_live
    ON releases (product_id, module, identify, version, COALESCE(from_version, ''), COALESCE(arch, ''))
    WHERE deleted_at IS NULL;

-- The release a deployment installs, chosen when the gateway's agent first asks for it and
-- kept from then on (NULL for campaign jobs, whose release is their campaign's, and for
-- deployments no agent has picked up yet).
ALTER TABLE jobs ADD COLUMN release_id BIGINT REFERENCES releases(id);
CREATE INDEX jobs_by_device ON jobs (device_id, kind, state);

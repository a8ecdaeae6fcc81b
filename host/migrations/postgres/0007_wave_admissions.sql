-- How many devices a waved campaign has admitted, kept beside its cap so a first contact
-- checks (and takes) room with one row update instead of counting the campaign's jobs.
ALTER TABLE campaigns ADD COLUMN admitted BIGINT NOT NULL DEFAULT 0;
UPDATE campaigns SET admitted = (SELECT COUNT(*) FROM jobs WHERE jobs.campaign_id = campaigns.id);

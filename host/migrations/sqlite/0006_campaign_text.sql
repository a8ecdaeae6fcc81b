-- Dialects name and describe campaigns (CTWing jobDesc, XLINK description) and delete them;
-- a deleted campaign stays for the record (its jobs and statistics) but leaves every listing.
ALTER TABLE campaigns ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN deleted_at BIGINT;

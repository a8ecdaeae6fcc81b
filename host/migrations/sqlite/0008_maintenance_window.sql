-- An optional daily window (minutes after midnight UTC) in which a campaign offers updates.
ALTER TABLE campaigns ADD COLUMN window_start BIGINT;
ALTER TABLE campaigns ADD COLUMN window_end BIGINT;

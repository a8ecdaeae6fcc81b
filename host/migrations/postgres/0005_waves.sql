-- Waves: a campaign admits at most wave_cap devices, widened by wave_step every
-- wave_interval_secs while the failure rate stays under max_failure_pct (NULL: no waves).
ALTER TABLE campaigns ADD COLUMN wave_cap BIGINT;
ALTER TABLE campaigns ADD COLUMN wave_step BIGINT;
ALTER TABLE campaigns ADD COLUMN wave_interval_secs BIGINT;
ALTER TABLE campaigns ADD COLUMN next_wave_at BIGINT;
ALTER TABLE campaigns ADD COLUMN max_failure_pct BIGINT;
ALTER TABLE campaigns ADD COLUMN guard_since BIGINT;

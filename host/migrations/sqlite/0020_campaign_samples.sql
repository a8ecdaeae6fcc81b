-- Where each running or paused campaign stood, sampled by the scheduler every
-- `scheduler.progress-sample-secs` (rollout/campaigns/samples.rs): the dashboard's chart of
-- job states over time and of the failure share against the campaign's guard.
CREATE TABLE campaign_samples (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id   BIGINT  NOT NULL REFERENCES campaigns(id),
    at            BIGINT  NOT NULL,
    -- Jobs by state, a JSON object such as {"notified": 3, "succeeded": 10}.
    counts        TEXT    NOT NULL,
    failure_ratio REAL    NOT NULL
);
-- `at` is the start of its sampling period: replicas sampling in one period write one row.
CREATE UNIQUE INDEX campaign_samples_by_campaign ON campaign_samples (campaign_id, at);

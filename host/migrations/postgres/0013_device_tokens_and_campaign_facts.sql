-- Device logins (XLINK's `device_login`): a token pair may belong to a device instead of a
-- login account, so `account_id` becomes optional and `device_id` names the device;
-- `device_product_id` is the product whose key the device logged in with (a new key revokes
-- those pairs).
ALTER TABLE login_tokens ALTER COLUMN account_id DROP NOT NULL;
ALTER TABLE login_tokens ADD COLUMN device_id BIGINT REFERENCES devices(id);
ALTER TABLE login_tokens ADD COLUMN device_product_id BIGINT REFERENCES products(id);
ALTER TABLE login_tokens ADD CONSTRAINT login_tokens_one_owner
    CHECK ((account_id IS NULL) <> (device_id IS NULL));
CREATE INDEX login_tokens_by_device ON login_tokens (device_id);
CREATE INDEX login_tokens_by_device_product ON login_tokens (device_product_id);

-- Dialect-kept facts about a campaign the common record has no field for (e.g. XLINK's
-- from-version file and its manual/auto flag), owned by `rollout`.
CREATE TABLE campaign_attributes (
    campaign_id  BIGINT  NOT NULL REFERENCES campaigns(id),
    name         TEXT    NOT NULL,
    value        TEXT    NOT NULL,
    PRIMARY KEY (campaign_id, name)
);

-- Counting a campaign's jobs in a state (XLINK's `upgrade_count` on every device check) reads
-- the index alone.
CREATE INDEX jobs_by_campaign_state ON jobs (campaign_id, state);

-- One counter every change that ends a credential bumps; each process reads it a few times a
-- second and drops the API keys and tokens it verified when it moved (auth/verified.rs).
CREATE TABLE auth_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT  NOT NULL
);
INSERT INTO auth_epoch (id, value) VALUES (1, 0);

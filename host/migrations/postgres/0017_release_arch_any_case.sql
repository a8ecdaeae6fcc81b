-- Architectures match case-insensitively (a gateway's `x86_64` finds a release uploaded as
-- `X86_64`), so two live releases of one version may not differ only in their
-- architecture's case: the gateway could not tell which one is meant.
DROP INDEX releases_unique_live;
CREATE UNIQUE INDEX releases_unique_live
    ON releases (product_id, module, identify, version, COALESCE(from_version, ''), LOWER(COALESCE(arch, '')))
    WHERE deleted_at IS NULL;

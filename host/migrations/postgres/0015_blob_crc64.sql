-- The CRC-64 (XZ parameters) of each blob stored from now on, as decimal text (it does not
-- fit a signed 64-bit integer): the OSS-compatible endpoint sends it as
-- `x-oss-hash-crc64ecma`, which OSS SDKs check downloads against. NULL for older blobs (the
-- header is then left out).
ALTER TABLE blobs ADD COLUMN crc64 TEXT;

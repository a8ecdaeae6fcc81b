"""oss2, unmodified, against the host an MXChip upload token names (see run.sh)."""
import os
import sys

import oss2
import requests

base, token = sys.argv[1], sys.argv[2]
r = requests.get(f"{base}/oss_token/ota/", headers={"Authorization": f"token {token}"})
r.raise_for_status()
tok = r.json()["data"]
host = tok["host"]
assert "/oss/" not in host, f"the form should name the OSS listener: {host}"

# The console's browser form (PostObject), as Aliyun's uploaders post it.
data = os.urandom(300_000)
key = tok["dir"] + "fw-3.0.0.bin"
form = {
    "key": key,
    "OSSAccessKeyId": tok["accessid"],
    "policy": tok["policy"],
    "Signature": tok["signature"],
    "success_action_status": "200",
    "callback": tok["callback"],
}
up = requests.post(host, data=form, files={"file": ("fw-3.0.0.bin", data)})
assert up.status_code == 200, (up.status_code, up.text)
assert up.json()["data"]["file_url"] == f"{host}/{key}", up.text

# oss2 with the token's host as its endpoint: it drops the path and asks /<bucket>/<key>.
bucket = oss2.Bucket(oss2.AnonymousAuth(), host, "acme")
assert bucket.get_object(key).read() == data  # oss2 checks x-oss-hash-crc64ecma here
head = bucket.head_object(key)
assert head.content_length == len(data)
assert head.etag == up.headers["ETag"].strip('"'), (head.etag, up.headers["ETag"])
assert head.server_crc is not None
meta = bucket.get_object_meta(key)
assert meta.content_length == len(data) and meta.last_modified > 0
assert bucket.get_object(key, byte_range=(1000, 1999)).read() == data[1000:2000]
oss2.resumable_download(
    bucket, key, "out.bin", part_size=64 * 1024, multiget_threshold=64 * 1024, num_threads=2
)
with open("out.bin", "rb") as f:
    assert f.read() == data
try:
    bucket.get_object(key + ".missing")
    raise AssertionError("a missing object was served")
except oss2.exceptions.NoSuchKey:
    pass
print("oss2: upload, get (CRC-64 checked), head, meta, range, resumable download: ok")

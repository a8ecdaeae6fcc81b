//! Two replicas on one PostgreSQL and one S3-compatible bucket (moto on loopback), as an
//! operator runs them behind a load balancer: a firmware uploaded through one downloads
//! (with Range and ETag) through the other, an upload refused for a wrong MD5 leaves
//! nothing in the bucket (no object, no open multipart upload), and an OSS PostObject
//! upload through one is registered through the other's MXChip API and served by it. A
//! plugin pushed to one serves on both within seconds, and a rollback through the other
//! returns both to the previous version. A canary at 10% serves about a tenth of the devices,
//! each device the same version on either replica, until it is promoted.

use std::path::Path;
use std::time::{Duration, Instant};

use md5::Digest;
use ota_tests::pg::Postgres;
use ota_tests::s3::S3;
use ota_tests::{OPERATOR_KEY, Options, TestServer, admin, built_plugin, eventually};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// The name clients reach both replicas by (the load balancer's); every request says it.
const HOST: &str = "ota.test";

async fn replica(database: &str, s3: &S3, key_file: &Path) -> TestServer {
    let (database, key_file) = (database.to_string(), key_file.to_path_buf());
    let options = s3.env();
    let bucket = s3.bucket.clone();
    TestServer::start(Options {
        plugins: vec![("mxchip.wasm", "mxchip")],
        database: Some(database),
        configure: Box::new(move |f| {
            f.blobs.store = Some(format!("s3://{bucket}/fleet"));
            // The same settings the AWS_* environment gives, as config-file options.
            for (name, value) in options {
                let key = match name {
                    "AWS_ENDPOINT_URL" => "aws_endpoint".to_string(),
                    other => other.to_ascii_lowercase(),
                };
                f.blobs.store_options.insert(key, value);
            }
            // Replicas share the master key that seals the database's secrets.
            f.secrets.master_key_file = Some(key_file);
        }),
    })
    .await
}

/// Two replicas on one fresh PostgreSQL database and one moto bucket, sharing a master key;
/// `None` without python3 outside CI.
struct Fleet {
    a: TestServer,
    b: TestServer,
    s3: S3,
    // Kept for as long as the replicas run.
    _pg: Postgres,
    _shared: tempfile::TempDir,
}

impl Fleet {
    async fn start(bucket: &str) -> Option<Fleet> {
        let s3 = S3::start(bucket).await?;
        let pg = Postgres::start();
        let database = pg.create_database();
        let shared = tempfile::tempdir().unwrap();
        let key_file = shared.path().join("master.key");
        let a = replica(&database, &s3, &key_file).await;
        let b = replica(&database, &s3, &key_file).await;
        Some(Fleet {
            a,
            b,
            s3,
            _pg: pg,
            _shared: shared,
        })
    }

    async fn stop(self) {
        self.a.stop().await;
        self.b.stop().await;
    }
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(md5::Md5::digest(bytes))
}

fn firmware(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A request to `t` as the load balancer forwards it.
fn via(t: &TestServer, method: Method, path: &str) -> reqwest::RequestBuilder {
    t.http.request(method, t.url(path)).header("host", HOST)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_database_and_one_bucket() {
    let Some(fleet) = Fleet::start("ota-blobs").await else {
        return;
    };
    let (a, b, s3) = (&fleet.a, &fleet.b, &fleet.s3);

    // 12 MiB and a bit: a multipart upload to the bucket, through A.
    let data = firmware((12 << 20) + 5);
    let r = via(
        a,
        Method::POST,
        &format!("/admin/api/v1/blobs?md5={}", md5_hex(&data)),
    )
    .bearer_auth(OPERATOR_KEY)
    .body(data.clone())
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let up: Value = r.json().await.unwrap();
    let sha = up["sha256"].as_str().unwrap().to_string();
    let keys = s3.keys().await;
    assert!(
        keys.contains(&format!("fleet/sha256/{}/{sha}", &sha[..2])),
        "{keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.starts_with("fleet/tmp/")),
        "{keys:?}"
    );
    assert!(
        !a.dir.path().join("data/blobs/sha256").exists(),
        "nothing on A's own disk"
    );

    // Through B: the whole file, a range, and the ETag's 304.
    let r = via(b, Method::GET, &format!("/blobs/{sha}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{sha}\""));
    assert_eq!(md5_hex(&r.bytes().await.unwrap()), md5_hex(&data));
    let (first, last) = ((9 << 20) - 3, (9 << 20) + 99);
    let r = via(b, Method::GET, &format!("/blobs/{sha}"))
        .header("range", format!("bytes={first}-{last}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes {first}-{last}/{}", data.len())
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[first..=last]);
    let r = via(b, Method::GET, &format!("/blobs/{sha}"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // A refused upload through B keeps nothing: no object, no open multipart upload.
    let other = firmware((10 << 20) + 1);
    let r = via(
        b,
        Method::POST,
        &format!("/admin/api/v1/blobs?md5={}", "0".repeat(32)),
    )
    .bearer_auth(OPERATOR_KEY)
    .body(other)
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(s3.keys().await, keys, "the bucket is as it was");
    assert_eq!(s3.open_multipart_uploads().await, 0);

    // OSS: B hands out the upload form and takes the PostObject; A's MXChip API registers
    // the object and A serves it.
    let token = format!("token {}", crate::mxchip::console_token(a).await.0);
    let r = via(b, Method::GET, "/oss_token/ota/")
        .header("authorization", &token)
        .send()
        .await
        .unwrap();
    let tok: Value = r.json().await.unwrap();
    let tok = &tok["data"];
    assert_eq!(tok["host"], format!("http://{HOST}/oss/acme"), "{tok}");
    let image = firmware(300_001);
    let key = "ota/fw-2.0.0.bin";
    let mut form = Form::new();
    for (name, value) in [
        ("key", key),
        ("OSSAccessKeyId", tok["accessid"].as_str().unwrap()),
        ("policy", tok["policy"].as_str().unwrap()),
        ("Signature", tok["signature"].as_str().unwrap()),
    ] {
        form = form.text(name, value.to_string());
    }
    form = form.part("file", Part::bytes(image.clone()).file_name("fw.bin"));
    let r = via(b, Method::POST, "/oss/acme")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    let file_url = format!("http://{HOST}/oss/acme/{key}");
    let r = via(a, Method::POST, "/api/v1/ota/fqhmuglv1fybql33/files/")
        .header("authorization", &token)
        .json(
            &json!({"file_name": "fw.bin", "file_url": file_url, "md5": md5_hex(&image),
                      "size": image.len().to_string(), "version": "2.0.0", "ug_type": 0}),
        )
        .send()
        .await
        .unwrap();
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["meta"]["code"], 0, "{created}");
    let r = via(a, Method::GET, &format!("/oss/acme/{key}"))
        .header("range", "bytes=299990-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &image[299_990..]);

    for t in [a, b] {
        let r = t.http.get(t.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, json!({"database": "ok", "blobs": "ok"}));
    }
    fleet.stop().await;
}

/// What `/misbehave/ok` answers on `t`, if it is served.
async fn misbehave(t: &TestServer) -> Option<String> {
    let r = t.http.get(t.url("/misbehave/ok")).send().await.ok()?;
    (r.status() == 200).then_some(())?;
    r.text().await.ok()
}

/// Both replicas answer `want` within `limit`.
async fn both_serve(a: &TestServer, b: &TestServer, want: &str, limit: Duration) -> bool {
    eventually(limit, || async {
        misbehave(a).await.as_deref() == Some(want) && misbehave(b).await.as_deref() == Some(want)
    })
    .await
}

async fn push(t: &TestServer, plugin: &str) -> (u16, Value) {
    let r = t
        .http
        .post(t.url("/admin/api/v1/plugins"))
        .bearer_auth(OPERATOR_KEY)
        .header("content-type", "application/wasm")
        .body(std::fs::read(built_plugin(plugin)).unwrap())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_pushed_to_one_replica_serves_on_every_replica() {
    let Some(fleet) = Fleet::start("ota-plugins").await else {
        return;
    };
    let (a, b) = (&fleet.a, &fleet.b);
    assert_eq!(misbehave(b).await, None, "not served before the push");

    let pushed_at = Instant::now();
    let (s, p) = push(a, "misbehave").await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(
        (&p["name"], &p["version"], &p["state"], &p["pushed_by"]),
        (
            &json!("misbehave"),
            &json!("0.1.0"),
            &json!("serving"),
            &json!("ops")
        )
    );
    assert!(
        both_serve(a, b, "misbehave 0.1.0 ok", Duration::from_secs(5)).await,
        "the push did not serve on both replicas within 5 s"
    );
    eprintln!("push to serving on both: {:?}", pushed_at.elapsed());

    let (s, p) = push(a, "misbehave-v2").await;
    assert_eq!((s, &p["version"]), (201, &json!("2.0.0")), "{p}");
    assert!(both_serve(a, b, "misbehave 2.0.0 ok", Duration::from_secs(5)).await);
    // Each replica reports what it serves.
    let reported = eventually(Duration::from_secs(10), || async {
        let (_, inv) = a.admin_get("/admin/plugins").await;
        let replicas = inv["replicas"].as_array().cloned().unwrap_or_default();
        replicas.len() == 2
            && replicas.iter().all(|r| {
                r["plugins"].as_array().is_some_and(|ps| {
                    // With what it answered: both_serve asked both.
                    ps.iter().any(|p| {
                        p["name"] == "misbehave"
                            && p["version"] == "2.0.0"
                            && p["requests"].as_u64() > Some(0)
                            && p["server_errors"] == 0
                    })
                })
            })
    })
    .await;
    assert!(reported, "{}", a.admin_get("/admin/plugins").await.1);

    // Rolled back through B: both serve 0.1.0 again; there is nothing before that.
    let (s, p) = admin(
        b,
        Method::POST,
        "/admin/api/v1/plugins/misbehave/rollback",
        None,
    )
    .await;
    assert_eq!((s, &p["version"]), (200, &json!("0.1.0")), "{p}");
    assert!(both_serve(a, b, "misbehave 0.1.0 ok", Duration::from_secs(5)).await);
    let (s, e) = admin(
        b,
        Method::POST,
        "/admin/api/v1/plugins/misbehave/rollback",
        None,
    )
    .await;
    assert_eq!((s, &e["error"]["code"]), (409, &json!("conflict")), "{e}");
    let (s, _) = admin(
        b,
        Method::POST,
        "/admin/api/v1/plugins/nothing/rollback",
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (_, list) = admin(a, Method::GET, "/admin/api/v1/plugins", None).await;
    let states: Vec<(&str, &str)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["version"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("2.0.0", "retired"), ("0.1.0", "serving")]);

    // A canary: 10% of the devices (by their credential) get 2.0.0, each consistently, on
    // either replica; then it is promoted.
    let r = a
        .http
        .post(a.url("/admin/api/v1/plugins?canary_percent=10"))
        .bearer_auth(OPERATOR_KEY)
        .body(std::fs::read(built_plugin("misbehave-v2")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    assert_eq!(
        (&c["state"], &c["canary_percent"]),
        (&json!("canary"), &json!(10)),
        "{c}"
    );
    for t in [a, b] {
        let running = eventually(Duration::from_secs(5), || async {
            let (_, inv) = t.admin_get("/admin/plugins").await;
            inv["canaries"][0]["version"] == "2.0.0" && inv["canaries"][0]["percent"] == 10
        })
        .await;
        assert!(running, "{}", t.admin_get("/admin/plugins").await.1);
    }
    let as_device = |t: &TestServer, device: usize| {
        let r = t
            .http
            .get(t.url("/misbehave/ok"))
            .header("authorization", format!("Bearer device-{device}"))
            .send();
        async move { r.await.unwrap().text().await.unwrap() }
    };
    let mut canaried = 0;
    for device in 0..400 {
        let on_a = as_device(a, device).await;
        assert_eq!(
            on_a,
            as_device(b, device).await,
            "device {device} saw two versions"
        );
        assert_eq!(
            on_a,
            as_device(a, device).await,
            "device {device} saw two versions"
        );
        if on_a == "misbehave 2.0.0 ok" {
            canaried += 1;
        } else {
            assert_eq!(on_a, "misbehave 0.1.0 ok");
        }
    }
    // 10% of 400 is 40; the binomial's standard deviation is 6.
    assert!(
        (20..=60).contains(&canaried),
        "{canaried} of 400 devices got the canary"
    );
    // The metrics tell the two versions apart, for comparing their error rates.
    let metrics = a
        .http
        .get(a.url("/metrics"))
        .bearer_auth(OPERATOR_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |parts: &[&str]| metrics.lines().any(|l| parts.iter().all(|p| l.contains(p)));
    assert!(line(&[
        "ota_plugin_info{",
        "version=\"2.0.0\"",
        "role=\"canary\"",
        "} 1"
    ]));
    assert!(line(&[
        "ota_plugin_info{",
        "version=\"0.1.0\"",
        "role=\"serving\"",
        "} 1"
    ]));
    for version in ["0.1.0", "2.0.0"] {
        assert!(line(&[
            "ota_plugin_requests_total{plugin=\"misbehave\"",
            &format!("version=\"{version}\""),
            "status=\"200\""
        ]));
    }
    let (s, p) = admin(
        b,
        Method::POST,
        "/admin/api/v1/plugins/misbehave/promote",
        None,
    )
    .await;
    assert_eq!(
        (s, &p["version"], &p["state"]),
        (200, &json!("2.0.0"), &json!("serving")),
        "{p}"
    );
    let promoted = eventually(Duration::from_secs(5), || async {
        for device in 0..20 {
            for t in [a, b] {
                if as_device(t, device).await != "misbehave 2.0.0 ok" {
                    return false;
                }
            }
        }
        true
    })
    .await;
    assert!(
        promoted,
        "every device gets 2.0.0 once the canary is promoted"
    );
    let (s, _) = admin(
        b,
        Method::POST,
        "/admin/api/v1/plugins/misbehave/promote",
        None,
    )
    .await;
    assert_eq!(s, 404, "no canary any more");

    // Not a plugin: refused, and nothing changes.
    let r = a
        .http
        .post(a.url("/admin/api/v1/plugins"))
        .bearer_auth(OPERATOR_KEY)
        .body(b"\0asm not really".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(misbehave(b).await.as_deref(), Some("misbehave 2.0.0 ok"));
    fleet.stop().await;
}

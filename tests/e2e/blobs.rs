//! Firmware files over HTTP: streamed upload with declared-md5 checks (nothing kept on a
//! mismatch), downloads with ETag, Range (resume) and conditional requests, signed links.

use ota_host::config::FileConfig;
use ota_tests::{API_KEY, OPERATOR_KEY, Options, TestServer};
use serde_json::Value;

fn firmware(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

async fn upload(t: &TestServer, query: &str, body: Vec<u8>) -> (u16, Value) {
    let r = t
        .http
        .post(t.url(&format!("/admin/api/v1/blobs?{query}")))
        .bearer_auth(OPERATOR_KEY)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn stored_files(t: &TestServer) -> usize {
    let root = t.dir.path().join("data/blobs");
    let count = |dir: std::path::PathBuf| -> usize { walk(&dir) };
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| {
                    let p = e.unwrap().path();
                    if p.is_dir() { walk(&p) } else { 1 }
                })
                .sum()
            })
            .unwrap_or(0)
    }
    count(root.join("sha256")) + count(root.join("tmp"))
}

#[tokio::test]
async fn upload_then_download_with_ranges_and_etags() {
    let t = TestServer::start(Options::default()).await;
    let data = firmware(3 * 1024 * 1024 + 17);
    let (status, body) = upload(
        &t,
        &format!("md5={}&size={}", md5_hex(&data), data.len()),
        data.clone(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let sha = body["sha256"].as_str().unwrap().to_string();
    assert_eq!(body["md5"], md5_hex(&data));
    assert_eq!(body["size"], data.len());
    assert_eq!(body["url"], format!("{}/blobs/{sha}", t.server.url()));

    let url = t.url(&format!("/blobs/{sha}"));
    let full = t.http.get(&url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(
        full.headers()["content-length"],
        data.len().to_string().as_str()
    );
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    let etag = full.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{sha}\""));
    assert_eq!(full.bytes().await.unwrap().as_ref(), data.as_slice());

    // Resume from an offset, a closed range, a suffix.
    for (range, from, to) in [
        ("bytes=1000000-", 1_000_000, data.len() - 1),
        ("bytes=10-19", 10, 19),
        ("bytes=-100", data.len() - 100, data.len() - 1),
    ] {
        let r = t
            .http
            .get(&url)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {from}-{to}/{}", data.len()).as_str()
        );
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[from..=to]);
    }
    let r = t
        .http
        .get(&url)
        .header("range", format!("bytes={}-", data.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    // Unchanged: 304. Resuming against another version: the whole file.
    let r = t
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let weak = format!("\"other\", W/{etag}");
    let r = t
        .http
        .get(&url)
        .header("if-none-match", weak)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304, "weak comparison");
    let r = t
        .http
        .get(&url)
        .header("range", "bytes=0-9")
        .header("if-range", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A friendly file name may follow the address.
    let r = t
        .http
        .get(t.url(&format!("/blobs/{sha}/fw-1.0.bin")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Same content again: same address, stored once.
    let (status, again) = upload(&t, "", data.clone()).await;
    assert_eq!(
        (status, again["sha256"].as_str()),
        (201, Some(sha.as_str()))
    );
    assert_eq!(stored_files(&t), 1);
    let r = t
        .http
        .get(t.url(&format!("/blobs/{}", "0".repeat(64))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = t
        .http
        .get(t.url("/blobs/..%2F..%2Fetc%2Fpasswd"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    t.stop().await;
}

#[tokio::test]
async fn a_bad_declaration_keeps_nothing() {
    let t = TestServer::start(Options {
        configure: Box::new(|f: &mut FileConfig| f.blobs.max_upload_mib = 1),
        ..Default::default()
    })
    .await;
    let data = firmware(4096);
    for query in [
        format!("md5={}", "0".repeat(32)),
        format!("sha256={}", "0".repeat(64)),
        "size=4095".to_string(),
        "size=4097".to_string(),
        "md5=nothex".to_string(),
    ] {
        let (status, body) = upload(&t, &query, data.clone()).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 5);
    }
    let (status, _) = upload(&t, "", firmware(2 * 1024 * 1024)).await;
    assert_eq!(status, 413);
    assert_eq!(stored_files(&t), 0, "refused uploads leave no file behind");

    // Operator keys only.
    let r = t
        .http
        .post(t.url("/admin/api/v1/blobs"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = t
        .http
        .post(t.url("/admin/api/v1/blobs"))
        .header("X-API-Key", API_KEY)
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    t.stop().await;
}

#[tokio::test]
async fn signed_links_expire_and_can_be_required() {
    let t = TestServer::start(Options {
        configure: Box::new(|f: &mut FileConfig| {
            f.blobs.require_signed_urls = true;
            f.blobs.url_ttl_secs = 60;
        }),
        ..Default::default()
    })
    .await;
    let (_, body) = upload(&t, "", firmware(100)).await;
    let sha = body["sha256"].as_str().unwrap();
    let signed = body["signed_url"].as_str().unwrap().to_string();
    assert!(
        signed.contains("exp=") && signed.contains("sig="),
        "{signed}"
    );

    assert_eq!(t.http.get(&signed).send().await.unwrap().status(), 200);
    let unsigned = t
        .http
        .get(t.url(&format!("/blobs/{sha}")))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    let tampered = signed.replace("sig=", "sig=00");
    assert_eq!(t.http.get(&tampered).send().await.unwrap().status(), 403);
    let other_exp = signed.replace("exp=", "exp=9");
    assert_eq!(t.http.get(&other_exp).send().await.unwrap().status(), 403);
    t.clock.advance_secs(61);
    assert_eq!(t.http.get(&signed).send().await.unwrap().status(), 403);
    t.stop().await;
}

/// An upload whose body arrives only as the test sends it: the sender, and the answer.
fn held_upload(
    t: &TestServer,
    key: &str,
) -> (
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    tokio::task::JoinHandle<u16>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_of(rx));
    let req = t
        .http
        .post(t.url("/admin/api/v1/blobs"))
        .bearer_auth(key)
        .body(body);
    let answer = tokio::spawn(async move { req.send().await.unwrap().status().as_u16() });
    (tx, answer)
}

fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

#[tokio::test]
async fn uploads_in_flight_are_bounded_per_key_and_over_the_host() {
    let t = TestServer::start(Options {
        configure: Box::new(|f: &mut FileConfig| {
            f.blobs.uploads_per_party = 1;
            f.blobs.uploads_in_flight = 2;
        }),
        ..Default::default()
    })
    .await;
    let mut keys = Vec::new();
    for name in ["second", "third"] {
        let r = t
            .http
            .post(t.url("/admin/api/v1/api-keys"))
            .bearer_auth(OPERATOR_KEY)
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let b: Value = r.json().await.unwrap();
        keys.push(b["key"].as_str().unwrap().to_string());
    }
    let small = |key: String| {
        let req = t
            .http
            .post(t.url("/admin/api/v1/blobs"))
            .bearer_auth(key)
            .body(firmware(1000));
        async move {
            let r = req.send().await.unwrap();
            let retry = r.headers().get("retry-after").cloned();
            (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
        }
    };
    // One key streams slowly: its next upload is refused at once, in the API's shape.
    let (a, a_answer) = held_upload(&t, OPERATOR_KEY);
    a.send(Ok(firmware(64 * 1024))).await.unwrap();
    // Let it reach the handler before this key's next upload can race it for the place.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !a_answer.is_finished(),
        "the slow upload was answered early"
    );
    assert!(
        ota_tests::eventually(std::time::Duration::from_secs(5), || async {
            small(OPERATOR_KEY.to_string()).await.0 == 429
        })
        .await
    );
    let (s, retry, e) = small(OPERATOR_KEY.to_string()).await;
    assert_eq!((s, retry.unwrap()), (429, "1".parse().unwrap()));
    assert_eq!(e["error"]["code"], "too_many_requests");
    // Another key is not held up by it.
    let (s, _, b) = small(keys[0].clone()).await;
    assert_eq!(s, 201, "{b}");
    // With two slow uploads the host is full: a third key waits its turn too.
    let (b_tx, b_answer) = held_upload(&t, &keys[0]);
    b_tx.send(Ok(firmware(1024))).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !b_answer.is_finished(),
        "the second slow upload was answered early"
    );
    assert!(
        ota_tests::eventually(std::time::Duration::from_secs(5), || async {
            small(keys[1].clone()).await.0 == 429
        })
        .await
    );
    // Finished uploads give their places back.
    a.send(Ok(firmware(10))).await.unwrap();
    drop(a);
    drop(b_tx);
    assert_eq!(a_answer.await.unwrap(), 201);
    assert_eq!(b_answer.await.unwrap(), 201);
    assert_eq!(small(keys[1].clone()).await.0, 201);
    assert_eq!(small(OPERATOR_KEY.to_string()).await.0, 201);
    t.stop().await;
}

//! Sealed secrets at rest: app secrets and the host's signing keys never reach the database
//! file in clear, product keys are salted, a database from before sealing is migrated in
//! place at start, and rotating the master key re-seals everything and keeps it working.

use std::path::Path;

use ota_host::Services;
use ota_host::clock::ManualClock;
use ota_host::config::{Config, FileConfig, Overrides};
use ota_host::secrets::Sealer;
use ota_tests::T0_MILLIS;
use sha2::Digest;

const APP_SECRET: &str = "app-secret-that-must-never-be-stored-in-clear";
const PRODUCT_KEY: &str = "product-key-0123456789abcdefghij";

fn config(dir: &Path) -> Config {
    Config::from_parts(
        FileConfig::default(),
        Overrides {
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap()
}

async fn open(dir: &Path) -> Services {
    Services::open(&config(dir), ManualClock::new(T0_MILLIS))
        .await
        .unwrap()
}

/// The database file and its write-ahead log, as bytes on disk.
fn on_disk(dir: &Path) -> Vec<u8> {
    let mut all = std::fs::read(dir.join("ota.db")).unwrap();
    if let Ok(wal) = std::fs::read(dir.join("ota.db-wal")) {
        all.extend(wal);
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn hmac_sha1(key: &str, msg: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// Everything still verifies: the app secret signs, the product key matches, the upload
/// key signs forms (its secret is readable).
async fn still_works(s: &Services, product_id: i64) {
    s.auth
        .verify_hmac_sha1(
            "ctwing",
            "app-1",
            b"m",
            &hmac_sha1(APP_SECRET, b"m"),
            None,
            900,
        )
        .await
        .unwrap();
    s.auth
        .verify_product_key(product_id, PRODUCT_KEY)
        .await
        .unwrap();
    assert!(
        s.auth
            .verify_product_key(product_id, "wrong")
            .await
            .is_err()
    );
    let t = s.auth.tenant("acme").await.unwrap();
    s.uploads
        .issue(t.id, "http://h/oss/acme", "ota/", 1024, 60, None)
        .await
        .unwrap();
}

async fn column(s: &Services, sql: &str) -> String {
    sqlx::query_scalar(sql)
        .fetch_one(s.db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn secrets_are_sealed_migrated_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let t = s.auth.create_tenant("acme").await.unwrap();
    s.auth
        .create_hmac_key("acme", "ctwing", Some("app-1"), Some(APP_SECRET))
        .await
        .unwrap();
    let product = s
        .catalog
        .create_product(t.id, "10005977", "meter")
        .await
        .unwrap();
    s.auth
        .set_product_key(product.id, Some(PRODUCT_KEY), None)
        .await
        .unwrap();
    let upload = s.uploads.key_for(t.id).await.unwrap();
    still_works(&s, product.id).await;

    let sealed = column(&s, "SELECT secret FROM hmac_keys").await;
    assert!(Sealer::is_sealed(&sealed), "{sealed}");
    assert!(Sealer::is_sealed(
        &column(&s, "SELECT secret FROM upload_keys").await
    ));
    assert!(Sealer::is_sealed(
        &column(
            &s,
            "SELECT value FROM host_secrets WHERE name = 'blob-url-key'"
        )
        .await
    ));
    let salted = column(&s, "SELECT key_hash FROM product_keys").await;
    assert!(salted.starts_with("s1$"), "{salted}");
    let bare = hex::encode(sha2::Sha256::digest(PRODUCT_KEY.as_bytes()));
    let disk = on_disk(dir.path());
    assert!(
        !contains(&disk, APP_SECRET),
        "the app secret is on disk in clear"
    );
    assert!(
        !contains(&disk, &bare),
        "the product key's bare digest is on disk"
    );
    assert!(dir.path().join("master.key").exists());

    // A database from before sealing: secrets in clear, a bare product-key digest.
    let url_key = hex::encode([7u8; 32]);
    for sql in [
        format!("UPDATE hmac_keys SET secret = '{APP_SECRET}'"),
        format!("UPDATE product_keys SET key_hash = '{bare}'"),
        format!(
            "UPDATE upload_keys SET secret = '{}'",
            hex::encode([9u8; 20])
        ),
        format!("UPDATE host_secrets SET value = '{url_key}' WHERE name = 'blob-url-key'"),
    ] {
        sqlx::query(&sql).execute(s.db.pool()).await.unwrap();
    }
    s.db.close().await;
    let s = open(dir.path()).await;
    assert!(Sealer::is_sealed(
        &column(&s, "SELECT secret FROM hmac_keys").await
    ));
    assert!(Sealer::is_sealed(
        &column(&s, "SELECT secret FROM upload_keys").await
    ));
    assert!(Sealer::is_sealed(
        &column(
            &s,
            "SELECT value FROM host_secrets WHERE name = 'blob-url-key'"
        )
        .await
    ));
    assert!(
        column(&s, "SELECT key_hash FROM product_keys")
            .await
            .starts_with("s1$")
    );
    still_works(&s, product.id).await;
    // The migrated URL key is the one that was stored: links signed before still verify.
    let sha = "a".repeat(64);
    let want = {
        use hmac::Mac;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&[7u8; 32]).unwrap();
        m.update(format!("{sha}\n42").as_bytes());
        hex::encode(m.finalize().into_bytes())
    };
    assert_eq!(s.blobs.sign(&sha, 42), format!("exp=42&sig={want}"));
    s.db.close().await;

    // Rotation: a new key seals everything; the old one is gone from the file.
    let before = Sealer::from_file(&dir.path().join("master.key"))
        .unwrap()
        .key_ids();
    let next = std::sync::Arc::new(
        Sealer::from_file(&dir.path().join("master.key"))
            .unwrap()
            .with_new_key(),
    );
    next.save(&dir.path().join("master.key"), false).unwrap();
    let s = Services::open_with(
        &config(dir.path()),
        ManualClock::new(T0_MILLIS),
        next.clone(),
    )
    .await
    .unwrap();
    s.db.close().await;
    next.save(&dir.path().join("master.key"), true).unwrap();
    let after = Sealer::from_file(&dir.path().join("master.key"))
        .unwrap()
        .key_ids();
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
    let s = open(dir.path()).await;
    for sql in [
        "SELECT secret FROM hmac_keys",
        "SELECT secret FROM upload_keys",
        "SELECT value FROM host_secrets WHERE name = 'blob-url-key'",
    ] {
        assert_eq!(
            Sealer::key_of(&column(&s, sql).await),
            Some(after[0].as_str()),
            "{sql}"
        );
    }
    still_works(&s, product.id).await;
    assert_eq!(
        s.uploads.key_for(t.id).await.unwrap().access_id,
        upload.access_id
    );
    s.db.close().await;
}

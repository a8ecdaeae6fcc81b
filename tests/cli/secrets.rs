//! `ota-host secrets` as an operator runs it: `status` names the key file and its key,
//! `rotate` seals every stored secret with a new key and leaves only that key in the file,
//! and what was stored keeps working (an app secret still verifies signatures).

use hmac::Mac;

use super::ota;

#[tokio::test]
async fn rotation_reseals_and_keeps_secrets_working() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(ota(&data, &["tenant", "create", "acme"]).0);
    let (ok, _, err) = ota(
        &data,
        &[
            "app-key",
            "create",
            "--tenant",
            "acme",
            "--realm",
            "ctwing",
            "--app-key",
            "k1",
            "--secret",
            "s3cr3t-app-secret",
        ],
    );
    assert!(ok, "{err}");
    let (ok, before, _) = ota(&data, &["secrets", "status"]);
    assert!(ok);
    let (file, old_id) = before.trim().split_once('\t').unwrap();
    assert!(file.ends_with("master.key"), "{before}");
    assert_eq!(old_id.len(), 8, "{before}");

    let (ok, out, err) = ota(&data, &["secrets", "rotate"]);
    assert!(ok, "{err}");
    assert!(out.contains("sealed with key"), "{out}");
    let (_, after, _) = ota(&data, &["secrets", "status"]);
    let new_id = after.trim().split_once('\t').unwrap().1;
    assert_ne!(new_id, old_id);
    assert!(!new_id.contains(','), "only the new key is left: {after}");

    let config = ota_host::config::Config::from_parts(
        Default::default(),
        ota_host::config::Overrides {
            data_dir: Some(data.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let s = ota_host::Services::open(&config, std::sync::Arc::new(ota_host::clock::SystemClock))
        .await
        .unwrap();
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"s3cr3t-app-secret").unwrap();
    mac.update(b"message");
    s.auth
        .verify_hmac_sha1(
            "ctwing",
            "k1",
            b"message",
            &mac.finalize().into_bytes(),
            None,
            900,
        )
        .await
        .unwrap();
    let sealed: String = sqlx::query_scalar("SELECT secret FROM hmac_keys")
        .fetch_one(s.db.pool())
        .await
        .unwrap();
    assert_eq!(ota_host::secrets::Sealer::key_of(&sealed), Some(new_id));
    s.db.close().await;
}

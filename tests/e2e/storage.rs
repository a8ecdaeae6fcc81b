//! The storage layer against both backends: the same suite on SQLite and on a real
//! PostgreSQL started for the test, plus the IoTStack flow over HTTP on PostgreSQL.

use std::sync::Arc;

use ota_host::Services;
use ota_host::auth::{AuthError, Role};
use ota_host::blobs::{BlobError, Expect};
use ota_host::catalog::{CatalogError, InstallConfig};
use ota_host::clock::ManualClock;
use ota_host::config::{Config, FileConfig, Overrides};
use ota_host::rollout::{DeploymentStatus, RolloutError};
use ota_tests::pg::Postgres;
use ota_tests::{API_KEY, Options, T0_MILLIS, TestServer};
use serde_json::json;

async fn open(database: String, dir: &std::path::Path) -> (Services, Arc<ManualClock>) {
    let config = Config::from_parts(
        FileConfig::default(),
        Overrides {
            database: Some(database),
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap();
    let clock = ManualClock::new(T0_MILLIS);
    (Services::open(&config, clock.clone()).await.unwrap(), clock)
}

/// Every storage behaviour the spine relies on, against whichever backend `s` uses.
async fn storage_suite(s: &Services, clock: &ManualClock) {
    // Tenants and API keys.
    let acme = s.auth.create_tenant("acme").await.unwrap();
    assert!(matches!(
        s.auth.create_tenant("acme").await,
        Err(AuthError::Conflict(_))
    ));
    assert!(matches!(
        s.auth.create_tenant("bad name").await,
        Err(AuthError::Invalid(_))
    ));
    assert_eq!(s.auth.ensure_tenant("acme").await.unwrap(), acme);
    let (info, key) = s.auth.create_api_key(Some("acme"), "ci").await.unwrap();
    let id = s.auth.verify_api_key(&key).await.unwrap();
    assert_eq!(
        (id.role, id.tenant.unwrap().name),
        (Role::Tenant, "acme".to_string())
    );
    let (_, op) = s.auth.create_api_key(None, "ops").await.unwrap();
    assert_eq!(
        s.auth.verify_api_key(&op).await.unwrap().role,
        Role::Operator
    );
    s.auth.revoke_api_key(info.id).await.unwrap();
    assert!(matches!(
        s.auth.verify_api_key(&key).await,
        Err(AuthError::Unauthenticated(_))
    ));
    assert!(matches!(
        s.auth.revoke_api_key(info.id).await,
        Err(AuthError::NotFound(_))
    ));
    assert_eq!(s.auth.list_api_keys().await.unwrap().len(), 2);

    // Products and devices.
    let p = s
        .catalog
        .create_product(acme.id, "P1", "Gateway")
        .await
        .unwrap();
    assert!(matches!(
        s.catalog.create_product(acme.id, "P1", "again").await,
        Err(CatalogError::Conflict(_))
    ));
    let d1 = s
        .catalog
        .register_device(acme.id, "P1", "gw1")
        .await
        .unwrap();
    let d1_again = s
        .catalog
        .register_device(acme.id, "P1", "gw1")
        .await
        .unwrap();
    assert_eq!(d1, d1_again, "registration is idempotent");
    assert_eq!(d1.product_sn, p.sn);
    let globex = s.auth.create_tenant("globex").await.unwrap();
    assert!(matches!(
        s.catalog.register_device(globex.id, "P1", "gw1").await,
        Err(CatalogError::NotFound(_))
    ));

    // Install configuration upserts; device secrets rotate.
    let mut cfg = InstallConfig {
        software_version: "1.0".into(),
        os: "linux".into(),
        cpu_arch: "arm7".into(),
        mode: "native".into(),
        password: "pw".into(),
    };
    s.catalog
        .put_install_config(d1.id, &cfg, "http://h/r")
        .await
        .unwrap();
    cfg.software_version = "1.1".into();
    s.catalog
        .put_install_config(d1.id, &cfg, "http://h/r2")
        .await
        .unwrap();
    let stored = s.catalog.install_config(d1.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.config, stored.report_url.as_str()),
        (cfg, "http://h/r2")
    );
    let g1 = s.auth.issue_device_secret(d1.id).await.unwrap();
    assert_eq!(
        s.auth
            .verify_device_secret(&g1.device_key, &g1.device_secret)
            .await
            .unwrap(),
        d1.id
    );
    let g2 = s.auth.issue_device_secret(d1.id).await.unwrap();
    assert_eq!(g1.device_key, g2.device_key);
    assert!(
        s.auth
            .verify_device_secret(&g1.device_key, &g1.device_secret)
            .await
            .is_err()
    );
    assert!(
        s.auth
            .verify_device_secret(&g2.device_key, &g2.device_secret)
            .await
            .is_ok()
    );

    // Deployments: transitions, refusals, timeouts applied once.
    let dep = s
        .rollout
        .create_deployment(acme.id, d1.id, true)
        .await
        .unwrap();
    assert_eq!((dep.status, dep.keep_local), (DeploymentStatus::Init, true));
    assert!(matches!(
        s.rollout.report(dep.id, DeploymentStatus::Init, None).await,
        Err(RolloutError::Invalid(_))
    ));
    clock.advance_secs(5);
    let dep = s
        .rollout
        .report(dep.id, DeploymentStatus::Processing, Some("go"))
        .await
        .unwrap();
    assert_eq!(dep.updated_at, T0_MILLIS + 5_000);
    let long = "x".repeat(10_000);
    let dep = s
        .rollout
        .report(dep.id, DeploymentStatus::Processing, Some(&long))
        .await
        .unwrap();
    assert_eq!(
        dep.events.last().unwrap().message.len(),
        ota_host::rollout::MAX_LOG_LINE
    );
    let dep = s
        .rollout
        .report(dep.id, DeploymentStatus::Failed, Some("boom"))
        .await
        .unwrap();
    assert!(matches!(
        s.rollout
            .report(dep.id, DeploymentStatus::Success, None)
            .await,
        Err(RolloutError::Conflict(_))
    ));
    assert_eq!(dep.events.len(), 4);
    assert!(matches!(
        s.rollout.deployment(999_999).await,
        Err(RolloutError::NotFound(_))
    ));

    let slow: Vec<i64> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(
                s.rollout
                    .create_deployment(acme.id, d1.id, false)
                    .await
                    .unwrap()
                    .id,
            );
        }
        v
    };
    clock.advance_secs(3_601);
    // Two passes racing (as two replicas would): each deployment moves exactly once.
    let (a, b) = tokio::join!(s.rollout.time_out_overdue(), s.rollout.time_out_overdue());
    assert_eq!(a.unwrap() + b.unwrap(), 5);
    for id in slow {
        let d = s.rollout.deployment(id).await.unwrap();
        assert_eq!(d.status, DeploymentStatus::Timeout);
        let timeouts = d
            .events
            .iter()
            .filter(|e| e.status == DeploymentStatus::Timeout)
            .count();
        assert_eq!(timeouts, 1, "duplicated transition in {:?}", d.events);
    }
    let failed = s.rollout.deployment(dep.id).await.unwrap();
    assert_eq!(
        failed.status,
        DeploymentStatus::Failed,
        "final deployments never time out"
    );

    // Blobs: a declared md5 that does not match keeps nothing; a good upload is recorded.
    let chunks = || {
        futures::stream::iter(vec![
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"fw-")),
            Ok(bytes::Bytes::from_static(b"1.0")),
        ])
    };
    let bad = Expect {
        md5: Some("0".repeat(32)),
        ..Default::default()
    };
    assert!(matches!(
        s.blobs.put(chunks(), &bad, 1 << 20).await,
        Err(BlobError::Mismatch(_))
    ));
    let info = s
        .blobs
        .put(chunks(), &Expect::default(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(info.size, 6);
    assert_eq!(s.blobs.stat(&info.sha256).await.unwrap(), info);
    assert!(matches!(
        s.blobs.stat(&"0".repeat(64)).await,
        Err(BlobError::NotFound(_))
    ));
}

#[tokio::test]
async fn storage_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let (s, clock) = open(url, dir.path()).await;
    storage_suite(&s, &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_and_iotstack_on_postgres() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (s, clock) = open(pg.create_database(), dir.path()).await;
    storage_suite(&s, &clock).await;
    s.db.close().await;

    // The whole server on PostgreSQL: the IoTStack flow over HTTP.
    let t = TestServer::start(Options {
        database: Some(pg.create_database()),
        ..Default::default()
    })
    .await;
    let (status, body) = t
        .post(
            "/api/v1/deployment/create",
            Some(API_KEY),
            r#"{"ProductSN":"fqhmuglv1fybql33","DeviceSN":"pg-gw","KeepLocal":false}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["Data"]["DeploymentID"].as_u64().unwrap();
    let (status, body) = t
        .post(
            "/api/v1/deployment/info",
            Some(API_KEY),
            &json!({ "DeploymentID": id }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Data"]["Status"], "init");
    t.clock.advance_secs(3_601);
    assert_eq!(t.server.scheduler_tick().await, 1);
    t.stop().await;
    drop(pg);
}

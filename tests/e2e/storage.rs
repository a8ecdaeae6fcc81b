//! The storage layer against both backends: the same suite on SQLite and on a real
//! PostgreSQL started for the test, plus the IoTStack and XLINK flows over HTTP on PostgreSQL.

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
    let clock = ManualClock::new(T0_MILLIS);
    (open_with(database, dir, clock.clone()).await, clock)
}

/// Services on `database` reading `clock` (replicas of one deployment share the time).
async fn open_with(database: String, dir: &std::path::Path, clock: Arc<ManualClock>) -> Services {
    let config = Config::from_parts(
        FileConfig::default(),
        Overrides {
            database: Some(database),
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap();
    Services::open(&config, clock).await.unwrap()
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

/// A deployment is due by its creation plus the timeout the host runs with now: a restart
/// with a shorter or longer `deployment-timeout-secs` moves open deadlines too.
#[tokio::test]
async fn deployment_deadlines_follow_the_current_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let (hour, clock) = open(url.clone(), dir.path()).await;
    let with_timeout = |secs: u64| {
        let mut file = FileConfig::default();
        file.scheduler.deployment_timeout_secs = secs;
        let config = Config::from_parts(
            file,
            Overrides {
                database: Some(url.clone()),
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
        )
        .unwrap();
        let clock = clock.clone();
        async move { Services::open(&config, clock).await.unwrap() }
    };
    let acme = hour.auth.create_tenant("acme").await.unwrap();
    hour.catalog
        .create_product(acme.id, "P1", "Gateway")
        .await
        .unwrap();
    let gw = hour
        .catalog
        .register_device(acme.id, "P1", "gw1")
        .await
        .unwrap();
    let short = hour
        .rollout
        .create_deployment(acme.id, gw.id, false)
        .await
        .unwrap();
    let long = hour
        .rollout
        .create_deployment(acme.id, gw.id, false)
        .await
        .unwrap();
    assert_eq!(short.deadline_at, T0_MILLIS + 3_600_000);
    clock.advance_secs(61);
    let minute = with_timeout(60).await;
    assert_eq!(
        minute
            .rollout
            .deployment(short.id)
            .await
            .unwrap()
            .deadline_at,
        T0_MILLIS + 60_000
    );
    assert!(
        minute
            .rollout
            .report(long.id, DeploymentStatus::Processing, None)
            .await
            .is_err(),
        "past the current deadline"
    );
    assert_eq!(hour.rollout.time_out_overdue().await.unwrap(), 0);
    let two_hours = with_timeout(7_200).await;
    clock.advance_secs(3_600);
    assert_eq!(
        two_hours
            .rollout
            .report(long.id, DeploymentStatus::Processing, None)
            .await
            .unwrap()
            .deadline_at,
        T0_MILLIS + 7_200_000,
        "a longer timeout keeps an open deployment alive"
    );
    assert_eq!(minute.rollout.time_out_overdue().await.unwrap(), 2);
    let d = two_hours.rollout.deployment(short.id).await.unwrap();
    assert_eq!(
        (d.status, d.deadline_at),
        (DeploymentStatus::Timeout, T0_MILLIS + 60_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_and_dialects_on_postgres() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (s, clock) = open(pg.create_database(), dir.path()).await;
    storage_suite(&s, &clock).await;
    s.db.close().await;
    let (s, clock) = open(pg.create_database(), dir.path()).await;
    campaign_suite(&s, &clock).await;
    s.db.close().await;
    let (s, clock) = open(pg.create_database(), dir.path()).await;
    model_suite(&s, &clock).await;
    caches_follow_local_changes(&s).await;
    s.db.close().await;

    // Two replicas (two pools, as two host processes would have) race their schedulers over
    // one database: every overdue job and deployment moves exactly once.
    let url = pg.create_database();
    let (a, clock) = open(url.clone(), dir.path()).await;
    let b = open_with(url, dir.path(), clock.clone()).await;
    replicas_race(&a, &b, &clock).await;
    replicas_follow_changes(&a, &b).await;
    revocations_reach_every_replica(&a, &b, false).await;
    waves_never_overshoot(&a, &b).await;
    deployments_survive_the_upgrade(pg.create_database(), dir.path()).await;

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

    // XLINK's whole workflow: device tokens, campaign facts, the job search's bound LIKE.
    crate::xlink::rollout_workflow(
        crate::xlink::start_on(Some(pg.create_database())).await,
        true,
    )
    .await;

    connections_the_database_ended_are_replaced(pg.create_database()).await;
    drop(pg);
}

/// A pooled connection the database server ended (a restart, a middlebox's idle timeout) is
/// pinged once it has sat idle and replaced, never handed out dead.
async fn connections_the_database_ended_are_replaced(url: String) {
    use sqlx::Connection;
    let db = ota_host::storage::Db::connect(&url, Some(2)).await.unwrap();
    for _ in 0..2 {
        sqlx::query("SELECT 1").execute(db.pool()).await.unwrap();
    }
    // A connection goes back to the pool just after its statement, not with it.
    for _ in 0..100 {
        if db.pool().num_idle() >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(db.pool().num_idle() >= 1, "the pool keeps a connection");
    let mut outside = sqlx::AnyConnection::connect(&url).await.unwrap();
    let ended = sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut outside)
    .await
    .unwrap();
    assert!(!ended.is_empty(), "the pool's sessions were ended");
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    for _ in 0..3 {
        let row = db
            .read_one(sqlx::query("SELECT 1"))
            .await
            .expect("a dead connection is replaced, not used");
        assert_eq!(sqlx::Row::get::<i32, _>(&row, 0), 1);
    }
    outside.close().await.unwrap();
    db.close().await;
}

/// An online MCU release of `version` (an external file) as a campaign target.
async fn online_mcu_release(
    s: &Services,
    tenant_id: i64,
    product: &ota_host::catalog::Product,
    version: &str,
) -> ota_host::rollout::campaigns::Target {
    use ota_host::catalog::releases::{Module, NewRelease, Payload, ReleaseStatus};
    let rel = s
        .catalog
        .create_release(
            tenant_id,
            NewRelease {
                product_sn: product.sn.clone(),
                module: Module::Mcu,
                identify: 0,
                name: format!("v{version}"),
                version: version.into(),
                from_version: None,
                payload: Payload::External {
                    url: "https://cdn.example/fw.bin".into(),
                    md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
                    size: 10,
                },
                status: ReleaseStatus::Online,
                description: String::new(),
                customize: String::new(),
                mac_range: vec![],
                arch: None,
            },
        )
        .await
        .unwrap();
    ota_host::rollout::campaigns::Target {
        release_id: rel.id,
        product_id: product.id,
        module: "mcu".into(),
        identify: 0,
        version: version.into(),
    }
}

/// A formal auto campaign over every device of the target's product, without retries.
fn auto_for_all(
    name: &str,
    target: ota_host::rollout::campaigns::Target,
    timeout_secs: u64,
    waves: Option<ota_host::rollout::campaigns::Waves>,
) -> ota_host::rollout::campaigns::NewCampaign {
    ota_host::rollout::campaigns::NewCampaign {
        description: String::new(),
        name: name.into(),
        target,
        from_version: None,
        scope: ota_host::rollout::campaigns::Scope::All,
        mode: ota_host::rollout::campaigns::Mode::Auto,
        tag: "formal".into(),
        retries: 0,
        timeout_secs,
        waves,
        window: None,
    }
}

/// The hot path's caches (a campaign's attributes, the release an offer names) follow a
/// change made by this process at once, on either backend.
async fn caches_follow_local_changes(s: &Services) {
    use ota_host::catalog::releases::{Payload, ReleasePatch, ReleaseStatus};
    let t = s.auth.ensure_tenant("caches").await.unwrap();
    let p = s.catalog.create_product(t.id, "C", "caches").await.unwrap();
    let target = online_mcu_release(s, t.id, &p, "5").await;
    let release_id = target.release_id;
    let c = s
        .rollout
        .create_campaign(t.id, auto_for_all("caches", target, 600, None), "ops")
        .await
        .unwrap();
    let attr = |v: &str| vec![("x.url".to_string(), Some(v.to_string()))];
    for v in ["one", "two"] {
        s.rollout
            .set_campaign_attributes(t.id, c.id, &attr(v))
            .await
            .unwrap();
        let read = s.rollout.campaign_attributes(&c).await.unwrap();
        assert_eq!(read, vec![("x.url".to_string(), v.to_string())]);
    }

    let offered = s.catalog.offered_release(t.id, release_id).await.unwrap();
    assert_eq!(
        offered.external_url.as_deref(),
        Some("https://cdn.example/fw.bin")
    );
    let moved = Payload::External {
        url: "https://cdn.example/moved.bin".into(),
        md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
        size: 10,
    };
    s.catalog
        .update_release(
            t.id,
            release_id,
            ReleasePatch {
                name: None,
                version: None,
                payload: Some(moved),
                description: None,
                customize: None,
                mac_range: None,
            },
        )
        .await
        .unwrap();
    let offered = s.catalog.offered_release(t.id, release_id).await.unwrap();
    assert_eq!(
        offered.external_url.as_deref(),
        Some("https://cdn.example/moved.bin")
    );
    s.catalog
        .set_release_status(t.id, release_id, ReleaseStatus::Test)
        .await
        .unwrap();
    let offered = s.catalog.offered_release(t.id, release_id).await.unwrap();
    assert_eq!(offered.status, ReleaseStatus::Test);
    // Another tenant never sees it, cached or not.
    let other = s.auth.ensure_tenant("caches-other").await.unwrap();
    assert!(
        s.catalog
            .offered_release(other.id, release_id)
            .await
            .is_err()
    );
    s.catalog.delete_release(t.id, release_id).await.unwrap();
    assert!(s.catalog.offered_release(t.id, release_id).await.is_err());
}

/// Campaigns and jobs against whichever backend `s` uses, driven by the manual clock.
async fn campaign_suite(s: &Services, clock: &ManualClock) {
    use ota_host::rollout::campaigns::{
        Action, CampaignStatus, DeviceFacts, Mode, NewCampaign, Scope,
    };
    use ota_host::rollout::job::JobState;

    let t = s.auth.ensure_tenant("fleet").await.unwrap();
    let p = s
        .catalog
        .create_product(t.id, "WM-1", "Wi-Fi module")
        .await
        .unwrap();
    let target = online_mcu_release(s, t.id, &p, "2.0").await;
    let mut facts = Vec::new();
    for sn in ["d1", "d2", "d3", "d4"] {
        let d = s.catalog.register_device(t.id, "WM-1", sn).await.unwrap();
        facts.push(DeviceFacts {
            id: d.id,
            product_id: p.id,
            group: None,
        });
    }
    let new = |scope: Scope, mode: Mode| NewCampaign {
        description: String::new(),
        name: "to 2.0".into(),
        target: target.clone(),
        from_version: None,
        scope,
        mode,
        tag: "formal".into(),
        retries: 1,
        timeout_secs: 60,
        waves: None,
        window: None,
    };
    let bad = NewCampaign {
        retries: 4,
        ..new(Scope::All, Mode::Auto)
    };
    assert!(matches!(
        s.rollout.create_campaign(t.id, bad, "bob").await,
        Err(RolloutError::Invalid(_))
    ));

    // Approval workflow with its refusals.
    let c = s
        .rollout
        .create_campaign(t.id, new(Scope::All, Mode::Auto), "bob")
        .await
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Draft);
    assert!(
        s.rollout
            .check_in(&facts[0], "mcu", 0, "1.0")
            .await
            .unwrap()
            .is_none(),
        "draft offers nothing"
    );
    assert!(matches!(
        s.rollout
            .act(t.id, c.id, Action::Approve, "alice", "")
            .await,
        Err(RolloutError::Conflict(_))
    ));
    s.rollout
        .act(t.id, c.id, Action::Submit, "bob", "please")
        .await
        .unwrap();
    s.rollout
        .act(t.id, c.id, Action::Reject, "alice", "not yet")
        .await
        .unwrap();
    s.rollout
        .act(t.id, c.id, Action::Submit, "bob", "again")
        .await
        .unwrap();
    let c = s
        .rollout
        .act(t.id, c.id, Action::Approve, "alice", "ok")
        .await
        .unwrap();
    assert_eq!(
        (c.status, c.approver.as_deref()),
        (CampaignStatus::Running, Some("alice"))
    );
    s.rollout
        .act(t.id, c.id, Action::Pause, "bob", "")
        .await
        .unwrap();
    assert!(
        s.rollout
            .check_in(&facts[0], "mcu", 0, "1.0")
            .await
            .unwrap()
            .is_none(),
        "paused offers nothing"
    );
    s.rollout
        .act(t.id, c.id, Action::Resume, "bob", "")
        .await
        .unwrap();

    // Check-in creates the job on first contact; current devices get nothing.
    let offer = s
        .rollout
        .check_in(&facts[0], "mcu", 0, "1.0")
        .await
        .unwrap()
        .expect("an offer");
    assert_eq!(offer.campaign.id, c.id);
    assert_eq!(offer.job.state, JobState::Notified);
    assert_eq!(offer.job.version_before.as_deref(), Some("1.0"));
    let again = s
        .rollout
        .check_in(&facts[0], "mcu", 0, "1.0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.job.id, offer.job.id);
    assert!(
        s.rollout
            .check_in(&facts[1], "mcu", 0, "2.0")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.rollout
            .check_in(&facts[1], "wifi", 0, "1.0")
            .await
            .unwrap()
            .is_none()
    );

    // Reports move forward only.
    let j = offer.job.id;
    s.rollout
        .report_job(j, facts[0].id, JobState::Installing, None, "", None)
        .await
        .unwrap();
    assert!(matches!(
        s.rollout
            .report_job(j, facts[0].id, JobState::Downloading, None, "", None)
            .await,
        Err(RolloutError::Conflict(_))
    ));
    let done = s
        .report_job(j, facts[0].id, JobState::Succeeded, Some(0), "ok", None)
        .await
        .unwrap();
    assert_eq!(
        (done.state, done.version_after.as_deref()),
        (JobState::Succeeded, Some("2.0"))
    );
    assert!(matches!(
        s.rollout
            .report_job(j, facts[0].id, JobState::Failed, None, "", None)
            .await,
        Err(RolloutError::Conflict(_))
    ));

    let versions = s.catalog.module_versions(facts[0].id).await.unwrap();
    assert_eq!(versions, vec![("mcu".to_string(), 0, "2.0".to_string())]);

    // A silent device times out, is retried once, then stays timed out.
    let slow = s
        .rollout
        .check_in(&facts[1], "mcu", 0, "1.5")
        .await
        .unwrap()
        .unwrap()
        .job
        .id;
    clock.advance_secs(61);
    let tick = s.rollout.tick_jobs().await.unwrap();
    assert_eq!((tick.timed_out, tick.retried), (1, 1));
    assert_eq!(s.rollout.job(slow).await.unwrap().state, JobState::Queued);
    s.rollout
        .check_in(&facts[1], "mcu", 0, "1.5")
        .await
        .unwrap()
        .unwrap();
    clock.advance_secs(61);
    let tick = s.rollout.tick_jobs().await.unwrap();
    assert_eq!((tick.timed_out, tick.retried), (1, 0));
    let slow_job = s.rollout.job(slow).await.unwrap();
    assert_eq!(
        (slow_job.state, slow_job.retry_count),
        (JobState::TimedOut, 1)
    );
    let stats = s.rollout.stats(t.id, c.id).await.unwrap();
    assert_eq!(stats.total, 2);
    assert_eq!(stats.by_state.get("succeeded"), Some(&1));
    assert_eq!(stats.by_state.get("timed-out"), Some(&1));
    assert_eq!(stats.versions.get("2.0"), Some(&1));
    assert_eq!(stats.versions.get("1.5"), Some(&1));
    s.rollout
        .act(t.id, c.id, Action::Stop, "bob", "")
        .await
        .unwrap();

    // Manual campaign over an explicit list finishes when every job is final.
    let m = s
        .rollout
        .create_campaign(
            t.id,
            new(Scope::Devices(vec![facts[2].id]), Mode::Manual),
            "bob",
        )
        .await
        .unwrap();
    s.rollout
        .add_devices(t.id, m.id, &[facts[2].id], "bob", false)
        .await
        .unwrap();
    s.rollout
        .act(t.id, m.id, Action::Submit, "bob", "")
        .await
        .unwrap();
    s.rollout
        .act(t.id, m.id, Action::Approve, "alice", "")
        .await
        .unwrap();
    assert!(
        s.rollout
            .check_in(&facts[3], "mcu", 0, "1.0")
            .await
            .unwrap()
            .is_none(),
        "not on the list"
    );
    let o = s
        .rollout
        .check_in(&facts[2], "mcu", 0, "1.0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.campaign.id, m.id);
    assert_eq!(s.rollout.tick_jobs().await.unwrap().finished_campaigns, 0);
    s.rollout
        .report_job(
            o.job.id,
            facts[2].id,
            JobState::Succeeded,
            None,
            "",
            Some("2.0"),
        )
        .await
        .unwrap();
    assert_eq!(s.rollout.tick_jobs().await.unwrap().finished_campaigns, 1);
    assert_eq!(
        s.rollout.campaign(t.id, m.id).await.unwrap().status,
        CampaignStatus::Finished
    );
    let actions: Vec<String> = s
        .rollout
        .campaign_log(t.id, m.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["create", "add-devices", "submit", "approve", "finish"]
    );

    // Cancelling withdraws open jobs; two racing scheduler passes time out each job once.
    let x = s
        .rollout
        .create_campaign(t.id, new(Scope::All, Mode::Auto), "bob")
        .await
        .unwrap();
    s.rollout
        .act(t.id, x.id, Action::Submit, "bob", "")
        .await
        .unwrap();
    s.rollout
        .act(t.id, x.id, Action::Approve, "alice", "")
        .await
        .unwrap();
    let open = s
        .rollout
        .check_in(&facts[3], "mcu", 0, "1.0")
        .await
        .unwrap()
        .unwrap()
        .job
        .id;
    let race = s
        .rollout
        .create_campaign(
            t.id,
            NewCampaign {
                retries: 0,
                ..new(Scope::All, Mode::Auto)
            },
            "bob",
        )
        .await
        .unwrap();
    s.rollout
        .act(t.id, x.id, Action::Cancel, "bob", "wrong build")
        .await
        .unwrap();
    assert_eq!(
        s.rollout.job(open).await.unwrap().state,
        JobState::Cancelled
    );
    s.rollout
        .act(t.id, race.id, Action::Submit, "bob", "")
        .await
        .unwrap();
    s.rollout
        .act(t.id, race.id, Action::Approve, "alice", "")
        .await
        .unwrap();
    for f in &facts[..2] {
        s.rollout
            .check_in(f, "mcu", 0, "0.9")
            .await
            .unwrap()
            .unwrap();
    }
    clock.advance_secs(61);
    let (a, b) = tokio::join!(s.rollout.tick_jobs(), s.rollout.tick_jobs());
    assert_eq!(
        a.unwrap().timed_out + b.unwrap().timed_out,
        2,
        "each job times out once"
    );
    assert!(
        s.rollout.campaign(t.id + 1000, c.id).await.is_err(),
        "tenant-scoped"
    );
    s.rollout
        .act(t.id, race.id, Action::Stop, "bob", "")
        .await
        .unwrap();

    // Waves: one device at a time, widened every minute while failures stay under 50%.
    use ota_host::rollout::campaigns::Waves;
    let staged = |max_failure_pct| NewCampaign {
        retries: 0,
        waves: Some(Waves {
            initial: 1,
            step: 1,
            interval_secs: 60,
            max_failure_pct,
        }),
        window: None,
        ..new(Scope::All, Mode::Auto)
    };
    let huge = NewCampaign {
        waves: Some(Waves {
            initial: 1,
            step: u64::MAX / 2,
            interval_secs: 60,
            max_failure_pct: None,
        }),
        window: None,
        ..new(Scope::All, Mode::Auto)
    };
    assert!(matches!(
        s.rollout.create_campaign(t.id, huge, "bob").await,
        Err(RolloutError::Invalid(_))
    ));
    let w = s
        .rollout
        .create_campaign(t.id, staged(Some(50)), "bob")
        .await
        .unwrap();
    s.rollout
        .act(t.id, w.id, Action::Submit, "bob", "")
        .await
        .unwrap();
    s.rollout
        .act(t.id, w.id, Action::Approve, "alice", "")
        .await
        .unwrap();
    let first = s
        .rollout
        .check_in(&facts[0], "mcu", 0, "0.5")
        .await
        .unwrap()
        .unwrap()
        .job
        .id;
    assert!(
        s.rollout
            .check_in(&facts[1], "mcu", 0, "0.5")
            .await
            .unwrap()
            .is_none(),
        "wave is full"
    );
    clock.advance_secs(30);
    assert_eq!(s.rollout.tick_jobs().await.unwrap().widened, 0, "not yet");
    // Coming back on the target version finishes the open job (no explicit report).
    assert!(
        s.rollout
            .check_in(&facts[0], "mcu", 0, "2.0")
            .await
            .unwrap()
            .is_none()
    );
    let j1 = s.rollout.job(first).await.unwrap();
    assert_eq!(
        (j1.state, j1.version_after.as_deref()),
        (JobState::Succeeded, Some("2.0"))
    );
    clock.advance_secs(30);
    assert_eq!(s.rollout.tick_jobs().await.unwrap().widened, 1);
    let second = s
        .rollout
        .check_in(&facts[1], "mcu", 0, "0.5")
        .await
        .unwrap()
        .expect("next wave")
        .job
        .id;
    // Another device cannot report on this job; a retransmitted result is accepted once.
    assert!(matches!(
        s.rollout
            .report_job(second, facts[0].id, JobState::Failed, None, "", None)
            .await,
        Err(RolloutError::NotFound(_))
    ));
    s.report_job(
        second,
        facts[1].id,
        JobState::Failed,
        Some(17),
        "flash error",
        None,
    )
    .await
    .unwrap();
    let again = s
        .report_job(
            second,
            facts[1].id,
            JobState::Failed,
            Some(17),
            "flash error",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        again.previous_state,
        JobState::Notified,
        "a retransmit changes nothing"
    );
    let tick = s.rollout.tick_jobs().await.unwrap();
    assert_eq!(tick.paused, 1, "1 of 2 failed: the 50% guard trips");
    assert_eq!(
        s.rollout.campaign(t.id, w.id).await.unwrap().status,
        CampaignStatus::Paused
    );
    assert!(
        s.rollout
            .check_in(&facts[2], "mcu", 0, "0.5")
            .await
            .unwrap()
            .is_none()
    );
    // Resuming restarts the guard's count: the old failure does not pause it again.
    clock.advance_secs(1);
    s.rollout
        .act(t.id, w.id, Action::Resume, "bob", "fixed the flasher")
        .await
        .unwrap();
    assert_eq!(s.rollout.tick_jobs().await.unwrap().paused, 0);
    assert_eq!(
        s.rollout.campaign(t.id, w.id).await.unwrap().status,
        CampaignStatus::Running
    );
    let actions: Vec<String> = s
        .rollout
        .campaign_log(t.id, w.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "create",
            "submit",
            "approve",
            "widen",
            "auto-pause",
            "resume"
        ]
    );
    s.rollout
        .act(t.id, w.id, Action::Stop, "bob", "")
        .await
        .unwrap();

    // A manual campaign over a device list has its jobs from the start.
    let listed = s
        .rollout
        .create_campaign(
            t.id,
            new(Scope::Devices(vec![facts[3].id]), Mode::Manual),
            "bob",
        )
        .await
        .unwrap();
    assert_eq!(
        s.rollout
            .stats(t.id, listed.id)
            .await
            .unwrap()
            .by_state
            .get("queued"),
        Some(&1)
    );
    // A job that skipped `notified` still gets a deadline, so it can time out.
    s.rollout
        .act(t.id, listed.id, Action::Submit, "bob", "")
        .await
        .unwrap();
    s.rollout
        .act(t.id, listed.id, Action::Approve, "alice", "")
        .await
        .unwrap();
    let (jobs, _) = s
        .rollout
        .jobs(t.id, listed.id, &Default::default(), 10, 0)
        .await
        .unwrap();
    let pushed = s
        .rollout
        .report_job(
            jobs[0].id,
            facts[3].id,
            JobState::Downloading,
            None,
            "",
            None,
        )
        .await
        .unwrap();
    assert!(pushed.deadline_at.is_some());

    // A listed device that is already current counts as done, so the list can finish.
    let current = s
        .rollout
        .create_campaign(
            t.id,
            new(Scope::Devices(vec![facts[2].id]), Mode::Auto),
            "bob",
        )
        .await
        .unwrap();
    s.rollout
        .act(t.id, current.id, Action::Submit, "bob", "")
        .await
        .unwrap();
    s.rollout
        .act(t.id, current.id, Action::Approve, "alice", "")
        .await
        .unwrap();
    assert_eq!(
        s.rollout.tick_jobs().await.unwrap().finished_campaigns,
        0,
        "nobody checked in yet"
    );
    assert!(
        s.rollout
            .check_in(&facts[2], "mcu", 0, "2.0")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.rollout.tick_jobs().await.unwrap().finished_campaigns, 1);
    assert_eq!(
        s.rollout.campaign(t.id, current.id).await.unwrap().status,
        CampaignStatus::Finished
    );

    // The combined flow records what a device runs even when nothing is offered.
    let d5 = s.catalog.register_device(t.id, "WM-1", "d5").await.unwrap();
    assert!(
        s.check_in(&d5, "mcu", 0, "1.0").await.unwrap().is_none(),
        "d5 is on no list"
    );
    assert_eq!(
        s.catalog.module_versions(d5.id).await.unwrap(),
        vec![("mcu".to_string(), 0, "1.0".to_string())]
    );
    assert!(
        s.check_in(&d5, "gpu", 0, "1.0").await.is_err(),
        "unknown module"
    );
}

async fn replicas_race(a: &Services, b: &Services, clock: &ManualClock) {
    use ota_host::rollout::campaigns::{Action, DeviceFacts};
    let t = a.auth.ensure_tenant("race").await.unwrap();
    let p = a.catalog.create_product(t.id, "R", "race").await.unwrap();
    let target = online_mcu_release(a, t.id, &p, "9").await;
    let c = a
        .rollout
        .create_campaign(t.id, auto_for_all("race", target, 10, None), "ops")
        .await
        .unwrap();
    a.rollout
        .act(t.id, c.id, Action::Submit, "ops", "")
        .await
        .unwrap();
    b.rollout
        .act(t.id, c.id, Action::Approve, "lead", "")
        .await
        .unwrap();
    let n = 40;
    for i in 0..n {
        let d = a
            .catalog
            .register_device(t.id, "R", &format!("r{i}"))
            .await
            .unwrap();
        let facts = DeviceFacts {
            id: d.id,
            product_id: p.id,
            group: None,
        };
        // Check-ins land on either replica.
        let replica = if i % 2 == 0 { a } else { b };
        replica
            .rollout
            .check_in(&facts, "mcu", 0, "1")
            .await
            .unwrap()
            .unwrap();
        replica
            .rollout
            .create_deployment(t.id, d.id, false)
            .await
            .unwrap();
    }
    clock.advance_secs(7_200);
    let (ja, jb, da, db) = tokio::join!(
        a.rollout.tick_jobs(),
        b.rollout.tick_jobs(),
        a.rollout.time_out_overdue(),
        b.rollout.time_out_overdue()
    );
    assert_eq!(ja.unwrap().timed_out + jb.unwrap().timed_out, n, "jobs");
    assert_eq!(da.unwrap() + db.unwrap(), n, "deployments");
    let stats = b.rollout.stats(t.id, c.id).await.unwrap();
    assert_eq!(stats.by_state.get("timed-out"), Some(&(n as i64)));

    // Both replicas sample the dashboard's progress at once: one sample is written.
    let every = std::time::Duration::from_secs(60);
    let (sa, sb) = tokio::join!(
        a.rollout.sample_progress(every),
        b.rollout.sample_progress(every)
    );
    assert_eq!(sa.unwrap() + sb.unwrap(), 1, "one sample per period");
    clock.advance_secs(60);
    assert_eq!(b.rollout.sample_progress(every).await.unwrap(), 1);
    let samples = a.rollout.samples(c.id, 100).await.unwrap();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[1].counts.get("timed-out"), Some(&(n as i64)));
    assert_eq!(samples[1].failure_ratio, 1.0);
    // Thinned in the database, the newest sample is the one kept.
    let newest = a.rollout.samples(c.id, 1).await.unwrap();
    assert_eq!(newest, vec![samples[1].clone()]);
    let now = a.rollout.progress_of(&[c.id]).await.unwrap();
    assert_eq!(now[0].jobs, vec![("timed-out".to_string(), n as i64)]);
}

#[tokio::test]
async fn campaigns_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let (s, clock) = open(url, dir.path()).await;
    campaign_suite(&s, &clock).await;
}

/// What 0.2 added to the model (device facts and filters, release edits that retarget their
/// campaigns, campaign filters, edits, approvers, start, device removal and deletion) against
/// whichever backend `s` uses.
async fn model_suite(s: &Services, clock: &ManualClock) {
    use ota_host::catalog::releases::{PageReq, ReleasePatch};
    use ota_host::catalog::{DeviceFilter, DevicePatch};
    use ota_host::rollout::RolloutError;
    use ota_host::rollout::campaigns::{
        Action, CampaignFilter, CampaignPatch, CampaignStatus, DeviceFacts, JobFilter, Mode,
        NewCampaign, Scope,
    };
    use ota_host::rollout::job::JobState;

    let t = s.auth.ensure_tenant("model").await.unwrap();
    let p = s
        .catalog
        .create_product(t.id, "M-1", "Model product")
        .await
        .unwrap();
    let mut devices = Vec::new();
    for (sn, group) in [("m1", Some("north")), ("m2", Some("north")), ("m3", None)] {
        let patch = DevicePatch {
            group: group.map(String::from),
            mac: Some(format!("AA:BB:CC:00:00:0{}", devices.len())),
            ..Default::default()
        };
        devices.push(
            s.catalog
                .update_device(t.id, &p.sn, sn, &patch)
                .await
                .unwrap(),
        );
    }
    let north = DeviceFilter {
        group: Some("north".into()),
        ..Default::default()
    };
    let page = s
        .catalog
        .list_devices(t.id, &p.sn, &north, PageReq::window(1, 1))
        .await
        .unwrap();
    assert_eq!((page.total, page.items.len()), (2, 1));
    assert_eq!(page.items[0].sn, "m2", "offset 1 skips m1");
    let by_mac = DeviceFilter {
        mac: Some("AA:BB:CC:00:00:02".into()),
        ..Default::default()
    };
    let page = s
        .catalog
        .list_devices(t.id, &p.sn, &by_mac, PageReq::default())
        .await
        .unwrap();
    assert_eq!(page.items[0].sn, "m3");

    let target = online_mcu_release(s, t.id, &p, "2.0").await;
    let new = |name: &str, tag: &str| NewCampaign {
        name: name.into(),
        description: "why".into(),
        target: target.clone(),
        from_version: None,
        scope: Scope::Devices(vec![devices[0].id, devices[1].id]),
        mode: Mode::Auto,
        tag: tag.into(),
        retries: 0,
        timeout_secs: 600,
        waves: None,
        window: None,
    };
    let c = s
        .rollout
        .create_campaign(t.id, new("100% north_wave", "formal"), "alice")
        .await
        .unwrap();
    let other = s
        .rollout
        .create_campaign(t.id, new("south", "test"), "alice")
        .await
        .unwrap();

    // Name search matches LIKE wildcards literally and ignores case.
    let named = |needle: &str| CampaignFilter {
        name_contains: Some(needle.into()),
        ..Default::default()
    };
    for (needle, hits) in [("100%", 1), ("_WAVE", 1), ("%", 1), ("th", 2), ("x", 0)] {
        let (_, total) = s
            .rollout
            .list_campaigns(t.id, &named(needle), 10, 0)
            .await
            .unwrap();
        assert_eq!(total, hits, "needle {needle:?}");
    }
    let tagged = CampaignFilter {
        tag: Some("test".into()),
        status: Some(CampaignStatus::Draft),
        product_id: Some(p.id),
        ..Default::default()
    };
    let (items, _) = s
        .rollout
        .list_campaigns(t.id, &tagged, 10, 0)
        .await
        .unwrap();
    assert_eq!(items.iter().map(|c| c.id).collect::<Vec<_>>(), [other.id]);

    // Only the named approver decides.
    s.rollout
        .submit(t.id, c.id, "alice", Some("bob"))
        .await
        .unwrap();
    assert!(matches!(
        s.rollout
            .act(t.id, c.id, Action::Approve, "carol", "")
            .await,
        Err(RolloutError::Forbidden(_))
    ));
    let running = s
        .rollout
        .act(t.id, c.id, Action::Approve, "bob", "")
        .await
        .unwrap();
    assert_eq!(running.status, CampaignStatus::Running);

    // Both listed devices get jobs; removing one cancels its open job.
    let facts = |d: &ota_host::catalog::Device| DeviceFacts {
        id: d.id,
        product_id: p.id,
        group: d.group.clone(),
    };
    for d in &devices[..2] {
        assert!(
            s.rollout
                .check_in(&facts(d), "mcu", 0, "1.0")
                .await
                .unwrap()
                .is_some()
        );
    }
    assert_eq!(
        s.rollout
            .remove_devices(t.id, c.id, &[devices[1].id], "ops")
            .await
            .unwrap(),
        1
    );
    let cancelled = JobFilter {
        state: Some(JobState::Cancelled),
        device_id: None,
    };
    let (jobs, total) = s.rollout.jobs(t.id, c.id, &cancelled, 10, 0).await.unwrap();
    assert_eq!((total, jobs[0].device_id), (1, devices[1].id));
    let of_m1 = JobFilter {
        state: None,
        device_id: Some(devices[0].id),
    };
    let (jobs, _) = s.rollout.jobs(t.id, c.id, &of_m1, 10, 0).await.unwrap();
    assert_eq!(jobs[0].state, JobState::Notified);
    // Listing it again revives the withdrawn job; taking it off again withdraws it again.
    s.rollout
        .add_devices(t.id, c.id, &[devices[1].id], "ops", false)
        .await
        .unwrap();
    let of_m2 = JobFilter {
        state: None,
        device_id: Some(devices[1].id),
    };
    let (jobs, _) = s.rollout.jobs(t.id, c.id, &of_m2, 10, 0).await.unwrap();
    assert_eq!(jobs[0].state, JobState::Queued);
    s.rollout
        .remove_devices(t.id, c.id, &[devices[1].id], "ops")
        .await
        .unwrap();

    // Edits: a new scope replaces the list; bad values are refused and nothing changes.
    let edited = s
        .rollout
        .update_campaign(
            t.id,
            c.id,
            CampaignPatch {
                description: Some("widened".into()),
                scope: Some(Scope::Devices(vec![devices[0].id, devices[2].id])),
                ..Default::default()
            },
            "ops",
        )
        .await
        .unwrap();
    assert_eq!(edited.description, "widened");
    assert_eq!(s.rollout.listed_devices(c.id).await.unwrap(), ["m1", "m3"]);
    assert!(matches!(
        s.rollout
            .update_campaign(
                t.id,
                c.id,
                CampaignPatch {
                    timeout_secs: Some(0),
                    ..Default::default()
                },
                "ops"
            )
            .await,
        Err(RolloutError::Invalid(_))
    ));
    assert_eq!(
        s.rollout.campaign(t.id, c.id).await.unwrap().timeout_secs,
        600
    );

    // A release's new version is what its unfinished campaigns now target.
    let renamed = s
        .update_release(
            t.id,
            target.release_id,
            ReleasePatch {
                version: Some("2.1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.version, "2.1");
    assert_eq!(
        s.rollout.campaign(t.id, c.id).await.unwrap().target_version,
        "2.1"
    );
    clock.advance_secs(1);

    // A maintenance window (UTC) holds offers back outside it. The clock reads 22:13 UTC.
    let held = s
        .rollout
        .update_campaign(
            t.id,
            c.id,
            CampaignPatch {
                window: Some(ota_host::rollout::campaigns::MaintenanceWindow {
                    start_min: 23 * 60,
                    end_min: 60,
                }),
                ..Default::default()
            },
            "ops",
        )
        .await
        .unwrap();
    assert!(held.window.is_some());
    let late = s
        .catalog
        .update_device(t.id, &p.sn, "m4", &DevicePatch::default())
        .await
        .unwrap();
    s.rollout
        .add_devices(t.id, c.id, &[late.id], "ops", false)
        .await
        .unwrap();
    assert!(
        s.rollout
            .check_in(&facts(&late), "mcu", 0, "1.0")
            .await
            .unwrap()
            .is_none(),
        "22:13 is outside 23:00-01:00"
    );
    clock.advance_secs(50 * 60);
    assert!(
        s.rollout
            .check_in(&facts(&late), "mcu", 0, "1.0")
            .await
            .unwrap()
            .is_some(),
        "23:03 is inside"
    );

    // Start skips approval; deletion cancels and hides.
    let started = s
        .rollout
        .act(t.id, other.id, Action::Start, "alice", "")
        .await
        .unwrap();
    assert_eq!(started.status, CampaignStatus::Running);
    s.rollout
        .delete_campaign(t.id, other.id, "alice")
        .await
        .unwrap();
    assert!(matches!(
        s.rollout.campaign(t.id, other.id).await,
        Err(RolloutError::NotFound(_))
    ));
    let (_, total) = s
        .rollout
        .list_campaigns(t.id, &CampaignFilter::default(), 10, 0)
        .await
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(
        s.rollout.campaign_by_id(other.id).await.unwrap().status,
        CampaignStatus::Cancelled,
        "kept for the record"
    );

    // A device list with a from-version still finishes when a listed device runs another
    // version: that device's job is cancelled with the reason.
    let target3 = online_mcu_release(s, t.id, &p, "3.0").await;
    let delta = s
        .rollout
        .create_campaign(
            t.id,
            NewCampaign {
                from_version: Some("2.1".into()),
                target: target3,
                scope: Scope::Devices(vec![devices[0].id, devices[1].id]),
                ..new("from 2.1", "formal")
            },
            "ops",
        )
        .await
        .unwrap();
    s.rollout
        .act(t.id, delta.id, Action::Start, "ops", "")
        .await
        .unwrap();
    let offer = s
        .rollout
        .check_in(&facts(&devices[0]), "mcu", 0, "2.1")
        .await
        .unwrap()
        .expect("m1 runs the from-version");
    assert_eq!(offer.campaign.id, delta.id);
    assert!(
        s.rollout
            .check_in(&facts(&devices[1]), "mcu", 0, "1.0")
            .await
            .unwrap()
            .is_none()
    );
    s.rollout
        .report_job(
            offer.job.id,
            devices[0].id,
            JobState::Succeeded,
            None,
            "",
            None,
        )
        .await
        .unwrap();
    let (jobs, _) = s
        .rollout
        .jobs(t.id, delta.id, &JobFilter::default(), 10, 0)
        .await
        .unwrap();
    let m2 = jobs.iter().find(|j| j.device_id == devices[1].id).unwrap();
    assert_eq!(m2.state, JobState::Cancelled);
    assert!(
        m2.result_text.contains("applies only to 2.1"),
        "{}",
        m2.result_text
    );
    s.rollout.tick_jobs().await.unwrap();
    assert_eq!(
        s.rollout.campaign(t.id, delta.id).await.unwrap().status,
        CampaignStatus::Finished
    );
}

/// Two processes on one SQLite file (the server and the CLI) are replicas as far as
/// revocation goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_the_server_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let (a, clock) = open(url.clone(), dir.path()).await;
    let b = open_with(url, dir.path(), clock).await;
    revocations_reach_every_replica(&a, &b, true).await;
}

#[tokio::test]
async fn model_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let (s, clock) = open(url, dir.path()).await;
    model_suite(&s, &clock).await;
    caches_follow_local_changes(&s).await;
}

/// Replica `b` caches a product's active campaigns for a long time while it follows the
/// change feed; a pause made on replica `a` still reaches it at once.
async fn replicas_follow_changes(a: &Services, b: &Services) {
    use ota_host::rollout::campaigns::{Action, DeviceFacts};
    use ota_host::rollout::feed::LONG_TTL;
    use std::time::Duration;

    let follow = ota_host::CancellationToken::new();
    let feed = {
        let rollout = b.rollout.clone();
        let token = follow.clone();
        tokio::spawn(async move { rollout.follow_changes(token).await })
    };
    assert!(
        ota_tests::eventually(Duration::from_secs(10), || async {
            b.rollout.follows_changes()
        })
        .await,
        "replica b never started following"
    );
    let t = a.auth.ensure_tenant("feed").await.unwrap();
    let p = a.catalog.create_product(t.id, "F", "feed").await.unwrap();
    let target = online_mcu_release(a, t.id, &p, "5").await;
    let c = a
        .rollout
        .create_campaign(t.id, auto_for_all("feed", target, 600, None), "ops")
        .await
        .unwrap();
    a.rollout
        .act(t.id, c.id, Action::Start, "ops", "")
        .await
        .unwrap();
    let facts = |i: usize| {
        let catalog = b.catalog.clone();
        let (tid, pid) = (t.id, p.id);
        async move {
            let d = catalog
                .register_device(tid, "F", &format!("f{i}"))
                .await
                .unwrap();
            DeviceFacts {
                id: d.id,
                product_id: pid,
                group: None,
            }
        }
    };
    let first = facts(0).await;
    assert!(
        b.rollout
            .check_in(&first, "mcu", 0, "1")
            .await
            .unwrap()
            .is_some(),
        "b offers the running campaign (and caches it)"
    );
    // Campaign attributes are cached beside the campaigns and dropped with them.
    let set = |value: &str| vec![("bench.url".to_string(), Some(value.to_string()))];
    a.rollout
        .set_campaign_attributes(t.id, c.id, &set("one"))
        .await
        .unwrap();
    let seen = b.rollout.campaign_attributes(&c).await.unwrap();
    assert_eq!(seen, vec![("bench.url".into(), "one".into())]);
    a.rollout
        .set_campaign_attributes(t.id, c.id, &set("two"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(
        ota_tests::eventually(Duration::from_secs(10), || async {
            b.rollout.campaign_attributes(&c).await.unwrap()
                == vec![("bench.url".to_string(), "two".to_string())]
        })
        .await,
        "the attribute change never reached replica b"
    );
    assert!(started.elapsed() < LONG_TTL, "seen through the feed");
    a.rollout
        .act(t.id, c.id, Action::Pause, "ops", "")
        .await
        .unwrap();
    let second = facts(1).await;
    let started = std::time::Instant::now();
    assert!(
        ota_tests::eventually(Duration::from_secs(10), || async {
            b.rollout
                .check_in(&second, "mcu", 0, "1")
                .await
                .unwrap()
                .is_none()
        })
        .await,
        "the pause never reached replica b"
    );
    assert!(
        started.elapsed() < LONG_TTL,
        "seen through the feed, not by the cache expiring"
    );
    follow.cancel();
    feed.await.unwrap();
    assert!(!b.rollout.follows_changes());
}

/// Replica `a` answers verified API keys and tokens from memory while it follows the
/// revocation epoch. A revocation made on `a` holds there at once; one made on `b` at once
/// too when both share a machine's SQLite file (`b` is the CLI), else within a few follow
/// intervals, long before an entry's lifetime would have run out.
async fn revocations_reach_every_replica(a: &Services, b: &Services, same_machine: bool) {
    use ota_host::auth::TokenPolicy;
    use ota_host::auth::verified::{ENTRY_TTL, FOLLOW_EVERY};
    use std::time::Duration;

    let follow = ota_host::CancellationToken::new();
    let follower = {
        let auth = a.auth.clone();
        let token = follow.clone();
        tokio::spawn(async move { auth.follow_revocations(token).await })
    };
    assert!(
        ota_tests::eventually(Duration::from_secs(10), || async {
            a.auth.remembers_credentials()
        })
        .await,
        "replica a never started following revocations"
    );
    let t = a.auth.ensure_tenant("revoke").await.unwrap();
    let p = a.catalog.create_product(t.id, "R", "revoke").await.unwrap();
    let d = a.catalog.register_device(t.id, "R", "r1").await.unwrap();

    // Revoked here: refused at once, though it was just verified (and remembered).
    let (here, key) = a.auth.create_api_key(Some("revoke"), "here").await.unwrap();
    a.auth.verify_api_key(&key).await.unwrap();
    a.auth.verify_api_key(&key).await.unwrap();
    a.auth.revoke_api_key(here.id).await.unwrap();
    assert!(
        a.auth.verify_api_key(&key).await.is_err(),
        "a key revoked on this replica works no more"
    );

    // Revoked on the other replica: refused within the follow interval.
    let (there, key) = a
        .auth
        .create_api_key(Some("revoke"), "there")
        .await
        .unwrap();
    a.auth.verify_api_key(&key).await.unwrap();
    let policy = TokenPolicy {
        access_ttl_secs: 3_600,
        refresh_ttl_secs: 3_600,
    };
    let grant = a
        .auth
        .device_grant("xlink", policy, &t, d.id, p.id)
        .await
        .unwrap();
    let verified = a
        .auth
        .verify_token("xlink", &grant.access_token)
        .await
        .unwrap();
    assert_eq!(verified.device_id, Some(d.id));
    a.auth
        .verify_token("xlink", &grant.access_token)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    b.auth.revoke_api_key(there.id).await.unwrap();
    b.auth
        .revoke_token("xlink", &grant.access_token)
        .await
        .unwrap();
    if same_machine {
        assert!(
            a.auth.verify_api_key(&key).await.is_err(),
            "the key at once"
        );
        assert!(
            a.auth
                .verify_token("xlink", &grant.access_token)
                .await
                .is_err(),
            "the token at once"
        );
    }
    assert!(
        ota_tests::eventually(Duration::from_secs(10), || async {
            a.auth.verify_api_key(&key).await.is_err()
                && a.auth
                    .verify_token("xlink", &grant.access_token)
                    .await
                    .is_err()
        })
        .await,
        "revocations on replica b never reached replica a"
    );
    let took = started.elapsed();
    assert!(
        took < ENTRY_TTL / 4,
        "seen through the epoch ({took:?}, following every {FOLLOW_EVERY:?}), not by entries expiring"
    );
    follow.cancel();
    follower.await.unwrap();
    assert!(!a.auth.remembers_credentials());
}

/// Forty devices make first contact at once through two replicas; a wave of five admits
/// exactly five of them.
async fn waves_never_overshoot(a: &Services, b: &Services) {
    use ota_host::rollout::campaigns::{Action, DeviceFacts, Waves};

    let t = a.auth.ensure_tenant("waves").await.unwrap();
    let p = a.catalog.create_product(t.id, "W", "waves").await.unwrap();
    let target = online_mcu_release(a, t.id, &p, "3").await;
    let c = a
        .rollout
        .create_campaign(
            t.id,
            auto_for_all(
                "wave",
                target,
                600,
                Some(Waves {
                    initial: 5,
                    step: 5,
                    interval_secs: 3_600,
                    max_failure_pct: None,
                }),
            ),
            "ops",
        )
        .await
        .unwrap();
    a.rollout
        .act(t.id, c.id, Action::Start, "ops", "")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let d = a
            .catalog
            .register_device(t.id, "W", &format!("w{i}"))
            .await
            .unwrap();
        let facts = DeviceFacts {
            id: d.id,
            product_id: p.id,
            group: None,
        };
        tasks.push(tokio::spawn(async move {
            s.rollout
                .check_in(&facts, "mcu", 0, "1")
                .await
                .unwrap()
                .is_some()
        }));
    }
    let mut offered = 0;
    for t in tasks {
        offered += t.await.unwrap() as u64;
    }
    assert_eq!(offered, 5, "offers");
    assert_eq!(a.rollout.stats(t.id, c.id).await.unwrap().total, 5, "jobs");
}

/// A database that held IoTStack deployments before they became jobs: after the upgrade
/// each one is a deployment job with its status and full history.
async fn deployments_survive_the_upgrade(url: String, dir: &std::path::Path) {
    use ota_host::rollout::DeploymentStatus;
    use sqlx::any::AnyPoolOptions;

    let backend = if url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let old = dir.join(format!("migrations-before-jobs-{backend}"));
    std::fs::create_dir_all(&old).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../host/migrations")
        .join(backend);
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "0009" {
            std::fs::copy(&path, old.join(&name)).unwrap();
        }
    }
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new().connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    for sql in [
        "INSERT INTO tenants (name, created_at) VALUES ('old', 1)",
        "INSERT INTO products (tenant_id, sn, name, created_at) VALUES (1, 'P', 'P', 1)",
        "INSERT INTO devices (product_id, sn, created_at) VALUES (1, 'gw', 1)",
        "INSERT INTO deployments (tenant_id, device_id, keep_local, status, created_at, updated_at, deadline_at) \
         VALUES (1, 1, 1, 'processing', 1699999999000, 1699999999500, 1700003599000), \
                (1, 1, 0, 'timeout', 1000, 5000, 4000)",
        "INSERT INTO deployment_events (deployment_id, at, status, message) VALUES \
         (1, 1000, 'init', 'created'), (1, 2000, 'processing', 'pulling images'), \
         (2, 1000, 'init', 'created'), (2, 5000, 'timeout', 'too slow')",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let (s, _) = open(url, dir).await;
    let (t, d) = (
        s.auth.tenant("old").await.unwrap(),
        s.catalog.find_device(1, "P", "gw").await.unwrap(),
    );
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM jobs WHERE kind = 'deployment' ORDER BY id")
            .fetch_all(s.db.pool())
            .await
            .unwrap();
    assert_eq!(ids.len(), 2);
    let first = s.rollout.deployment(ids[0]).await.unwrap();
    assert_eq!(
        (
            first.tenant_id,
            first.device_id,
            first.keep_local,
            first.status
        ),
        (t.id, d.id, true, DeploymentStatus::Processing)
    );
    assert_eq!(
        first.log(),
        "[1] init: created\n[2] processing: pulling images"
    );
    let second = s.rollout.deployment(ids[1]).await.unwrap();
    assert_eq!(second.status, DeploymentStatus::Timeout);
    assert!(second.log().ends_with("timeout: too slow"));
    // Still a live deployment: it can be reported on.
    let done = s
        .rollout
        .report(ids[0], DeploymentStatus::Success, Some("up"))
        .await
        .unwrap();
    assert_eq!(done.status, DeploymentStatus::Success);
    s.db.close().await;
}

#[tokio::test]
async fn deployments_become_jobs_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("u.db").display());
    deployments_survive_the_upgrade(url, dir.path()).await;
}

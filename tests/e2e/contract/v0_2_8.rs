//! What contract 0.2.8 added, end to end: campaigns without their device lists, and a
//! device's id alone.

use super::*;

/// 0.2.8: a campaign without its device list answers what `get-campaign` answers, its
/// scope's list replaced by how many it lists, alone and in pages.
#[tokio::test]
async fn campaign_briefs_through_the_contract() {
    let t = TestServer::start(options()).await;
    let (rid, _) = release_and_three_devices(&t, "3.0", b"firmware 3.0 bytes").await;
    let listed = ok(
        &t,
        "create-campaign",
        new_campaign(
            rid,
            "listed",
            json!({ "Devices": ["d1", "d2", "d3"] }),
            "Formal",
        ),
    )
    .await;
    let everyone = ok(
        &t,
        "create-campaign",
        new_campaign(rid, "everyone", json!("All"), "Formal"),
    )
    .await;
    let (lid, eid) = (
        listed["id"].as_u64().unwrap(),
        everyone["id"].as_u64().unwrap(),
    );

    // The brief is the full record but for the list, which it counts.
    let brief = ok(&t, "get-campaign-brief", json!({ "id": lid })).await;
    assert_eq!(brief["listed"], 3);
    assert_eq!(brief["campaign"]["scope"], json!({ "Devices": [] }));
    let mut full = ok(&t, "get-campaign", json!({ "id": lid })).await;
    assert_eq!(full["scope"], json!({ "Devices": ["d1", "d2", "d3"] }));
    full["scope"] = json!({ "Devices": [] });
    assert_eq!(brief["campaign"], full);
    let all = ok(&t, "get-campaign-brief", json!({ "id": eid })).await;
    assert_eq!(
        (&all["listed"], &all["campaign"]["scope"]),
        (&json!(0), &json!("All"))
    );
    assert_eq!(
        all["campaign"],
        ok(&t, "get-campaign", json!({ "id": eid })).await
    );

    // The count follows the list.
    ok(
        &t,
        "remove-devices",
        json!({ "id": lid, "device_sns": ["d2"], "actor": null }),
    )
    .await;
    assert_eq!(
        ok(&t, "get-campaign-brief", json!({ "id": lid })).await["listed"],
        2
    );

    // Pages: the same filter, order and total as list-campaigns.
    let of = |product: Option<&str>, name: Option<&str>, offset: u64, limit: u32| {
        json!({ "filter": { "product_sn": product, "name_contains": name, "module": null,
            "tag": null, "status": null }, "window": window(offset, limit) })
    };
    let page = |name: &str, offset: u64, limit: u32| of(Some(PRODUCT), Some(name), offset, limit);
    let briefs = ok(&t, "list-campaign-briefs", page("", 0, 10)).await;
    let campaigns = ok(&t, "list-campaigns", page("", 0, 10)).await;
    assert_eq!(
        (&briefs["total"], &campaigns["total"]),
        (&json!(2), &json!(2))
    );
    let ids = |items: &Value, key: Option<&str>| -> Vec<u64> {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| key.map_or(i, |k| &i[k])["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(&briefs["items"], Some("campaign")),
        ids(&campaigns["items"], None)
    );
    let listed_counts: Vec<&Value> = briefs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["listed"])
        .collect();
    assert_eq!(listed_counts, [&json!(0), &json!(2)], "newest first");
    let second = ok(&t, "list-campaign-briefs", page("list", 0, 1)).await;
    assert_eq!(
        (&second["total"], second["items"][0]["listed"].clone()),
        (&json!(1), json!(2))
    );
    assert_eq!(
        ok(&t, "list-campaign-briefs", page("", 1, 1)).await["items"][0]["campaign"]["id"],
        lid
    );

    // The same refusals as get-campaign and list-campaigns.
    let other = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "get-campaign-brief",
        json!({ "id": lid }),
    )
    .await;
    assert_eq!(case(&other), "not-found");
    let theirs = call_as(
        &t,
        &[("x-api-key", OTHER_TENANT_KEY)],
        "list-campaign-briefs",
        of(None, None, 0, 10),
    )
    .await;
    assert_eq!(theirs["ok"]["total"], 0);
    let unknown_product = of(Some("nope"), None, 0, 10);
    assert_eq!(
        case(&call(&t, "list-campaign-briefs", unknown_product.clone()).await),
        case(&call(&t, "list-campaigns", unknown_product).await)
    );
    ok(&t, "delete-campaign", json!({ "id": eid, "actor": null })).await;
    assert_eq!(
        case(&call(&t, "get-campaign-brief", json!({ "id": eid })).await),
        "not-found"
    );
    t.stop().await;
}

/// 0.2.8: a device's id alone, with `get-device`'s refusals.
#[tokio::test]
async fn device_ids_through_the_contract() {
    let t = TestServer::start(options()).await;
    let (_, _) = release_and_three_devices(&t, "3.1", b"firmware 3.1 bytes").await;
    let by = |sn: &str| json!({ "product_sn": PRODUCT, "device_sn": sn });
    for sn in ["d1", "d3"] {
        let full = ok(&t, "get-device", by(sn)).await;
        assert_eq!(ok(&t, "device-id", by(sn)).await, full["id"], "{sn}");
    }
    assert_ne!(
        ok(&t, "device-id", by("d1")).await,
        ok(&t, "device-id", by("d2")).await
    );
    for (args, creds) in [
        (by("ghost"), API_KEY),
        (json!({ "product_sn": "nope", "device_sn": "d1" }), API_KEY),
        (by("d1"), OTHER_TENANT_KEY),
    ] {
        let id = call_as(&t, &[("x-api-key", creds)], "device-id", args.clone()).await;
        let device = call_as(&t, &[("x-api-key", creds)], "get-device", args.clone()).await;
        assert_eq!(case(&id), case(&device), "{args}");
        assert_eq!(case(&id), "not-found", "{args}");
    }
    t.stop().await;
}

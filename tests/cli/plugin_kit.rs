//! `plugins/README.md` followed to the letter: `plugin new` in a temp dir, build, test, check,
//! drop the component into a running server's folder, get an answer, edit, rebuild, and see
//! the hot-swapped answer. If this test breaks, the guide is wrong.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::BIN;

/// A cargo of the same toolchain, without the outer build's settings (as `host/build.rs`).
fn cargo(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    cmd.current_dir(dir).args(args);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap()
        .to_string()
}

async fn get(url: &str) -> Option<(u16, serde_json::Value)> {
    let r = reqwest::get(url).await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or_default()))
}

/// Poll `url` until it answers 200 with `want` as its `greeting` (bounded).
async fn greets(url: &str, want: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if let Some((200, body)) = get(url).await
            && body["greeting"] == want
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn the_guide_from_plugin_new_to_a_hot_swapped_answer() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "new", "acme-ota"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = tmp.path().join("acme-ota");
    // The suite pins the new project's dependencies to the workspace's (already fetched)
    // versions, so the build needs no network; an author's first build resolves its own.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"),
        project.join("Cargo.lock"),
    )
    .unwrap();

    cargo(&project, &["build", "--release"]);
    let built = project.join("target/wasm32-wasip2/release/acme_ota_dialect.wasm");
    assert!(built.is_file());
    let size = std::fs::metadata(&built).unwrap().len();
    cargo(&project, &["test", "--target", &host_triple()]);

    let out = Command::new(BIN)
        .args(["plugin", "check"])
        .arg(&built)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["name"], "acme-ota");
    assert_eq!(
        manifest["contract"],
        format!("ota:dialect@{}", ota_host::runtime::CONTRACT)
    );

    // `plugin call`: one request, no server; `--seed` provisions the throwaway host.
    let call = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["plugin", "call"])
            .arg(&built)
            .args(args)
            .current_dir(&project)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let said = call(&["GET", "/acme-ota/v1/hello?name=ana"]);
    assert!(said.starts_with("HTTP/1.1 200\n"), "{said}");
    assert!(said.contains(r#"{"greeting":"hello, ana"}"#), "{said}");
    std::fs::write(
        project.join("seed.toml"),
        "[[tenants]]\nname = \"acme\"\nproducts = [{ sn = \"P\" }]\n\
         api-keys = [{ name = \"dev\", key = \"dev-key-0123456789abcdef0123\" }]\n",
    )
    .unwrap();
    let said = call(&[
        "GET",
        "/acme-ota/v1/devices/P/S",
        "-H",
        "X-API-Key: dev-key-0123456789abcdef0123",
        "--seed",
        "seed.toml",
    ]);
    assert!(said.starts_with("HTTP/1.1 404\n"), "{said}");
    assert!(said.contains(r#""code":"not_found""#), "{said}");

    let mut server = Command::new(BIN)
        .args(["--data-dir", "./data", "serve", "--listen", "127.0.0.1:0"])
        .current_dir(&project)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (url, _) = super::listening(&mut server);
    let plugins = project.join("data/plugins");
    std::fs::copy(&built, plugins.join("acme-ota.wasm")).unwrap();
    let hello = format!("{url}/acme-ota/v1/hello?name=ana");
    let answered = greets(&hello, "hello, ana").await;
    let first_answer = started.elapsed();
    assert!(answered, "the new plugin never answered");
    let (status, body) = get(&format!("{url}/acme-ota/v1/nope")).await.unwrap();
    assert_eq!(
        (status, &body["code"]),
        (404, &serde_json::json!("not_found"))
    );
    let (status, body) = get(&format!("{url}/acme-ota/v1/devices/P/S"))
        .await
        .unwrap();
    assert_eq!(
        (status, &body["code"]),
        (401, &serde_json::json!("unauthenticated")),
        "{body}"
    );

    // Edit, rebuild, copy: the running server swaps the new version in.
    let lib = project.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        source.replace(
            r#"format!("hello, {name}")"#,
            r#"format!("hi there, {name}")"#,
        ),
    )
    .unwrap();
    let rebuild = Instant::now();
    cargo(&project, &["build", "--release"]);
    let rebuilt = rebuild.elapsed();
    std::fs::copy(&built, plugins.join("acme-ota.wasm")).unwrap();
    assert!(
        greets(&hello, "hi there, ana").await,
        "the edited plugin never answered"
    );
    let _ = server.kill();
    let _ = server.wait();
    eprintln!(
        "plugin new -> first answered request: {:.1} s (component {size} bytes); \
         edit -> rebuild: {:.1} s",
        first_answer.as_secs_f64(),
        rebuilt.as_secs_f64()
    );
}

//! `plugins/README.md` followed to the letter, in Rust and in Python: `plugin new` in a temp
//! dir, build, test, check, call, drop the component into a running server's folder, get an
//! answer, edit, rebuild, and see the hot-swapped answer. If this test breaks, the guide is
//! wrong.

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
    ota_host(tmp.path(), &["plugin", "new", "acme-ota"]);
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

    let manifest = plugin_check(&built);
    assert_eq!(manifest["name"], "acme-ota");

    let said = plugin_call(&project, &built, &["GET", "/acme-ota/v1/hello?name=ana"]);
    assert!(said.contains(r#"{"greeting":"hello, ana"}"#), "{said}");
    let served = serve_and_swap(&project, &built, "acme-ota", || {
        // Edit, rebuild: the running server swaps the new version in.
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
        cargo(&project, &["build", "--release"]);
    })
    .await;
    eprintln!(
        "Rust: plugin new -> first answered request: {:.1} s (component {size} bytes); \
         edit -> rebuild: {:.1} s",
        (served.first_answer - started).as_secs_f64(),
        served.rebuilt.as_secs_f64()
    );
}

/// The Python path of the guide: `plugin new --lang python`, then the commands it prints.
#[tokio::test]
async fn the_guide_in_python_from_plugin_new_to_a_hot_swapped_answer() {
    if super::python::componentize_py().is_none() {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let printed = ota_host(
        tmp.path(),
        &["plugin", "new", "acme-py", "--lang", "python"],
    );
    let project = tmp.path().join("acme-py");
    // The printed steps between `cd` and `plugin check` build the component; run them as an
    // author pastes them.
    let steps: Vec<&str> = printed
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("cd "))
        .skip(1)
        .take_while(|l| !l.starts_with("ota-host plugin check"))
        .collect();
    assert_eq!(steps.len(), 2, "{printed}");
    let build = || {
        for step in &steps {
            let out = Command::new("sh")
                .args(["-c", step])
                .current_dir(&project)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{step} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    build();
    let built = project.join("acme-py.wasm");
    let size = std::fs::metadata(&built).unwrap().len();
    let manifest = plugin_check(&built);
    assert_eq!(manifest["name"], "acme-py");

    let said = plugin_call(&project, &built, &["GET", "/acme-py/v1/hello?name=ana"]);
    assert!(said.contains(r#"{"greeting":"hello, ana"}"#), "{said}");
    let said = plugin_call(&project, &built, &["POST", "/acme-py/v1/hello"]);
    assert!(said.starts_with("HTTP/1.1 405\n"), "{said}");
    assert!(said.contains("allow: GET\n"), "{said}");
    assert!(said.contains(r#""code":"method_not_allowed""#), "{said}");
    let served = serve_and_swap(&project, &built, "acme-py", || {
        let app = project.join("app.py");
        let source = std::fs::read_to_string(&app).unwrap();
        std::fs::write(
            &app,
            source.replace(r#"f"hello, {name}""#, r#"f"hi there, {name}""#),
        )
        .unwrap();
        build();
    })
    .await;
    eprintln!(
        "Python: plugin new -> first answered request: {:.1} s (component {size} bytes, \
         componentize-py {}); edit -> rebuild: {:.1} s",
        (served.first_answer - started).as_secs_f64(),
        ota_host::runtime::COMPONENTIZE_PY,
        served.rebuilt.as_secs_f64()
    );
}

/// `ota-host ARGS` run in `dir` as an author types it; answers what it printed (it must
/// succeed).
fn ota_host(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ota-host {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `plugin check FILE`: the manifest it prints, on the contract this host speaks.
fn plugin_check(built: &Path) -> serde_json::Value {
    let dir = built.parent().unwrap();
    let printed = ota_host(dir, &["plugin", "check", built.to_str().unwrap()]);
    let manifest: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(
        manifest["contract"],
        format!("ota:dialect@{}", ota_host::runtime::CONTRACT)
    );
    manifest
}

/// `plugin call`: one request, no server; answers what it printed. Then the same with `--seed`
/// provisioning the throwaway host: the example's device route finds no such device.
fn plugin_call(project: &Path, built: &Path, args: &[&str]) -> String {
    let call = |args: &[&str]| {
        let line = [&["plugin", "call", built.to_str().unwrap()], args].concat();
        ota_host(project, &line)
    };
    let said = call(args);
    let name = project.file_name().unwrap().to_str().unwrap();
    std::fs::write(
        project.join("seed.toml"),
        "[[tenants]]\nname = \"acme\"\nproducts = [{ sn = \"P\" }]\n\
         api-keys = [{ name = \"dev\", key = \"dev-key-0123456789abcdef0123\" }]\n",
    )
    .unwrap();
    let found = call(&[
        "GET",
        &format!("/{name}/v1/devices/P/S"),
        "-H",
        "X-API-Key: dev-key-0123456789abcdef0123",
        "--seed",
        "seed.toml",
    ]);
    assert!(found.starts_with("HTTP/1.1 404\n"), "{found}");
    assert!(found.contains(r#""code":"not_found""#), "{found}");
    said
}

/// When the served plugin first answered, and how long the edit's rebuild took.
struct Served {
    first_answer: Instant,
    rebuilt: Duration,
}

/// Serve the project's data dir, copy the component in and wait for its greeting; check its
/// envelope on an unknown path and a missing key; then `edit_and_rebuild`, copy again and
/// wait for the new greeting.
async fn serve_and_swap(
    project: &Path,
    built: &Path,
    name: &str,
    edit_and_rebuild: impl FnOnce(),
) -> Served {
    let mut server = Command::new(BIN)
        .args(["--data-dir", "./data", "serve", "--listen", "127.0.0.1:0"])
        .current_dir(project)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (url, _) = super::listening(&mut server);
    let plugins = project.join("data/plugins");
    std::fs::copy(built, plugins.join(format!("{name}.wasm"))).unwrap();
    let hello = format!("{url}/{name}/v1/hello?name=ana");
    let answered = greets(&hello, "hello, ana").await;
    let first_answer = Instant::now();
    assert!(answered, "the new plugin never answered");
    let (status, body) = get(&format!("{url}/{name}/v1/nope")).await.unwrap();
    assert_eq!(
        (status, &body["code"]),
        (404, &serde_json::json!("not_found"))
    );
    let (status, body) = get(&format!("{url}/{name}/v1/devices/P/S")).await.unwrap();
    assert_eq!(
        (status, &body["code"]),
        (401, &serde_json::json!("unauthenticated")),
        "{body}"
    );

    let rebuild = Instant::now();
    edit_and_rebuild();
    let rebuilt = rebuild.elapsed();
    std::fs::copy(built, plugins.join(format!("{name}.wasm"))).unwrap();
    assert!(
        greets(&hello, "hi there, ana").await,
        "the edited plugin never answered"
    );
    let _ = server.kill();
    let _ = server.wait();
    Served {
        first_answer,
        rebuilt,
    }
}

//! Builds the bundled dialect plugins (and the test-only ones) for `wasm32-wasip2` with a
//! nested cargo into its own target directory, and embeds the bundled components so the
//! `ota-host` binary is self-contained. Installs the `wasm32-wasip2` target via rustup when
//! it is missing, so a machine with only the Rust toolchain can build the project.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (cargo package, file name in the plugins folder, bundled into the binary?)
const PLUGINS: &[(&str, &str, bool)] = &[
    ("ota-plugin-iotstack", "iotstack.wasm", true),
    ("ota-plugin-ubtech", "ubtech.wasm", true),
    ("ota-plugin-ctwing", "ctwing.wasm", true),
    ("ota-plugin-mxchip", "mxchip.wasm", true),
    ("ota-plugin-xlink", "xlink.wasm", true),
    ("ota-plugin-misbehave", "misbehave.wasm", false),
    ("ota-plugin-misbehave-v2", "misbehave-v2.wasm", false),
    ("ota-plugin-bad-manifest", "bad-manifest.wasm", false),
    ("ota-plugin-legacy-v01", "legacy-v01.wasm", false),
    ("ota-plugin-probe", "probe.wasm", false),
    ("ota-plugin-catchall", "catchall.wasm", false),
];

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for dir in ["plugins", "wit"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=OTA_PLUGIN_TARGET_DIR");

    let target_dir = env::var_os("OTA_PLUGIN_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target").join("wasm-plugins"));
    ensure_target();
    build_plugins(&workspace, &target_dir);

    let out_dir = target_dir.join(TARGET).join("plugin");
    let mut bundled = String::from("/// The bundled plugins as (file name, component bytes).\n");
    bundled.push_str("pub static PLUGINS: &[(&str, &[u8])] = &[\n");
    for (package, file, bundle) in PLUGINS {
        let built = out_dir.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(
            built.exists(),
            "plugin build produced no {}",
            built.display()
        );
        if *bundle {
            bundled.push_str(&format!(
                "    ({file:?}, include_bytes!({:?})),\n",
                built.display().to_string()
            ));
        }
    }
    bundled.push_str("];\n");
    bundled.push_str(&format!(
        "/// Where the build left every plugin component, bundled or not (tests load from here).\npub const BUILD_DIR: &str = {:?};\n",
        out_dir.display().to_string()
    ));
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bundled.rs");
    std::fs::write(out, bundled).unwrap();
}

fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot.is_some_and(|s| s.join("lib/rustlib").join(TARGET).exists());
    if installed {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "the {TARGET} target is missing and `rustup target add {TARGET}` failed: {other:?}"
        ),
    }
}

fn build_plugins(workspace: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--profile", "plugin", "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    for (package, _, _) in PLUGINS {
        cmd.args(["-p", package]);
    }
    // The outer build's settings must not leak into the guest build: flags for the host
    // target, wrappers (clippy's driver), or a forced target directory.
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
    let status = cmd.status().expect("running cargo for the plugins");
    assert!(status.success(), "building the wasm plugins failed");
}

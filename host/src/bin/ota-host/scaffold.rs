//! `ota-host plugin new`: a standalone Rust project for a new dialect, outside any workspace,
//! that builds into a loadable component with one command (`cargo build --release`). The
//! files are templates compiled into the binary, so a plugin author needs nothing else.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

const CARGO_TOML: &str = include_str!("template/Cargo.toml.tmpl");
const CARGO_CONFIG: &str = include_str!("template/cargo-config.toml");
const TOOLCHAIN: &str = include_str!("template/rust-toolchain.toml");
const GITIGNORE: &str = include_str!("template/gitignore");
const LIB_RS: &str = include_str!("template/lib.rs.tmpl");
const README: &str = include_str!("template/README.md.tmpl");

/// Where this build's SDK sources were, for a binary run from its checkout.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

/// First path segments the host serves itself: a dialect named like one could never route.
const RESERVED: &[&str] = &["admin", "install", "blobs", "oss", "healthz"];

/// What `plugin new` made.
pub struct Created {
    pub dir: PathBuf,
    pub component: String,
}

/// Write the project for dialect `name` into `dir` (default `./<name>`), depending on the SDK
/// at `sdk` (default: this build's checkout).
pub fn new_plugin(
    name: &str,
    dir: Option<PathBuf>,
    sdk: Option<PathBuf>,
) -> anyhow::Result<Created> {
    if !ota_host::runtime::plugin::valid_plugin_name(name) {
        bail!("a plugin name is 1-64 characters of a-z, 0-9 and '-': {name:?}");
    }
    if RESERVED.contains(&name) {
        bail!("/{name} is the host's own path; pick another name");
    }
    let sdk = match sdk {
        Some(p) => p,
        None => PathBuf::from(BUILT_SDK),
    };
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "no SDK at {}: pass --sdk <checkout>/plugins/sdk",
            sdk.display()
        )
    })?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!("{} is not the SDK crate (no Cargo.toml)", sdk.display());
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && dir.read_dir()?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    let package = format!("{name}-dialect");
    let component = format!("{}.wasm", package.replace('-', "_"));
    let type_name: String = name
        .split('-')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    // A type name cannot start with a digit.
    let type_name = if type_name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("Dialect{type_name}")
    } else {
        type_name
    };
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{package}}", &package)
            .replace("{{crate}}", component.trim_end_matches(".wasm"))
            .replace("{{type}}", &type_name)
            .replace("{{contract}}", ota_host::runtime::CONTRACT)
            // A TOML string, escaped: the checkout's path may hold quotes or backslashes.
            .replace(
                "{{sdk}}",
                &toml::Value::String(sdk.display().to_string()).to_string(),
            )
    };
    let files: [(&str, String); 6] = [
        ("Cargo.toml", fill(CARGO_TOML)),
        (".cargo/config.toml", CARGO_CONFIG.to_string()),
        ("rust-toolchain.toml", TOOLCHAIN.to_string()),
        (".gitignore", GITIGNORE.to_string()),
        ("src/lib.rs", fill(LIB_RS)),
        ("README.md", fill(README)),
    ];
    for (path, text) in files {
        write(&dir.join(path), &text)?;
    }
    Ok(Created { dir, component })
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

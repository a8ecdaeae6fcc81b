//! `ota-host plugin new`: a standalone project for a new dialect, outside any workspace, that
//! builds into a loadable component with one command: Rust (`cargo build --release`) or
//! Python (`componentize-py … componentize app`). The files are templates compiled into the
//! binary, so a plugin author needs nothing else.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

const CARGO_TOML: &str = include_str!("template/Cargo.toml.tmpl");
const CARGO_CONFIG: &str = include_str!("template/cargo-config.toml");
const TOOLCHAIN: &str = include_str!("template/rust-toolchain.toml");
const GITIGNORE: &str = include_str!("template/gitignore");
const LIB_RS: &str = include_str!("template/lib.rs.tmpl");
const README: &str = include_str!("template/README.md.tmpl");
const PY_APP: &str = include_str!("template/python/app.py.tmpl");
const PY_README: &str = include_str!("template/python/README.md.tmpl");
const PY_REQUIREMENTS: &str = include_str!("template/python/requirements.txt.tmpl");
const PY_GITIGNORE: &str = include_str!("template/python/gitignore");
/// The contract a Python project is built against: the WIT this host speaks, verbatim.
const WIT: &str = include_str!("../../../../wit/v0.2/dialect.wit");

/// The language of a new dialect project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
}

/// Where this build's SDK sources were, for a binary run from its checkout.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

/// First path segments the host serves itself: a dialect named like one could never route.
const RESERVED: &[&str] = &["admin", "install", "blobs", "oss", "healthz"];

/// What `plugin new` made.
pub struct Created {
    pub dir: PathBuf,
    /// The commands that build the component, in order.
    pub build: Vec<String>,
    /// Where the build leaves the component, relative to `dir`.
    pub component: String,
}

/// Write the project for dialect `name` into `dir` (default `./<name>`). A Rust project
/// depends on the SDK at `sdk` (default: this build's checkout).
pub fn new_plugin(
    name: &str,
    dir: Option<PathBuf>,
    sdk: Option<PathBuf>,
    lang: Lang,
) -> anyhow::Result<Created> {
    if !ota_host::runtime::plugin::valid_plugin_name(name) {
        bail!("a plugin name is 1-64 characters of a-z, 0-9 and '-': {name:?}");
    }
    if RESERVED.contains(&name) {
        bail!("/{name} is the host's own path; pick another name");
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && dir.read_dir()?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    match lang {
        Lang::Rust => rust_project(name, dir, sdk),
        Lang::Python => python_project(name, dir),
    }
}

fn python_project(name: &str, dir: PathBuf) -> anyhow::Result<Created> {
    let component = format!("{name}.wasm");
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{contract}}", ota_host::runtime::CONTRACT)
            .replace("{{componentize_py}}", ota_host::runtime::COMPONENTIZE_PY)
    };
    let files: [(&str, String); 5] = [
        ("app.py", fill(PY_APP)),
        ("wit/dialect.wit", WIT.to_string()),
        ("requirements.txt", fill(PY_REQUIREMENTS)),
        (".gitignore", PY_GITIGNORE.to_string()),
        ("README.md", fill(PY_README)),
    ];
    for (path, text) in files {
        write(&dir.join(path), &text)?;
    }
    Ok(Created {
        dir,
        build: vec![
            "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt".into(),
            format!(".venv/bin/componentize-py -d wit -w dialect componentize app -o {component}"),
        ],
        component,
    })
}

fn rust_project(name: &str, dir: PathBuf, sdk: Option<PathBuf>) -> anyhow::Result<Created> {
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
    Ok(Created {
        dir,
        build: vec!["cargo build --release".into()],
        component: format!("target/wasm32-wasip2/release/{component}"),
    })
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

//! The plugins that ship inside the binary. `build.rs` compiles them for `wasm32-wasip2` and
//! embeds the components, so one `ota-host` file is a complete server: on first start the
//! plugins folder is seeded with them.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// Write the bundled plugins into `dir` if it does not exist yet. Returns whether it seeded.
pub fn seed(dir: &std::path::Path) -> std::io::Result<bool> {
    if dir.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in PLUGINS {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(true)
}

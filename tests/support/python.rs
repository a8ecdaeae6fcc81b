//! Python tools for the tests that drive real Python software (componentize-py to build
//! Python dialects, Prometheus's own client library to parse `/metrics`): one virtualenv per
//! tool next to the build's own output (`target/<profile>/python-tools/<name>`), installed
//! from PyPI, pinned, on first use. Without a python3 the tests say so loudly and skip,
//! except under CI (`CI` set), where a missing toolchain fails them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use ota_host::runtime::COMPONENTIZE_PY;

/// The `componentize-py` executable, installed if need be; `None` (after a loud message) when
/// this machine has no python3 and this is not CI.
pub fn componentize_py() -> Option<PathBuf> {
    let venv = venv(
        &format!("componentize-py-{COMPONENTIZE_PY}"),
        &[&format!("componentize-py=={COMPONENTIZE_PY}")],
    )?;
    let bin = venv.join("bin/componentize-py");
    assert!(
        Command::new(&bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "{} does not run",
        bin.display()
    );
    Some(bin)
}

/// A virtualenv named `name` holding exactly the pinned `packages`, made if need be; its
/// directory, or `None` (after a loud message) without python3 outside CI.
pub fn venv(name: &str, packages: &[&str]) -> Option<PathBuf> {
    // Tests of one binary run in parallel: one installs, the others wait for it.
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test binary>
    let tools = exe.parent().unwrap().parent().unwrap().join("python-tools");
    let venv = tools.join(name);
    let marker = venv.join("installed");
    let wanted = packages.join("\n");
    if ready(&venv, &marker, &wanted) {
        return Some(venv);
    }
    if Command::new("python3").arg("--version").output().is_err() {
        let why = format!(
            "python3 is not installed: the tests that use {name} need it \
             (apt-get install python3 python3-venv)"
        );
        if std::env::var_os("CI").is_some() {
            panic!("{why}");
        }
        eprintln!("\n!!!!!!!! SKIPPED: {why} !!!!!!!!\n");
        return None;
    }
    // The marker is written last, so an interrupted install is never taken for one.
    let _ = std::fs::remove_dir_all(&venv);
    std::fs::create_dir_all(&tools).unwrap();
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(packages));
    std::fs::write(&marker, &wanted).unwrap();
    Some(venv)
}

fn ready(venv: &Path, marker: &Path, wanted: &str) -> bool {
    std::fs::read_to_string(marker).is_ok_and(|m| m == wanted)
        && Command::new(venv.join("bin/python"))
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

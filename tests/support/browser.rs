//! A real browser for the dashboard tests: Debian's Chromium (installed with apt-get when
//! missing and running as root) driven by Playwright for Python (pinned, from PyPI, in a
//! venv beside the build's output) and pointed at that Chromium, since Playwright's own
//! browser download is not reachable. Without them the tests say so loudly and skip, except
//! under CI (`CI` set), where a missing browser fails them.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The Playwright release the tests drive the browser with.
pub const PLAYWRIGHT: &str = "1.65.2";

/// Where Debian installs Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";

/// What a browser test runs: the venv's Python (with Playwright) and the Chromium binary.
pub struct Browser {
    pub python: PathBuf,
    pub chromium: PathBuf,
}

/// The browser, installed if need be; `None` (after a loud message) when it cannot be had
/// and this is not CI.
pub fn browser() -> Option<Browser> {
    let chromium = chromium()?;
    let venv = crate::python::venv(
        &format!("playwright-{PLAYWRIGHT}"),
        &[&format!("playwright=={PLAYWRIGHT}")],
    )?;
    Some(Browser {
        python: venv.join("bin/python"),
        chromium,
    })
}

fn chromium() -> Option<PathBuf> {
    // Tests of one binary run in parallel: one installs, the others wait for it.
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let path = PathBuf::from(CHROMIUM);
    if runs(&path) {
        return Some(path);
    }
    if is_root() {
        let quiet = |c: &mut Command| {
            c.env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()
        };
        quiet(Command::new("apt-get").arg("update"));
        quiet(Command::new("apt-get").args([
            "install",
            "-y",
            "-q",
            "chromium",
            "fonts-liberation",
        ]));
        if runs(&path) {
            return Some(path);
        }
    }
    let why = "Chromium is not installed and could not be (apt-get install chromium, as root)";
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {why} !!!!!!!!\n");
    None
}

fn runs(path: &PathBuf) -> bool {
    Command::new(path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

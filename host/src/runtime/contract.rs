//! Which `ota:dialect` contract a plugin needs, read from what it imports before anything is
//! instantiated. A component imports only the host functions it calls, and every function in
//! `wit/` says in `@since` which version added it, so the newest of those is the lowest host
//! contract the plugin runs on, and any function this host lacks is named in the refusal.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::plugin::LoadError;

/// The `ota:dialect` contract lines this host serves (major.minor; patch is ignored).
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.1", "0.2"];

/// The WIT of each served line, as the host was built with it.
const WITS: &[(&str, &str)] = &[
    ("0.1", include_str!("../../../wit/v0.1/dialect.wit")),
    ("0.2", include_str!("../../../wit/v0.2/dialect.wit")),
];

/// A contract version, `major.minor.patch`, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(u32, u32, u32);

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.trim().splitn(3, '.').map(|p| p.parse::<u32>().ok());
        Some(Version(parts.next()??, parts.next()??, parts.next()??))
    }

    /// `major.minor`: the line a version belongs to.
    fn line(self) -> String {
        format!("{}.{}", self.0, self.1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Every host function of one contract line, `(interface, function)`, with the version that
/// added it, and the line's newest version.
struct Line {
    since: HashMap<(String, String), Version>,
    newest: Version,
}

/// The functions of a WIT package and their `@since` versions. The WIT in `wit/` is written
/// one item per line: `interface name {` at the left margin, `@since(version = x.y.z)` on the
/// line before an item, `name: func(` opening a function. An item without `@since` is as old
/// as the package's line (`x.y.0`).
fn parse_line(wit: &str) -> Line {
    let newest = wit
        .lines()
        .find_map(|l| l.strip_prefix("package ota:dialect@"))
        .and_then(|v| Version::parse(v.trim_end_matches(';')))
        .expect("wit/ names its package version");
    let base = Version(newest.0, newest.1, 0);
    let mut since = HashMap::new();
    let mut interface: Option<&str> = None;
    let mut pending: Option<Version> = None;
    for line in wit.lines() {
        if let Some(rest) = line.strip_prefix("interface ") {
            interface = rest.split_whitespace().next();
            pending = None;
            continue;
        }
        if line.starts_with('}') {
            interface = None;
            continue;
        }
        let item = line.trim();
        if item.is_empty() || item.starts_with("//") {
            continue;
        }
        if let Some(v) = item
            .strip_prefix("@since(version")
            .and_then(|r| r.trim_start().strip_prefix('='))
            .and_then(|r| r.split(')').next())
        {
            pending = Version::parse(v);
            continue;
        }
        let added = pending.take().unwrap_or(base);
        if let (Some(iface), Some((name, _))) = (interface, item.split_once(": func(")) {
            since.insert((iface.to_string(), name.to_string()), added);
        }
    }
    Line { since, newest }
}

static LINES: LazyLock<HashMap<&'static str, Line>> =
    LazyLock::new(|| WITS.iter().map(|(l, wit)| (*l, parse_line(wit))).collect());

/// What a component needs of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// The contract version it was built against (its import names' version).
    pub built: String,
    /// The lowest contract version that has every function it imports.
    pub lowest: String,
}

/// Read a component's imports: the contract it was built against and the lowest one it
/// needs. Refused: no `ota:dialect` import, mixed versions, a line this host does not serve,
/// or functions this host does not have (each named).
pub fn needs(engine: &wasmtime::Engine, component: &Component) -> Result<Needs, LoadError> {
    let ty = component.component_type();
    let mut built: Vec<String> = Vec::new();
    let mut imported: Vec<(String, String)> = Vec::new();
    for (name, item) in ty.imports(engine) {
        let Some((iface, version)) = name
            .strip_prefix("ota:dialect/")
            .and_then(|r| r.split_once('@'))
        else {
            continue;
        };
        if !built.iter().any(|v| v == version) {
            built.push(version.to_string());
        }
        if let ComponentItem::ComponentInstance(instance) = item.ty {
            for (func, item) in instance.exports(engine) {
                if matches!(item.ty, ComponentItem::ComponentFunc(_)) {
                    imported.push((iface.to_string(), func.to_string()));
                }
            }
        }
    }
    let built = match built.as_slice() {
        [] => {
            return Err(LoadError::WrongWorld(
                "imports no ota:dialect interface (is it built against wit/?)".into(),
            ));
        }
        [v] => v.clone(),
        many => {
            return Err(LoadError::UnsupportedContract(format!(
                "mixes ota:dialect versions {}",
                many.join(", ")
            )));
        }
    };
    let version = Version::parse(&built).ok_or_else(|| {
        LoadError::UnsupportedContract(format!("imports ota:dialect@{built}, not a version"))
    })?;
    let Some(line) = LINES.get(version.line().as_str()) else {
        return Err(LoadError::UnsupportedContract(format!(
            "built against ota:dialect@{built}; this host supports {}",
            SUPPORTED_CONTRACTS
                .iter()
                .map(|s| format!("{s}.x"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let mut lowest = Version(version.0, version.1, 0);
    let mut missing = Vec::new();
    for key in &imported {
        match line.since.get(key) {
            Some(v) => lowest = lowest.max(*v),
            None => missing.push(format!("{}.{}", key.0, key.1)),
        }
    }
    if !missing.is_empty() {
        missing.sort();
        return Err(LoadError::UnsupportedContract(format!(
            "built against ota:dialect@{built} and calls {} that this host (ota:dialect@{}) \
             does not have: upgrade the host, or build the plugin against an older SDK",
            missing.join(", "),
            line.newest
        )));
    }
    Ok(Needs {
        built,
        lowest: lowest.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_has_the_version_that_added_it() {
        let v02 = &LINES["0.2"];
        let at = |iface: &str, func: &str| {
            v02.since
                .get(&(iface.to_string(), func.to_string()))
                .map(|v| v.to_string())
        };
        assert_eq!(at("catalog", "get-device").as_deref(), Some("0.2.0"));
        assert_eq!(at("auth", "password-grant").as_deref(), Some("0.2.1"));
        assert_eq!(at("auth", "device-login").as_deref(), Some("0.2.4"));
        assert_eq!(at("rollout", "next-deployment").as_deref(), Some("0.2.7"));
        assert_eq!(
            at("rollout", "get-campaign-brief").as_deref(),
            Some("0.2.8")
        );
        assert_eq!(at("catalog", "device-id").as_deref(), Some("0.2.8"));
        assert_eq!(at("rollout", "teleport"), None);
        assert_eq!(v02.newest.to_string(), super::super::CONTRACT);
        // The world's exports are not host functions.
        assert!(
            !v02.since
                .keys()
                .any(|(_, f)| f == "handle" || f == "manifest")
        );
        let v01 = &LINES["0.1"];
        assert!(v01.since.values().all(|v| v.to_string() == "0.1.0"));
        assert!(!v01.since.is_empty());
    }

    #[test]
    fn every_function_of_the_wit_is_in_the_table() {
        for (line, wit) in WITS {
            let funcs = wit.lines().filter(|l| l.contains(": func(")).count();
            let exports = wit
                .lines()
                .filter(|l| l.trim_start().starts_with("export ") && l.contains(": func("))
                .count();
            assert_eq!(LINES[line].since.len(), funcs - exports, "{line}");
        }
    }

    #[test]
    fn versions_order_numerically() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("0.2.10") > v("0.2.9"));
        assert_eq!(Version::parse("0.2"), None);
        assert_eq!(v("0.2.7").line(), "0.2");
    }
}

//! `/metrics` read the way Prometheus reads it: the text goes through the parser of
//! Prometheus's own Python client library (`prometheus_client.parser`, pinned, in a venv of
//! its own), which refuses what a scraper would refuse, and comes back as samples.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// The pinned `prometheus-client` from PyPI.
const PROMETHEUS_CLIENT: &str = "prometheus-client==0.26.0";

/// One sample: its name (with `_total`, `_bucket`... as exposed), labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of a scrape, in order, plus the type each family declared; `None` when
/// python3 is missing outside CI (see `python::venv`). Panics on text the parser refuses.
pub fn parse(text: &str) -> Option<(Vec<Sample>, BTreeMap<String, String>)> {
    let venv = super::python::venv("prometheus-client", &[PROMETHEUS_CLIENT])?;
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {"samples": [], "types": {}}
for family in text_string_to_metric_families(sys.stdin.read()):
    out["types"][family.name] = family.type
    for s in family.samples:
        out["samples"].append([s.name, s.labels, s.value])
json.dump(out, sys.stdout)
"#;
    let mut child = Command::new(venv.join("bin/python"))
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition:\n{}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Sample {
            name: s[0].as_str().unwrap().to_string(),
            labels: serde_json::from_value(s[1].clone()).unwrap(),
            value: s[2].as_f64().unwrap_or(f64::NAN),
        })
        .collect();
    let types = serde_json::from_value(v["types"].clone()).unwrap();
    Some((samples, types))
}

/// The value of the sample named `name` whose labels include every pair of `labels`
/// (summed over the samples that match), or `None` if none does.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

//! Requests as the fuzzer sees them: seeds read from `corpus/<target>/*.http` (a request
//! line, headers, a blank line, the body), mutated field by field so that framing stays
//! valid and the damage lands where dialects parse (path segments, query pairs, header
//! values, JSON or form bodies), then sent over real HTTP to a real server. The loop runs
//! for `FUZZ_SECS` with a few requests in flight and stops at the first finding.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::engine::{self, Rng};

/// One request.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    /// Parse a seed file, replacing `{NAME}` placeholders with `vars`.
    pub fn parse(text: &str, vars: &[(&str, String)]) -> Req {
        let mut text = text.to_string();
        for (k, v) in vars {
            text = text.replace(&format!("{{{k}}}"), v);
        }
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let first = lines.next().unwrap_or("GET /");
        let (method, target) = first.split_once(' ').unwrap_or(("GET", "/"));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Req {
            method: method.to_string(),
            path: path.to_string(),
            query: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            headers: lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
            body: body.trim_end_matches('\n').as_bytes().to_vec(),
        }
    }

    /// The text form (for the findings file and the failure message).
    pub fn render(&self) -> String {
        let mut s = format!("{} {}", self.method, self.target());
        for (k, v) in &self.headers {
            s.push_str(&format!("\n{k}: {v}"));
        }
        s.push_str("\n\n");
        s.push_str(&String::from_utf8_lossy(&self.body));
        s
    }

    /// Path and encoded query.
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.query)
            .finish();
        format!("{}?{q}", self.path)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn set_header(&mut self, name: &str, value: String) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value));
    }

    /// One to three mutations of fields a dialect parses.
    pub fn mutate(&mut self, r: &mut Rng) {
        for _ in 0..(1 + r.below(3)) {
            match r.below(10) {
                0 | 1 => self.mutate_path(r),
                2 | 3 => self.mutate_query(r),
                4 => self.mutate_header(r),
                _ => self.mutate_body(r),
            }
        }
    }

    fn mutate_path(&mut self, r: &mut Rng) {
        let mut segs: Vec<String> = self.path.split('/').map(str::to_string).collect();
        let i = 1 + r.below(segs.len().saturating_sub(1).max(1));
        if i < segs.len() {
            segs[i] = match r.below(3) {
                0 => engine::mutate_text(r, &segs[i]),
                1 => (r.next() as i64).to_string(),
                _ => percent_encoding::utf8_percent_encode(
                    &engine::string(r),
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string(),
            };
        } else {
            segs.push(engine::string(r));
        }
        let p = segs.join("/");
        // Keep it a valid request target: no raw spaces, controls or '?'/'#'.
        self.path = p
            .chars()
            .map(|c| match c {
                c if c.is_control() || c == ' ' || c == '?' || c == '#' => '_',
                c => c,
            })
            .collect();
        if !self.path.starts_with('/') {
            self.path.insert(0, '/');
        }
    }

    fn mutate_query(&mut self, r: &mut Rng) {
        if self.query.is_empty() || r.chance(6) {
            self.query.push((engine::string(r), engine::string(r)));
            return;
        }
        let i = r.below(self.query.len());
        match r.below(5) {
            0 => {
                self.query.remove(i);
            }
            1 => {
                let dup = self.query[i].clone();
                self.query.push(dup);
            }
            2 => self.query[i].0 = engine::mutate_text(r, &self.query[i].0),
            _ => self.query[i].1 = engine::mutate_text(r, &self.query[i].1),
        }
    }

    fn mutate_header(&mut self, r: &mut Rng) {
        if self.headers.is_empty() {
            return;
        }
        let i = r.below(self.headers.len());
        if r.chance(4) {
            self.headers.remove(i);
            return;
        }
        let v = engine::mutate_text(r, &self.headers[i].1);
        // A header value must stay printable ASCII to be sent at all.
        self.headers[i].1 = v
            .chars()
            .filter(|c| (' '..='~').contains(c))
            .take(4096)
            .collect();
    }

    fn mutate_body(&mut self, r: &mut Rng) {
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&self.body)
            && !r.chance(8)
        {
            engine::mutate_json(r, &mut v);
            self.body = v.to_string().into_bytes();
            return;
        }
        let form = self
            .header("content-type")
            .is_some_and(|c| c.contains("x-www-form-urlencoded"));
        if form && !r.chance(4) {
            let mut pairs: Vec<(String, String)> =
                form_urlencoded::parse(&self.body).into_owned().collect();
            if pairs.is_empty() {
                pairs.push((engine::string(r), engine::string(r)));
            } else {
                let i = r.below(pairs.len());
                match r.below(3) {
                    0 => pairs.push(pairs[i].clone()),
                    1 => pairs[i].0 = engine::mutate_text(r, &pairs[i].0),
                    _ => pairs[i].1 = engine::mutate_text(r, &pairs[i].1),
                }
            }
            self.body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish()
                .into_bytes();
            return;
        }
        engine::mutate_bytes(r, &mut self.body);
    }
}

/// The seeds of a target, as text.
pub fn seeds(target: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let seeds: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// How long each target runs, and from which seed.
pub fn budget() -> (Duration, u64) {
    let secs = std::env::var("FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    (Duration::from_secs(secs), seed)
}

/// Keep `input` where a person can replay it; answers the file.
pub fn keep_finding(target: &str, input: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-findings");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!(
        "{target}-{}.txt",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    ));
    let _ = std::fs::write(&file, input);
    file
}

/// Run `one` on mutated seeds, `lanes` at a time, until the budget is spent; panics with the
/// first finding. `one` gets a fresh generator and answers `Err(why)` for a finding and the
/// input's text either way.
pub async fn run<F, Fut>(target: &'static str, lanes: usize, one: F)
where
    F: Fn(Rng) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = (String, Result<(), String>)> + Send,
{
    let (secs, seed) = budget();
    let end = Instant::now() + secs;
    let execs = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let found = Arc::new(std::sync::Mutex::new(None::<(String, String)>));
    let tasks: Vec<_> = (0..lanes)
        .map(|lane| {
            let (one, execs, stop, found) =
                (one.clone(), execs.clone(), stop.clone(), found.clone());
            tokio::spawn(async move {
                let mut r = Rng::new(seed ^ (lane as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                    let (input, verdict) = one(Rng::new(r.next())).await;
                    execs.fetch_add(1, Ordering::Relaxed);
                    if let Err(why) = verdict {
                        stop.store(true, Ordering::Relaxed);
                        found.lock().unwrap().get_or_insert((why, input));
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let n = execs.load(Ordering::Relaxed);
    println!("fuzz {target}: {n} inputs in {secs:?} (FUZZ_SEED={seed})");
    if let Some((why, input)) = found.lock().unwrap().take() {
        let file = keep_finding(target, &input);
        let shown: String = input.chars().take(1500).collect();
        let why: String = why.chars().take(1500).collect();
        panic!(
            "fuzz {target}: {why}\ninput (whole in {}):\n{shown}",
            file.display()
        );
    }
}

/// What a request got: an answer (status, content type, body), none because the client
/// would not send it (a URL or header it cannot build: not the server's business), or an
/// error (the server did not answer).
pub type Answer = Result<Option<Reply>, String>;

/// What the server answered.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    /// The `Retry-After` header: a budget's deliberate "come back later".
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

/// Send `req` to `base`.
pub async fn send(http: &reqwest::Client, base: &str, req: &Req) -> Answer {
    let Ok(method) = reqwest::Method::from_bytes(req.method.as_bytes()) else {
        return Ok(None);
    };
    let target = req.target();
    if target.len() > 16 << 10 {
        return Ok(None);
    }
    let mut b = http.request(method, format!("{base}{target}"));
    for (k, v) in &req.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let r = match b.body(req.body.clone()).send().await {
        Ok(r) => r,
        Err(e) if e.is_builder() => return Ok(None),
        Err(e) => return Err(format!("no answer: {e}")),
    };
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (status, content_type, retry_after) = (
        r.status().as_u16(),
        header("content-type").unwrap_or_default(),
        header("retry-after"),
    );
    let body = r.bytes().await.map_err(|e| format!("body: {e}"))?.to_vec();
    Ok(Some(Reply {
        status,
        content_type,
        retry_after,
        body,
    }))
}

/// The oracle every dialect shares: an answer, never a 5xx (a plugin crash, a timeout or a
/// host error), and a JSON body that parses when it says it is JSON. A 503 with
/// `Retry-After` is a budget refusing a flood (the fuzzer's own failed logins back off), in
/// dialects whose error table has no 429: deliberate, not a failure.
pub fn dialect_oracle(answer: Answer) -> Result<(), String> {
    let Some(Reply {
        status,
        content_type: ct,
        retry_after,
        body,
    }) = answer?
    else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&body);
    if status >= 500 && !(status == 503 && retry_after.is_some()) {
        return Err(format!("answered {status}: {text}"));
    }
    if ct.contains("json")
        && !body.is_empty()
        && serde_json::from_slice::<serde_json::Value>(&body).is_err()
    {
        return Err(format!("answered {status} with broken JSON: {text}"));
    }
    Ok(())
}

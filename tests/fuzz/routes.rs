//! The route matcher's algebra, on random patterns and paths: parsing and matching never
//! panic; two routes of equal precedence (both routes, or fallbacks of one depth) that both
//! match some path must be reported as overlapping (else the loader would let two plugins
//! claim one request); overlap is symmetric; a mount prefix moves matches and nothing else.

use ota_route_pattern::{Pattern, Segment};

use crate::engine::Rng;

const PIECES: &[&str] = &[
    "", "a", "b", "api", "v1", "{id}", "{x}", "{", "}", "{}", "%2F", "..", "é", " ", "{*rest}",
    "{*}",
];

fn random_path(r: &mut Rng) -> String {
    let n = r.below(5);
    let mut p = String::new();
    for _ in 0..n {
        p.push('/');
        p.push_str(r.pick::<&str>(PIECES));
    }
    if p.is_empty() || r.chance(8) {
        p.push('/');
    }
    if r.chance(20) {
        p.remove(0); // not starting with '/'
    }
    p
}

/// A concrete path that `p` matches, or none when `p` needs an impossible one.
fn instance(p: &Pattern, r: &mut Rng) -> String {
    let segs: Vec<String> = p
        .segments()
        .iter()
        .map(|s| match s {
            Segment::Literal(l) => l.clone(),
            Segment::Param(_) => r.pick(&["a", "7", "x-y", "é"]).to_string(),
            Segment::Rest(_) => r.pick(&["", "a", "a/b", "v1/", "/"]).to_string(),
        })
        .collect();
    format!("/{}", segs.join("/"))
}

pub fn check(r: &mut Rng) -> (String, Result<(), String>) {
    let (ra, rb, path) = (random_path(r), random_path(r), random_path(r));
    let input = format!("a={ra:?} b={rb:?} path={path:?}");
    let (Ok(a), Ok(b)) = (Pattern::parse(&ra), Pattern::parse(&rb)) else {
        return (input, Ok(()));
    };
    if a.overlaps(&b) != b.overlaps(&a) {
        return (input, Err("overlap is not symmetric".into()));
    }
    for p in [instance(&a, r), instance(&b, r), path.clone()] {
        let equal_precedence = a.fallback_depth() == b.fallback_depth();
        if a.matches(&p).is_some() && b.matches(&p).is_some() && equal_precedence && !a.overlaps(&b)
        {
            return (input, Err(format!("both match {p:?} but do not overlap")));
        }
        let prefixed = a.with_prefix("/mount");
        if a.matches(&p).is_some() != prefixed.matches(&format!("/mount{p}")).is_some() {
            return (
                input,
                Err(format!("the prefix changed whether {p:?} matches")),
            );
        }
    }
    if a.matches(&instance(&a, r)).is_none() {
        return (
            input,
            Err("a pattern does not match its own instance".into()),
        );
    }
    (input, Ok(()))
}

#[tokio::test]
async fn route_matcher() {
    crate::http::run("routes", 1, |mut r| async move { check(&mut r) }).await;
}

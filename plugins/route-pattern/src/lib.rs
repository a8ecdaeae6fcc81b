//! Route patterns as the `ota:dialect` contract defines them: `/`-separated literal segments,
//! `{name}` segments that each match exactly one non-empty segment, and (contract 0.2.6) a
//! last `{*name}` segment that claims everything below a prefix. The host uses them to
//! dispatch and to refuse overlapping plugins; the guest SDK uses the same code to route, so
//! both sides can never disagree about which request a route claims.

use std::fmt;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the request segment exactly (case-sensitive, no decoding).
    Literal(String),
    /// Matches any one non-empty segment and captures it under this name.
    Param(String),
    /// Last segment only: matches the rest of the path (one or more segments, possibly
    /// empty) and captures it, slashes included. A pattern ending in one is a *fallback*: it
    /// takes only requests no other route matches.
    Rest(String),
}

/// A parsed route pattern such as `/api/v1/ota/{product_id}/files/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    raw: String,
    segments: Vec<Segment>,
}

/// Why a pattern string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub pattern: String,
    pub reason: &'static str,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route pattern {:?}: {}", self.pattern, self.reason)
    }
}

impl std::error::Error for PatternError {}

impl Pattern {
    /// Parse a pattern. It must start with `/`; `{}`, half-open braces and a `{*name}` that is
    /// not the last segment are refused.
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        let mut segments = Vec::new();
        scan(raw, |seg| {
            segments.push(match seg {
                SegmentRef::Literal(l) => Segment::Literal(l.to_string()),
                SegmentRef::Param(n) => Segment::Param(n.to_string()),
                SegmentRef::Rest(n) => Segment::Rest(n.to_string()),
            })
        })?;
        Ok(Pattern {
            raw: raw.to_string(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The parsed segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Match a request path (without query). Returns the captured parameters in order.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        match_path(&self.raw, path)
    }

    /// Whether this pattern is a fallback (ends in `{*name}`).
    pub fn is_fallback(&self) -> bool {
        matches!(self.segments.last(), Some(Segment::Rest(_)))
    }

    /// For a fallback, how many segments precede `{*name}`: among fallbacks matching one
    /// path, the deepest takes the request. `None` for other patterns.
    pub fn fallback_depth(&self) -> Option<usize> {
        self.is_fallback().then(|| self.segments.len() - 1)
    }

    /// Whether some path would be claimed by both patterns with equal precedence, so that
    /// neither may be served beside the other. A route always wins over a fallback, and a
    /// deeper fallback over a shallower one, so those pairs never overlap.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        if self.is_fallback() != other.is_fallback() {
            return false;
        }
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|pair| match pair {
                    (Segment::Literal(a), Segment::Literal(b)) => a == b,
                    // A parameter never matches an empty segment.
                    (Segment::Param(_), Segment::Literal(l))
                    | (Segment::Literal(l), Segment::Param(_)) => !l.is_empty(),
                    (Segment::Param(_), Segment::Param(_)) => true,
                    (Segment::Rest(_), Segment::Rest(_)) => true,
                    _ => false,
                })
    }

    /// This pattern behind a mount prefix such as `/iotstack` (empty or `/` for none).
    pub fn with_prefix(&self, prefix: &str) -> Pattern {
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() {
            return self.clone();
        }
        Pattern::parse(&format!("{prefix}{}", self.raw)).unwrap_or_else(|_| self.clone())
    }
}

/// A segment as [`scan`] finds it, borrowed from the pattern.
enum SegmentRef<'a> {
    Literal(&'a str),
    Param(&'a str),
    Rest(&'a str),
}

/// Walk a pattern's segments, refusing it as [`Pattern::parse`] documents.
fn scan<'a>(raw: &'a str, mut each: impl FnMut(SegmentRef<'a>)) -> Result<(), PatternError> {
    let err = |reason| PatternError {
        pattern: raw.to_string(),
        reason,
    };
    let rest = raw
        .strip_prefix('/')
        .ok_or_else(|| err("must start with '/'"))?;
    let mut after_rest = false;
    // `split` keeps a trailing empty segment for a trailing slash, which is what makes
    // `/files/` and `/files` different routes.
    for seg in rest.split('/') {
        if after_rest {
            return Err(err("{*name} must be the last segment"));
        }
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (rest, name) = match name.strip_prefix('*') {
                Some(n) => (true, n),
                None => (false, name),
            };
            if name.is_empty() || name.contains(['{', '}', '*']) {
                return Err(err("parameter needs a name"));
            }
            after_rest = rest;
            each(if rest {
                SegmentRef::Rest(name)
            } else {
                SegmentRef::Param(name)
            });
        } else if seg.contains(['{', '}']) {
            return Err(err("braces must enclose a whole segment"));
        } else {
            each(SegmentRef::Literal(seg));
        }
    }
    Ok(())
}

/// Check a pattern without keeping it: answers whether it is a fallback (ends in
/// `{*name}`). A guest checks its routes this way once, when it lists them for the
/// manifest, and matches them with [`match_path`] as written, so building its router for
/// each request parses nothing and routing allocates nothing until a route matches.
pub fn check(raw: &str) -> Result<bool, PatternError> {
    let mut fallback = false;
    scan(raw, |seg| fallback = matches!(seg, SegmentRef::Rest(_)))?;
    Ok(fallback)
}

/// Match a request path (without query) against a pattern that [`check`] accepted, as
/// [`Pattern::matches`] does. Returns the captured parameters in order.
pub fn match_path(raw: &str, path: &str) -> Option<Vec<(String, String)>> {
    // Braces enclose whole segments, so everything before the first `{` is literal and every
    // path the pattern matches starts with it: most routes a request is tried against end
    // here, without splitting either string.
    let literal_head = raw.find('{').map_or(raw, |i| &raw[..i]);
    if !path.starts_with(literal_head) {
        return None;
    }
    let pattern = raw.strip_prefix('/')?;
    let rest = path.strip_prefix('/')?;
    let mut params = Vec::new();
    let mut parts = rest.split('/');
    for (i, seg) in pattern.split('/').enumerate() {
        let name = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        if let Some(name) = name.and_then(|n| n.strip_prefix('*')) {
            let remainder = rest.splitn(i + 1, '/').nth(i)?;
            params.push((name.to_string(), remainder.to_string()));
            return Some(params);
        }
        let part = parts.next()?;
        match name {
            None if seg == part => {}
            Some(name) if !part.is_empty() => params.push((name.to_string(), part.to_string())),
            _ => return None,
        }
    }
    if parts.next().is_some() {
        return None;
    }
    Some(params)
}

/// Whether two route methods can claim the same request (`*` claims every method).
pub fn methods_overlap(a: &str, b: &str) -> bool {
    a == "*" || b == "*" || a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_params() {
        let p = Pattern::parse("/api/v1/ota/{product_id}/files/{id}").unwrap();
        assert_eq!(
            p.matches("/api/v1/ota/p9/files/12"),
            Some(vec![
                ("product_id".into(), "p9".into()),
                ("id".into(), "12".into())
            ])
        );
        assert_eq!(p.matches("/api/v1/ota/p9/files/"), None);
        assert_eq!(p.matches("/api/v1/ota/p9/files/12/x"), None);
        assert_eq!(p.matches("/api/v1/ota//files/12"), None);
    }

    #[test]
    fn checked_strings_route_like_parsed_patterns() {
        let patterns = ["/a/{x}/b", "/a/", "/a", "/v2/{*rest}", "/{p}/{q}", "/"];
        let paths = [
            "/a/1/b", "/a/", "/a", "/a//b", "/v2/x/y", "/v2/", "/v2", "/x/y", "/", "",
        ];
        for raw in patterns {
            let parsed = Pattern::parse(raw).unwrap();
            assert_eq!(check(raw), Ok(parsed.is_fallback()), "{raw}");
            for path in paths {
                assert_eq!(match_path(raw, path), parsed.matches(path), "{raw} {path}");
            }
        }
        assert!(check("/a/{*r}/b").is_err());
        assert!(check("/a/{}").is_err());
    }

    #[test]
    fn trailing_slash_is_significant() {
        let p = Pattern::parse("/files/").unwrap();
        assert!(p.matches("/files/").is_some());
        assert!(p.matches("/files").is_none());
    }

    #[test]
    fn refuses_bad_patterns() {
        assert!(Pattern::parse("api").is_err());
        assert!(Pattern::parse("/a/{}").is_err());
        assert!(Pattern::parse("/a/x{id}").is_err());
    }

    #[test]
    fn overlap() {
        let a = Pattern::parse("/task/{id}").unwrap();
        let b = Pattern::parse("/task/list").unwrap();
        let c = Pattern::parse("/task/").unwrap();
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c));
        assert!(!b.overlaps(&c));
        assert!(methods_overlap("*", "GET"));
        assert!(!methods_overlap("POST", "GET"));
    }

    #[test]
    fn fallbacks_claim_everything_below_their_prefix() {
        let p = Pattern::parse("/v2/{*rest}").unwrap();
        assert!(p.is_fallback());
        assert_eq!(p.fallback_depth(), Some(1));
        assert_eq!(
            p.matches("/v2/upgrade/firmware/check/3/geapp"),
            Some(vec![(
                "rest".into(),
                "upgrade/firmware/check/3/geapp".into()
            )])
        );
        assert_eq!(p.matches("/v2/"), Some(vec![("rest".into(), "".into())]));
        assert_eq!(p.matches("/v2"), None);
        assert_eq!(p.matches("/v3/x"), None);
        let p = Pattern::parse("/t/{id}/{*rest}").unwrap();
        assert_eq!(
            p.matches("/t/7/a/b"),
            Some(vec![
                ("id".into(), "7".into()),
                ("rest".into(), "a/b".into())
            ])
        );
        assert_eq!(p.matches("/t//a"), None);
        assert!(Pattern::parse("/{*rest}").unwrap().matches("/").is_some());
        assert!(Pattern::parse("/a/{*rest}/b").is_err());
        assert!(Pattern::parse("/a/{*}").is_err());
        assert!(Pattern::parse("/a/{**x}").is_err());
        assert!(!Pattern::parse("/a/{id}").unwrap().is_fallback());
    }

    #[test]
    fn fallbacks_overlap_only_fallbacks_of_equal_depth() {
        let api = Pattern::parse("/api/v1/{*rest}").unwrap();
        let ota = Pattern::parse("/api/v1/ota/{*rest}").unwrap();
        let any = Pattern::parse("/api/{v}/{*rest}").unwrap();
        let route = Pattern::parse("/api/v1/ota/x").unwrap();
        assert!(!api.overlaps(&ota), "the deeper one wins");
        assert!(api.overlaps(&any));
        assert!(!api.overlaps(&route) && !route.overlaps(&ota), "routes win");
    }

    #[test]
    fn prefix() {
        let p = Pattern::parse("/api/x").unwrap().with_prefix("/iot/");
        assert_eq!(p.as_str(), "/iot/api/x");
        assert_eq!(Pattern::parse("/a").unwrap().with_prefix("").as_str(), "/a");
    }
}

//! Route patterns as the `ota:dialect` contract defines them: `/`-separated literal segments
//! and `{name}` segments that each match exactly one non-empty segment. The host uses them to
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
    /// Parse a pattern. It must start with `/`; `{}` and half-open braces are refused.
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        let err = |reason| PatternError {
            pattern: raw.to_string(),
            reason,
        };
        let rest = raw
            .strip_prefix('/')
            .ok_or_else(|| err("must start with '/'"))?;
        let mut segments = Vec::new();
        // `split` keeps a trailing empty segment for a trailing slash, which is what makes
        // `/files/` and `/files` different routes.
        for seg in rest.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if name.is_empty() || name.contains(['{', '}']) {
                    return Err(err("parameter needs a name"));
                }
                segments.push(Segment::Param(name.to_string()));
            } else if seg.contains(['{', '}']) {
                return Err(err("braces must enclose a whole segment"));
            } else {
                segments.push(Segment::Literal(seg.to_string()));
            }
        }
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
        let rest = path.strip_prefix('/')?;
        let mut params = Vec::new();
        let mut parts = rest.split('/');
        for seg in &self.segments {
            let part = parts.next()?;
            match seg {
                Segment::Literal(lit) if lit == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(name) => params.push((name.clone(), part.to_string())),
            }
        }
        if parts.next().is_some() {
            return None;
        }
        Some(params)
    }

    /// Whether some path matches both patterns.
    pub fn overlaps(&self, other: &Pattern) -> bool {
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
    fn prefix() {
        let p = Pattern::parse("/api/x").unwrap().with_prefix("/iot/");
        assert_eq!(p.as_str(), "/iot/api/x");
        assert_eq!(Pattern::parse("/a").unwrap().with_prefix("").as_str(), "/a");
    }
}

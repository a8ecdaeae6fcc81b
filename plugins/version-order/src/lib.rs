//! The one ordering rule for version strings, whatever the dialect: XLINK's 32-bit integers
//! (`15`, with leading zeros allowed: `01`), dotted versions (`10.3`, `1.3251`, `1.0.0-rc1`) and
//! UBTech's build numbers (`6`).
//!
//! A version is split into tokens: runs of digits (compared as integers, leading zeros
//! ignored, any length) and runs of letters (compared case-insensitively); `.`, `-`, `_`,
//! `+` and spaces only separate. A leading `v` is ignored. Tokens compare left to right; a
//! number beats letters at the same place (`1.0.1 > 1.0.beta`). When one side runs out,
//! trailing zeros change nothing (`1.0 == 1`), more numbers make a version newer
//! (`1.0.1 > 1.0`) and trailing letters make it older (`1.0-rc1 < 1.0`, a pre-release).
//! Each dotted part is a whole number, so `1.3251 > 1.4` and `10.3 > 1.3251`.

use std::cmp::Ordering;

#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    Num(&'a str),
    Alpha(&'a str),
}

fn tokens(v: &str) -> Vec<Token<'_>> {
    let v = v.trim();
    let v = match v.strip_prefix(['v', 'V']) {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
        _ => v,
    };
    let mut out = Vec::new();
    let bytes = v.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        if bytes[i].is_ascii_digit() {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Token::Num(v[start..i].trim_start_matches('0')));
        } else if bytes[i].is_ascii_alphabetic() {
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            out.push(Token::Alpha(&v[start..i]));
        } else {
            // Separators and anything else (non-ASCII) only split tokens.
            i += v[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

fn cmp_num(a: &str, b: &str) -> Ordering {
    // Leading zeros are already stripped: a longer digit string is a larger number.
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn cmp_token(a: &Token<'_>, b: &Token<'_>) -> Ordering {
    match (a, b) {
        (Token::Num(x), Token::Num(y)) => cmp_num(x, y),
        (Token::Alpha(x), Token::Alpha(y)) => x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()),
        (Token::Num(_), Token::Alpha(_)) => Ordering::Greater,
        (Token::Alpha(_), Token::Num(_)) => Ordering::Less,
    }
}

/// How the remaining tokens of the longer version compare against nothing.
fn rest_vs_nothing(rest: &[Token<'_>]) -> Ordering {
    for t in rest {
        match t {
            Token::Num("") => continue, // a zero
            Token::Num(_) => return Ordering::Greater,
            Token::Alpha(_) => return Ordering::Less,
        }
    }
    Ordering::Equal
}

/// Compare two version strings by the rule above.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ta, tb) = (tokens(a), tokens(b));
    for (x, y) in ta.iter().zip(&tb) {
        let o = cmp_token(x, y);
        if o != Ordering::Equal {
            return o;
        }
    }
    let n = ta.len().min(tb.len());
    match ta.len().cmp(&tb.len()) {
        Ordering::Equal => Ordering::Equal,
        Ordering::Greater => rest_vs_nothing(&ta[n..]),
        Ordering::Less => rest_vs_nothing(&tb[n..]).reverse(),
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering::*;

    use super::compare;

    #[test]
    fn integers_with_leading_zeros() {
        assert_eq!(compare("01", "1"), Equal);
        assert_eq!(compare("15", "9"), Greater);
        assert_eq!(compare("4294967295", "4294967294"), Greater);
        assert_eq!(compare("6", "5"), Greater);
    }

    #[test]
    fn dotted() {
        assert_eq!(compare("10.3", "1.3251"), Greater);
        assert_eq!(compare("1.3251", "1.4"), Greater);
        assert_eq!(compare("1.0", "1"), Equal);
        assert_eq!(compare("1.0.1", "1.0"), Greater);
        assert_eq!(compare("v2.0", "2.0.0"), Equal);
        assert_eq!(compare("1.10", "1.9"), Greater);
    }

    #[test]
    fn pre_releases_and_letters() {
        assert_eq!(compare("1.0.0-rc1", "1.0.0"), Less);
        assert_eq!(compare("1.0.0-rc2", "1.0.0-RC1"), Greater);
        assert_eq!(compare("1.0.1", "1.0.beta"), Greater);
        assert_eq!(compare("2.0-beta", "1.9"), Greater);
    }

    #[test]
    fn total_order_on_a_sample() {
        let mut v = vec!["1.0", "0.9", "1.0-rc1", "1.10", "1.9.9", "01.2", "10", "2"];
        v.sort_by(|a, b| compare(a, b));
        assert_eq!(
            v,
            ["0.9", "1.0-rc1", "1.0", "01.2", "1.9.9", "1.10", "2", "10"]
        );
    }
}

//! The mutation engine: a seeded generator and mutations that keep inputs near the shapes
//! clients send (JSON values of the wrong type, huge and negative numbers, odd Unicode,
//! percent-escapes, repeated and missing fields) as well as plain byte damage. Not coverage
//! guided: it runs on the stable toolchain, and the seeds (real requests from the specs)
//! carry it past the first checks.

use serde_json::{Map, Value};

/// xorshift64*: small, fast, reproducible from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Tokens that tend to reach edge cases in parsers of text, numbers and JSON.
const TOKENS: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "1",
    "01",
    "1.5",
    "-0",
    "1e309",
    "NaN",
    "null",
    "true",
    "false",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "%",
    "%00",
    "%zz",
    "%2F",
    "..",
    "../..",
    "/",
    "//",
    "?",
    "&",
    "=",
    "#",
    "\\",
    "\"",
    "'",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    ";",
    "\u{0}",
    "\u{7f}",
    "\u{202e}",
    "é",
    "中文",
    "😀",
    "\u{fffd}",
    "\r\n",
    "\t",
    "$eq",
    "$in",
    "$like",
    "$gt",
    "%_\\",
    "AABBCCDDEEFF",
    "AA:BB:CC:DD:EE:FF",
    "None",
    "undefined",
    "[]",
    "{}",
];

/// A string of the kinds clients send, and the kinds they should not.
pub fn string(r: &mut Rng) -> String {
    match r.below(6) {
        0 => r.pick(TOKENS).to_string(),
        1 => r.pick(TOKENS).repeat(1 + r.below(300)),
        2 => "a".repeat(r.below(5000)),
        3 => (r.next() as i64).to_string(),
        4 => {
            let n = r.below(20);
            (0..n)
                .map(|_| char::from_u32(r.below(0x3000) as u32).unwrap_or('x'))
                .collect()
        }
        _ => format!("{}{}", r.pick(TOKENS), r.pick(TOKENS)),
    }
}

/// A JSON value of any type, small or odd.
pub fn value(r: &mut Rng, depth: usize) -> Value {
    match r.below(if depth > 3 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => Value::Bool(r.chance(2)),
        2 => serde_json::json!(r.next() as i64 >> r.below(64)),
        3 => serde_json::json!(-(r.below(1000) as i64)),
        4 => serde_json::Number::from_f64((r.next() as f64) / 7.0)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        5 => Value::String(string(r)),
        6 => Value::Array((0..r.below(4)).map(|_| value(r, depth + 1)).collect()),
        7 => {
            let mut m = Map::new();
            for _ in 0..r.below(4) {
                m.insert(string(r), value(r, depth + 1));
            }
            Value::Object(m)
        }
        _ => {
            // Deep nesting, which recursive parsers must survive.
            let mut v = Value::Null;
            for _ in 0..(1 + r.below(200)) {
                v = Value::Array(vec![v]);
            }
            v
        }
    }
}

/// Mutate one place of a JSON document: change a value's type or content, drop or add a
/// field, repeat an element.
pub fn mutate_json(r: &mut Rng, v: &mut Value) {
    match v {
        Value::Object(m) if !m.is_empty() && !r.chance(5) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = r.pick(&keys).clone();
            match r.below(5) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert(string(r), value(r, 1));
                }
                2 => {
                    m.insert(k, value(r, 1));
                }
                _ => mutate_json(r, m.get_mut(&k).unwrap_or(&mut Value::Null)),
            }
        }
        Value::Array(a) if !a.is_empty() && !r.chance(5) => {
            let i = r.below(a.len());
            match r.below(4) {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let dup = a[i].clone();
                    a.push(dup);
                }
                _ => mutate_json(r, &mut a[i]),
            }
        }
        Value::String(s) if r.chance(2) => *s = mutate_text(r, s),
        _ => *v = value(r, 1),
    }
}

/// Longest text a mutation makes: long enough for limits to matter, short enough for a URL.
const MAX_TEXT: usize = 8 << 10;

/// Mutate text: replace, insert or delete a piece, or swap in a token.
pub fn mutate_text(r: &mut Rng, s: &str) -> String {
    let mut out = mutate_text_unbounded(r, s);
    if out.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

fn mutate_text_unbounded(r: &mut Rng, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let at = r.below(chars.len() + 1);
    let (head, tail) = chars.split_at(at);
    let head: String = head.iter().collect();
    let tail: String = tail.iter().collect();
    match r.below(5) {
        0 => string(r),
        1 => format!("{head}{}{tail}", r.pick(TOKENS)),
        2 => format!(
            "{head}{}",
            tail.chars().skip(1 + r.below(8)).collect::<String>()
        ),
        3 => format!("{head}{}{tail}", string(r)),
        _ => s.repeat(1 + r.below(50)),
    }
}

/// Byte damage: flip, set, insert, delete, duplicate, truncate.
pub fn mutate_bytes(r: &mut Rng, b: &mut Vec<u8>) {
    if b.is_empty() {
        b.extend_from_slice(string(r).as_bytes());
        return;
    }
    let at = r.below(b.len());
    match r.below(7) {
        0 => b[at] ^= 1 << r.below(8),
        1 => b[at] = r.next() as u8,
        2 => {
            let t = r.pick(TOKENS).as_bytes().to_vec();
            b.splice(at..at, t);
        }
        3 => {
            let end = (at + 1 + r.below(16)).min(b.len());
            b.drain(at..end);
        }
        4 => {
            let end = (at + 1 + r.below(64)).min(b.len());
            let piece = b[at..end].to_vec();
            b.splice(at..at, piece);
        }
        5 => b.truncate(at),
        _ => b.splice(at..at, string(r).into_bytes()).for_each(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_reproducible() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next(), b.next());
        }
        let mut v = serde_json::json!({"a": [1, 2], "b": "x"});
        for _ in 0..1000 {
            mutate_json(&mut a, &mut v);
        }
    }
}

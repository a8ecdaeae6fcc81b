//! `multipart/form-data` bodies (RFC 7578), as browsers' `FormData` and Django REST framework
//! consoles post them. The whole body is already in the guest's memory, so this is a small
//! synchronous splitter over bytes rather than a streaming parser (the well-known crates are
//! async and tied to an executor the guest does not have).

/// One part of a form: a field, or a file when it has a `filename`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The form field's name (`Content-Disposition: form-data; name="…"`).
    pub name: String,
    /// The file's name when the part is a file upload.
    pub filename: Option<String>,
    /// The part's own `Content-Type`, when it names one.
    pub content_type: Option<String>,
    /// The part's bytes, exactly as sent.
    pub data: Vec<u8>,
}

/// The boundary of a `multipart/form-data` Content-Type; `None` for any other type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let essence = params.next()?.trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// The parts of `body` delimited by `boundary`; `None` when the body is not well-formed
/// (no opening delimiter, a part without a name, or no closing delimiter).
pub fn parse(boundary: &str, body: &[u8]) -> Option<Vec<Part>> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // A delimiter starts a line: `--boundary` inside a part's data is data.
    let line_delimiter = [b"\n".as_slice(), delimiter].concat();
    let first = if body.starts_with(delimiter) {
        0
    } else {
        find(body, &line_delimiter, 0)? + 1 // after a preamble
    };
    let mut at = first + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Some(parts);
        }
        at = skip_line_end(body, at)?;
        let (headers, data_start) = split_headers(body, at)?;
        // The line break before a delimiter belongs to it, not to the data (an empty part
        // may put the delimiter right after its blank line).
        let newline = find(body, &line_delimiter, data_start.saturating_sub(1))?;
        let mut end = newline.max(data_start);
        if end > data_start && body[end - 1] == b'\r' {
            end -= 1;
        }
        parts.push(part(headers, body[data_start..end].to_vec())?);
        at = newline + line_delimiter.len();
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Past the CRLF (or bare LF) that ends a delimiter line, ignoring trailing blanks.
fn skip_line_end(body: &[u8], mut at: usize) -> Option<usize> {
    while matches!(body.get(at), Some(b' ' | b'\t')) {
        at += 1;
    }
    match body.get(at..)? {
        [b'\r', b'\n', ..] => Some(at + 2),
        [b'\n', ..] => Some(at + 1),
        _ => None,
    }
}

/// A part's header lines and where its data starts (after the blank line).
fn split_headers(body: &[u8], mut at: usize) -> Option<(Vec<(String, String)>, usize)> {
    let mut headers = Vec::new();
    loop {
        let end = find(body, b"\n", at)?;
        let line = &body[at..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at = end + 1;
        if line.is_empty() {
            return Some((headers, at));
        }
        let line = std::str::from_utf8(line).ok()?;
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
}

fn part(headers: Vec<(String, String)>, data: Vec<u8>) -> Option<Part> {
    let disposition = headers
        .iter()
        .find(|(k, _)| k == "content-disposition")
        .map(|(_, v)| v.as_str())?;
    let params = disposition_params(disposition);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    Some(Part {
        name: get("name")?,
        filename: get("filename"),
        content_type: headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.clone()),
        data,
    })
}

/// `form-data; name="a"; filename="b;c.bin"`: the parameters, quotes removed (a `;` inside
/// quotes does not split, and `\"` is a quote).
fn disposition_params(v: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = v.chars().peekable();
    // Skip the disposition type.
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
    }
    loop {
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        let key = key.trim().to_string();
        if key.is_empty() {
            return out;
        }
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&'"') => value.push(chars.next().unwrap_or('"')),
                    '"' => break,
                    c => value.push(c),
                }
            }
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
            }
        } else {
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
                value.push(c);
            }
        }
        out.push((key, value.trim_end().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_from_content_types() {
        assert_eq!(
            boundary("multipart/form-data; boundary=----WebKitFormBoundaryx").as_deref(),
            Some("----WebKitFormBoundaryx")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("application/x-www-form-urlencoded"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn a_browser_form_with_a_file_and_repeated_fields() {
        let body = b"--XyZ\r\n\
Content-Disposition: form-data; name=\"file_name\"\r\n\r\n\
fw.bin\r\n\
--XyZ\r\n\
Content-Disposition: form-data; name=\"mac_range\"\r\n\r\n\
A~B\r\n\
--XyZ\r\n\
Content-Disposition: form-data; name=\"mac_range\"\r\n\r\n\
C~D\r\n\
--XyZ\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"a;\\\"b\\\".bin\"\r\n\
Content-Type: application/octet-stream\r\n\r\n\
\x00\x01\r\n--not-the-boundary\r\n\
--XyZ--\r\n";
        let parts = parse("XyZ", body).unwrap();
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["file_name", "mac_range", "mac_range", "file"]);
        assert_eq!(parts[0].data, b"fw.bin");
        assert_eq!(parts[2].data, b"C~D");
        assert_eq!(parts[3].filename.as_deref(), Some("a;\"b\".bin"));
        assert_eq!(
            parts[3].content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(parts[3].data, b"\x00\x01\r\n--not-the-boundary");
    }

    #[test]
    fn a_boundary_inside_a_line_is_data() {
        let body =
            b"preamble\r\n--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx--b y\r\n\
--b\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n--b--";
        let parts = parse("b", body).unwrap();
        assert_eq!(parts[0].data, b"x--b y");
        assert_eq!((parts[1].name.as_str(), parts[1].data.len()), ("e", 0));
    }

    #[test]
    fn bare_line_feeds_and_an_empty_form() {
        let body = b"--b\nContent-Disposition: form-data; name=a\n\n1\n--b--";
        let parts = parse("b", body).unwrap();
        assert_eq!(
            (parts[0].name.as_str(), &parts[0].data[..]),
            ("a", &b"1"[..])
        );
        assert_eq!(parse("b", b"--b--\r\n").unwrap(), vec![]);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for body in [
            &b"no delimiter"[..],
            b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1",
            b"--b\r\nContent-Type: text/plain\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=\"a\"",
        ] {
            assert_eq!(
                parse("b", body),
                None,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

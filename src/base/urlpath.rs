//! Request paths, normalised once before routing, so that routing and the path sent upstream see
//! the same thing and no spelling of `..` can climb out of a route's prefix (Traefik
//! CVE-2025-32431, Grafana CVE-2021-43798). Each segment is percent-decoded exactly once to
//! recognise `.` and `..` (so `%2e%2e` is `..`), backslashes separate segments as browsers treat
//! them, empty segments (`//`) collapse, `..` pops (clamped at the root), and every kept segment
//! is re-encoded canonically. In strict mode (paths that go to a proxied upstream) a segment that
//! still holds an encoded separator (`%2f`, `%5c`) or a second layer of encoding (`%252e`) is
//! refused, since an upstream that decodes again would see a different path than the one routed.
//! Control characters (NUL included) are refused everywhere. Never panics (fuzz target
//! `proxy_path`).

/// Why a path was refused (answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    TooLong,
    BadEncoding,
    ControlCharacter,
    EncodedSeparator,
    DoubleEncoded,
}

impl PathError {
    pub fn message(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "request path must start with /",
            PathError::TooLong => "request path is longer than 8 KiB",
            PathError::BadEncoding => "request path has a malformed percent-encoding",
            PathError::ControlCharacter => "request path holds a control character",
            PathError::EncodedSeparator => {
                "request path holds an encoded / or \\ inside a segment of a proxied route"
            }
            PathError::DoubleEncoded => "request path is percent-encoded twice",
        }
    }
}

pub const MAX_PATH: usize = 8192;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes once; a `%` not followed by two hex digits is an error.
pub fn decode(seg: &str) -> Result<Vec<u8>, PathError> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::BadEncoding);
            };
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Whether `b` holds a percent-encoded triplet (what is left after one decoding of a
/// double-encoded path).
fn has_encoding(b: &[u8]) -> bool {
    b.windows(3)
        .any(|w| w[0] == b'%' && hex(w[1]).is_some() && hex(w[2]).is_some())
}

/// Characters a path segment may carry unencoded (RFC 3986 pchar minus `%`).
fn keep(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

fn encode_into(out: &mut String, seg: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in seg {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// The normalised form of `raw` (the path part of a request target, without the query).
pub fn normalise(raw: &str, strict: bool) -> Result<String, PathError> {
    if !raw.starts_with('/') && !raw.starts_with('\\') {
        return Err(PathError::NotAbsolute);
    }
    if raw.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut trailing = false;
    for seg in raw.split(['/', '\\']) {
        let d = decode(seg)?;
        if d.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return Err(PathError::ControlCharacter);
        }
        if strict {
            if d.iter().any(|&b| b == b'/' || b == b'\\') {
                return Err(PathError::EncodedSeparator);
            }
            if has_encoding(&d) {
                return Err(PathError::DoubleEncoded);
            }
        }
        trailing = false;
        match d.as_slice() {
            b"" => trailing = true,
            b"." => trailing = true,
            b".." => {
                kept.pop();
                trailing = true;
            }
            _ => kept.push(d),
        }
    }
    let mut out = String::with_capacity(raw.len());
    for seg in &kept {
        out.push('/');
        encode_into(&mut out, seg);
    }
    if kept.is_empty() || trailing {
        out.push('/');
    }
    // Re-encoding can lengthen a path; the limit holds for what is returned too (so a normal
    // path normalises to itself).
    if out.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    Ok(out)
}

/// Whether normalised `path` lies under the route `prefix` (itself normalised, no trailing
/// slash): the prefix itself or anything below it, never `/prefixmore`.
pub fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        let cases: &[(&str, &str)] = &[
            ("/", "/"),
            ("/prometheus", "/prometheus"),
            ("/prometheus/", "/prometheus/"),
            ("/prometheus/graph", "/prometheus/graph"),
            ("//prometheus///graph", "/prometheus/graph"),
            ("/prometheus/./graph", "/prometheus/graph"),
            ("/prometheus/../ui/", "/ui/"),
            ("/prometheus/%2e%2e/ui", "/ui"),
            ("/prometheus/%2E%2e/%2e%2E/%2e%2e/etc/passwd", "/etc/passwd"),
            ("/prometheus\\..\\secret", "/secret"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/../../..", "/"),
            ("/a%20b/c", "/a%20b/c"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/x:y@z", "/x:y@z"),
            ("/a%7eb", "/a~b"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise(raw, true).as_deref(), Ok(*want), "{raw}");
        }
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, bool, PathError)] = &[
            ("prometheus", true, PathError::NotAbsolute),
            (
                "/prometheus/%2f..%2fsecret",
                true,
                PathError::EncodedSeparator,
            ),
            ("/prometheus/..%5csecret", true, PathError::EncodedSeparator),
            (
                "/prometheus/%252e%252e/secret",
                true,
                PathError::DoubleEncoded,
            ),
            ("/prometheus/%25252e", true, PathError::DoubleEncoded),
            ("/a%00b", false, PathError::ControlCharacter),
            ("/a%0d%0aSet-Cookie:x", false, PathError::ControlCharacter),
            ("/a%zz", false, PathError::BadEncoding),
            ("/a%2", false, PathError::BadEncoding),
        ];
        for (raw, strict, want) in cases {
            assert_eq!(normalise(raw, *strict), Err(*want), "{raw}");
        }
        // Lenient (Sightline's own routes): an encoded slash stays an encoded slash.
        assert_eq!(
            normalise("/api/services/a%2Fb/operations", false).as_deref(),
            Ok("/api/services/a%2Fb/operations")
        );
        assert_eq!(
            normalise(&"/a".repeat(5000), false),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn prefixes() {
        assert!(under("/prometheus", "/prometheus"));
        assert!(under("/prometheus/", "/prometheus"));
        assert!(under("/prometheus/api/v1/query", "/prometheus"));
        assert!(!under("/prometheus2/x", "/prometheus"));
        assert!(!under("/prom", "/prometheus"));
    }
}

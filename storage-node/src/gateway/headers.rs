//! Response header values: content types by file extension, `Content-Disposition`, cache
//! policies, and the percent- and HTML-escaping the headers and listings need. Pure functions.

/// `Cache-Control` of everything addressed by an immutable `/ipfs/` path: a CID's bytes never
/// change, so a year (the spec's 29030400 s) and `immutable`.
pub const CACHE_IMMUTABLE: &str = "public, max-age=29030400, immutable";

/// `Cache-Control` of generated directory listings: their HTML may change with the gateway's
/// version, so a week, then revalidated (the value the conformance suite accepts).
pub const CACHE_LISTING: &str = "public, max-age=604800, stale-while-revalidate=2678400";

/// Content types by lower-case file extension. Unknown extensions are served as
/// `application/octet-stream` (no content sniffing; `X-Content-Type-Options: nosniff`).
const TYPES: &[(&str, &str)] = &[
    ("avif", "image/avif"),
    ("bin", "application/octet-stream"),
    ("car", "application/vnd.ipld.car"),
    ("css", "text/css; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("gif", "image/gif"),
    ("gz", "application/gzip"),
    ("htm", "text/html; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
    ("ico", "image/x-icon"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("jsonl", "application/jsonl"),
    ("md", "text/markdown; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("ogg", "audio/ogg"),
    ("parquet", "application/vnd.apache.parquet"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("svg", "image/svg+xml"),
    ("tar", "application/x-tar"),
    ("txt", "text/plain; charset=utf-8"),
    ("wasm", "application/wasm"),
    ("wav", "audio/wav"),
    ("webm", "video/webm"),
    ("webp", "image/webp"),
    ("xml", "application/xml"),
    ("zip", "application/zip"),
    ("zst", "application/zstd"),
];

/// The content type of a file named `name`, from its extension.
pub fn content_type_for(name: &str) -> &'static str {
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream",
    };
    TYPES
        .binary_search_by(|(e, _)| (*e).cmp(ext.as_str()))
        .map(|i| TYPES[i].1)
        .unwrap_or("application/octet-stream")
}

/// A `Content-Disposition` value: `disposition` (`inline` or `attachment`) with `filename`,
/// as a quoted ASCII fallback (quotes, backslashes, controls and non-ASCII replaced by `_`)
/// plus RFC 5987 `filename*` when the name is not plain ASCII.
pub fn content_disposition(disposition: &str, filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ascii == filename {
        format!("{disposition}; filename=\"{ascii}\"")
    } else {
        format!(
            "{disposition}; filename=\"{ascii}\"; filename*=UTF-8''{}",
            encode(filename, Set::Unreserved)
        )
    }
}

/// Which bytes [`encode`] leaves as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    /// One URL path segment: unreserved characters and `$+,:;=@` (Go's `url.PathEscape`
    /// set, less `&`, which would need HTML escaping in links).
    PathSegment,
    /// Only the unreserved `A-Z a-z 0-9 - . _ ~` (query values, RFC 5987 values).
    Unreserved,
}

/// Percent-encodes `s` (upper-case hex, as browsers and the conformance suite write it).
pub fn encode(s: &str, set: Set) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (set == Set::PathSegment
                && matches!(b, b'$' | b'+' | b',' | b':' | b';' | b'=' | b'@'));
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes `s`; `None` when a `%` is not followed by two hex digits. `+` stays `+`
/// (it means a space only in form-encoded queries, never in paths).
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_table_is_sorted_for_binary_search() {
        assert!(TYPES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn content_types_by_extension() {
        for (name, want) in [
            ("index.html", "text/html; charset=utf-8"),
            ("INDEX.HTM", "text/html; charset=utf-8"),
            ("a.b.txt", "text/plain; charset=utf-8"),
            ("shard-000.tar", "application/x-tar"),
            ("train.parquet", "application/vnd.apache.parquet"),
            ("photo.JPG", "image/jpeg"),
            ("data.jsonl", "application/jsonl"),
            ("no-extension", "application/octet-stream"),
            (".hidden", "application/octet-stream"), // a dot file has no extension
            ("trailing.", "application/octet-stream"),
            ("weird.xyz", "application/octet-stream"),
            ("", "application/octet-stream"),
        ] {
            assert_eq!(content_type_for(name), want, "{name}");
        }
    }

    #[test]
    fn content_disposition_values() {
        for (disp, name, want) in [
            (
                "attachment",
                "foobar.bin",
                r#"attachment; filename="foobar.bin""#,
            ),
            ("inline", "a b.txt", r#"inline; filename="a b.txt""#),
            (
                "attachment",
                "zażółć.txt",
                r#"attachment; filename="za____.txt"; filename*=UTF-8''za%C5%BC%C3%B3%C5%82%C4%87.txt"#,
            ),
            (
                "attachment",
                "quo\"te\\.txt",
                r#"attachment; filename="quo_te_.txt"; filename*=UTF-8''quo%22te%5C.txt"#,
            ),
            (
                "inline",
                "line\r\nbreak",
                r#"inline; filename="line__break"; filename*=UTF-8''line%0D%0Abreak"#,
            ),
        ] {
            assert_eq!(content_disposition(disp, name), want, "{name:?}");
        }
    }

    #[test]
    fn percent_encoding_round_trips() {
        for (raw, seg, unreserved) in [
            ("ą", "%C4%85", "%C4%85"),
            (
                "file-źł.txt",
                "file-%C5%BA%C5%82.txt",
                "file-%C5%BA%C5%82.txt",
            ),
            ("a b&c", "a%20b%26c", "a%20b%26c"),
            ("x+y=z@w", "x+y=z@w", "x%2By%3Dz%40w"),
            ("a/b?c#d", "a%2Fb%3Fc%23d", "a%2Fb%3Fc%23d"),
            ("100%", "100%25", "100%25"),
        ] {
            assert_eq!(encode(raw, Set::PathSegment), seg, "{raw}");
            assert_eq!(encode(raw, Set::Unreserved), unreserved, "{raw}");
            assert_eq!(decode(seg).as_deref(), Some(raw.as_bytes()));
        }
        // the conformance suite's double-encoded filename parameter
        assert_eq!(
            encode(&encode("file-źł.txt", Set::PathSegment), Set::Unreserved),
            "file-%25C5%25BA%25C5%2582.txt"
        );
    }

    #[test]
    fn percent_decoding_refuses_bad_escapes() {
        for bad in ["%", "%4", "%zz", "a%g0", "%%"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(
            decode("Portugal%252C+Espa%C3%B1a").unwrap(),
            "Portugal%2C+España".as_bytes()
        );
        assert_eq!(decode("%f0%9f%92%a9").unwrap(), "💩".as_bytes());
    }

    #[test]
    fn html_escaping() {
        assert_eq!(
            html_escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

//! The one decoder of URL queries and urlencoded form bodies for every view, the
//! render parameters included (`render_query`), and the one encoder of a value into
//! one (`encode`). Below the views and the state (saved rendering settings are render
//! queries, the publisher renders them), above only `imaging`.
//!
//! As Python's `unquote_plus`, which Django's `QueryDict` uses: `+` is a space, `%XX`
//! with two hex digits is that byte, and any other `%` (a stray one, `%zz`, `%+1`, one
//! near the end) stays as written. Only two hex digits make an escape: `%+1` decodes to
//! `% 1`, never to the byte 0x01 a signed-number parse would make of it.

pub mod render_query;

/// A component whose decoded bytes are not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query string is not valid UTF-8")]
pub struct NotUtf8;

/// The bytes `component` stands for.
pub fn decode_bytes(component: &str) -> Vec<u8> {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let hex = |b: u8| (b as char).to_digit(16);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    out
}

/// `component` decoded, refusing bytes that are not UTF-8 (where a view answers 400).
pub fn decode(component: &str) -> Result<String, NotUtf8> {
    String::from_utf8(decode_bytes(component)).map_err(|_| NotUtf8)
}

/// `component` decoded, bytes that are not UTF-8 replaced by U+FFFD (Django's
/// `errors='replace'`).
pub fn decode_lossy(component: &str) -> String {
    String::from_utf8_lossy(&decode_bytes(component)).into_owned()
}

/// `value` encoded for a query or form body, as Django's `urlencode` writes one (HTML
/// forms' `application/x-www-form-urlencoded`): a space is `+`, every byte but ASCII
/// letters, digits and `*-._` is `%XX`. What [`decode`] reads back as it was, so a
/// value carried in a link (`url=`, `q=`, a render query's `maps=`) comes back whole.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The `key=value` pairs of a query or form body, in order, repeats kept, decoded as
/// Django's `QueryDict` decodes them.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    raw_pairs(query)
        .map(|(k, v)| (decode_lossy(k), decode_lossy(v)))
        .collect()
}

/// As [`query_pairs`], but an error for a component that is not UTF-8.
pub fn strict_query_pairs(query: &str) -> Result<Vec<(String, String)>, NotUtf8> {
    raw_pairs(query)
        .map(|(k, v)| Ok((decode(k)?, decode(v)?)))
        .collect()
}

/// The query as the renderer reads it: decoded, so that `%7C` and `|` (or `%24` and
/// `$`) give one ETag for one image.
pub fn normalised_query(query: &str) -> String {
    format!("{:?}", query_pairs(query))
}

/// The undecoded pairs: split on `&` (empty parts skipped), then at the first `=`.
fn raw_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_is_djangos_urlencode_and_decodes_back() {
        assert_eq!(encode("/webclient/?a=1 b"), "%2Fwebclient%2F%3Fa%3D1+b");
        assert_eq!(encode("my cells"), "my+cells");
        assert_eq!(encode("caf\u{e9}+%"), "caf%C3%A9%2B%25");
        assert_eq!(encode("a-b.c_d*"), "a-b.c_d*");
        for value in [
            "",
            "a b&c=d",
            "[{\"inverted\":{\"enabled\":true}}]",
            "50% + 1",
            "\u{1F52C} x",
        ] {
            assert_eq!(decode(&encode(value)).as_deref(), Ok(value), "{value}");
            assert_eq!(
                query_pairs(&format!("k={}&z=1", encode(value))),
                [
                    ("k".to_string(), value.to_string()),
                    ("z".into(), "1".into())
                ]
            );
        }
    }

    #[test]
    fn escapes_need_two_hex_digits() {
        assert_eq!(decode("a+b%7C%24%2c").unwrap(), "a b|$,");
        assert_eq!(decode("100%").unwrap(), "100%");
        assert_eq!(decode("%zz%4").unwrap(), "%zz%4");
        assert_eq!(decode("%4").unwrap(), "%4");
        assert_eq!(decode("%C2%B5").unwrap(), "µ");
        // A sign is not a hex digit: `%+1` is no escape (a signed-number parse once
        // made the byte 0x01 of it); its `+` is a space, as everywhere.
        assert_eq!(decode_bytes("%+1"), b"% 1");
        assert_eq!(decode("x%+1y").unwrap(), "x% 1y");
        assert_eq!(decode_bytes("%-1"), b"%-1");
        // An escape at the very end is decoded.
        assert_eq!(decode("a%41").unwrap(), "aA");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_or_replaced() {
        assert_eq!(decode("%FF"), Err(NotUtf8));
        assert_eq!(decode_lossy("a%FFb"), "a\u{FFFD}b");
        assert_eq!(strict_query_pairs("a=%FF"), Err(NotUtf8));
        assert_eq!(
            query_pairs("a=%FF"),
            vec![("a".to_string(), "\u{FFFD}".to_string())]
        );
    }

    #[test]
    fn queries_are_percent_decoded() {
        assert_eq!(
            query_pairs("c=1%7C100:505%240000FF,-2&m=c&x"),
            vec![
                ("c".to_string(), "1|100:505$0000FF,-2".to_string()),
                ("m".to_string(), "c".to_string()),
                ("x".to_string(), String::new())
            ]
        );
        assert_eq!(
            query_pairs("a=%zz%4"),
            vec![("a".to_string(), "%zz%4".to_string())]
        );
        assert_eq!(
            query_pairs("c=%+1&c=2"),
            vec![
                ("c".to_string(), "% 1".to_string()),
                ("c".to_string(), "2".to_string())
            ]
        );
    }

    #[test]
    fn equivalent_queries_share_one_etag_key() {
        assert_eq!(
            normalised_query("c=1%7C0:255%24FF0000&m=g"),
            normalised_query("c=1|0:255$FF0000&m=g")
        );
        assert_ne!(normalised_query("m=g"), normalised_query("m=c"));
        // A decoded "&" cannot pose as a separator.
        assert_ne!(normalised_query("a=1%26b=2"), normalised_query("a=1&b=2"));
    }
}

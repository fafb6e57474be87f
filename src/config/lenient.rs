//! Reading leniently: what OMERO.web's own parsers (`omeroweb/settings.py` and
//! `omeroweb/utils.py`) make of a value in a site's file that our rules refuse.
//! "What OMERO runs, we run": such a value is kept as written and loads with a
//! warning that says how OMERO reads it and what omero-webctl uses; strictness is
//! for values being set. A value OMERO's own parser fails on (`int("banana")`) is
//! reported by key while every other value keeps being used.

use super::property::{Invalid, JsonShape, Kind, Property, Value};
use crate::site::SiteKind;

/// How a refused value is read after all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lenient {
    /// What omero-webctl uses: OMERO's reading when our types can hold it; `None`
    /// means the property's default applies here.
    pub used: Option<Value>,
    /// What OMERO makes of it and what omero-webctl does, in one line.
    pub message: String,
    /// OMERO.web's own parser fails on it: OMERO.web cannot start with this file.
    pub omero_fails: bool,
}

/// OMERO.web's parser of a property, as its settings tables name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OmeroParser {
    /// An omero-webctl extension: OMERO.web never reads it.
    NotRead,
    /// `int()` (and `leave_none_unset_int`).
    Int,
    /// `parse_boolean`: anything but true/1/t is false; never fails.
    Boolean,
    /// `json.loads`.
    Json,
    /// `check_server_type`, `check_session_engine`: one of a list, exactly.
    Exact,
    /// `check_timezone` (pytz, case-insensitive).
    TimeZone,
    /// `re.compile`.
    Regex,
    /// `str`, `identity`, `str_slash`, `os.path.normpath`, `leave_none_unset`:
    /// any text passes.
    Any,
}

fn omero_parser(prop: &Property) -> OmeroParser {
    if prop.extension {
        return OmeroParser::NotRead;
    }
    match prop.kind {
        // `identity` in settings.py: the text goes to Django as it is.
        Kind::Int { .. } if matches!(prop.key, "omero.mail.port" | "omero.web.email_port") => {
            OmeroParser::Any
        }
        Kind::Int { .. } => OmeroParser::Int,
        Kind::Bool => OmeroParser::Boolean,
        Kind::Json(_) => OmeroParser::Json,
        Kind::Choice(_)
            if matches!(
                prop.key,
                "omero.web.application_server" | "omero.web.session_engine"
            ) =>
        {
            OmeroParser::Exact
        }
        Kind::TimeZone => OmeroParser::TimeZone,
        Kind::Regex => OmeroParser::Regex,
        _ => OmeroParser::Any,
    }
}

/// Reads `raw` (the file's text of `prop`, which the strict rules refused for
/// `invalid`) the way OMERO.web would. `toml_mismatch`: an embedded site's file
/// holds a TOML value of a type the property cannot hold (an array for an integer),
/// which has no reading; `invalid` names the type.
pub fn read(
    prop: &Property,
    raw: &str,
    invalid: &Invalid,
    site: SiteKind,
    toml_mismatch: bool,
) -> Lenient {
    let parser = omero_parser(prop);
    let default = default_words(prop);
    let fails_words = |why: &str| -> String {
        match site {
            SiteKind::OmeroWeb => format!("OMERO.web cannot start with it ({why})"),
            SiteKind::Embedded => format!("OMERO.web could not start with it ({why})"),
        }
    };
    let fallback = |omero_fails: bool, what: String| Lenient {
        used: None,
        message: format!("{what}; omero-webctl uses {default} until it is changed"),
        omero_fails,
    };
    if toml_mismatch {
        return fallback(false, invalid.reason.clone());
    }
    match (prop.kind, parser) {
        (Kind::Bool, _) => {
            let truth = parse_boolean(raw);
            Lenient {
                used: Some(Value::Bool(truth)),
                message: format!(
                    "OMERO reads {raw:?} as {truth} (only true, 1 and t are true); set true or false to say which"
                ),
                omero_fails: false,
            }
        }
        (Kind::Int { .. }, _) => match python_int(raw) {
            Some(n) => match n.parse::<i64>().ok().filter(|i| prop.parse(&i.to_string()).is_ok()) {
                Some(i) => Lenient {
                    used: Some(Value::Int(i)),
                    message: format!("OMERO reads {raw:?} as {i}; set {i} to write it plainly"),
                    omero_fails: false,
                },
                None => fallback(
                    false,
                    format!(
                        "{n} is outside what omero-webctl runs ({}); OMERO reads {n}",
                        prop.kind.allowed()
                    ),
                ),
            },
            None if parser == OmeroParser::Int => {
                fallback(true, format!("not an integer: {}", fails_words("int() fails")))
            }
            None => fallback(false, "not an integer".into()),
        },
        (Kind::Json(shape), _) => match python_json(raw) {
            Err(why) if parser == OmeroParser::Json => fallback(
                true,
                format!("invalid JSON ({why}): {}", fails_words("json.loads fails")),
            ),
            Err(why) => fallback(false, format!("invalid JSON ({why})")),
            Ok(_) => {
                let wanted = match shape {
                    JsonShape::List => "a JSON list",
                    JsonShape::Object => "a JSON object",
                };
                fallback(
                    false,
                    format!("OMERO reads the JSON, but the property takes {wanted}"),
                )
            }
        },
        (Kind::Choice(words), OmeroParser::Exact) => fallback(
            true,
            format!(
                "not one of {}: {}",
                words.join(", "),
                fails_words("settings.py refuses it")
            ),
        ),
        (Kind::Choice(words), _) if prop.key.ends_with("_samesite") => {
            match words.iter().find(|w| w.eq_ignore_ascii_case(raw)) {
                // Django compares SameSite without regard to case.
                Some(word) => Lenient {
                    used: Some(Value::Text(raw.to_string())),
                    message: format!("Django reads {raw:?} as {word} (any case)"),
                    omero_fails: false,
                },
                None => fallback(
                    false,
                    format!(
                        "not one of {}: Django refuses it each time it sets a cookie, so logins fail",
                        words.join(", ")
                    ),
                ),
            }
        }
        (Kind::Choice(_), _) if prop.key == "omero.web.wsgi_worker_class" => fallback(
            false,
            "not a worker class omero-webctl runs (sync, gthread, gevent); OMERO's `omero web start` refuses every class but sync and gevent (609)".into(),
        ),
        (Kind::TimeZone, _) => {
            let known = chrono_tz::TZ_VARIANTS
                .iter()
                .any(|tz| tz.name().eq_ignore_ascii_case(raw));
            if known {
                fallback(
                    false,
                    "pytz reads the zone in any case, but Django looks its file up by the exact name".into(),
                )
            } else {
                fallback(
                    true,
                    format!("unknown time zone: {}", fails_words("pytz refuses it")),
                )
            }
        }
        (Kind::Regex, _) => fallback(
            parser == OmeroParser::Regex,
            match parser {
                OmeroParser::Regex => {
                    format!("{}: {}", invalid.reason, fails_words("re.compile fails"))
                }
                _ => invalid.reason.clone(),
            },
        ),
        (Kind::WsgiArgs, _) if site == SiteKind::OmeroWeb => {
            if shlex::split(raw).is_some() {
                Lenient {
                    used: Some(Value::Text(raw.to_string())),
                    message: format!(
                        "{}; OMERO and omero-webctl pass it to Gunicorn as written",
                        invalid.reason
                    ),
                    omero_fails: false,
                }
            } else {
                fallback(
                    false,
                    format!(
                        "{}; OMERO splits it at spaces, omero-webctl cannot split it",
                        invalid.reason
                    ),
                )
            }
        }
        (Kind::WsgiArgs, _) => fallback(
            false,
            format!("{}; the embedded pool cannot run it", invalid.reason),
        ),
        _ if parser == OmeroParser::NotRead => fallback(
            false,
            format!("{} (an omero-webctl property; OMERO.web ignores it)", invalid.reason),
        ),
        _ => fallback(false, format!("{}; OMERO reads it as written", invalid.reason)),
    }
}

/// A value our rules accept (they forgive surrounding spaces) that OMERO's own
/// parser refuses: settings.py checks the server type and session engine exactly.
pub fn omero_refuses(prop: &Property, raw: &str, site: SiteKind) -> Option<Lenient> {
    match (prop.kind, omero_parser(prop)) {
        (Kind::Choice(words), OmeroParser::Exact) if !words.contains(&raw) => {
            let invalid = Invalid::new(format!("not exactly one of {}", words.join(", ")));
            Some(read(prop, raw, &invalid, site, false))
        }
        _ => None,
    }
}

/// "the default (`5`)", "the default" for long defaults, "no value" when unset.
fn default_words(prop: &Property) -> String {
    match prop.default {
        Some("") => "the default (empty)".into(),
        Some(d) if d.len() <= 40 => format!("the default ({d})"),
        Some(_) => "the default".into(),
        None => "no value (unset)".into(),
    }
}

/// OMERO.web's `parse_boolean`.
pub fn parse_boolean(raw: &str) -> bool {
    matches!(raw.trim().to_lowercase().as_str(), "true" | "1" | "t")
}

/// What Python's `int()` accepts, as its decimal digits (sign kept, `_` removed):
/// surrounding white space, an optional sign, ASCII digits with single `_` between
/// them. (`int()` also reads non-ASCII decimal digits; those are not recognised here
/// and read as "not an integer", a warning too.)
pub fn python_int(raw: &str) -> Option<String> {
    let t = raw.trim();
    let (sign, digits) = match t.as_bytes().first()? {
        b'+' => ("", &t[1..]),
        b'-' => ("-", &t[1..]),
        _ => ("", t),
    };
    let parts: Vec<&str> = digits.split('_').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let joined = parts.concat();
    let trimmed = joined.trim_start_matches('0');
    let body = if trimmed.is_empty() { "0" } else { trimmed };
    Some(if body == "0" {
        "0".into()
    } else {
        format!("{sign}{body}")
    })
}

/// Python's `json.loads`: JSON, plus the `NaN`, `Infinity` and `-Infinity` it
/// also reads.
pub fn python_json(raw: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str(raw) {
        Ok(v) => Ok(v),
        Err(first) => {
            let replaced = replace_python_constants(raw);
            serde_json::from_str(&replaced).map_err(|_| first.to_string())
        }
    }
}

/// `NaN`, `Infinity` and `-Infinity` outside strings replaced by `null`.
fn replace_python_constants(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    let mut in_string = false;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if c == '\\' {
                let escaped: String = rest.chars().take(2).collect();
                out.push_str(&escaped);
                rest = &rest[escaped.len()..];
                continue;
            }
            in_string = c != '"';
        } else if c == '"' {
            in_string = true;
        } else if let Some(word) = ["-Infinity", "Infinity", "NaN"]
            .iter()
            .find(|w| rest.starts_with(**w))
        {
            out.push_str("null");
            rest = &rest[word.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::registry::lookup;

    fn lenient(key: &str, raw: &str, site: SiteKind) -> Lenient {
        let prop = lookup(key).unwrap();
        let invalid = prop
            .parse(raw)
            .expect_err("a value the strict rules refuse");
        read(prop, raw, &invalid, site, false)
    }

    #[test]
    fn python_int_is_what_int_reads() {
        assert_eq!(python_int(" +5 ").as_deref(), Some("5"));
        assert_eq!(python_int("-0").as_deref(), Some("0"));
        assert_eq!(python_int("1_000").as_deref(), Some("1000"));
        assert_eq!(python_int("007").as_deref(), Some("7"));
        for bad in ["", "1__0", "_1", "1_", "0x10", "1.0", "banana", "+", "- 1"] {
            assert_eq!(python_int(bad), None, "{bad}");
        }
    }

    #[test]
    fn booleans_read_as_omero_reads_them() {
        let yes = lenient("omero.web.debug", "yes", SiteKind::OmeroWeb);
        assert_eq!(yes.used, Some(Value::Bool(false)));
        assert!(
            yes.message.starts_with("OMERO reads \"yes\" as false"),
            "{}",
            yes.message
        );
        assert!(!yes.omero_fails);
    }

    #[test]
    fn integers_omero_reads_and_those_it_cannot() {
        let zero = lenient("omero.web.wsgi_workers", "0", SiteKind::OmeroWeb);
        assert_eq!(zero.used, None);
        assert!(!zero.omero_fails);
        assert!(zero.message.contains("OMERO reads 0"), "{}", zero.message);
        assert!(zero.message.contains("the default (5)"), "{}", zero.message);
        let spaced = lenient("omero.web.wsgi_workers", "1_0", SiteKind::OmeroWeb);
        assert_eq!(spaced.used, Some(Value::Int(10)));
        let banana = lenient("omero.web.wsgi_workers", "banana", SiteKind::OmeroWeb);
        assert!(banana.omero_fails);
        assert!(
            banana.message.contains("OMERO.web cannot start with it"),
            "{}",
            banana.message
        );
        // omero.mail.port is `identity` in settings.py: OMERO never fails on it.
        assert!(!lenient("omero.mail.port", "smtp", SiteKind::OmeroWeb).omero_fails);
    }

    #[test]
    fn json_choices_and_flags() {
        assert!(lenient("omero.web.apps", "[1,", SiteKind::OmeroWeb).omero_fails);
        let shape = lenient("omero.web.apps", "{}", SiteKind::OmeroWeb);
        assert!(!shape.omero_fails && shape.used.is_none());
        assert!(python_json("[NaN, -Infinity, \"NaN\"]").is_ok());
        assert!(python_json("[nan]").is_err());
        let lax = lenient(
            "omero.web.session_cookie_samesite",
            "lax",
            SiteKind::OmeroWeb,
        );
        assert_eq!(lax.used, Some(Value::Text("lax".into())));
        assert!(
            lenient(
                "omero.web.application_server",
                "wsgi_tcp",
                SiteKind::OmeroWeb
            )
            .omero_fails
        );
        let flags = "--worker-class gthread --threads 4";
        let passed = lenient("omero.web.wsgi_args", flags, SiteKind::OmeroWeb);
        assert_eq!(passed.used, Some(Value::Text(flags.into())));
        assert_eq!(
            lenient("omero.web.wsgi_args", flags, SiteKind::Embedded).used,
            None
        );
    }
}

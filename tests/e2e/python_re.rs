//! Regex properties (`omero.web.public.url_filter`) are checked as Python's `re`
//! compiles them: the real Python 3.11 judges a generated probe list, and our check
//! must agree on every pattern (see `src/config/python_re.rs`).

use crate::support;

use std::io::Write;
use std::process::{Command, Stdio};

use omero_webctl::config::python_re;

const PYTHON: &str = "/usr/bin/python3.11";

/// For each pattern (one JSON string a line), whether `re.compile` accepts it.
const JUDGE: &str = r#"
import json, re, sys, warnings
warnings.simplefilter("ignore")
out = []
for line in sys.stdin:
    pattern = json.loads(line)
    try:
        re.compile(pattern)
        out.append(True)
    except Exception:
        out.append(False)
print(json.dumps(out))
"#;

fn python_accepts(patterns: &[String]) -> Vec<bool> {
    let mut child = Command::new(PYTHON)
        .args(["-I", "-c", JUDGE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PYTHON}: {e}"));
    let mut input = String::new();
    for p in patterns {
        input.push_str(&serde_json::to_string(p).unwrap());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every pattern of up to three symbols from an alphabet of regex syntax, a
/// seeded sample of longer ones, and hand-picked constructs.
fn probes() -> Vec<String> {
    const ALPHABET: &[&str] = &[
        "a", "(", ")", "[", "]", "{", "}", ",", "1", "2", "?", "*", "+", "|", "^", "$", "\\", "-",
        ":", "=", "!", "<", ">", "P", "#", "i", "x", "d", "b", "0", "8", " ", "u",
    ];
    let mut out = vec![String::new()];
    let mut layer = vec![String::new()];
    for _ in 0..3 {
        let next: Vec<String> = layer
            .iter()
            .flat_map(|p| ALPHABET.iter().map(move |s| format!("{p}{s}")))
            .collect();
        out.extend(next.iter().cloned());
        layer = next;
    }
    let mut seed: u64 = 0x5eed_1911;
    for _ in 0..30_000 {
        let len = 4 + (seed % 5) as usize;
        let mut p = String::new();
        for _ in 0..len {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            p.push_str(ALPHABET[(seed >> 33) as usize % ALPHABET.len()]);
        }
        out.push(p);
    }
    for p in [
        "[",
        "a{2,1}",
        "\\d+(?i)x",
        "(?i)\\d+x",
        "(?#This regular expression matches nothing)a^",
        "^/webgateway/(render_image|render_thumbnail|render_birds_eye_view)/\\d+",
        "^/webclient/(?!logout)",
        "(?<=ab)c",
        "(?<=a|bc)d",
        "(?<=a*)b",
        "(?<!x{3})y",
        "(?P<id>\\d+)-(?P=id)",
        "(?P<id>a)(?P<id>b)",
        "(?P<1a>x)",
        "(?P<é>x)",
        "(a)(?(1)b|c)",
        "(a)(?(2)b|c)",
        "(?(1)a|b|c)(x)",
        "(a)(?<=\\1)",
        "(?<=(a))\\1",
        "(?x) a b # comment\n c",
        "(?x)[ ]#x",
        "(?x:a b)(?-x: c)",
        "(?i:a)(?-i:b)(?im-sx:c)",
        "(?a)(?u)x",
        "(?au)x",
        "(?L)x",
        "(?t)x",
        "(?-a:x)",
        "(?i-i:x)",
        "(?>a+)b",
        "a*+b++c?+d{1,2}+",
        "a**",
        "a{,3}b{}c{x}d{1,}",
        "x{4294967295}",
        "x{4294967294}",
        "\\x4",
        "\\x41\\u00e9\\U0001F600\\U00110000",
        "\\0\\07\\077\\0777\\101\\400\\18",
        "[\\8]",
        "[\\d-z]",
        "[z-a]",
        "[a-\\x7f]",
        "[]a]",
        "[^]a]",
        "[a-]",
        "[\\b\\B]",
        "\\q",
        "\\é",
        "(?P>x)",
        "(?<x>a)",
        "(?Q)",
        "a)",
        "((a)",
        "\\",
        "(?",
        "(?#unterminated",
        "(?#ok\\))",
        "(?P<a>x)(?P=b)",
    ] {
        out.push(p.to_string());
    }
    out
}

#[test]
fn the_regex_check_agrees_with_pythons_re_on_every_probe() {
    if !std::path::Path::new(PYTHON).is_file() {
        panic!("{PYTHON} is needed to judge the probes");
    }
    let probes = probes();
    let python = python_accepts(&probes);
    assert_eq!(python.len(), probes.len());
    let mut disagree = Vec::new();
    for (p, &accepted) in probes.iter().zip(&python) {
        let ours = python_re::check(p);
        if ours.is_ok() != accepted {
            disagree.push(format!("{p:?}: Python {accepted}, ours {ours:?}"));
        }
    }
    // (`\N{name}` is left out: refused on purpose, see python_re.)
    let accepted = python.iter().filter(|&&a| a).count();
    assert!(
        disagree.is_empty(),
        "{} of {} probes disagree:\n{}",
        disagree.len(),
        probes.len(),
        disagree[..disagree.len().min(40)].join("\n")
    );
    // The list exercises both answers, not just one.
    assert!(
        accepted > 1000 && probes.len() - accepted > 1000,
        "{accepted}"
    );
}

#[test]
fn config_set_refuses_what_python_cannot_compile_and_keeps_the_file() {
    let site = support::TestSite::empty();
    for bad in ["[", "a{2,1}", "\\d+(?i)x"] {
        let err = site.fails(&["config", "set", "omero.web.public.url_filter", bad]);
        assert!(
            err.contains("Python cannot compile this regex"),
            "{bad}: {err}"
        );
    }
    site.ok(&[
        "config",
        "set",
        "omero.web.public.url_filter",
        "(?<=/webgateway/)render_\\w+",
    ]);
    assert_eq!(
        site.ok(&["config", "get", "omero.web.public.url_filter"]),
        "(?<=/webgateway/)render_\\w+\n"
    );
}

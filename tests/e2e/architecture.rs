//! The import rules of ARCHITECTURE.md, checked on the source: every `crate::` and
//! `super::` path in a module's files (code only: comments and string literals are
//! skipped; macro bodies count) must name a top-level module of a lower layer, or a
//! foundation module, or its own. Pool and gateway are one layer: neither may name the
//! other, so `http_app` stays their only link. The faces are layers too: each one
//! that drives another sits above it. The scan maps each file to the module path its
//! place under `src/` gives it, so every file must be declared where that path says
//! (no `#[path]`, no stray files).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every top-level module and its layer; a higher layer may use a lower one, never the
/// other way, and modules of one layer (above the foundation) not each other.
const LAYERS: &[(&str, u8)] = &[
    // The foundation: configuration, logs, the site's layout, file and host helpers.
    ("config", 0),
    ("fsutil", 0),
    ("host", 0),
    ("logging", 0),
    ("privilege", 0),
    ("reachability", 0),
    ("session_store", 0),
    ("site", 0),
    // The status model and processes as Linux shows them.
    ("status", 1),
    ("proc", 1),
    // The seam between the engine and the application.
    ("http_app", 2),
    // The engine and the application: siblings, each only behind `http_app`.
    ("pool", 3),
    ("gateway", 3),
    // nginx's configuration and instances (it serves the gateway's published files).
    ("nginx", 4),
    // What drives a site: the supervisors (the front switch drives nginx).
    ("supervisor", 5),
    // The faces, which may use everything below; first those that use no other face:
    // the health report, the Prometheus text, unit files, the fuzz targets' checks.
    ("diagnostics", 6),
    ("fuzz_checks", 6),
    ("metrics", 6),
    ("systemd", 6),
    // Many sites at once (it reads each one's metrics).
    ("fleet", 7),
    // The panel (it shows the diagnostics and the fleet).
    ("tui", 8),
    // The command line, which opens every other face.
    ("cli", 9),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// Whether code in `from` may name the top-level module `to`.
fn may_use(from: &str, to: &str) -> bool {
    let (Some(a), Some(b)) = (layer(from), layer(to)) else {
        return false;
    };
    from == to || b < a || (a == 0 && b == 0)
}

/// Source text with comments, string and char literals blanked out (newlines kept, so
/// line numbers hold).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && !chars[..i]
                .last()
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    _ => j += 1,
                }
            }
            out.extend(chars[i..j.min(chars.len())].iter().map(|&c| blank(c)));
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let step = if chars[i] == '\\' { 2 } else { 1 };
                for k in 0..step {
                    if let Some(&c) = chars.get(i + k) {
                        out.push(blank(c));
                    }
                }
                i += step;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            let mut j = i + 2;
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            out.extend(std::iter::repeat_n(' ', j + 1 - i));
            i = j + 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.push_str("   ");
            i += 3;
        } else {
            // Code, a lifetime included.
            out.push(c);
            i += 1;
        }
    }
    out
}

/// A name the code uses, at a line: the top-level module, and the path from the crate
/// root as far as the code spells it (at most two segments: `["gateway", "http"]`).
#[derive(Debug, PartialEq, Eq)]
struct Named {
    line: usize,
    module: String,
    path: Vec<String>,
}

impl Named {
    fn new(line: usize, path: Vec<String>) -> Named {
        Named {
            line,
            module: path[0].clone(),
            path,
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The word that starts at `i` (after spaces), and where it ends.
fn word_at(code: &[char], mut i: usize) -> (String, usize) {
    while code.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    let start = i;
    while code.get(i).is_some_and(|&c| is_ident(c)) {
        i += 1;
    }
    (code[start..i].iter().collect(), i)
}

/// After `crate` or a path prefix, at `i`: `::` and what follows.
fn after_path_sep(code: &[char], mut i: usize) -> Option<usize> {
    while code.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    (code.get(i) == Some(&':') && code.get(i + 1) == Some(&':')).then_some(i + 2)
}

/// The path's segment at `i` (after spaces) and the one after it: `a::b` or
/// `a::{b, c}` give one path per second segment; `a` or `a::{` alone, one of a single
/// segment.
fn two_segments(code: &[char], mut i: usize) -> Vec<Vec<String>> {
    while code.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    let (head, end) = word_at(code, i);
    let Some(mut next) = after_path_sep(code, end) else {
        return vec![vec![head]];
    };
    while code.get(next).is_some_and(|c| c.is_whitespace()) {
        next += 1;
    }
    let seconds = if code.get(next) == Some(&'{') {
        group_heads(code, next)
    } else {
        vec![word_at(code, next).0]
    };
    let seconds: Vec<String> = seconds.into_iter().filter(|s| !s.is_empty()).collect();
    if seconds.is_empty() {
        return vec![vec![head]];
    }
    seconds
        .into_iter()
        .map(|second| vec![head.clone(), second])
        .collect()
}

/// The first segments of a `{a, b::c, d as e}` group starting at `i` (the `{`).
fn group_heads(code: &[char], i: usize) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expecting = true;
    let mut j = i;
    while j < code.len() {
        match code[j] {
            '{' => {
                depth += 1;
                expecting = depth == 1;
                j += 1;
            }
            '}' => {
                depth -= 1;
                j += 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                expecting = true;
                j += 1;
            }
            c if expecting && depth == 1 && is_ident(c) => {
                let (word, end) = word_at(code, j);
                heads.push(word);
                expecting = false;
                j = end;
            }
            _ => j += 1,
        }
    }
    heads
}

/// The top-level modules named in `text`, a file of module `path` (its segments from
/// the crate root: `["pool", "master"]`).
fn named_modules(text: &str, path: &[String]) -> Vec<Named> {
    let code: Vec<char> = code_only(text).chars().collect();
    let line_of = |i: usize| code[..i].iter().filter(|&&c| c == '\n').count() + 1;
    let mut found = Vec::new();
    // Inline modules (`mod tests {`) open below the file's module: their brace depths.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < code.len() {
        let c = code[i];
        if c == '{' {
            depth += 1;
            i += 1;
            continue;
        }
        if c == '}' {
            depth = depth.saturating_sub(1);
            if inline_mods.last() == Some(&depth) {
                inline_mods.pop();
            }
            i += 1;
            continue;
        }
        let starts_word = is_ident(c) && (i == 0 || !is_ident(code[i - 1]));
        if !starts_word {
            i += 1;
            continue;
        }
        let (word, end) = word_at(&code, i);
        // `mod name {`: an inline module, one `super` deeper.
        if word == "mod" {
            let (_, after_name) = word_at(&code, end);
            let mut k = after_name;
            while code.get(k).is_some_and(|c| c.is_whitespace()) {
                k += 1;
            }
            if code.get(k) == Some(&'{') {
                inline_mods.push(depth);
            }
        }
        let preceded_by_path = i >= 2 && code[i - 1] == ':' && code[i - 2] == ':';
        if word == "crate" && !preceded_by_path {
            if let Some(next) = after_path_sep(&code, end) {
                let mut k = next;
                while code.get(k).is_some_and(|c| c.is_whitespace()) {
                    k += 1;
                }
                let paths = if code.get(k) == Some(&'{') {
                    group_heads(&code, k)
                        .into_iter()
                        .map(|head| vec![head])
                        .collect()
                } else {
                    two_segments(&code, k)
                };
                for path in paths.into_iter().filter(|p| !p[0].is_empty()) {
                    found.push(Named::new(line_of(i), path));
                }
            }
        } else if word == "super" && !preceded_by_path {
            // super::super::x: up as many levels, from the innermost inline module.
            let mut ups = 1;
            let mut k = end;
            let target = loop {
                let Some(next) = after_path_sep(&code, k) else {
                    break None;
                };
                let (segment, seg_end) = word_at(&code, next);
                if segment == "super" {
                    ups += 1;
                    k = seg_end;
                } else {
                    break Some((segment, next));
                }
            };
            // Where the `super`s lead: this many segments of the module path stay
            // (inline modules are below the file's own).
            let depth_below_root = path.len() + inline_mods.len();
            if let Some((segment, at)) = target
                && ups <= depth_below_root
            {
                let kept = depth_below_root - ups;
                let paths: Vec<Vec<String>> = if kept >= 2 {
                    // Below the file's second segment, or in an inline module of a
                    // top-level file (whose name the path does not need).
                    vec![path[..path.len().min(2)].to_vec()]
                } else if kept == 1 {
                    let heads = if segment.is_empty() && code.get(at) == Some(&'{') {
                        group_heads(&code, at)
                    } else {
                        vec![segment]
                    };
                    heads
                        .into_iter()
                        .filter(|h| !h.is_empty())
                        .map(|h| vec![path[0].clone(), h])
                        .collect()
                } else if segment.is_empty() && code.get(at) == Some(&'{') {
                    group_heads(&code, at)
                        .into_iter()
                        .map(|head| vec![head])
                        .collect()
                } else {
                    two_segments(&code, at)
                };
                for path in paths.into_iter().filter(|p| !p[0].is_empty()) {
                    found.push(Named::new(line_of(i), path));
                }
            }
            i = k;
            continue;
        }
        i = end;
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's module path from the crate root: src/pool/master.rs → [pool, master];
/// src/pool/mod.rs → [pool]; src/http_app.rs → [http_app].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut segments: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if segments.last().is_some_and(|s| s == "mod") {
        segments.pop();
    }
    segments
}

/// The modules a file declares (`mod x;` with any visibility or attributes before it).
fn declared_modules(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    declared_in(&text)
}

/// The file modules `text` declares: the word `mod`, a name, then `;` (an inline
/// `mod x { .. }` has no file). Read on the code only, so a comment after the `;`, a
/// `pub(crate)` or a `#[cfg(test)]` before `mod` change nothing, and a `mod x;` in a
/// comment or string is no module.
fn declared_in(text: &str) -> BTreeSet<String> {
    let code: Vec<char> = code_only(text).chars().collect();
    let mut found = BTreeSet::new();
    let mut i = 0;
    while i < code.len() {
        if !is_ident(code[i]) || (i > 0 && is_ident(code[i - 1])) {
            i += 1;
            continue;
        }
        let (word, end) = word_at(&code, i);
        if word == "mod" {
            let (name, after) = word_at(&code, end);
            let mut k = after;
            while code.get(k).is_some_and(|c| c.is_whitespace()) {
                k += 1;
            }
            if !name.is_empty() && code.get(k) == Some(&';') {
                found.insert(name);
            }
        }
        i = end;
    }
    found
}

/// Lines of `text` that carry a `#[path = ...]` attribute (code only).
fn path_attributes(text: &str) -> Vec<usize> {
    code_only(text)
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let packed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            packed.contains("#[path=")
        })
        .map(|(n, _)| n + 1)
        .collect()
}

/// The file that declares the module at `path` (its parent's file): `src/lib.rs` for
/// a top-level module, else `src/a/b.rs` or `src/a/b/mod.rs` for `a::b::c`.
fn declaring_file(src: &Path, path: &[String]) -> Option<PathBuf> {
    let parent = &path[..path.len() - 1];
    if parent.is_empty() {
        return Some(src.join("lib.rs"));
    }
    let dir: PathBuf = parent.iter().collect();
    [
        src.join(&dir).with_extension("rs"),
        src.join(&dir).join("mod.rs"),
    ]
    .into_iter()
    .find(|f| f.is_file())
}

fn top_level_modules(src: &Path) -> BTreeSet<String> {
    declared_modules(&src.join("lib.rs"))
}

#[test]
fn every_layer_names_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = top_level_modules(&src);
    let unplaced: Vec<&String> = modules.iter().filter(|m| layer(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "top-level modules with no layer in tests/e2e/architecture.rs (place them, and in ARCHITECTURE.md): {unplaced:?}"
    );
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let path = module_path(&src, file);
        let Some(own) = path.first().filter(|m| modules.contains(*m)) else {
            continue; // lib.rs, main.rs
        };
        let text = std::fs::read_to_string(file).unwrap();
        for named in named_modules(&text, &path) {
            checked += 1;
            // Macros and the crate's own items at the root (`crate::here!`) are not modules.
            if !modules.contains(&named.module) {
                continue;
            }
            if !may_use(own, &named.module) {
                broken.push(format!(
                    "{}:{}: {own} (layer {}) names {} (layer {})",
                    file.strip_prefix(&src).unwrap().display(),
                    named.line,
                    layer(own).unwrap(),
                    named.module,
                    layer(&named.module).unwrap()
                ));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} paths found: is the scan blind?"
    );
    assert!(
        broken.is_empty(),
        "imports against the layers of ARCHITECTURE.md:\n{}",
        broken.join("\n")
    );
}

/// The scan itself: it sees imports in every form, and nothing in comments or strings.
#[test]
fn the_scan_finds_paths_in_every_form_and_not_in_comments_or_strings() {
    let text = r##"
use crate::config::Settings;
use crate::{logging, gateway::GatewayConfig};
// use crate::tui::App;
/* crate::cli::run() */
const S: &str = "crate::fleet::x";
const R: &str = r#"crate::metrics"#;
const C: char = '"';
fn f<'a>(x: &'a str) { tokio::select! { _ = crate::supervisor::wait() => {} } }
fn g() { super::super::nginx::start(); super::sibling(); }
mod tests {
    use super::*;
    fn h() { super::super::super::status::x(); super::super::pool_inner(); }
}
"##;
    let path = ["pool".to_string(), "master".to_string()];
    let named: Vec<String> = named_modules(text, &path)
        .into_iter()
        .map(|n| n.path.join("::"))
        .collect();
    assert_eq!(
        named,
        [
            "config::Settings",
            "logging",
            "gateway",
            "supervisor::wait",
            "nginx::start",
            "pool::sibling",
            "pool::master",
            "status::x",
            "pool::pool_inner",
        ],
        "from {text}"
    );
    // Paths inside a module, as deep as they lead: `super` from a nested file, and
    // groups one level down.
    let deep = r#"
use super::super::super::http::query;
use super::super::lut;
use crate::gateway::{imaging::render, auth};
fn f() { crate::gateway::TEST_ROUTES_ENV; super::page::Page; }
"#;
    let tiff = ["gateway", "imaging", "source", "tiff"].map(String::from);
    let named: Vec<String> = named_modules(deep, &tiff)
        .into_iter()
        .map(|n| n.path.join("::"))
        .collect();
    assert_eq!(
        named,
        [
            "gateway::http",
            "gateway::imaging",
            "gateway::imaging",
            "gateway::auth",
            "gateway::TEST_ROUTES_ENV",
            "gateway::imaging",
        ],
        "from {deep}"
    );
    assert!(may_use("pool", "status"));
    assert!(!may_use("pool", "gateway"));
    assert!(!may_use("gateway", "pool"));
    assert!(!may_use("status", "pool"));
    assert!(!may_use("proc", "supervisor"));
    assert!(may_use("cli", "pool"));
    assert!(may_use("config", "site"));
}

/// Where a file of the gateway's imaging layer may not reach: the gateway's modules
/// other than `imaging` (the HTTP layer, access control and sessions, the views'
/// state), and the request/response seam and the session store outside it.
fn imaging_may_not_name(path: &[String], gateway_modules: &BTreeSet<String>) -> bool {
    match path {
        [top, ..] if top == "http_app" || top == "session_store" => true,
        [top, second, ..] if top == "gateway" => {
            second != "imaging" && gateway_modules.contains(second)
        }
        _ => false,
    }
}

/// The gateway in two layers (issue 25): imaging (reading, rendering, encoding) knows
/// files and pixels, never requests; so it names neither the HTTP layer nor access
/// control and sessions, and every view, the publisher and the benchmarks can call it.
#[test]
fn the_imaging_layer_never_names_the_http_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let gateway = declared_modules(&src.join("gateway/mod.rs"));
    for expected in ["imaging", "http", "auth"] {
        assert!(gateway.contains(expected), "gateway modules: {gateway:?}");
    }
    let mut files = Vec::new();
    rust_files(&src.join("gateway/imaging"), &mut files);
    files.sort();
    assert!(files.len() > 10, "only {} imaging files found", files.len());
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let path = module_path(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        for named in named_modules(&text, &path) {
            checked += 1;
            if imaging_may_not_name(&named.path, &gateway) {
                broken.push(format!(
                    "{}:{}: the imaging layer names {}",
                    file.strip_prefix(&src).unwrap().display(),
                    named.line,
                    named.path.join("::")
                ));
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} paths found: is the scan blind?"
    );
    assert!(
        broken.is_empty(),
        "the imaging layer reaches above itself (ARCHITECTURE.md):\n{}",
        broken.join("\n")
    );
    // The rule itself.
    let named = |p: &str| p.split("::").map(String::from).collect::<Vec<_>>();
    assert!(imaging_may_not_name(&named("gateway::http"), &gateway));
    assert!(imaging_may_not_name(&named("gateway::auth"), &gateway));
    assert!(imaging_may_not_name(&named("http_app"), &gateway));
    assert!(imaging_may_not_name(&named("session_store"), &gateway));
    assert!(!imaging_may_not_name(&named("gateway::imaging"), &gateway));
    assert!(!imaging_may_not_name(
        &named("gateway::TEST_ROUTES_ENV"),
        &gateway
    ));
    assert!(!imaging_may_not_name(&named("fsutil"), &gateway));
}

/// The scan reads each file as the module its place under `src/` names; that holds
/// only if every file is declared by its parent's file under its own name, with no
/// `#[path]` to move it (a moved file's `super::` would lead one level off).
#[test]
fn every_file_is_the_module_its_place_names() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut broken = Vec::new();
    for file in &files {
        let shown = file.strip_prefix(&src).unwrap().display().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        for line in path_attributes(&text) {
            broken.push(format!(
                "{shown}:{line}: #[path] moves a module off the place the scan reads it at (make a module directory instead)"
            ));
        }
        let path = module_path(&src, file);
        // Crate roots: the library, and the executables (src/main.rs and src/bin/*.rs,
        // each compiled as a crate of its own that uses the library).
        if path == ["lib"] || path == ["main"] || path.first().is_some_and(|p| p == "bin") {
            continue;
        }
        let name = path.last().unwrap();
        match declaring_file(&src, &path) {
            Some(parent) if declared_modules(&parent).contains(name) => {}
            Some(parent) => broken.push(format!(
                "{shown}: not declared as `mod {name};` in {}",
                parent.strip_prefix(&src).unwrap().display()
            )),
            None => broken.push(format!("{shown}: no parent module file")),
        }
    }
    assert!(files.len() > 100, "only {} files found", files.len());
    assert!(
        broken.is_empty(),
        "files the architecture scan would read as the wrong module:\n{}",
        broken.join("\n")
    );
}

/// Declarations as the code writes them: any visibility, attributes before them,
/// comments after them; none in comments or strings, and no inline modules.
#[test]
fn module_declarations_are_read_as_the_compiler_reads_them() {
    let text = r#"
pub mod a;
pub(crate) mod b;
pub(in crate::x) mod c;
mod d; // a note
#[cfg(test)] mod e;
#[cfg(test)]
#[path = "elsewhere.rs"]
mod f;
mod
    g;
// mod not_this;
/* pub mod nor_this; */
const S: &str = "mod nor_that;";
mod inline { fn f() {} }
fn modest() {}
"#;
    let declared: Vec<String> = declared_in(text).into_iter().collect();
    assert_eq!(declared, ["a", "b", "c", "d", "e", "f", "g"], "from {text}");
    assert_eq!(path_attributes(text), [8], "from {text}");
    assert!(path_attributes("// #[path = \"x.rs\"]\nfn path() {}\n").is_empty());
    // The faces, layered: each may use those below, none above or beside it.
    assert!(may_use("cli", "tui"));
    assert!(may_use("tui", "fleet"));
    assert!(may_use("tui", "diagnostics"));
    assert!(may_use("fleet", "metrics"));
    assert!(!may_use("tui", "cli"));
    assert!(!may_use("fleet", "tui"));
    assert!(!may_use("metrics", "fleet"));
    assert!(!may_use("metrics", "diagnostics"));
    assert!(!may_use("systemd", "fuzz_checks"));
}

/// The gateway's own modules in layers (issue 25), lowest first: a module may name a
/// lower layer's, never a higher one's. The state modules (files the gateway keeps)
/// may use one another, as the crate's foundation modules do; the gateway's root
/// (`gateway/mod.rs`: the config, the `Gateway` every view shares, `boot`) composes
/// them all, and its own items are every module's.
const GATEWAY_LAYERS: &[(&str, u8)] = &[
    // Files and pixels.
    ("imaging", 0),
    // Queries as text: the one decoder and encoder, render queries, render_jpeg.
    ("query", 1),
    // What the gateway keeps: image IDs, thumbnails, saved settings, the hierarchy.
    ("cache", 2),
    ("demo", 2),
    ("parents", 2),
    ("rdefs", 2),
    ("repository", 2),
    ("static_files", 2),
    ("thumbnail_version", 2),
    // Users, sessions, who may see what.
    ("auth", 3),
    // The thumbnails published for nginx (public images only).
    ("published", 4),
    // Requests in, responses out: the URL table, the guard, the views.
    ("http", 5),
    // The gateway as the pool's app.
    ("app_factory", 6),
];
const GATEWAY_STATE: u8 = 2;

fn gateway_layer(module: &str) -> Option<u8> {
    GATEWAY_LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, l)| *l)
}

/// Whether code in the gateway's module `from` may name the gateway's module `to`.
fn gateway_may_use(from: &str, to: &str) -> bool {
    let (Some(a), Some(b)) = (gateway_layer(from), gateway_layer(to)) else {
        return false;
    };
    from == to || b < a || (a == GATEWAY_STATE && b == GATEWAY_STATE)
}

/// What the code `text` of the gateway file at module path `path` names against the
/// gateway's layers, one line each.
fn gateway_layer_breaks(
    text: &str,
    path: &[String],
    gateway_modules: &BTreeSet<String>,
) -> Vec<String> {
    // The root file composes everything.
    let Some(own) = path.get(1) else {
        return Vec::new();
    };
    named_modules(text, path)
        .into_iter()
        .filter_map(|named| match named.path.as_slice() {
            [top, second] if top == "gateway" && gateway_modules.contains(second) => {
                (!gateway_may_use(own, second)).then(|| {
                    let layer_of =
                        |m: &str| gateway_layer(m).map_or("none".into(), |l| l.to_string());
                    format!(
                        "{}: gateway::{own} (layer {}) names gateway::{second} (layer {})",
                        named.line,
                        layer_of(own),
                        layer_of(second)
                    )
                })
            }
            _ => None,
        })
        .collect()
}

/// The gateway's inner layers (ARCHITECTURE.md, "The gateway"): imaging < query <
/// state < auth < published < http < app_factory, no module naming one above it, so
/// none depends on another that depends back on it.
#[test]
fn the_gateway_modules_name_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let gateway = declared_modules(&src.join("gateway/mod.rs"));
    let unplaced: Vec<&String> = gateway
        .iter()
        .filter(|m| gateway_layer(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "gateway modules with no layer in tests/e2e/architecture.rs (place them, and in ARCHITECTURE.md): {unplaced:?}"
    );
    let mut files = Vec::new();
    rust_files(&src.join("gateway"), &mut files);
    files.sort();
    assert!(files.len() > 50, "only {} gateway files found", files.len());
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let path = module_path(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        checked += named_modules(&text, &path)
            .iter()
            .filter(|n| n.module == "gateway")
            .count();
        for line in gateway_layer_breaks(&text, &path, &gateway) {
            broken.push(format!(
                "{}:{line}",
                file.strip_prefix(&src).unwrap().display()
            ));
        }
    }
    assert!(
        checked > 200,
        "only {checked} gateway paths found: is the scan blind?"
    );
    assert!(
        broken.is_empty(),
        "the gateway's modules reach above their layer (ARCHITECTURE.md, \"The gateway\"):\n{}",
        broken.join("\n")
    );
    // The check itself sees a module naming one above it, in each form.
    let planted =
        "use crate::gateway::http::routes::Route;\nfn f() { super::super::published::x(); }\n";
    let sessions = ["gateway", "auth", "sessions"].map(String::from);
    assert_eq!(
        gateway_layer_breaks(planted, &sessions, &gateway).len(),
        2,
        "from {planted}"
    );
    let fine = "use crate::gateway::repository::ImageEntry;\nuse super::super::query;\nuse crate::gateway::Gateway;\n";
    assert_eq!(
        gateway_layer_breaks(fine, &sessions, &gateway),
        Vec::<String>::new()
    );
    // The rule itself.
    assert!(gateway_may_use("http", "auth"));
    assert!(!gateway_may_use("auth", "http"));
    assert!(!gateway_may_use("rdefs", "http"));
    assert!(!gateway_may_use("published", "http"));
    assert!(!gateway_may_use("query", "repository"));
    assert!(!gateway_may_use("imaging", "query"));
    assert!(gateway_may_use("thumbnail_version", "cache"));
    assert!(gateway_may_use("published", "auth"));
    assert!(!gateway_may_use("auth", "published"));
}

//! The `config` subcommands, driven through the real binary.

use crate::support;

use std::process::Command;

use support::TestSite;

#[test]
fn set_get_unset_list_round_trip() {
    let site = TestSite::empty();
    assert_eq!(site.ok(&["config", "get", "omero.web.wsgi_workers"]), "5\n");
    site.ok(&["config", "set", "omero.web.wsgi_workers", "9"]);
    site.ok(&["config", "set", "omero.web.wsgi_worker_class", "gevent"]);
    // OMERO.web would read "yes" as false: refused, with OMERO's words, nothing written.
    let before = site.read_config();
    let refused = site.fails(&["config", "set", "omero.web.debug", "yes"]);
    assert!(
        refused.contains("OMERO.web reads this word as false (only true, 1 and t are true)"),
        "{refused}"
    );
    assert_eq!(site.read_config(), before);
    site.ok(&["config", "set", "omero.web.debug", "t"]);
    assert_eq!(site.ok(&["config", "get", "omero.web.wsgi_workers"]), "9\n");
    assert_eq!(site.ok(&["config", "get", "omero.web.debug"]), "true\n");
    assert!(
        site.read_config()
            .contains("\"omero.web.wsgi_workers\" = 9\n")
    );
    assert!(site.read_config().contains("\"omero.web.debug\" = true\n"));

    let list = site.ok(&["config", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    // Set values first, in registry order.
    assert!(
        lines[0].starts_with("omero.web.debug ") && lines[0].contains(" set "),
        "{list}"
    );
    assert!(lines[1].starts_with("omero.web.wsgi_workers ") && lines[1].contains("\"9\""));
    assert!(
        lines[2].starts_with("omero.web.wsgi_worker_class ") && lines[2].contains("\"gevent\"")
    );
    assert!(list.contains("omero.web.application_server.port"));
    assert!(list.contains("(extension)"));
    // Internal and deprecated keys only with --all.
    assert!(!list.contains("omero.web.force_script_name"));
    let all = site.ok(&["config", "list", "--all"]);
    assert!(
        all.contains("omero.web.force_script_name")
            && all.contains("(deprecated: omero.web.prefix)")
    );

    let json: serde_json::Value =
        serde_json::from_str(&site.ok(&["config", "list", "--json"])).unwrap();
    let workers = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "omero.web.wsgi_workers")
        .unwrap();
    assert_eq!(workers["source"], "set");
    assert_eq!(workers["value"], "9");
    assert_eq!(workers["default"], "5");
    assert_eq!(workers["group"], "Workers");

    site.ok(&["config", "unset", "omero.web.wsgi_workers"]);
    assert_eq!(site.ok(&["config", "get", "omero.web.wsgi_workers"]), "5\n");
    assert!(!site.read_config().contains("wsgi_workers"));
    assert_eq!(
        site.ok(&["config", "get"]),
        "omero.web.debug=true\nomero.web.wsgi_worker_class=gevent\n"
    );
}

#[test]
fn config_get_takes_several_keys() {
    let site = TestSite::empty();
    site.ok(&["config", "set", "omero.web.wsgi_workers", "7"]);
    site.ok(&["config", "set", "omero.web.secret_key", "s3cr3t-value"]);
    // In the order given, defaults included, secrets masked as in listings.
    assert_eq!(
        site.ok(&[
            "config",
            "get",
            "omero.web.wsgi_workers",
            "omero.web.debug",
            "omero.web.secret_key",
            "omero.web.prefix",
        ]),
        "omero.web.wsgi_workers=7\nomero.web.debug=false\nomero.web.secret_key=********\n"
    );
    assert!(
        site.ok(&[
            "config",
            "get",
            "--show-password",
            "omero.web.secret_key",
            "omero.web.debug"
        ])
        .starts_with("omero.web.secret_key=s3cr3t-value\n")
    );
    // An unknown key is an error before anything is printed.
    let out = site.run(&["config", "get", "omero.web.debug", "omero.web.wsgi_worker"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean omero.web.wsgi_workers"),
        "{out:?}"
    );
}

#[test]
fn secrets_are_masked_in_listings_only() {
    let site = TestSite::empty();
    site.ok(&["config", "set", "omero.web.secret_key", "s3cr3t-value"]);
    let list = site.ok(&["config", "list"]);
    assert!(!list.contains("s3cr3t-value"), "{list}");
    assert!(list.contains("********"));
    let json = site.ok(&["config", "list", "--json"]);
    assert!(!json.contains("s3cr3t-value"));
    assert_eq!(
        site.ok(&["config", "get", "omero.web.secret_key"]),
        "s3cr3t-value\n"
    );
}

#[test]
fn bad_values_are_refused_and_the_file_is_unchanged() {
    let site = TestSite::empty();
    let before = "# operator's notes\n\"omero.web.wsgi_workers\" = 4 # four\n";
    site.write_config(before);
    let cases: &[(&str, &str, &str)] = &[
        (
            "omero.web.wsgi_workers",
            "abc",
            "not an integer; allowed: an integer from 1 to 1024",
        ),
        (
            "omero.web.wsgi_workers",
            "0",
            "out of range; allowed: an integer from 1 to 1024",
        ),
        (
            "omero.web.application_server.port",
            "70000",
            "out of range; allowed: an integer from 1 to 65535",
        ),
        (
            "omero.web.debug",
            "maybe",
            "not a boolean; allowed: true or false",
        ),
        (
            "omero.web.wsgi_worker_class",
            "eventlet",
            "not an allowed choice; allowed: one of sync, gthread, gevent",
        ),
        (
            "omero.web.application_server",
            "fastcgi",
            "allowed: one of wsgi-tcp, wsgi, development",
        ),
        ("omero.web.apps", "[\"a\",", "invalid JSON"),
        (
            "omero.web.caches",
            "[]",
            "JSON of the wrong shape; allowed: a JSON object",
        ),
        ("omero.web.prefix", "omero", "does not start with /"),
        ("omero.web.prefix", "/a;b", "not allowed in a URL path"),
        ("omero.web.static_url", "/s {", "not allowed in a URL path"),
        ("omero.web.time_zone", "Mars/Base", "unknown time zone"),
        (
            "omero.web.application_server.host",
            "evil;host",
            "not an IP address or host name",
        ),
        (
            "omero.web.nginx.download_limit_rate",
            "fast",
            "not an nginx size",
        ),
        ("omero.web.static_root", "  ", "empty path"),
    ];
    for (key, value, message) in cases {
        let err = site.fails(&["config", "set", key, value]);
        assert_eq!(err.lines().count(), 1, "one line for {key}={value}: {err}");
        assert!(
            err.starts_with(&format!("error: {key} = {value:?}: ")),
            "{err}"
        );
        assert!(err.contains(message), "{key}={value}: {err}");
        assert_eq!(site.read_config(), before, "file changed by {key}={value}");
    }
    let err = site.fails(&["config", "set", "omero.web.wsgi_worker", "3"]);
    assert!(
        err.contains("unknown property omero.web.wsgi_worker (did you mean omero.web.wsgi_workers"),
        "{err}"
    );
    assert_eq!(site.read_config(), before);
    // --force stores an unknown key as a string.
    site.ok(&["config", "set", "--force", "omero.web.myapp.flag", "on"]);
    assert!(
        site.read_config()
            .contains("\"omero.web.myapp.flag\" = \"on\"")
    );
    assert_eq!(site.ok(&["config", "get", "omero.web.myapp.flag"]), "on\n");
}

#[test]
fn a_bad_value_is_kept_with_a_warning_and_never_blocks_another_key() {
    let site = TestSite::empty();
    let text =
        "# ok\n\"omero.web.debug\" = true\n\n\"omero.web.wsgi_timeout\" = \"soon\" # keep me\n";
    site.write_config(text);
    // Strictness is for the value being set, never for another key.
    site.ok(&["config", "set", "omero.web.wsgi_workers", "3"]);
    assert_eq!(
        site.read_config(),
        format!("{text}\"omero.web.wsgi_workers\" = 3\n")
    );
    let list = site.ok(&["config", "list"]);
    let line = list
        .lines()
        .find(|l| l.starts_with("omero.web.wsgi_timeout"))
        .unwrap();
    assert!(
        line.contains("\"soon\"  (error: not an integer: OMERO.web could not start with it (int() fails); omero-webctl uses the default (60) until it is changed)"),
        "{line}"
    );
    assert_eq!(
        site.ok(&["config", "get", "omero.web.wsgi_timeout"]),
        "soon\n"
    );
    // The same bad value being set is refused with its reason.
    let err = site.fails(&["config", "set", "omero.web.wsgi_timeout", "later"]);
    assert_eq!(
        err,
        "error: omero.web.wsgi_timeout = \"later\": not an integer; allowed: an integer >= 0\n"
    );
    site.ok(&["config", "set", "omero.web.wsgi_timeout", "30"]);
    assert!(!site.ok(&["config", "list"]).contains("error:"));
    site.ok(&["config", "unset", "omero.web.wsgi_workers"]);

    let text = "\"omero.web.debug\" = true\n\"omero.web.wsgi_workers\" = [1\n";
    site.write_config(text);
    let err = site.fails(&["config", "list"]);
    assert!(err.contains("omero-web.toml:2: not valid TOML"), "{err}");
    assert_eq!(site.read_config(), text);

    let text = "[omero.web]\nwsgi_workers = 3\n";
    site.write_config(text);
    let err = site.fails(&["config", "get", "omero.web.debug"]);
    assert!(
        err.contains(":1: omero is a table; write each property as a flat quoted key"),
        "{err}"
    );

    let text = "\"omero.web.debug\" = 3\n";
    site.write_config(text);
    assert_eq!(site.ok(&["config", "get", "omero.web.debug"]), "3\n");
    let list = site.ok(&["config", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&list).unwrap();
    let debug = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "omero.web.debug")
        .unwrap();
    assert_eq!(debug["source"], "set");
    assert_eq!(debug["value"], "3");
    assert!(
        debug["warning"]
            .as_str()
            .unwrap()
            .starts_with("a TOML integer is not true or false"),
        "{debug}"
    );
    assert_eq!(site.read_config(), text);
}

#[test]
fn comments_and_order_survive_set_and_unset() {
    let site = TestSite::empty();
    let text = "# Site config for the imaging facility\n\n# workers: see ticket 42\n\"omero.web.wsgi_workers\" = 4   # tuned\n\n\"omero.web.debug\" = false\n# trailing note\n";
    site.write_config(text);
    site.ok(&["config", "set", "omero.web.wsgi_workers", "12"]);
    site.ok(&["config", "set", "omero.web.prefix", "/omero"]);
    let after = site.read_config();
    assert_eq!(
        after,
        "# Site config for the imaging facility\n\n# workers: see ticket 42\n\"omero.web.wsgi_workers\" = 12   # tuned\n\n\"omero.web.debug\" = false\n\"omero.web.prefix\" = \"/omero\"\n# trailing note\n"
    );
    site.ok(&["config", "unset", "omero.web.prefix"]);
    assert_eq!(
        site.read_config(),
        "# Site config for the imaging facility\n\n# workers: see ticket 42\n\"omero.web.wsgi_workers\" = 12   # tuned\n\n\"omero.web.debug\" = false\n# trailing note\n"
    );
}

#[test]
fn edit_applies_only_valid_changes_and_detects_concurrent_edits() {
    let site = TestSite::empty();
    site.write_config("\"omero.web.wsgi_workers\" = 4\n");
    // A valid edit is applied.
    let out = site.run_with(
        &["config", "edit"],
        &[("VISUAL", ""), ("EDITOR", "sed -i s/4/7/")],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(site.read_config(), "\"omero.web.wsgi_workers\" = 7\n");

    // An invalid edit is refused and kept, the file is untouched.
    let out = site.run_with(
        &["config", "edit"],
        &[("VISUAL", ""), ("EDITOR", "sed -i 's/7/\"seven\"/'")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("not an integer") && err.contains("your edit is kept in"),
        "{err}"
    );
    let kept = err.trim_end().rsplit(' ').next().unwrap();
    assert!(std::fs::read_to_string(kept).unwrap().contains("seven"));
    assert_eq!(site.read_config(), "\"omero.web.wsgi_workers\" = 7\n");

    // Someone else changes the file while the editor is open: refused, theirs kept.
    let other = format!(
        "printf '\"omero.web.debug\" = true\\n' > {}; sed -i s/7/8/",
        site.config_file().display()
    );
    let out = site.run_with(&["config", "edit"], &[("VISUAL", ""), ("EDITOR", &other)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("changed on disk since it was read"), "{err}");
    assert_eq!(site.read_config(), "\"omero.web.debug\" = true\n");

    // An odd value already in the file never blocks an edit of another key.
    site.write_config("\"omero.web.debug\" = \"yes\"\n\"omero.web.wsgi_workers\" = 8\n");
    let out = site.run_with(
        &["config", "edit"],
        &[("VISUAL", ""), ("EDITOR", "sed -i s/8/9/")],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        site.read_config(),
        "\"omero.web.debug\" = \"yes\"\n\"omero.web.wsgi_workers\" = 9\n"
    );
}

#[test]
fn store_refuses_to_overwrite_an_external_change() {
    let dir = tempfile::tempdir().unwrap();
    let site = omero_webctl::site::Site::new(dir.path());
    std::fs::create_dir_all(site.etc_dir()).unwrap();
    std::fs::write(site.config_file(), "\"omero.web.debug\" = true\n").unwrap();
    let mut config = omero_webctl::config::Config::load(&site).unwrap();
    config.set("omero.web.wsgi_workers", "3", false).unwrap();
    std::fs::write(site.config_file(), "\"omero.web.debug\" = false\n").unwrap();
    let err = config.save().unwrap_err();
    assert!(err.to_string().contains("changed on disk"), "{err}");
    assert_eq!(
        std::fs::read_to_string(site.config_file()).unwrap(),
        "\"omero.web.debug\" = false\n"
    );
}

const CONFIG_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<icegrid>
  <!-- Generated by the OmeroConfig system. Edit with bin/omero config -->
  <properties id="__ACTIVE__">
    <property name="omero.config.profile" value="default"/>
    <property name="omero.config.version" value="5.1.0"/>
    <property name="omero.db.name" value="omero_database"/>
    <property name="omero.web.wsgi_workers" value="9"/>
    <property name="omero.web.application_server.max_requests" value="500"/>
    <property name="omero.web.apps" value="[&quot;omero_figure&quot;, &quot;omero_iviewer&quot;]"/>
    <property name="omero.web.prefix" value="/omero"/>
    <property name="omero.web.static_url" value="/omero/static/"/>
    <property name="omero.web.debug" value="banana"/>
    <property name="omero.web.not_a_real_key" value="1"/>
  </properties>
  <properties id="default">
    <property name="omero.config.version" value="5.1.0"/>
    <property name="omero.db.name" value="omero_database"/>
    <property name="omero.web.wsgi_workers" value="9"/>
    <property name="omero.web.application_server.max_requests" value="500"/>
    <property name="omero.web.apps" value="[&quot;omero_figure&quot;, &quot;omero_iviewer&quot;]"/>
    <property name="omero.web.prefix" value="/omero"/>
    <property name="omero.web.static_url" value="/omero/static/"/>
    <property name="omero.web.debug" value="banana"/>
    <property name="omero.web.not_a_real_key" value="1"/>
  </properties>
  <include file="generated.xml"/>
</icegrid>
"#;

#[test]
fn import_omero_config_xml_reports_each_key() {
    let site = TestSite::empty();
    let xml = site.root().join("config.xml");
    std::fs::write(&xml, CONFIG_XML).unwrap();
    let out = site.run(&["config", "import", xml.to_str().unwrap()]);
    // A refused value makes the import exit 1, after importing the rest.
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stdout.contains("imported omero.web.wsgi_workers=9"));
    assert!(stdout.contains("imported omero.web.apps=[\"omero_figure\", \"omero_iviewer\"]"));
    assert!(stdout.contains("skipped  omero.db.name: not an OMERO.web property"));
    // The profile OMERO reads (`default`, named by __ACTIVE__), without its bookkeeping.
    assert!(!stdout.contains("omero.config."), "{stdout}");
    assert!(
        stdout.contains("5 imported, 1 skipped, 2 refused"),
        "{stdout}"
    );
    assert!(
        stderr.contains("omero.web.debug = \"banana\": not a boolean"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unknown property omero.web.not_a_real_key"),
        "{stderr}"
    );
    assert_eq!(site.ok(&["config", "get", "omero.web.prefix"]), "/omero\n");
    assert_eq!(
        site.ok(&["config", "get", "omero.web.application_server.max_requests"]),
        "500\n"
    );
    assert_eq!(site.ok(&["config", "get", "omero.web.debug"]), "false\n");
}

#[test]
fn import_key_value_lines_and_export_round_trip() {
    let site = TestSite::empty();
    let lines = site.root().join("omero-config.txt");
    std::fs::write(
        &lines,
        "# from omero config get\nomero.web.wsgi_timeout=120\nomero.web.server_list=[[\"omero.example.org\", 4064, \"omero\"]]\nomero.web.public.url_filter=^/webgateway\nomero.web.secret_key=abc=def\n",
    )
    .unwrap();
    site.ok(&["config", "import", lines.to_str().unwrap()]);
    // With the secret's value, so that the round trip is whole.
    let exported = site.ok(&["config", "export", "--show-password"]);
    assert_eq!(
        exported,
        "omero.web.secret_key=abc=def\nomero.web.wsgi_timeout=120\nomero.web.server_list=[[\"omero.example.org\", 4064, \"omero\"]]\nomero.web.public.url_filter=^/webgateway\n"
    );
    // Export → import into a fresh site gives the same export.
    let other = TestSite::empty();
    let file = other.root().join("export.txt");
    std::fs::write(&file, &exported).unwrap();
    let report = other.ok(&["config", "import", file.to_str().unwrap()]);
    assert!(
        report.contains("4 imported, 0 skipped, 0 refused"),
        "{report}"
    );
    assert_eq!(other.ok(&["config", "export", "--show-password"]), exported);
}

#[test]
fn default_site_directory_is_created_with_a_notice() {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_omero-webctl"))
        .args(["config", "get", "omero.web.wsgi_workers"])
        .env_remove("OMERODIR")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("notice: created site directory "), "{err}");
    assert!(cwd.path().join("OMERO.web").is_dir());
    // OMERODIR is honoured.
    let site = cwd.path().join("elsewhere");
    let out = Command::new(env!("CARGO_BIN_EXE_omero-webctl"))
        .args(["config", "set", "omero.web.debug", "true"])
        .env("OMERODIR", &site)
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(site.join("etc/omero-web.toml").is_file());
}

#[test]
fn secrets_are_masked_in_listings_and_exports_unless_asked_for() {
    let site = TestSite::empty();
    site.ok(&["config", "set", "omero.web.secret_key", "s3cr3t-value"]);
    site.ok(&["config", "set", "omero.web.public.password", "pw123"]);
    site.ok(&["config", "set", "omero.web.wsgi_workers", "3"]);
    // As `omero config get` does: masked in the listing, shown alone or on request.
    let all = site.ok(&["config", "get"]);
    assert!(all.contains("omero.web.secret_key=********\n"), "{all}");
    assert!(
        all.contains("omero.web.public.password=********\n"),
        "{all}"
    );
    assert!(all.contains("omero.web.wsgi_workers=3\n"), "{all}");
    assert!(!all.contains("s3cr3t") && !all.contains("pw123"), "{all}");
    assert_eq!(
        site.ok(&["config", "get", "omero.web.secret_key"]),
        "s3cr3t-value\n"
    );
    assert!(
        site.ok(&["config", "get", "--show-password"])
            .contains("pw123")
    );
    let out = site.run(&["config", "export"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("s3cr3t") && text.contains("omero.web.secret_key=********"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 secret value(s) masked"));
    let full = site.ok(&["config", "export", "--show-password"]);
    assert!(
        full.contains("omero.web.secret_key=s3cr3t-value\n"),
        "{full}"
    );
    let list = site.ok(&["config", "list"]);
    assert!(
        !list.contains("s3cr3t") && !list.contains("pw123"),
        "{list}"
    );
}

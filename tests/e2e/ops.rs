//! Operations: the systemd units (checked by the real `systemd-analyze verify`), the
//! shell completions (run in a real bash), the man pages (found and rendered by the
//! real `man`) and `install`, all through the real binary.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{BIN, stderr, stdout};

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// `install` into a fresh prefix; returns it.
fn installed() -> tempfile::TempDir {
    let prefix = tempfile::tempdir().unwrap();
    ok(&["install", "--prefix", prefix.path().to_str().unwrap()]);
    prefix
}

/// `systemd-analyze verify` on unit files, with the man pages of `prefix` on MANPATH
/// (verify runs `man` for the units' Documentation=man:omero-webctl(1)). Returns its
/// stderr, which is empty when systemd has nothing to say about the units.
fn verify(units: &[PathBuf], prefix: &Path) -> String {
    let out = Command::new(systemd_analyze())
        .arg("verify")
        .args(units)
        .env("MANPATH", prefix.join("share/man"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify {units:?}: {}",
        stderr(&out)
    );
    stderr(&out)
}

fn systemd_analyze() -> &'static str {
    let path = "/usr/bin/systemd-analyze";
    assert!(
        Path::new(path).exists(),
        "{path} is missing (Debian package systemd)"
    );
    path
}

/// Runs the bash completion of `words` (the last one being completed) with the script
/// `script` sourced, as bash-completion would, and returns the candidates.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        r#"source '{script}'
func=$(complete -p omero-webctl | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
[ -n "$func" ] || {{ echo "no completion function registered" >&2; exit 2; }}
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
prev=""
[ "$COMP_CWORD" -gt 0 ] && prev="${{COMP_WORDS[COMP_CWORD-1]}}"
"$func" omero-webctl "${{COMP_WORDS[COMP_CWORD]}}" "$prev"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        script = script.display(),
        words = quoted.join(" ")
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .unwrap();
    assert!(out.status.success(), "bash: {}", stderr(&out));
    stdout(&out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_commands_flags_and_property_names() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("omero-webctl.bash");
    std::fs::write(&script, ok(&["completions", "bash"])).unwrap();

    let set = bash_complete(
        &script,
        &["omero-webctl", "config", "set", "omero.web.wsgi_w"],
    );
    assert!(
        set.contains(&"omero.web.wsgi_workers".to_string()),
        "{set:?}"
    );
    assert!(
        set.iter().all(|c| c.starts_with("omero.web.wsgi_w")),
        "{set:?}"
    );
    let get = bash_complete(
        &script,
        &["omero-webctl", "config", "get", "omero.web.secret"],
    );
    assert_eq!(get, ["omero.web.secret_key"]);
    let unset = bash_complete(
        &script,
        &[
            "omero-webctl",
            "config",
            "unset",
            "omero.web.application_server.p",
        ],
    );
    assert_eq!(unset, ["omero.web.application_server.port"]);
    // Deprecated keys are not offered.
    let old = bash_complete(
        &script,
        &["omero-webctl", "config", "set", "omero.web.send_broken"],
    );
    assert!(old.is_empty(), "{old:?}");

    let commands = bash_complete(&script, &["omero-webctl", "sys"]);
    assert_eq!(commands, ["systemd"]);
    let flags = bash_complete(&script, &["omero-webctl", "systemd", "--out"]);
    assert_eq!(flags, ["--output"]);
    let shells = bash_complete(&script, &["omero-webctl", "completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.contains(&shell.to_string()), "{shells:?}");
    }

    // The keys complete, but `--help` does not list the whole registry.
    let help = ok(&["config", "set", "--help"]);
    assert!(!help.contains("omero.web.wsgi_workers"), "{help}");
    // Any key still parses (unknown ones get the store's "did you mean").
    let site = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--omerodir")
        .arg(site.path())
        .args(["config", "set", "omero.web.wsgi_workerz", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("omero.web.wsgi_workers"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn fish_completes_property_names_with_their_help_where_the_key_goes() {
    if Command::new("fish").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "fish is missing and CI=true requires it (Debian package fish)"
        );
        eprintln!("skipping: no fish");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("omero-webctl.fish");
    std::fs::write(&script, ok(&["completions", "fish"])).unwrap();
    let complete = |line: &str| {
        let out = Command::new("fish")
            .args(["--no-config", "-c"])
            .arg(format!(
                "source '{}'; complete -C '{line}'",
                script.display()
            ))
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let keys = complete("omero-webctl config set omero.web.wsgi_w");
    assert!(
        keys.lines()
            .any(|l| l.starts_with("omero.web.wsgi_workers\tNumber of worker processes")),
        "{keys}"
    );
    let keys = complete("omero-webctl --omerodir /srv/x config unset omero.web.secret");
    assert!(keys.starts_with("omero.web.secret_key\t"), "{keys}");
    // Not in the value's place.
    let after = complete("omero-webctl config set omero.web.wsgi_workers omero.web.");
    assert!(!after.contains("omero.web.wsgi_workers"), "{after}");
    let commands = complete("omero-webctl sys");
    assert!(commands.starts_with("systemd\t"), "{commands}");
}

#[test]
fn zsh_completes_property_names_in_an_interactive_shell() {
    if Command::new("zsh").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "zsh is missing and CI=true requires it (Debian package zsh)"
        );
        eprintln!("skipping: no zsh");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("_omero-webctl"),
        ok(&["completions", "zsh"]),
    )
    .unwrap();
    // An interactive zsh on a pseudo-terminal (zpty), with compinit and our script on
    // fpath; two tabs after a partial key list the matching keys.
    let driver = format!(
        r#"zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=({dir} \$fpath); autoload -Uz compinit; compinit -u; PROMPT='%% '"
zpty -w z $'omero-webctl config set omero.web.wsgi_w\t\t'
out=""
for i in {{1..300}}; do
  chunk=""
  zpty -r -t z chunk 2>/dev/null && out+=$chunk
  [[ $out == *wsgi_worker_connections* ]] && break
  sleep 0.1
done
zpty -d z
print -r -- "$out" | tr -d '\r' | grep -o 'omero\.web\.wsgi_worker[a-z_]*' | sort -u
"#,
        dir = dir.path().display()
    );
    let out = Command::new("zsh")
        .args(["-f", "-c", &driver])
        .output()
        .unwrap();
    let listed = stdout(&out);
    for key in [
        "omero.web.wsgi_workers",
        "omero.web.wsgi_worker_class",
        "omero.web.wsgi_worker_connections",
    ] {
        assert!(
            listed.lines().any(|l| l == key),
            "{key} in {listed:?} {}",
            stderr(&out)
        );
    }
}

#[test]
fn zsh_and_fish_scripts_carry_the_commands_and_property_names() {
    let zsh = ok(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef omero-webctl"), "{}", &zsh[..80]);
    assert!(zsh.contains("omero.web.wsgi_workers"));
    assert!(zsh.contains("systemd"));
    let fish = ok(&["completions", "fish"]);
    assert!(fish.contains("complete -c omero-webctl"));
    assert!(fish.contains("omero.web.wsgi_workers"));
    let bad = run(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("possible values: bash, zsh, fish"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn man_prints_the_page_and_writes_one_per_command() {
    let page = ok(&["man"]);
    assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{}", &page[..100]);
    assert!(page.contains(".TH omero-webctl 1"), "{page}");
    for command in ["systemd", "completions", "install", "reload"] {
        assert!(
            page.contains(&format!("omero\\-webctl\\-{command}(1)")),
            "{command}"
        );
    }
    // What no flag says gets sections of its own, from the same text as --help.
    for section in [
        ".SH \"ENVIRONMENT\"",
        ".SH \"FILES\"",
        ".SH \"EXIT STATUS\"",
    ] {
        assert!(page.contains(section), "{section} in {page}");
    }
    assert!(!page.contains(".SH EXTRA"), "{page}");
    assert!(page.contains("\\fBNOTIFY_SOCKET\\fR"), "{page}");
    let help = ok(&["--help"]);
    assert!(help.contains("Environment:\n  OMERODIR "), "{help}");
    // The man pages do not create a site directory where they run.
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path().join("man1");
    let out = Command::new(BIN)
        .current_dir(cwd.path())
        .args(["man", "--output"])
        .arg(&dir)
        .env_remove("OMERODIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!cwd.path().join("OMERO.web").exists());
    let pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in [
        "omero-webctl.1",
        "omero-webctl-systemd.1",
        "omero-webctl-config-set.1",
        "omero-webctl-nginx-start.1",
    ] {
        assert!(pages.contains(&name.to_string()), "{name} in {pages:?}");
    }
    // Hidden commands get no page.
    for hidden in ["omero-webctl-master.1", "omero-webctl-worker.1"] {
        assert!(!pages.contains(&hidden.to_string()), "{pages:?}");
    }
}

#[test]
fn install_puts_binary_completions_man_pages_and_unit_template_in_place() {
    let prefix = installed();
    let p = prefix.path();
    let bin = p.join("bin/omero-webctl");
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let version = Command::new(&bin).arg("--version").output().unwrap();
    assert_eq!(
        stdout(&version),
        format!("omero-webctl {}\n", env!("CARGO_PKG_VERSION"))
    );
    // The worker program, where the installed program looks for it: the same build.
    let worker = p.join("lib/omero-webctl/omero-webctl-worker");
    assert_eq!(
        std::fs::metadata(&worker).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(
        std::fs::read(&worker).unwrap()
            == std::fs::read(env!("CARGO_BIN_EXE_omero-webctl-worker")).unwrap(),
        "a copy of the build's worker program"
    );
    for file in [
        "share/bash-completion/completions/omero-webctl",
        "share/zsh/site-functions/_omero-webctl",
        "share/fish/vendor_completions.d/omero-webctl.fish",
        "share/man/man1/omero-webctl.1",
        "lib/systemd/system/omero-web@.service",
    ] {
        let meta = std::fs::metadata(p.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o644, "{file}");
    }
    // The real man finds and renders the page.
    let where_ = Command::new("man")
        .args(["-w", "omero-webctl"])
        .env("MANPATH", p.join("share/man"))
        .output()
        .unwrap();
    assert_eq!(
        stdout(&where_).trim(),
        p.join("share/man/man1/omero-webctl.1").to_str().unwrap(),
        "{}",
        stderr(&where_)
    );
    let shown = Command::new("man")
        .args(["-P", "cat", "omero-webctl-systemd"])
        .env("MANPATH", p.join("share/man"))
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let text = stdout(&shown);
    assert!(text.contains("--template"), "{}{text}", stderr(&shown));
    let main = Command::new("man")
        .args(["-P", "cat", "omero-webctl"])
        .env("MANPATH", p.join("share/man"))
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let text = stdout(&main);
    for needle in [
        "ENVIRONMENT",
        "NOTIFY_SOCKET",
        "EXIT STATUS",
        "var/django.pid",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    // The installed completion completes.
    let candidates = bash_complete(
        &p.join("share/bash-completion/completions/omero-webctl"),
        &["omero-webctl", "config", "get", "omero.web.wsgi_workers"],
    );
    assert_eq!(candidates, ["omero.web.wsgi_workers"]);
    // The template runs the installed program, and verifies as an instance.
    let template =
        std::fs::read_to_string(p.join("lib/systemd/system/omero-web@.service")).unwrap();
    assert!(
        template.contains(&format!("ExecStart={} start --foreground\n", bin.display())),
        "{template}"
    );
    let units = tempfile::tempdir().unwrap();
    let instance = units.path().join("omero-web@srv-OMERO.web.service");
    std::fs::write(&instance, &template).unwrap();
    assert_eq!(verify(&[instance], p), "");
}

#[test]
fn install_into_a_prefix_it_cannot_write_fails_in_one_line() {
    let prefix = tempfile::tempdir().unwrap();
    // "bin" is a file: nothing can go under it.
    std::fs::write(prefix.path().join("bin"), "").unwrap();
    let out = run(&["install", "--prefix", prefix.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: cannot write {}/bin/omero-webctl: ",
            prefix.path().display()
        )),
        "{err}"
    );
    // The binary comes first: nothing else was written.
    assert!(!prefix.path().join("share").exists());
}

fn embedded_site() -> tempfile::TempDir {
    let site = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--omerodir")
        .arg(site.path())
        .args(["config", "set", "omero.web.wsgi_graceful_timeout", "20"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    site
}

fn systemd_units(site: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--omerodir")
        .arg(site)
        .arg("systemd")
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn units_of_an_embedded_site_verify_and_run_the_foreground_master_hardened() {
    let prefix = installed();
    let site = embedded_site();
    let root = site.path().to_str().unwrap().to_string();
    let units = tempfile::tempdir().unwrap();
    let out = systemd_units(
        site.path(),
        &["--output", units.path().to_str().unwrap(), "--user", "root"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("systemctl enable --now omero-web.service omero-web-nginx.service")
    );
    // ReadWritePaths needs var/ to exist.
    assert!(site.path().join("var").is_dir());
    let pool_path = units.path().join("omero-web.service");
    let nginx_path = units.path().join("omero-web-nginx.service");
    assert_eq!(
        verify(&[pool_path.clone(), nginx_path.clone()], prefix.path()),
        ""
    );

    let pool = std::fs::read_to_string(&pool_path).unwrap();
    for line in [
        "Type=notify".to_string(),
        "NotifyAccess=main".to_string(),
        format!("ExecStart={BIN} start --foreground"),
        format!("ExecReload={BIN} reload"),
        "WatchdogSec=30".to_string(),
        "KillMode=mixed".to_string(),
        "Restart=on-failure".to_string(),
        "User=root".to_string(),
        format!("Environment=OMERODIR={root}"),
        "NoNewPrivileges=yes".to_string(),
        "ProtectSystem=strict".to_string(),
        // A site under /tmp gets the shared /tmp (a private one would hide it).
        format!("ReadWritePaths={root}/var /tmp /var/tmp"),
        // wsgi_graceful_timeout (20 s) + 15 s for the master to wind down.
        "TimeoutStopSec=35".to_string(),
    ] {
        assert!(pool.lines().any(|l| l == line), "{line} in\n{pool}");
    }
    // A site under /tmp would vanish behind a private /tmp.
    assert!(!pool.contains("PrivateTmp"), "{pool}");
    let nginx = std::fs::read_to_string(&nginx_path).unwrap();
    for line in [
        "Type=forking".to_string(),
        format!("PIDFile={root}/var/nginx/nginx.pid"),
        format!("ExecStart={BIN} nginx start"),
        format!("ExecReload={BIN} nginx reload"),
        "After=network-online.target omero-web.service".to_string(),
    ] {
        assert!(nginx.lines().any(|l| l == line), "{line} in\n{nginx}");
    }
    assert!(!nginx.contains("CAP_NET_BIND_SERVICE"));

    // Without --output the same units are printed, the pool's first.
    let printed = systemd_units(site.path(), &["--user", "root"]);
    assert_eq!(stdout(&printed), format!("{pool}\n{nginx}"));
}

#[test]
fn units_of_an_omeroweb_site_supervise_gunicorn_through_its_pid_file() {
    let prefix = installed();
    let site = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--omerodir")
        .arg(site.path())
        .args([
            "--backend",
            "omeroweb",
            "config",
            "set",
            "omero.web.wsgi_workers",
            "3",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(site.path().join("etc/grid/config.xml").exists());
    let root = site.path().to_str().unwrap().to_string();
    let units = tempfile::tempdir().unwrap();
    let out = systemd_units(site.path(), &["--output", units.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pool_path = units.path().join("omero-web.service");
    assert_eq!(
        verify(
            &[
                pool_path.clone(),
                units.path().join("omero-web-nginx.service")
            ],
            prefix.path()
        ),
        ""
    );
    let pool = std::fs::read_to_string(&pool_path).unwrap();
    for line in [
        "Type=forking".to_string(),
        format!("PIDFile={root}/var/django.pid"),
        format!("ExecStart={BIN} start"),
        format!("ExecStop={BIN} stop"),
        format!("ExecReload={BIN} reload"),
        "Description=OMERO.web (OMERO.web (Gunicorn), ".to_string() + &root + ")",
    ] {
        assert!(pool.lines().any(|l| l == line), "{line} in\n{pool}");
    }
    assert!(!pool.contains("Type=notify"));
    assert!(!pool.contains("WatchdogSec"));
}

#[test]
fn bad_unit_input_fails_in_one_line_and_writes_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let spaced = parent.path().join("my site");
    std::fs::create_dir(&spaced).unwrap();
    let units = parent.path().join("units");
    let out = systemd_units(&spaced, &["--output", units.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: site directory \""), "{err}");
    assert!(err.contains("whitespace"), "{err}");
    assert!(!units.exists());

    let site = embedded_site();
    for (args, expected) in [
        (
            vec!["--user", "no-such-user-here"],
            "error: no user \"no-such-user-here\" on this host",
        ),
        (
            vec!["--name", "omero web"],
            "error: unit name \"omero web\"",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--output", units.to_str().unwrap()]);
        let out = systemd_units(site.path(), &all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(expected), "{err}");
        assert!(!units.exists());
    }
}

#[test]
fn a_log_directory_outside_var_is_writable_too_and_created() {
    let prefix = installed();
    let site = embedded_site();
    let logs = tempfile::tempdir().unwrap();
    let logdir = logs.path().join("omero-logs");
    let out = Command::new(BIN)
        .arg("--omerodir")
        .arg(site.path())
        .args([
            "config",
            "set",
            "omero.web.logdir",
            logdir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let units = tempfile::tempdir().unwrap();
    let out = systemd_units(site.path(), &["--output", units.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(logdir.is_dir());
    let pool = std::fs::read_to_string(units.path().join("omero-web.service")).unwrap();
    let expected = format!(
        "ReadWritePaths={}/var {} /tmp /var/tmp",
        site.path().display(),
        logdir.display()
    );
    assert!(pool.lines().any(|l| l == expected), "{expected} in\n{pool}");
    assert_eq!(
        verify(&[units.path().join("omero-web.service")], prefix.path()),
        ""
    );
}

#[test]
fn output_creates_the_writable_directories_for_the_service_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: only root can give a directory to another user");
        return;
    }
    let site = embedded_site();
    let var = site.path().join("var");
    let _ = std::fs::remove_dir_all(&var);
    let units = tempfile::tempdir().unwrap();
    let out = systemd_units(
        site.path(),
        &[
            "--user",
            "nobody",
            "--output",
            units.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("created {}", var.display())));
    use std::os::unix::fs::MetadataExt;
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(std::fs::metadata(&var).unwrap().uid(), nobody.uid.as_raw());
    let pool = std::fs::read_to_string(units.path().join("omero-web.service")).unwrap();
    assert!(pool.lines().any(|l| l == "User=nobody"), "{pool}");
}

/// `omero-webctl … | head`: a reader that closes the pipe ends us quietly, as it ends
/// Unix tools (exit 141, SIGPIPE's number in a shell, or 0 for output written whole
/// before the reader left), with no panic and no error line.
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let site = tempfile::tempdir().unwrap();
    let root = site.path().to_str().unwrap();
    for args in [
        &["completions", "bash"][..],
        &["--omerodir", root, "config", "list", "--all"][..],
        &["--omerodir", root, "diagnostics"][..],
        &["--omerodir", root, "status"][..],
    ] {
        let mut child = std::process::Command::new(support::BIN)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(0 | 141)),
            "{args:?}: {:?} {err}",
            out.status
        );
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

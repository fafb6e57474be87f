//! Root and the private nginx of a user's site: links and privileged ports, extra config
//! that leaves its block, `nginx output` as root, and the owner starting after root.

use super::*;

fn nginx_master(site: &TestSite) -> Option<u32> {
    std::fs::read_to_string(site.root().join("var/nginx/nginx.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A privileged port nothing listens on.
fn free_privileged_port() -> u16 {
    (700..1000)
        .find(|&p| std::net::TcpListener::bind(("0.0.0.0", p)).is_ok())
        .expect("a free port below 1024")
}

// ---- Attack 1: nginx temp paths ---------------------------------------------------

#[test]
fn attack1_a_temp_path_linked_to_a_root_directory_is_refused_and_nginx_runs_as_the_owner() {
    let test = "attack 1";
    if !nginx_available(test) {
        return;
    }
    let Some(user) = TestUser::create(test) else {
        return;
    };
    let victims = Victims::new();
    let site = TestSite::new(1);
    let tmp = site.root().join("var/nginx/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::os::unix::fs::symlink(victims.cron_dir(), tmp.join("proxy")).unwrap();
    user.own(site.root());
    let before = victims.snapshot();
    let port = free_port().to_string();

    let out = site.run(&["nginx", "start", "--http", &port]);
    assert_refused_in_one_line(&out, "var/nginx/tmp/proxy is a symlink");
    assert_eq!(victims.snapshot(), before);
    assert!(nginx_master(&site).is_none());

    // Without the link: nginx runs, master and workers as the owner, and everything
    // root's command made in the site belongs to the owner (issue 19: a root-owned
    // var/ made the owner's next start fail).
    std::fs::remove_file(tmp.join("proxy")).unwrap();
    let out = site.run(&["nginx", "start", "--http", &port]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let master = nginx_master(&site).unwrap();
    assert_eq!(uid_of(master), Some(user.uid));
    assert!(wait_until(Duration::from_secs(10), || !children(master).is_empty()));
    for worker in children(master) {
        assert_eq!(uid_of(worker), Some(user.uid), "worker {worker}");
    }
    assert_eq!(not_owned_by(site.root(), user.uid), Vec::<PathBuf>::new());
    site.ok(&["nginx", "stop"]);
    assert_eq!(victims.snapshot(), before);
}

#[test]
fn a_privileged_port_is_bound_by_root_and_handed_to_nginx_running_as_the_owner() {
    let test = "privileged port";
    if !nginx_available(test) {
        return;
    }
    let Some(user) = TestUser::create(test) else {
        return;
    };
    let site = TestSite::new(1);
    std::fs::create_dir_all(site.root().join("var")).unwrap();
    user.own(site.root());
    let port = free_privileged_port();
    let out = site.run(&["nginx", "start", "--http", &port.to_string()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let master = nginx_master(&site).unwrap();
    assert_eq!(uid_of(master), Some(user.uid), "the master is not root");
    // The pool is not running: nginx answers 502 from the port root bound.
    assert_eq!(http_get(port, "/").map(|(code, _)| code), Some(502));
    site.ok(&["nginx", "reload"]);
    assert_eq!(http_get(port, "/").map(|(code, _)| code), Some(502));
    site.ok(&["nginx", "stop"]);
    assert!(wait_until(Duration::from_secs(10), || http_get(port, "/").is_none()));
    // Without --http the port comes from var/nginx/port, which the owner writes: root
    // binds nothing for it, and says how to ask.
    let out = site.run(&["nginx", "start"]);
    assert_refused_in_one_line(&out, &format!("nginx start --http {port}"));
    assert!(http_get(port, "/").is_none());
}

// ---- Attack 2: nginx extra config ----------------------------------------------------

/// The lines of the issue: `\"` outside quotes hides a `}` from a checker that takes
/// `"` for a string, and the rest defines a server whose access log is a root file.
fn escaping_lines(victim: &Path, port: u16) -> String {
    let lines = [
        "add_header X-A \\\";}".to_string(),
        "log_format evil \"$http_user_agent\";".to_string(),
        "server {".to_string(),
        format!("listen {port};"),
        format!("access_log {} evil;", victim.display()),
        "}".to_string(),
        "server {".to_string(),
    ];
    serde_json::to_string(&lines).unwrap()
}

#[test]
fn attack2_extra_config_that_leaves_the_server_block_is_refused_at_config_set() {
    let user = TestUser::create("attack 2");
    let victims = Victims::new();
    let site = TestSite::new(1);
    if let Some(user) = &user {
        user.own(site.root());
    }
    let before = victims.snapshot();
    let config_before = std::fs::read(site.config_file()).unwrap();
    let key = "omero.web.nginx_server_extra_config";

    let out = site.run(&[
        "config",
        "set",
        key,
        &escaping_lines(&victims.file(), free_port()),
    ]);
    assert_refused_in_one_line(&out, "line 1");
    assert!(
        stderr(&out).contains("closes a block it did not open"),
        "{}",
        stderr(&out)
    );
    // Even without the bypass, a file-opening directive is refused with its reason.
    let plain =
        serde_json::to_string(&[format!("access_log {};", victims.file().display())]).unwrap();
    let out = site.run(&["config", "set", key, &plain]);
    assert_refused_in_one_line(&out, "makes nginx open or create files");
    let out = site.run(&["config", "set", key, r#"["include /etc/nginx/x.conf;"]"#]);
    assert_refused_in_one_line(&out, "\"include\"");
    assert_eq!(std::fs::read(site.config_file()).unwrap(), config_before);

    // Written into the file behind our back: generating nginx's config refuses too,
    // and writes nothing.
    site.append_config(&format!(
        "\"{key}\" = '{}'\n",
        escaping_lines(&victims.file(), free_port())
    ));
    let generated = site.root().join("omero-web.conf");
    let out = site.run(&["nginx", "--output", generated.to_str().unwrap()]);
    assert_refused_in_one_line(&out, "closes a block it did not open");
    assert!(!generated.exists());
    assert_eq!(victims.snapshot(), before);
}

// ---- nginx's reading of what we accept ---------------------------------------------------

#[test]
fn extra_config_we_accept_has_the_same_block_structure_in_nginx_t() {
    use omero_webctl::nginx::differential::{Verdict, compare_with_nginx, lines_from};
    if !nginx_available("nginx differential") {
        return;
    }
    let site = Path::new("/srv/omero-web");
    let mut rng = fastrand::Rng::with_seed(20);
    let (mut agreed, mut refused, mut runs) = (0, 0, 0);
    for _ in 0..20_000 {
        if runs == 300 {
            break;
        }
        let len = rng.usize(5..40);
        let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let lines = lines_from(&bytes);
        if omero_webctl::nginx::validate_extra_config(&lines, site).is_err() {
            refused += 1;
            continue;
        }
        runs += 1;
        match compare_with_nginx(&lines).expect("nginx is installed") {
            Verdict::Agrees => agreed += 1,
            Verdict::Inconclusive => {}
            Verdict::Differs(said) => panic!("accepted {lines:?}; nginx -t: {said}"),
        }
    }
    // The comparison learnt something: values were refused, and many accepted ones
    // were read by nginx to the end with the marker in its place.
    assert!(refused > 100, "{refused} refused");
    assert!(
        agreed >= 50,
        "only {agreed} of {runs} accepted values agreed"
    );
}

#[test]
fn nginx_output_as_root_reads_the_site_as_its_owner_and_writes_only_roots_file() {
    let Some(user) = TestUser::create("nginx --output") else {
        return;
    };
    let victims = Victims::new();
    // A root-only secret, and the site's config file made a link to it.
    let secret = victims.dir.path().join("shadow");
    std::fs::write(&secret, "root:SECRET-HASH:19000::::::\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let site = TestSite::new(1);
    let config = site.config_file();
    let saved = std::fs::read(&config).unwrap();
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink(&secret, &config).unwrap();
    user.own(site.root());
    let before = victims.snapshot();
    let conf_dir = tempfile::tempdir().unwrap();
    let output = conf_dir.path().join("omero-web.conf");

    let out = site.run(&["nginx", "--output", output.to_str().unwrap()]);
    assert_refused_in_one_line(&out, "Permission denied");
    assert!(!stderr(&out).contains("SECRET-HASH"), "{}", stderr(&out));
    assert!(!output.exists());
    assert_eq!(victims.snapshot(), before);

    // The owner's real config: root writes the system nginx's file, and it is root's.
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, saved).unwrap();
    user.own(site.root());
    let out = site.run(&["nginx", "--output", output.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(
        written.contains(&format!("server 127.0.0.1:{}", site.port)),
        "{written}"
    );
    assert_eq!(std::fs::metadata(&output).unwrap().uid(), 0);
    assert_eq!(not_owned_by(site.root(), user.uid), Vec::<PathBuf>::new());
}

// ---- Issue 19, walk finding 6 -----------------------------------------------------------

#[test]
fn after_roots_nginx_start_the_owner_starts_its_omeroweb_site_itself() {
    let test = "root's nginx start, then the owner's start";
    if !nginx_available(test) {
        return;
    }
    let Some(venv) = support::omeroweb_venv(test) else {
        return;
    };
    let Some(user) = TestUser::create(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 1);
    user.own(site.root());
    // Root's nginx start used to leave var/ and var/static/ root's, and the owner's
    // next start then failed on var/django_secret_key.
    let port = free_port().to_string();
    site.ok(&["nginx", "start", "--http", &port]);
    assert_eq!(not_owned_by(site.root(), user.uid), Vec::<PathBuf>::new());
    let binary = support::shared_binary();
    let as_owner = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", &user.name, "--"])
            .arg(&binary.path)
            .arg("--omerodir")
            .arg(site.root())
            .args(args)
            .current_dir("/")
            .output()
            .unwrap()
    };
    let out = as_owner(&["start"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(wait_until(Duration::from_secs(30), || {
        http_get(port.parse().unwrap(), "/webclient/login/").is_some_and(|(code, _)| code == 200)
    }));
    let out = as_owner(&["stop"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    site.ok(&["nginx", "stop"]);
}

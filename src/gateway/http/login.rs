//! OMERO.web's `/webclient/login/` and `/webclient/logout/` over the user sources
//! (the local store, LDAP): a form with Django's CSRF pair (the `csrftoken` cookie and the
//! `csrfmiddlewaretoken` field, compared in constant time), `url=` to go on to, a new
//! session ID at every login (no fixation), and failed logins throttled and logged.

use std::net::IpAddr;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use super::webclient::pages::{self, escape};
use crate::gateway::Gateway;
use crate::gateway::auth::sessions::random_token;
use crate::gateway::auth::throttle::Throttle;
use crate::gateway::auth::{CookieConfig, Verdict, Viewer};
use crate::gateway::query::{self, query_pairs};
use crate::http_app::{self as app, LogNote, Response};

/// What the login and logout views need of the request (read before its body).
pub struct LoginRequest {
    pub is_post: bool,
    pub query: String,
    pub body: String,
    pub csrf_cookie: Option<String>,
    /// Django's `X-CSRFToken` header, read when the form has no token field.
    pub csrf_header: Option<String>,
    pub session_cookie: Option<String>,
    pub client: Option<IpAddr>,
}

/// `url` as a `Location` on this site, or `None` when it is not a plain path here:
/// never an open redirect (`//host`, `/\\host`, or `/<tab>/host`, which browsers read
/// as `//host`). Spaces and non-ASCII are percent-encoded, as a header value needs.
pub fn local_target(url: &str) -> Option<String> {
    let local = url.starts_with('/')
        && !url.starts_with("//")
        && !url.contains('\\')
        && !url.chars().any(char::is_control);
    local.then(|| {
        url.bytes()
            .map(|b| match b {
                0x21..=0x7e => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect()
    })
}

/// OMERO's `omero.web.login_incorrect_credentials_text` default.
pub const INCORRECT_CREDENTIALS: &str =
    "Connection not available, please check your user name and password.";

/// What one login attempt came to.
pub enum LoginOutcome {
    /// The new session's ID.
    Session(String),
    /// Wrong name or password, or (`blocked`) too many failures; the failures counted.
    Refused { blocked: bool, failures: usize },
    /// The user directory (LDAP) could not be asked.
    DirectoryDown(String),
    /// The session store could not start a session.
    StoreDown(String),
}

/// What a client that failed too often is told, by the form and the JSON API alike.
pub const TOO_MANY_FAILURES: &str = "Too many failed logins: try again later.";

impl LoginOutcome {
    /// The log line an attempt that did not log in leaves, whichever face (the
    /// webclient's form, the JSON API) answered it: the refusals in OMEROweb.log's
    /// shape (fail2ban reads them), the directory being down. None for a session, and
    /// for a store that is down, whose answer ([`store_down`]) carries its own.
    pub fn log_note(&self, user: &str, client: Option<IpAddr>) -> Option<LogNote> {
        match self {
            LoginOutcome::Refused { blocked, failures } => {
                Some(failure_note(user, client, *blocked, *failures))
            }
            LoginOutcome::DirectoryDown(why) => Some(directory_note(user, why)),
            LoginOutcome::Session(_) | LoginOutcome::StoreDown(_) => None,
        }
    }
}

/// The answer to a login the session store could not start a session for.
pub fn store_down(user: &str, error: &str) -> Response {
    super::guard::store_unavailable(format!(
        "Cannot start a session for user {}: {error}",
        crate::logging::format::python_repr(user)
    ))
}

/// The log line for a failed login, in OMEROweb.log's shape (fail2ban reads it).
fn failure_note(user: &str, client: Option<IpAddr>, blocked: bool, failures: usize) -> LogNote {
    let from = client.map_or("an unknown address".to_string(), |ip| ip.to_string());
    LogNote {
        logger: "omeroweb.webclient.views",
        message: format!(
            "Failed login for user {} from {from}: {} ({failures} failures in the last {} min)",
            crate::logging::format::python_repr(user),
            if blocked {
                "refused, too many failures"
            } else {
                "wrong user name or password"
            },
            crate::gateway::auth::throttle::WINDOW_SECS / 60,
        ),
    }
}

/// The log line for a login the user directory could not check.
fn directory_note(user: &str, why: &str) -> LogNote {
    LogNote {
        logger: "omeroweb.webclient.views",
        message: format!(
            "Login for user {} not checked: the user directory is not available: {why}",
            crate::logging::format::python_repr(user)
        ),
    }
}

pub(in crate::gateway) fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A CSRF token of ours: 64 lowercase hex digits.
fn valid_token(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The request's CSRF token and, when it had none (or not one of ours), the
/// `Set-Cookie` that gives it one: Django keeps the CSRF cookie it set.
pub fn csrf_token(request: &LoginRequest) -> (String, Option<String>) {
    match request.csrf_cookie.as_deref().filter(|t| valid_token(t)) {
        Some(token) => (token.to_string(), None),
        None => {
            let token = random_token();
            let cookie = format!("csrftoken={token}; Path=/; SameSite=Lax");
            (token, Some(cookie))
        }
    }
}

/// `Set-Cookie` for the session, shaped by `omero.web.session_cookie_*`; `None`
/// clears it.
pub fn session_cookie(config: &CookieConfig, id: Option<&str>) -> String {
    let mut cookie = format!("{}={}; Path={}", config.name, id.unwrap_or(""), config.path);
    if let Some(domain) = &config.domain {
        cookie.push_str(&format!("; Domain={domain}"));
    }
    match (id, config.max_age) {
        (None, _) => cookie.push_str("; Max-Age=0"),
        (Some(_), Some(age)) => cookie.push_str(&format!("; Max-Age={age}")),
        (Some(_), None) => {}
    }
    cookie.push_str("; HttpOnly");
    if config.secure {
        cookie.push_str("; Secure");
    }
    if config.samesite.to_lowercase() != "none" || config.secure {
        cookie.push_str(&format!("; SameSite={}", config.samesite));
    }
    cookie
}

/// The login views' page: the webclient's page (`pages::page`) around `body`, never
/// kept by a cache (it carries a CSRF token), with `cookies` set.
fn page(
    config: &crate::gateway::GatewayConfig,
    title: &str,
    body: &str,
    status: u16,
    cookies: &[String],
) -> Response {
    let body = format!(
        "<div class=\"login\" id=\"login\" data-prefix=\"{}\">\n{body}</div>\n",
        escape(&config.prefix)
    );
    let html = pages::page(&config.prefix, &config.static_url, title, &body, &[]);
    let mut builder = hyper::Response::builder()
        .status(status)
        .header("Content-Type", "text/html; charset=utf-8")
        .header("Cache-Control", "private, no-store")
        .header("Vary", "Cookie");
    for cookie in cookies {
        builder = builder.header("Set-Cookie", cookie);
    }
    builder.body(app::full(html)).expect("valid response")
}

fn redirect_with(location: &str, cookies: &[String]) -> Response {
    let mut builder = hyper::Response::builder()
        .status(302)
        .header("Location", location)
        .header("Cache-Control", "private, no-store");
    for cookie in cookies {
        builder = builder.header("Set-Cookie", cookie);
    }
    builder.body(app::full("")).expect("valid response")
}

impl Gateway {
    /// Where a login goes on to: `url` when it is a path on this site (never an open
    /// redirect), else the webclient.
    fn next_url(&self, pairs: &[(String, String)]) -> String {
        field(pairs, "url")
            .and_then(local_target)
            .unwrap_or_else(|| format!("{}/webclient/", self.config.prefix))
    }

    fn login_form(
        &self,
        request: &LoginRequest,
        next: &str,
        error: Option<&str>,
        status: u16,
    ) -> Response {
        let (token, set) = csrf_token(request);
        let error = error
            .map(|e| format!("<p class=\"error\">{}</p>\n", escape(e)))
            .unwrap_or_default();
        let body = format!(
            "<h2>Log in</h2>\n{error}<form method=\"post\" action=\"{prefix}/webclient/login/?url={url}\">\n<input type=\"hidden\" name=\"csrfmiddlewaretoken\" value=\"{token}\">\n<input type=\"hidden\" name=\"server\" value=\"1\">\n<label>Username <input type=\"text\" name=\"username\" autofocus autocomplete=\"username\"></label>\n<label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\"></label>\n<input type=\"submit\" value=\"Login\">\n</form>\n",
            prefix = escape(&self.config.prefix),
            url = escape(&query::encode(next)),
        );
        page(&self.config, "Login", &body, status, set.as_slice())
    }

    /// Whether the form's CSRF field (else the `X-CSRFToken` header) matches the
    /// cookie (Django's double submit).
    pub(in crate::gateway) fn csrf_ok(request: &LoginRequest, form: &[(String, String)]) -> bool {
        let sent = field(form, "csrfmiddlewaretoken")
            .filter(|t| !t.is_empty())
            .or(request.csrf_header.as_deref());
        let (Some(cookie), Some(field)) = (request.csrf_cookie.as_deref(), sent) else {
            return false;
        };
        valid_token(cookie) && bool::from(cookie.as_bytes().ct_eq(field.as_bytes()))
    }

    pub(in crate::gateway) fn csrf_failure(&self) -> Response {
        page(
            &self.config,
            "Forbidden",
            "<h1>Forbidden (403)</h1><p>CSRF verification failed. Request aborted.</p>\n",
            403,
            &[],
        )
    }

    /// `webclient/login/`: the form, or a login attempt.
    pub(in crate::gateway) async fn login_view(
        self: &Arc<Self>,
        request: LoginRequest,
        viewer: &Viewer,
    ) -> Response {
        let mut pairs = query_pairs(&request.query);
        let form = query_pairs(&request.body);
        pairs.extend(form.iter().filter(|(k, _)| k == "url").cloned());
        let next = self.next_url(&pairs);
        if !request.is_post {
            // Already logged in: on to where the login would go.
            if matches!(viewer, Viewer::User { .. }) {
                return redirect_with(&next, &[]);
            }
            return self.login_form(&request, &next, None, 200);
        }
        if !Self::csrf_ok(&request, &form) {
            return self.csrf_failure();
        }
        let user = field(&form, "username").unwrap_or("").to_string();
        let password = field(&form, "password").unwrap_or("").to_string();
        if user.is_empty() || password.is_empty() {
            return self.login_form(
                &request,
                &next,
                Some("Please enter a username and a password."),
                200,
            );
        }
        let outcome = self
            .check_login(
                &user,
                password,
                request.client,
                request.session_cookie.clone(),
            )
            .await;
        let note = outcome.log_note(&user, request.client);
        let mut response = match outcome {
            LoginOutcome::DirectoryDown(_) => self.login_form(
                &request,
                &next,
                Some("The user directory is not available: please try again later."),
                503,
            ),
            LoginOutcome::Session(session) => {
                let cookie = session_cookie(&self.access.config.cookie, Some(&session));
                redirect_with(&next, &[cookie])
            }
            LoginOutcome::StoreDown(e) => store_down(&user, &e),
            LoginOutcome::Refused { blocked, .. } => {
                let shown = if blocked {
                    TOO_MANY_FAILURES
                } else {
                    INCORRECT_CREDENTIALS
                };
                self.login_form(
                    &request,
                    &next,
                    Some(shown),
                    if blocked { 429 } else { 200 },
                )
            }
        };
        if let Some(note) = note {
            response.extensions_mut().insert(note);
        }
        response
    }

    /// One login attempt, the same for the webclient's form and the JSON API: the
    /// throttle, the user sources, then a new session (the one the client came with
    /// ends: a new ID every login, no fixation).
    pub(in crate::gateway) async fn check_login(
        self: &Arc<Self>,
        user: &str,
        password: String,
        client: Option<IpAddr>,
        old_session: Option<String>,
    ) -> LoginOutcome {
        let gateway = self.clone();
        let user = user.to_string();
        crate::http_app::blocking::spawn_blocking("login", move || {
            let access = &gateway.access;
            let throttle = Throttle::new(&access.config.throttle_dir);
            if throttle.blocked(client, &user) {
                let failures = throttle.failed(client, &user);
                return LoginOutcome::Refused {
                    blocked: true,
                    failures,
                };
            }
            match access.authenticate(&user, &password) {
                Verdict::Valid => {
                    throttle.succeeded(&user);
                    throttle.sweep();
                    access.sessions.sweep_expired();
                    match access
                        .sessions
                        .create(&user, client.map(|ip| ip.to_string()))
                    {
                        Ok(session) => {
                            if let Some(old) = &old_session {
                                let _ = access.sessions.remove(old);
                            }
                            LoginOutcome::Session(session)
                        }
                        Err(e) => LoginOutcome::StoreDown(e),
                    }
                }
                Verdict::Invalid => LoginOutcome::Refused {
                    blocked: false,
                    failures: throttle.failed(client, &user),
                },
                // Not the user's failure: not counted against them.
                Verdict::Unavailable(why) => LoginOutcome::DirectoryDown(why),
            }
        })
        .await
        .unwrap_or(LoginOutcome::Refused {
            blocked: false,
            failures: 0,
        })
    }

    /// `webclient/logout/`: GET asks (as OMERO's view does), POST ends the session.
    pub(in crate::gateway) async fn logout_view(
        self: &Arc<Self>,
        request: LoginRequest,
    ) -> Response {
        let login = format!("{}/webclient/login/", self.config.prefix);
        if !request.is_post {
            let token = request
                .csrf_cookie
                .clone()
                .filter(|t| valid_token(t))
                .unwrap_or_else(random_token);
            let body = format!(
                "<form method=\"post\" action=\"{}/webclient/logout/\">\n<input type=\"hidden\" name=\"csrfmiddlewaretoken\" value=\"{token}\">\n<p>Do you want to log out?</p><input type=\"submit\" value=\"Logout\">\n</form>\n",
                escape(&self.config.prefix)
            );
            let cookie = format!("csrftoken={token}; Path=/; SameSite=Lax");
            return page(&self.config, "Logout", &body, 200, &[cookie]);
        }
        if !Self::csrf_ok(&request, &query_pairs(&request.body)) {
            return self.csrf_failure();
        }
        if let Some(id) = request.session_cookie.clone() {
            let gateway = self.clone();
            let ended = crate::http_app::blocking::spawn_blocking("logout", move || {
                gateway.access.sessions.remove(&id)
            })
            .await
            .unwrap_or_else(|_| Err("the logout task failed".into()));
            if let Err(e) = ended {
                return super::guard::store_unavailable(format!("Cannot end a session: {e}"));
            }
        }
        redirect_with(&login, &[session_cookie(&self.access.config.cookie, None)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_follow_omeros_properties() {
        let mut config = crate::gateway::auth::AccessConfig::default().cookie;
        assert_eq!(
            session_cookie(&config, Some("abc")),
            "sessionid=abc; Path=/; HttpOnly; SameSite=Lax"
        );
        config.name = "omero_session".into();
        config.path = "/omero/".into();
        config.secure = true;
        config.max_age = Some(3600);
        assert_eq!(
            session_cookie(&config, Some("abc")),
            "omero_session=abc; Path=/omero/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax"
        );
        assert!(session_cookie(&config, None).contains("Max-Age=0"));
    }

    #[test]
    fn only_plain_paths_on_this_site_are_redirect_targets() {
        assert_eq!(
            local_target("/webclient/img_detail/3/?c=1|0:255$FF0000").as_deref(),
            Some("/webclient/img_detail/3/?c=1|0:255$FF0000")
        );
        assert_eq!(
            local_target("/webclient/?q=café au lait").as_deref(),
            Some("/webclient/?q=caf%C3%A9%20au%20lait")
        );
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "/\t/evil.example",
            "/x\r\nSet-Cookie: a=b",
            "https://evil.example/",
            "",
        ] {
            assert_eq!(local_target(bad), None, "{bad:?}");
        }
    }
}

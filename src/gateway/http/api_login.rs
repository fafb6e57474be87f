//! OMERO.web's JSON API login with access control on, as omero-web's
//! `webgateway.views.LoginView` (which `/api/v0/login/` is) does it:
//!
//! * `GET /api/v0/token/` answers `{"data": <token>}` and sets the `csrftoken`
//!   cookie (Django's `get_token`); a client sends the token back in `X-CSRFToken`
//!   (or a `csrfmiddlewaretoken` field) with the cookie.
//! * `POST /api/v0/login/` with `server`, `username` and `password` (a form, or a
//!   JSON object when the body is `application/json`): the same check as the
//!   webclient's form (`login::check_login`: throttle, user sources, a new session
//!   in the shared store), then `{"success": true, "eventContext": {…}}` and the
//!   session cookie. Form errors are Django's ("Server: This field is required."),
//!   a wrong password is OMERO's `login_incorrect_credentials_text`, each a 403
//!   `{"message": …}`. A POST with only the CSRF token from a logged-in client
//!   repeats its event context, as OMERO's does.

use std::sync::Arc;

use serde_json::{Value, json};

use super::login::{
    INCORRECT_CREDENTIALS, LoginOutcome, LoginRequest, TOO_MANY_FAILURES, csrf_token, field,
    session_cookie, store_down,
};
use crate::gateway::Gateway;
use crate::gateway::auth::Viewer;
use crate::gateway::query::query_pairs;
use crate::http_app::Response;

/// The one server the embedded site lists (`api/v0/servers/`).
const SERVER_ID: &str = "1";

/// OMERO's message when the server behind the login cannot be asked.
const SERVER_DOWN: &str = "Server is not responding, please contact administrator.";

fn json_answer(status: u16, body: &Value, cookies: &[String]) -> Response {
    let mut response = crate::gateway::http::webgateway::img_data::typed(
        status,
        "application/json",
        serde_json::to_vec(body).expect("JSON"),
    );
    for cookie in cookies {
        if let Ok(value) = hyper::header::HeaderValue::from_str(cookie) {
            response
                .headers_mut()
                .append(hyper::header::SET_COOKIE, value);
        }
    }
    response
}

/// The POST's fields: a urlencoded form, or a JSON object (strings and numbers).
fn fields(body: &str, json_body: bool) -> Vec<(String, String)> {
    if !json_body {
        return query_pairs(body);
    }
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(n) => Some((k, n.to_string())),
            _ => None,
        })
        .collect()
}

/// Django's form validation of omero-web's `LoginForm`, in its field order
/// (server, username, password): the joined "Label: error" messages, or the
/// cleaned (username, password).
fn validate(form: &[(String, String)]) -> Result<(String, String), String> {
    let mut errors = Vec::new();
    const REQUIRED: &str = "This field is required.";
    match field(form, "server").map(str::trim) {
        None | Some("") => errors.push(format!("Server: {REQUIRED}")),
        Some(SERVER_ID) => {}
        Some(_) => errors.push(
            "Server: Select a valid choice. That choice is not one of the available choices."
                .to_string(),
        ),
    }
    // Django's CharField strips the user name, never the password.
    let username = field(form, "username").map(str::trim).unwrap_or("");
    if username.is_empty() {
        errors.push(format!("Username: {REQUIRED}"));
    } else if username.chars().count() > 255 {
        errors.push(format!(
            "Username: Ensure this value has at most 255 characters (it has {}).",
            username.chars().count()
        ));
    } else if username == "guest" {
        errors.push("Username: Guest account is not supported.".to_string());
    }
    let password = field(form, "password").unwrap_or("");
    if password.is_empty() {
        errors.push(format!("Password: {REQUIRED}"));
    }
    if errors.is_empty() {
        Ok((username.to_string(), password.to_string()))
    } else {
        Err(errors.join(" "))
    }
}

/// OMERO's `eventContext` for a logged-in user, as far as this site has its fields:
/// names, not OMERO's numeric IDs (users and groups here have none).
fn event_context(user: &str, groups: &[String]) -> Value {
    json!({
        "userName": user,
        "groupName": groups.first().cloned().unwrap_or_default(),
        "isAdmin": false,
        "eventId": -1,
        "eventType": "User",
    })
}

impl Gateway {
    /// `api/v0/token/`: the CSRF token, with the cookie when the client has none.
    pub(in crate::gateway) fn api_token(&self, request: &LoginRequest) -> Response {
        let (token, set) = csrf_token(request);
        json_answer(200, &json!({"data": token}), set.as_slice())
    }

    /// `api/v0/login/` POST with access control on (see the module's note).
    pub(in crate::gateway) async fn api_login(
        self: &Arc<Self>,
        request: LoginRequest,
        json_body: bool,
        viewer: &Viewer,
    ) -> Response {
        let form = fields(&request.body, json_body);
        if !Self::csrf_ok(&request, &form) {
            return self.csrf_failure();
        }
        let only_token = form.iter().all(|(k, _)| k == "csrfmiddlewaretoken");
        if only_token && let Viewer::User { name, groups } = viewer {
            return json_answer(
                200,
                &json!({"success": true, "eventContext": event_context(name, groups)}),
                &[],
            );
        }
        let (user, password) = match validate(&form) {
            Ok(checked) => checked,
            Err(message) => return json_answer(403, &json!({"message": message}), &[]),
        };
        let outcome = self
            .check_login(&user, password, request.client, request.session_cookie)
            .await;
        let note = outcome.log_note(&user, request.client);
        let mut response = match outcome {
            LoginOutcome::Session(session) => {
                let groups = self.access.groups_of(&user).unwrap_or_default();
                let cookie = session_cookie(&self.access.config.cookie, Some(&session));
                json_answer(
                    200,
                    &json!({"success": true, "eventContext": event_context(&user, &groups)}),
                    &[cookie],
                )
            }
            LoginOutcome::Refused { blocked, .. } => {
                let (status, message) = if blocked {
                    (429, TOO_MANY_FAILURES)
                } else {
                    (403, INCORRECT_CREDENTIALS)
                };
                json_answer(status, &json!({"message": message}), &[])
            }
            LoginOutcome::DirectoryDown(_) => {
                json_answer(403, &json!({"message": SERVER_DOWN}), &[])
            }
            LoginOutcome::StoreDown(e) => store_down(&user, &e),
        };
        if let Some(note) = note {
            response.extensions_mut().insert(note);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(text: &str) -> Vec<(String, String)> {
        query_pairs(text)
    }

    #[test]
    fn the_login_form_is_validated_as_omero_webs_login_form_is() {
        assert_eq!(
            validate(&form("server=1&username=+alice+&password=+pw+")),
            Ok(("alice".into(), " pw ".into()))
        );
        assert_eq!(
            validate(&form("")),
            Err("Server: This field is required. Username: This field is required. Password: This field is required.".into())
        );
        assert_eq!(
            validate(&form("server=2&username=guest&password=x")),
            Err("Server: Select a valid choice. That choice is not one of the available choices. Username: Guest account is not supported.".into())
        );
        let mut json = fields(
            r#"{"server": 1, "username": "a", "password": "b", "x": [1]}"#,
            true,
        );
        json.sort();
        assert_eq!(
            json,
            vec![
                ("password".to_string(), "b".to_string()),
                ("server".to_string(), "1".to_string()),
                ("username".to_string(), "a".to_string()),
            ]
        );
        assert!(fields("not json", true).is_empty());
    }
}

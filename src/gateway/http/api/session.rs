//! The JSON API's session and user routes (`/api/v0/servers/`, `token/`, `login/`,
//! `m/experimenters/…`, `m/experimentergroups/…`) in omero-web's shapes, for an
//! embedded site: one server ("embedded", there is no OMERO.server behind it), no
//! logins, and one user and group, `public` (the owner every object's
//! `omero:details` names), as an OMERO.web public user sees a site.
//!
//! * `servers/`: `{"data": [{"id": 1, "host": "embedded", "port": 0, "server":
//!   "embedded"}]}` (OMERO lists its `omero.web.server_list`).
//! * `token/` is `http::api_login`'s (Django's CSRF token and cookie).
//! * `login/`: GET is OMERO's 405 with its message; a POST succeeds, whatever the
//!   credentials, with the public user's `eventContext` — a site without logins treats
//!   everyone as its public user. With access control on (`auth`), `http::api_login`
//!   answers the POST instead: it checks the credentials as the webclient's login does.
//! * `m/experimenters/`, `m/experimentergroups/`, their single objects and each
//!   other's lists: the public user and group in omero-marshal's shape.

use serde_json::{Value, json};

use crate::gateway::http::api::{PUBLIC_GROUP_ID, SCHEMA};
use crate::gateway::parents::PUBLIC_USER_ID;

/// The embedded site's one server, as `omero.web.server_list` entries are listed.
pub const SERVER_NAME: &str = "embedded";

/// What [`answer`] needs of the request.
pub struct SessionRequest<'a> {
    /// The path's parts below `/api/`, e.g. `["v0", "m", "experimenters"]`.
    pub parts: &'a [&'a str],
    /// `http://host/prefix/api/v0`.
    pub v0: &'a str,
    pub post: bool,
    /// The page of a list: (offset, limit).
    pub paging: (usize, usize),
    pub max_limit: usize,
}

fn experimenter(v0: &str) -> Value {
    let id = PUBLIC_USER_ID;
    json!({
        "@id": id, "@type": format!("{SCHEMA}#Experimenter"),
        "FirstName": "", "LastName": "", "UserName": "public",
        "omero:details": {"@type": "TBD#Details"},
        "url:experimenter": format!("{v0}/m/experimenters/{id}/"),
        "url:experimentergroups": format!("{v0}/m/experimenters/{id}/experimentergroups/"),
    })
}

fn group(v0: &str) -> Value {
    let id = PUBLIC_GROUP_ID;
    json!({
        "@id": id, "@type": format!("{SCHEMA}#ExperimenterGroup"),
        "Name": "public",
        "omero:details": {"@type": "TBD#Details", "permissions": {"@type": "TBD#Permissions", "perm": "r-r---"}},
        "url:experimentergroup": format!("{v0}/m/experimentergroups/{id}/"),
        "url:experimenters": format!("{v0}/m/experimentergroups/{id}/experimenters/"),
    })
}

/// The status and body for a session or user route, or None for another path.
pub fn answer(request: &SessionRequest) -> Option<(u16, Value)> {
    let v0 = request.v0;
    let (offset, limit) = request.paging;
    let list = |items: Vec<Value>| {
        let total = items.len();
        let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
        (
            200,
            json!({"data": page, "meta": {"offset": offset, "limit": limit, "maxLimit": request.max_limit, "totalCount": total}}),
        )
    };
    let is = |id: &str, wanted: u64| id.parse::<u64>() == Ok(wanted);
    Some(match request.parts {
        ["v0", "servers"] => (
            200,
            json!({"data": [{"id": 1, "host": SERVER_NAME, "port": 0, "server": SERVER_NAME}]}),
        ),
        ["v0", "login"] if !request.post => (
            405,
            json!({"message": "POST only with username, password, server and csrftoken"}),
        ),
        ["v0", "login"] => (
            200,
            json!({"success": true, "eventContext": {
                "userId": PUBLIC_USER_ID, "userName": "public",
                "groupId": PUBLIC_GROUP_ID, "groupName": "public",
                "isAdmin": false, "eventId": -1, "eventType": "User",
                "memberOfGroups": [PUBLIC_GROUP_ID], "leaderOfGroups": [],
            }}),
        ),
        ["v0", "m", "experimenters"] => list(vec![experimenter(v0)]),
        ["v0", "m", "experimentergroups"] => list(vec![group(v0)]),
        ["v0", "m", "experimenters", id] if is(id, PUBLIC_USER_ID) => {
            (200, json!({"data": experimenter(v0)}))
        }
        ["v0", "m", "experimentergroups", id] if is(id, PUBLIC_GROUP_ID) => {
            (200, json!({"data": group(v0)}))
        }
        ["v0", "m", "experimenters", id] => (
            404,
            json!({"message": format!("Experimenter {id} not found")}),
        ),
        ["v0", "m", "experimentergroups", id] => (
            404,
            json!({"message": format!("ExperimenterGroup {id} not found")}),
        ),
        ["v0", "m", "experimenters", id, "experimentergroups"] => list(if is(id, PUBLIC_USER_ID) {
            vec![group(v0)]
        } else {
            Vec::new()
        }),
        ["v0", "m", "experimentergroups", id, "experimenters"] => {
            list(if is(id, PUBLIC_GROUP_ID) {
                vec![experimenter(v0)]
            } else {
                Vec::new()
            })
        }
        _ => return None,
    })
}

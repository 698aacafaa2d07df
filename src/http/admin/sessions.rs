//! `/admin/sessions`: live sessions across users, filtered by user, address or client, paged;
//! end one, a selection (checkboxes, then a confirmation), or all of a user's.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::confirm::{self, Confirm, CsrfOnly};
use super::{Admin, AdminForm, AdminFrame, Section, admin_failure};
use crate::admin::AdminError;
use crate::admin::sessions::{self, Query, SessionView};
use crate::http::AppState;
use crate::http::browser::{html, see_other};
use crate::http::views::when;

pub fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .route("/sessions", web::get().to(list_page))
        .route("/sessions/revoke", web::get().to(revoke_selected_page))
        .route("/sessions/revoke", web::post().to(revoke_selected))
        .route(
            "/sessions/user/{user_id}/revoke",
            web::get().to(revoke_user_page),
        )
        .route(
            "/sessions/user/{user_id}/revoke",
            web::post().to(revoke_user),
        )
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    cursor: Option<String>,
}

impl ListQuery {
    fn next_link(&self, cursor: &str) -> String {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user", &self.user)
            .append_pair("ip", &self.ip)
            .append_pair("client", &self.client)
            .append_pair("cursor", cursor)
            .finish();
        format!("/admin/sessions?{q}")
    }
}

pub struct SessionLine {
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub device: String,
    pub ip: String,
    pub clients: String,
    pub started: String,
    pub last_seen: String,
    pub ends: String,
    pub mfa: bool,
}

impl From<SessionView> for SessionLine {
    fn from(s: SessionView) -> Self {
        Self {
            mfa: s.amr.iter().any(|m| m == "mfa"),
            id: s.id,
            user_id: s.user_id,
            email: s.email,
            device: s.device,
            ip: s.ip.unwrap_or_else(|| "-".into()),
            clients: if s.clients.is_empty() {
                "-".into()
            } else {
                s.clients.join(", ")
            },
            started: when(s.started_at),
            last_seen: when(s.last_seen_at),
            ends: when(s.ends_at),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/sessions.html")]
struct ListPage {
    frame: AdminFrame,
    query: ListQuery,
    sessions: Vec<SessionLine>,
    next: Option<String>,
    error: Option<String>,
}

/// GET /admin/sessions
async fn list_page(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let query = query.into_inner();
    let q = Query {
        user: query.user.clone(),
        ip: query.ip.clone(),
        client: query.client.clone(),
    };
    let (sessions, next, error) =
        match sessions::list(&state.provider, &q, query.cursor.as_deref(), 50).await {
            Ok(page) => (
                page.sessions.into_iter().map(SessionLine::from).collect(),
                page.next.map(|c| query.next_link(&c)),
                None,
            ),
            Err(AdminError::Invalid(m)) => (Vec::new(), None, Some(m)),
            Err(e) => return admin_failure(&e),
        };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let (frame, csrf) = admin.frame(&state, &req, Section::Sessions);
    let page = ListPage {
        frame,
        query,
        sessions,
        next,
        error,
    };
    html(status, &csrf, page.render())
}

/// The session ids of a query string or form: every `id` pair (checkboxes), or `ids`
/// separated by spaces (the confirmation's hidden field).
fn ids_of(encoded: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(encoded.as_bytes()) {
        let found: Vec<String> = match k.as_ref() {
            "id" => vec![v.trim().to_string()],
            "ids" => v.split_whitespace().map(String::from).collect(),
            _ => continue,
        };
        for id in found {
            if !id.is_empty() && id.len() <= 128 && !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// GET /admin/sessions/revoke?id=…&id=…: asks before ending the selected sessions (the list's
/// checkboxes submit here).
async fn revoke_selected_page(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let ids = ids_of(req.query_string());
    if ids.is_empty() {
        return see_other("/admin/sessions");
    }
    if ids.len() as i64 > sessions::MAX_PAGE {
        return admin_failure(&AdminError::Invalid(format!(
            "at most {} sessions at a time",
            sessions::MAX_PAGE
        )));
    }
    confirm::render(
        &state,
        &req,
        &admin,
        Section::Sessions,
        Confirm {
            title: format!(
                "End {} session{}?",
                ids.len(),
                if ids.len() == 1 { "" } else { "s" }
            ),
            message: "Those browsers are signed out, and the refresh and access tokens issued \
                      through them stop working at once."
                .into(),
            action: "/admin/sessions/revoke".into(),
            fields: vec![("ids".into(), ids.join(" "))],
            button: "End them".into(),
            cancel: "/admin/sessions".into(),
        },
    )
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    ids: String,
}

csrf_forms!(RevokeForm);

/// POST /admin/sessions/revoke
async fn revoke_selected(
    f: AdminForm<RevokeForm>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let ids = ids_of(&format!(
        "ids={}",
        url::form_urlencoded::byte_serialize(f.form.ids.as_bytes()).collect::<String>()
    ));
    match sessions::revoke_many(&state.provider, &f.admin.actor, &ids).await {
        Ok(n) => confirm::done(
            &state,
            &req,
            &f.admin,
            Section::Sessions,
            format!("{}.", confirm::sessions_ended(n)),
            "/admin/sessions",
        ),
        Err(e) => admin_failure(&e),
    }
}

/// GET /admin/sessions/user/{user_id}/revoke
async fn revoke_user_page(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    user_id: web::Path<String>,
) -> HttpResponse {
    confirm::render(
        &state,
        &req,
        &admin,
        Section::Sessions,
        Confirm {
            title: "Sign this user out everywhere?".into(),
            message: "Every session of the user ends, with its refresh and access tokens.".into(),
            action: format!("/admin/sessions/user/{user_id}/revoke"),
            fields: vec![],
            button: "Sign out everywhere".into(),
            cancel: format!("/admin/sessions?user={user_id}"),
        },
    )
}

/// POST /admin/sessions/user/{user_id}/revoke
async fn revoke_user(
    f: AdminForm<CsrfOnly>,
    state: web::Data<AppState>,
    req: HttpRequest,
    user_id: web::Path<String>,
) -> HttpResponse {
    match sessions::revoke_user(&state.provider, &f.admin.actor, &user_id).await {
        Ok(n) => confirm::done(
            &state,
            &req,
            &f.admin,
            Section::Sessions,
            format!("{}.", confirm::sessions_ended(n)),
            "/admin/sessions",
        ),
        Err(e) => admin_failure(&e),
    }
}

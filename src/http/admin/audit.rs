//! `/admin/audit`: the audit log filtered by actor, subject, action and time, page by page,
//! and "verify chain" with its result; `/admin/keys`: the published keys, rotation, and an
//! emergency rotation that must be typed to be confirmed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::confirm::{self, Confirm, CsrfOnly};
use super::{Admin, AdminForm, AdminFrame, Section, admin_failure};
use crate::admin::AdminError;
use crate::admin::audit_log::{self, EntryView, Verdict};
use crate::admin::keys::{self, KeyView};
use crate::http::AppState;
use crate::http::browser::html;
use crate::http::views::when;
use crate::keys::rotation::Rotated;
use crate::store::AuditFilter;

pub fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .route("/audit", web::get().to(audit_page))
        .route("/audit/verify", web::post().to(verify))
        .route("/keys", web::get().to(keys_page))
        .route("/keys/rotate", web::get().to(rotate_page))
        .route("/keys/rotate", web::post().to(rotate))
        .route("/keys/emergency", web::get().to(emergency_page))
        .route("/keys/emergency", web::post().to(emergency))
}

/// The audit page's filter as typed: dates as `YYYY-MM-DD` (UTC, whole days).
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: Option<i64>,
}

/// `YYYY-MM-DD` as the unix time of that day's start (UTC); `end` gives its last second.
fn day(text: &str, end: bool) -> Result<Option<i64>, AdminError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let t = humantime::parse_rfc3339(&format!("{text}T00:00:00Z"))
        .map_err(|_| AdminError::Invalid(format!("`{text}` is not a date (YYYY-MM-DD)")))?;
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| AdminError::Invalid(format!("`{text}` is before 1970")))?
        .as_secs() as i64;
    Ok(Some(if end { secs + 86_399 } else { secs }))
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, AdminError> {
        Ok(AuditFilter {
            actor: self.actor.trim().to_string(),
            subject: self.subject.trim().to_string(),
            action: self.action.trim().to_string(),
            since: day(&self.since, false)?,
            until: day(&self.until, true)?,
        })
    }

    /// This filter's query string with `before` set (the next page's link).
    fn next_link(&self, before: i64) -> String {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("actor", &self.actor)
            .append_pair("subject", &self.subject)
            .append_pair("action", &self.action)
            .append_pair("since", &self.since)
            .append_pair("until", &self.until)
            .append_pair("before", &before.to_string())
            .finish();
        format!("/admin/audit?{q}")
    }
}

pub struct EntryLine {
    pub seq: i64,
    pub at: String,
    pub action: String,
    pub actor: String,
    pub subject: String,
    pub ip: String,
    pub detail: String,
}

impl From<EntryView> for EntryLine {
    fn from(e: EntryView) -> Self {
        Self {
            seq: e.seq,
            at: when(e.at),
            action: e.action,
            actor: e.actor.unwrap_or_else(|| "-".into()),
            subject: e.subject.unwrap_or_else(|| "-".into()),
            ip: e.ip.unwrap_or_else(|| "-".into()),
            detail: e.detail.to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    frame: AdminFrame,
    query: AuditQuery,
    entries: Vec<EntryLine>,
    next: Option<String>,
    error: Option<String>,
    verdict: Option<(bool, String)>,
}

async fn render_audit(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    query: AuditQuery,
    verdict: Option<(bool, String)>,
) -> HttpResponse {
    let (entries, next, error) = match query.filter() {
        Ok(filter) => match audit_log::search(&state.provider, &filter, query.before, 50).await {
            Ok(page) => (
                page.entries.into_iter().map(EntryLine::from).collect(),
                page.next_before.map(|b| query.next_link(b)),
                None,
            ),
            Err(AdminError::Invalid(m)) => (Vec::new(), None, Some(m)),
            Err(e) => return admin_failure(&e),
        },
        Err(AdminError::Invalid(m)) => (Vec::new(), None, Some(m)),
        Err(e) => return admin_failure(&e),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let (frame, csrf) = admin.frame(state, req, Section::Audit);
    let page = AuditPage {
        frame,
        query,
        entries,
        next,
        error,
        verdict,
    };
    html(status, &csrf, page.render())
}

/// GET /admin/audit
async fn audit_page(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<AuditQuery>,
) -> HttpResponse {
    render_audit(&state, &req, &admin, query.into_inner(), None).await
}

/// POST /admin/audit/verify: walks the whole chain (a POST: it is work, not a page to prefetch).
async fn verify(
    f: AdminForm<CsrfOnly>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let verdict = match audit_log::verify(&state.provider, &[]).await {
        Ok(Verdict::Intact { entries, head }) => (
            true,
            match head {
                Some(pin) => format!(
                    "Intact: {entries} entries verified. Record this pin outside the database \
                     to catch a later rollback: {pin}"
                ),
                None => "Intact: the log is empty.".into(),
            },
        ),
        Ok(Verdict::Broken(why)) => {
            tracing::error!(%why, "the audit chain is broken");
            (false, format!("BROKEN: {why}"))
        }
        Err(e) => return admin_failure(&e),
    };
    render_audit(&state, &req, &f.admin, AuditQuery::default(), Some(verdict)).await
}

pub struct KeyLine {
    pub kid: String,
    pub alg: String,
    pub state: &'static str,
    pub created: String,
    pub activates: String,
    pub expires: String,
    pub rotation_due: String,
}

impl From<KeyView> for KeyLine {
    fn from(k: KeyView) -> Self {
        Self {
            kid: k.kid,
            alg: k.alg,
            state: k.state.as_str(),
            created: when(k.created_at),
            activates: when(k.activate_at),
            expires: k.expire_at.map(when).unwrap_or_else(|| "-".into()),
            rotation_due: k.rotation_due_at.map(when).unwrap_or_else(|| "-".into()),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/keys.html")]
struct KeysPage {
    frame: AdminFrame,
    keys: Vec<KeyLine>,
    notice: Option<String>,
    error: Option<String>,
}

async fn render_keys(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> HttpResponse {
    let policy = crate::startup::rotation_policy(&state.config);
    let keys = match keys::list(&state.provider, &policy).await {
        Ok(k) => k,
        Err(e) => return admin_failure(&e),
    };
    let (frame, csrf) = admin.frame(state, req, Section::Keys);
    let page = KeysPage {
        frame,
        keys: keys.into_iter().map(KeyLine::from).collect(),
        notice,
        error,
    };
    html(status, &csrf, page.render())
}

/// GET /admin/keys
async fn keys_page(admin: Admin, state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    render_keys(&state, &req, &admin, StatusCode::OK, None, None).await
}

/// GET /admin/keys/rotate
async fn rotate_page(admin: Admin, state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    confirm::render(
        &state,
        &req,
        &admin,
        Section::Keys,
        Confirm {
            title: "Rotate the signing key?".into(),
            message: "A new key is published now and starts signing after the publish lead \
                      time, so verifiers fetch it first; the current key keeps verifying until \
                      its tokens have expired. Nothing stops working."
                .into(),
            action: "/admin/keys/rotate".into(),
            fields: vec![],
            button: "Rotate".into(),
            cancel: "/admin/keys".into(),
        },
    )
}

fn outcome(r: &Rotated) -> String {
    match r {
        Rotated::Scheduled { kid, activate_at } => {
            format!(
                "Key {kid} is published and starts signing at {}.",
                when(*activate_at)
            )
        }
        Rotated::AlreadyPending { kid, activate_at } => format!(
            "Key {kid} was already published and starts signing at {}; nothing was done.",
            when(*activate_at)
        ),
        Rotated::Emergency { kid, withdrawn } => format!(
            "Key {kid} signs now; withdrawn: {}. Tokens signed by those keys no longer verify.",
            withdrawn.join(", ")
        ),
    }
}

/// POST /admin/keys/rotate
async fn rotate(
    f: AdminForm<CsrfOnly>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let policy = crate::startup::rotation_policy(&state.config);
    match keys::rotate(&state.provider, &f.admin.actor, &policy, false).await {
        Ok(r) => {
            render_keys(
                &state,
                &req,
                &f.admin,
                StatusCode::OK,
                Some(outcome(&r)),
                None,
            )
            .await
        }
        Err(e) => admin_failure(&e),
    }
}

/// What an operator must type to confirm an emergency rotation.
pub const EMERGENCY_PHRASE: &str = "withdraw every key";

#[derive(Template)]
#[template(path = "admin/keys_emergency.html")]
struct EmergencyPage {
    frame: AdminFrame,
    phrase: &'static str,
    error: Option<String>,
}

/// GET /admin/keys/emergency: the typed confirmation.
async fn emergency_page(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let (frame, csrf) = admin.frame(&state, &req, Section::Keys);
    let page = EmergencyPage {
        frame,
        phrase: EMERGENCY_PHRASE,
        error: None,
    };
    html(StatusCode::OK, &csrf, page.render())
}

#[derive(Deserialize)]
struct EmergencyForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    confirmation: String,
}

csrf_forms!(EmergencyForm);

/// POST /admin/keys/emergency: only with the phrase typed exactly.
async fn emergency(
    f: AdminForm<EmergencyForm>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let AdminForm { admin, form } = f;
    if form.confirmation.trim() != EMERGENCY_PHRASE {
        let (frame, csrf) = admin.frame(&state, &req, Section::Keys);
        let page = EmergencyPage {
            frame,
            phrase: EMERGENCY_PHRASE,
            error: Some(format!("Type “{EMERGENCY_PHRASE}” exactly to confirm.")),
        };
        return html(StatusCode::BAD_REQUEST, &csrf, page.render());
    }
    let policy = crate::startup::rotation_policy(&state.config);
    match keys::rotate(&state.provider, &admin.actor, &policy, true).await {
        Ok(r) => {
            render_keys(
                &state,
                &req,
                &admin,
                StatusCode::OK,
                Some(outcome(&r)),
                None,
            )
            .await
        }
        Err(e) => admin_failure(&e),
    }
}

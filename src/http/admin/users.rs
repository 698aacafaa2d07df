//! `/admin/users`: the user list (search, filters, sort, keyset pages), a user's page, the
//! invitation form, and every operator action on a user, each a call into `admin::users` with
//! the admin as actor. Edits (name, roles) post straight from the user's page; the other
//! actions show a confirmation first (GET) and act on its POST.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::confirm::{self, Confirm, CsrfOnly};
use super::{Admin, AdminForm, AdminFrame, Section, admin_failure};
use crate::admin::AdminError;
use crate::admin::paging;
use crate::admin::users::{self, Cursor, ListInput, NewUser, UserDetail, UserRules, UserSort};
use crate::http::AppState;
use crate::http::browser::html;
use crate::http::views::when;

pub fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    // `/users/new` before `/users/{id}`, which would take it as an id.
    let scope = scope
        .route("/users", web::get().to(list_page))
        .route("/users/new", web::get().to(new_page))
        .route("/users/new", web::post().to(create))
        .route("/users/{id}", web::get().to(user_page))
        .route("/users/{id}/name", web::post().to(set_name))
        .route("/users/{id}/roles", web::post().to(set_roles));
    Action::ALL.iter().fold(scope, |scope, action| {
        let path = format!("/users/{{id}}/{}", action.slug());
        let action = *action;
        scope
            .route(
                &path,
                web::get().to(
                    move |admin: Admin,
                          state: web::Data<AppState>,
                          req: HttpRequest,
                          id: web::Path<String>| {
                        confirm_page(action, admin, state, req, id)
                    },
                ),
            )
            .route(
                &path,
                web::post().to(
                    move |f: AdminForm<CsrfOnly>,
                          state: web::Data<AppState>,
                          req: HttpRequest,
                          id: web::Path<String>| {
                        act(action, f, state, req, id)
                    },
                ),
            )
    })
}

fn rules(state: &AppState) -> UserRules<'_> {
    UserRules::from_config(&state.config, &state.mailer)
}

// ---------------------------------------------------------------------------------------------
// The list

/// The list's query string as typed (kept in the form and in the page links).
#[derive(Debug, Default)]
pub struct ListQuery {
    q: String,
    disabled: bool,
    locked: bool,
    without_mfa: bool,
    /// `created` or `last_sign_in`.
    sort: String,
    cursor: Option<String>,
    /// Rows per page as typed (`limit`); empty: the engine's default.
    limit: String,
}

/// The most parameters the list's query string may carry.
const MAX_PARAMS: usize = 16;

impl ListQuery {
    /// Reads the query string by hand: the last of a repeated name wins, unknown names are
    /// ignored, too many parameters are an error (shown inline, never actix's plain text).
    fn parse(query: &str) -> Result<Self, String> {
        let mut q = ListQuery {
            sort: "created".into(),
            ..Default::default()
        };
        for (i, (k, v)) in url::form_urlencoded::parse(query.as_bytes()).enumerate() {
            if i >= MAX_PARAMS {
                return Err("the address has too many parameters".into());
            }
            let on = !v.is_empty() && v != "0" && v != "false";
            match k.as_ref() {
                "q" => q.q = v.into_owned(),
                "disabled" => q.disabled = on,
                "locked" => q.locked = on,
                "without_mfa" => q.without_mfa = on,
                "sort" => q.sort = v.into_owned(),
                "cursor" => q.cursor = Some(v.into_owned()).filter(|c| !c.is_empty()),
                "limit" => q.limit = v.into_owned(),
                _ => {}
            }
        }
        Ok(q)
    }

    fn sort(&self) -> Result<UserSort, AdminError> {
        match self.sort.as_str() {
            "" | "created" => Ok(UserSort::Created),
            "last_sign_in" => Ok(UserSort::LastSignIn),
            _ => Err(AdminError::Invalid(
                "sort by created or last_sign_in".into(),
            )),
        }
    }

    /// Rows per page: `None` for the default; a bad number is the engine's inline error.
    fn limit(&self) -> Result<Option<i64>, AdminError> {
        let text = self.limit.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse::<i64>().map(Some).map_err(|_| {
            AdminError::Invalid(format!("a page holds 1 to {} users", users::MAX_PAGE))
        })
    }

    /// The name a cursor is sealed for: a cursor of one order is no position in the other.
    fn list_name(sort: UserSort) -> &'static str {
        match sort {
            UserSort::Created => "console-users:created",
            UserSort::LastSignIn => "console-users:last_sign_in",
        }
    }

    /// This search's link with `cursor` (sealed) as the page's start.
    fn link(&self, cursor: &str) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.append_pair("q", &self.q);
        for (name, on) in [
            ("disabled", self.disabled),
            ("locked", self.locked),
            ("without_mfa", self.without_mfa),
        ] {
            if on {
                s.append_pair(name, "on");
            }
        }
        s.append_pair("sort", &self.sort);
        if !self.limit.is_empty() {
            s.append_pair("limit", &self.limit);
        }
        s.append_pair("cursor", cursor);
        format!("/admin/users?{}", s.finish())
    }

    pub fn sorted_by(&self, sort: &str) -> bool {
        self.sort == sort || (sort == "created" && self.sort.is_empty())
    }
}

/// A user as a row of the list.
pub struct UserLine {
    pub id: String,
    pub email: String,
    pub name: String,
    pub roles: String,
    pub factors: i64,
    pub status: &'static str,
    pub created: String,
    pub last_sign_in: String,
}

/// What a user's state is, in a word: disabled wins over locked, locked over invited.
fn status(u: &users::UserSummary) -> &'static str {
    if u.disabled {
        "disabled"
    } else if u.locked_until.is_some() {
        "locked"
    } else if !u.has_password {
        "no password yet"
    } else {
        "active"
    }
}

impl From<&users::UserSummary> for UserLine {
    fn from(u: &users::UserSummary) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone().unwrap_or_default(),
            roles: u.roles.join(", "),
            factors: u.factors,
            status: status(u),
            created: when(u.created_at),
            last_sign_in: u.last_signin_at.map_or_else(|| "never".into(), when),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct ListPage {
    frame: AdminFrame,
    query: ListQuery,
    users: Vec<UserLine>,
    next: Option<String>,
    previous: Option<String>,
    error: Option<String>,
}

/// One page of the list for `query`; an invalid search or cursor is `AdminError::Invalid`.
async fn list_for(
    state: &AppState,
    query: &ListQuery,
) -> Result<(Vec<UserLine>, Option<String>, Option<String>), AdminError> {
    let p = &state.provider;
    let sort = query.sort()?;
    let list = ListQuery::list_name(sort);
    let cursor = match &query.cursor {
        None => None,
        Some(sealed) => {
            let text: String = paging::open_cursor(p, list, sealed).map_err(|_| {
                AdminError::Invalid(
                    "the page link is not valid: start again from the first page".into(),
                )
            })?;
            Some(Cursor::parse(&text)?)
        }
    };
    let input = ListInput {
        query: query.q.clone(),
        disabled: query.disabled,
        locked: query.locked,
        without_mfa: query.without_mfa,
        sort,
        cursor,
        limit: query.limit()?,
    };
    let page = users::list(p, &rules(state), &input).await?;
    let link = |c: &Cursor| -> Result<String, AdminError> {
        Ok(query.link(&paging::seal_cursor(p, list, &c.encode())?))
    };
    let next = page.next.as_ref().map(link).transpose()?;
    let previous = page.previous.as_ref().map(link).transpose()?;
    Ok((
        page.users.iter().map(UserLine::from).collect(),
        next,
        previous,
    ))
}

/// GET /admin/users
async fn list_page(admin: Admin, state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let (query, found) = match ListQuery::parse(req.query_string()) {
        Ok(query) => {
            let found = list_for(&state, &query).await;
            (query, found)
        }
        Err(message) => (ListQuery::default(), Err(AdminError::Invalid(message))),
    };
    let (users, next, previous, error) = match found {
        Ok((users, next, previous)) => (users, next, previous, None),
        Err(AdminError::Invalid(m)) => (Vec::new(), None, None, Some(m)),
        Err(e) => return admin_failure(&e),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let (frame, csrf) = admin.frame(&state, &req, Section::Users);
    let page = ListPage {
        frame,
        query,
        users,
        next,
        previous,
        error,
    };
    html(status, &csrf, page.render())
}

// ---------------------------------------------------------------------------------------------
// A user's page

pub struct SessionLine {
    pub id: String,
    pub device: String,
    pub ip: String,
    pub clients: String,
    pub methods: String,
    pub started: String,
    pub last_seen: String,
}

pub struct FactorLine {
    pub name: String,
    pub kind: &'static str,
    pub added: String,
    pub last_used: String,
}

pub struct AuditLine {
    pub at: String,
    pub action: String,
    pub actor: String,
    pub ip: String,
    pub detail: String,
}

pub struct ConsentLine {
    pub client_id: String,
    pub scopes: String,
    pub granted: String,
}

/// Everything the user's page shows, as text.
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub roles: String,
    pub disabled: bool,
    pub status: &'static str,
    pub locked_until: Option<String>,
    pub email_verified: bool,
    pub has_password: bool,
    pub created: String,
    pub last_sign_in: String,
    pub sessions: Vec<SessionLine>,
    pub factors: Vec<FactorLine>,
    pub recovery_unused: i64,
    pub recovery_issued: i64,
    pub audit: Vec<AuditLine>,
    pub consents: Vec<ConsentLine>,
}

fn or_dash(v: Option<String>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into())
}

impl From<UserDetail> for UserView {
    fn from(d: UserDetail) -> Self {
        let u = &d.user;
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone().unwrap_or_default(),
            roles: u.roles.join(" "),
            disabled: u.disabled,
            status: status(u),
            locked_until: u.locked_until.map(when),
            email_verified: u.email_verified,
            has_password: u.has_password,
            created: when(u.created_at),
            last_sign_in: u.last_signin_at.map_or_else(|| "never".into(), when),
            sessions: d
                .sessions
                .into_iter()
                .map(|s| SessionLine {
                    id: s.id,
                    device: or_dash(s.device),
                    ip: or_dash(s.ip),
                    clients: or_dash(Some(s.clients.join(", "))),
                    methods: or_dash(Some(s.methods.join(", "))),
                    started: when(s.started_at),
                    last_seen: when(s.last_seen_at),
                })
                .collect(),
            factors: d
                .factors
                .into_iter()
                .map(|f| FactorLine {
                    name: f.name,
                    kind: match f.kind {
                        "totp" => "authenticator app",
                        "webauthn" => "security key or passkey",
                        other => other,
                    },
                    added: when(f.created_at),
                    last_used: f.last_used_at.map_or_else(|| "never".into(), when),
                })
                .collect(),
            recovery_unused: d.recovery_codes.0,
            recovery_issued: d.recovery_codes.1,
            audit: d
                .audit
                .into_iter()
                .map(|a| AuditLine {
                    at: when(a.at),
                    action: a.action,
                    actor: or_dash(a.actor),
                    ip: or_dash(a.ip),
                    detail: a.detail,
                })
                .collect(),
            consents: d
                .consents
                .into_iter()
                .map(|c| ConsentLine {
                    client_id: c.client_id,
                    scopes: c.scopes.join(" "),
                    granted: when(c.granted_at),
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    frame: AdminFrame,
    user: UserView,
    /// The name and roles fields as typed (kept when an edit comes back with an error).
    name: String,
    roles: String,
    error: Option<String>,
    notice: Option<String>,
}

/// What the user's page says besides the user: the edit fields as typed, an error, a notice.
#[derive(Default)]
struct Inline {
    typed: Option<(String, String)>,
    error: Option<String>,
    notice: Option<String>,
}

/// The user's page, with an inline error or notice; an unknown user is the 404 page.
async fn render_user(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    id: &str,
    status: StatusCode,
    inline: Inline,
) -> HttpResponse {
    let Inline {
        typed,
        error,
        notice,
    } = inline;
    let detail = match users::show(&state.provider, id).await {
        Ok(d) => d,
        Err(e) => return admin_failure(&e),
    };
    let user = UserView::from(detail);
    let (name, roles) = typed.unwrap_or_else(|| (user.name.clone(), user.roles.clone()));
    let (frame, csrf) = admin.frame(state, req, Section::Users);
    let page = UserPage {
        frame,
        user,
        name,
        roles,
        error,
        notice,
    };
    html(status, &csrf, page.render())
}

/// GET /admin/users/{id}
async fn user_page(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    render_user(&state, &req, &admin, &id, StatusCode::OK, Inline::default()).await
}

#[derive(Deserialize)]
struct NameForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct RolesForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    roles: String,
}

csrf_forms!(NameForm, RolesForm);

/// Roles as typed: separated by spaces or commas.
fn split_roles(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|r| !r.is_empty())
        .map(String::from)
        .collect()
}

/// The user page again after an edit: saved, or the error inline with what was typed.
async fn after_edit(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    id: &str,
    outcome: Result<(), AdminError>,
    typed: (String, String),
) -> HttpResponse {
    match outcome {
        Ok(()) => {
            render_user(
                state,
                req,
                admin,
                id,
                StatusCode::OK,
                Inline {
                    notice: Some("Saved.".into()),
                    ..Inline::default()
                },
            )
            .await
        }
        Err(AdminError::Invalid(message)) => {
            render_user(
                state,
                req,
                admin,
                id,
                StatusCode::BAD_REQUEST,
                Inline {
                    typed: Some(typed),
                    error: Some(message),
                    notice: None,
                },
            )
            .await
        }
        Err(e) => admin_failure(&e),
    }
}

/// POST /admin/users/{id}/name
async fn set_name(
    f: AdminForm<NameForm>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let AdminForm { admin, form } = f;
    let outcome = users::set_name(&state.provider, &admin.actor, &id, Some(&form.name))
        .await
        .map(|_| ());
    let roles = match users::show(&state.provider, &id).await {
        Ok(d) => d.user.roles.join(" "),
        Err(e) => return admin_failure(&e),
    };
    after_edit(&state, &req, &admin, &id, outcome, (form.name, roles)).await
}

/// POST /admin/users/{id}/roles
async fn set_roles(
    f: AdminForm<RolesForm>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let AdminForm { admin, form } = f;
    let outcome = users::set_roles(
        &state.provider,
        &admin.actor,
        &id,
        &split_roles(&form.roles),
    )
    .await
    .map(|_| ());
    let name = match users::show(&state.provider, &id).await {
        Ok(d) => d.user.name.unwrap_or_default(),
        Err(e) => return admin_failure(&e),
    };
    after_edit(&state, &req, &admin, &id, outcome, (name, form.roles)).await
}

// ---------------------------------------------------------------------------------------------
// Actions behind a confirmation

/// The actions a user's page offers through a confirmation page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Disable,
    Enable,
    Unlock,
    ForceReset,
    ResetMfa,
    SignOut,
    Invite,
}

impl Action {
    const ALL: [Action; 7] = [
        Action::Disable,
        Action::Enable,
        Action::Unlock,
        Action::ForceReset,
        Action::ResetMfa,
        Action::SignOut,
        Action::Invite,
    ];

    fn slug(self) -> &'static str {
        match self {
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Unlock => "unlock",
            Action::ForceReset => "force-password-reset",
            Action::ResetMfa => "reset-mfa",
            Action::SignOut => "sign-out-everywhere",
            Action::Invite => "invite",
        }
    }

    /// The confirmation's question, what will happen, and its button.
    fn words(self, email: &str) -> (String, String, &'static str) {
        match self {
            Action::Disable => (
                format!("Disable {email}?"),
                "They are signed out everywhere at once: every session and refresh token ends, \
                 their access tokens introspect inactive, and they cannot sign in until enabled."
                    .into(),
                "Disable",
            ),
            Action::Enable => (
                format!("Enable {email}?"),
                "They can sign in again. Sessions and tokens ended while disabled stay ended."
                    .into(),
                "Enable",
            ),
            Action::Unlock => (
                format!("Lift the lock-out of {email}?"),
                "Their failed sign-in counts start again from zero, for the password and the \
                 second step."
                    .into(),
                "Unlock",
            ),
            Action::ForceReset => (
                format!("Force a password reset for {email}?"),
                "Their password stops working now, every session ends, and they are mailed a \
                 link to choose a new one. Earlier reset links stop working."
                    .into(),
                "Force a password reset",
            ),
            Action::ResetMfa => (
                format!("Reset the second factors of {email}?"),
                "Every authenticator app, security key and recovery code of theirs is removed \
                 and every session ends. They set up a second factor again at their next \
                 sign-in if their role requires one."
                    .into(),
                "Reset the second factors",
            ),
            Action::SignOut => (
                format!("Sign {email} out everywhere?"),
                "Every session of theirs ends, with its refresh and access tokens.".into(),
                "Sign out everywhere",
            ),
            Action::Invite => (
                format!("Send {email} a new invitation?"),
                "They are mailed a new link to choose their password; earlier invitation links \
                 stop working."
                    .into(),
                "Send the invitation",
            ),
        }
    }
}

/// GET /admin/users/{id}/{action}: what the action will do, and its form.
async fn confirm_page(
    action: Action,
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let user = match users::show(&state.provider, &id).await {
        Ok(d) => d.user,
        Err(e) => return admin_failure(&e),
    };
    let (title, message, button) = action.words(&user.email);
    confirm::render(
        &state,
        &req,
        &admin,
        Section::Users,
        Confirm {
            title,
            message,
            action: format!("/admin/users/{}/{}", user.id, action.slug()),
            fields: vec![],
            button: button.into(),
            cancel: format!("/admin/users/{}", user.id),
        },
    )
}

/// What the action did, in a sentence, or why not.
async fn perform(
    action: Action,
    state: &AppState,
    admin: &Admin,
    id: &str,
) -> Result<String, AdminError> {
    let p = &state.provider;
    let actor = &admin.actor;
    Ok(match action {
        Action::Disable => {
            let n = users::disable(p, actor, id).await?;
            format!("Disabled; {}.", confirm::sessions_ended(n))
        }
        Action::Enable => {
            users::enable(p, actor, id).await?;
            "Enabled: they can sign in again.".into()
        }
        Action::Unlock => {
            if users::unlock(p, actor, id).await? {
                "The lock-out is lifted.".into()
            } else {
                "There was no lock-out; the failure counts are reset.".into()
            }
        }
        Action::ForceReset => {
            let r = users::force_password_reset(p, actor, &rules(state), id).await?;
            format!(
                "The password no longer works; {}. {}",
                confirm::sessions_ended(r.sessions_ended),
                mailed(r.mailed, "reset link")
            )
        }
        Action::ResetMfa => {
            let n = users::reset_mfa(p, actor, id).await?;
            format!(
                "{n} second factor{} removed, with the recovery codes.",
                if n == 1 { "" } else { "s" }
            )
        }
        Action::SignOut => {
            let n = users::sign_out_everywhere(p, actor, id).await?;
            format!("Signed out everywhere; {}.", confirm::sessions_ended(n))
        }
        Action::Invite => {
            let invited = users::invite_again(p, actor, &rules(state), id).await?;
            invitation_sentence(&invited)
        }
    })
}

fn mailed(ok: bool, what: &str) -> String {
    if ok {
        format!("The {what} was mailed.")
    } else {
        format!("The {what} could not be mailed (see the server log); try again later.")
    }
}

fn invitation_sentence(invited: &users::Invited) -> String {
    format!(
        "{} The link works until {}.",
        mailed(invited.mailed, "invitation"),
        when(invited.expires_at)
    )
}

/// POST /admin/users/{id}/{action}
async fn act(
    action: Action,
    f: AdminForm<CsrfOnly>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    match perform(action, &state, &f.admin, &id).await {
        Ok(message) => confirm::done(
            &state,
            &req,
            &f.admin,
            Section::Users,
            message,
            &format!("/admin/users/{}", id.as_str()),
        ),
        Err(e) => admin_failure(&e),
    }
}

// ---------------------------------------------------------------------------------------------
// A new user, by invitation

#[derive(Debug, Default, Deserialize)]
struct NewUserForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    roles: String,
}

csrf_forms!(NewUserForm);

#[derive(Template)]
#[template(path = "admin/user_new.html")]
struct NewPage {
    frame: AdminFrame,
    email: String,
    name: String,
    roles: String,
    error: Option<String>,
    invitation_days: u64,
}

fn new_form(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    status: StatusCode,
    form: NewUserForm,
    error: Option<String>,
) -> HttpResponse {
    let (frame, csrf) = admin.frame(state, req, Section::Users);
    let page = NewPage {
        frame,
        email: form.email,
        name: form.name,
        roles: form.roles,
        error,
        invitation_days: state.config.invitation_link_ttl.as_secs().div_ceil(86400),
    };
    html(status, &csrf, page.render())
}

/// GET /admin/users/new
async fn new_page(admin: Admin, state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    new_form(
        &state,
        &req,
        &admin,
        StatusCode::OK,
        NewUserForm::default(),
        None,
    )
}

/// POST /admin/users/new: creates the user without a password and mails the invitation.
async fn create(
    f: AdminForm<NewUserForm>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let AdminForm { admin, form } = f;
    let new = NewUser {
        email: form.email.clone(),
        name: Some(form.name.clone()),
        roles: split_roles(&form.roles),
    };
    match users::invite(&state.provider, &admin.actor, &rules(&state), &new).await {
        Ok(invited) => confirm::done(
            &state,
            &req,
            &admin,
            Section::Users,
            format!(
                "{} was created. {}",
                invited.user.email,
                invitation_sentence(&invited)
            ),
            &format!("/admin/users/{}", invited.user.id),
        ),
        Err(e @ (AdminError::Invalid(_) | AdminError::Conflict(_))) => new_form(
            &state,
            &req,
            &admin,
            StatusCode::BAD_REQUEST,
            form,
            Some(e.to_string()),
        ),
        Err(e) => admin_failure(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_query_keeps_what_was_typed_and_caps_its_parameters() {
        let q = ListQuery::parse("q=ann%40ex&disabled=on&sort=last_sign_in&cursor=").unwrap();
        assert_eq!(q.q, "ann@ex");
        assert!(q.disabled && !q.locked && !q.without_mfa);
        assert_eq!(q.sort().unwrap(), UserSort::LastSignIn);
        assert_eq!(q.cursor, None);
        assert!(ListQuery::parse("sort=name").unwrap().sort().is_err());
        let many = (0..=MAX_PARAMS)
            .map(|i| format!("x{i}=1"))
            .collect::<Vec<_>>();
        assert!(ListQuery::parse(&many.join("&")).is_err());
        let link = q.link("c.d");
        assert_eq!(
            link,
            "/admin/users?q=ann%40ex&disabled=on&sort=last_sign_in&cursor=c.d"
        );
    }

    #[test]
    fn roles_are_split_on_spaces_and_commas() {
        assert_eq!(
            split_roles(" admin, support  ops"),
            ["admin", "support", "ops"]
        );
        assert!(split_roles(" , ").is_empty());
    }
}

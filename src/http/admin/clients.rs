//! `/admin/clients`: list, register, edit, rotate a secret (shown once, the old one valid for
//! an overlap) and disable or enable clients, through `admin::clients`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::confirm::{self, Confirm, CsrfOnly};
use super::{Admin, AdminForm, AdminFrame, Section, admin_failure};
use crate::admin::AdminError;
use crate::admin::clients::{self, ClientSettings, ClientView, GRANTS, SecretChoice};
use crate::http::AppState;
use crate::http::browser::{html, see_other};
use crate::http::views::when;

pub fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .route("/clients", web::get().to(list_page))
        .route("/clients/new", web::get().to(new_page))
        .route("/clients/new", web::post().to(create))
        .route("/clients/{id}", web::get().to(client_page))
        .route("/clients/{id}", web::post().to(update))
        .route("/clients/{id}/rotate-secret", web::get().to(rotate_page))
        .route("/clients/{id}/rotate-secret", web::post().to(rotate))
        .route("/clients/{id}/disable", web::get().to(disable_page))
        .route("/clients/{id}/disable", web::post().to(disable))
        .route("/clients/{id}/enable", web::get().to(enable_page))
        .route("/clients/{id}/enable", web::post().to(enable))
}

/// A client as its row and page show it.
pub struct ClientLine {
    pub id: String,
    pub kind: &'static str,
    pub grants: String,
    pub redirect_uris: Vec<String>,
    pub first_party: bool,
    pub require_mfa: bool,
    pub public: bool,
    pub created: String,
    pub disabled: Option<String>,
    pub previous_secret_until: Option<String>,
}

impl From<&ClientView> for ClientLine {
    fn from(c: &ClientView) -> Self {
        Self {
            id: c.id.clone(),
            kind: if c.public { "public" } else { "confidential" },
            grants: c.grants.join(", "),
            redirect_uris: c.redirect_uris.clone(),
            first_party: c.first_party,
            require_mfa: c.require_mfa,
            public: c.public,
            created: when(c.created_at),
            disabled: c.disabled_at.map(when),
            previous_secret_until: c.previous_secret_valid_until.map(when),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/clients.html")]
struct ListPage {
    frame: AdminFrame,
    clients: Vec<ClientLine>,
}

/// The form's fields as typed (kept when the form comes back with an error).
#[derive(Debug, Default, Deserialize)]
pub struct ClientFields {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    id: String,
    /// `confidential` or `public` (registration only).
    #[serde(default)]
    kind: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    post_logout_redirect_uris: String,
    #[serde(default)]
    grant_authorization_code: Option<String>,
    #[serde(default)]
    grant_refresh_token: Option<String>,
    #[serde(default)]
    grant_client_credentials: Option<String>,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    audiences: String,
    #[serde(default)]
    first_party: Option<String>,
    #[serde(default)]
    require_mfa: Option<String>,
    #[serde(default)]
    backchannel_logout_uri: String,
}

csrf_forms!(ClientFields);

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

impl ClientFields {
    fn of(c: &ClientView) -> Self {
        let has = |g: &str| c.grants.iter().any(|x| x == g).then(|| "on".to_string());
        Self {
            csrf_token: String::new(),
            id: c.id.clone(),
            kind: if c.public { "public" } else { "confidential" }.into(),
            redirect_uris: c.redirect_uris.join("\n"),
            post_logout_redirect_uris: c.post_logout_redirect_uris.join("\n"),
            grant_authorization_code: has("authorization_code"),
            grant_refresh_token: has("refresh_token"),
            grant_client_credentials: has("client_credentials"),
            scopes: c.scopes.join(" "),
            audiences: c.audiences.join("\n"),
            first_party: c.first_party.then(|| "on".into()),
            require_mfa: c.require_mfa.then(|| "on".into()),
            backchannel_logout_uri: c.backchannel_logout_uri.clone().unwrap_or_default(),
        }
    }

    fn settings(&self) -> ClientSettings {
        let grants = [
            (&self.grant_authorization_code, GRANTS[0]),
            (&self.grant_refresh_token, GRANTS[1]),
            (&self.grant_client_credentials, GRANTS[2]),
        ]
        .into_iter()
        .filter(|(on, _)| on.is_some())
        .map(|(_, g)| g.to_string())
        .collect();
        ClientSettings {
            redirect_uris: lines(&self.redirect_uris),
            post_logout_redirect_uris: lines(&self.post_logout_redirect_uris),
            grants,
            scopes: self.scopes.split_whitespace().map(String::from).collect(),
            audiences: lines(&self.audiences),
            first_party: self.first_party.is_some(),
            require_mfa: self.require_mfa.is_some(),
            backchannel_logout_uri: Some(self.backchannel_logout_uri.clone()),
        }
    }

    pub fn checked(&self, field: &str) -> bool {
        match field {
            "authorization_code" => self.grant_authorization_code.is_some(),
            "refresh_token" => self.grant_refresh_token.is_some(),
            "client_credentials" => self.grant_client_credentials.is_some(),
            "first_party" => self.first_party.is_some(),
            "require_mfa" => self.require_mfa.is_some(),
            "public" => self.kind == "public",
            _ => false,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/client_form.html")]
struct FormPage {
    frame: AdminFrame,
    /// `None` when registering a new client.
    client: Option<ClientLine>,
    fields: ClientFields,
    error: Option<String>,
    notice: Option<String>,
    /// The rotation's overlap choices, the configured default selected.
    overlaps: Vec<OverlapChoice>,
}

/// An overlap the rotate form offers.
pub struct OverlapChoice {
    pub seconds: i64,
    pub label: String,
    pub selected: bool,
}

/// The configured overlap (`client_secret_overlap`) in seconds.
fn default_overlap(state: &AppState) -> i64 {
    i64::try_from(state.config.client_secret_overlap.as_secs())
        .unwrap_or(clients::DEFAULT_SECRET_OVERLAP)
}

/// The usual overlaps, and the configured one if it is none of them; the configured one is
/// selected.
fn overlap_choices(state: &AppState) -> Vec<OverlapChoice> {
    let default = default_overlap(state);
    let mut choices: Vec<(i64, String)> = vec![
        (0, "no time (stops now)".into()),
        (3600, "1 hour".into()),
        (86400, "24 hours".into()),
        (604800, "7 days".into()),
    ];
    if !choices.iter().any(|(s, _)| *s == default) {
        choices.push((
            default,
            format!("{default} seconds (the configured default)"),
        ));
        choices.sort_by_key(|(s, _)| *s);
    }
    choices
        .into_iter()
        .map(|(seconds, label)| OverlapChoice {
            seconds,
            label,
            selected: seconds == default,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "admin/client_secret.html")]
struct SecretPage {
    frame: AdminFrame,
    id: String,
    secret: String,
    previous_until: Option<String>,
}

/// GET /admin/clients
async fn list_page(admin: Admin, state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let clients = match clients::list(&state.provider).await {
        Ok(c) => c,
        Err(e) => return admin_failure(&e),
    };
    let (frame, csrf) = admin.frame(&state, &req, Section::Clients);
    let page = ListPage {
        frame,
        clients: clients.iter().map(ClientLine::from).collect(),
    };
    html(StatusCode::OK, &csrf, page.render())
}

fn form_page(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    status: StatusCode,
    page: impl FnOnce(AdminFrame) -> FormPage,
) -> HttpResponse {
    let (frame, csrf) = admin.frame(state, req, Section::Clients);
    html(status, &csrf, page(frame).render())
}

/// GET /admin/clients/new
async fn new_page(admin: Admin, state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let fields = ClientFields {
        kind: "confidential".into(),
        grant_authorization_code: Some("on".into()),
        grant_refresh_token: Some("on".into()),
        scopes: clients::DEFAULT_SCOPES.join(" "),
        ..Default::default()
    };
    form_page(&state, &req, &admin, StatusCode::OK, |frame| FormPage {
        frame,
        client: None,
        fields,
        error: None,
        notice: None,
        overlaps: overlap_choices(&state),
    })
}

/// POST /admin/clients/new: the secret of a confidential client is generated and shown once.
async fn create(
    f: AdminForm<ClientFields>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let AdminForm { admin, form } = f;
    let secret = if form.kind == "public" {
        SecretChoice::Public
    } else {
        SecretChoice::Generate
    };
    let created = clients::create(
        &state.provider,
        &admin.actor,
        form.id.trim(),
        secret,
        form.settings(),
    )
    .await;
    match created {
        Ok(c) => match c.secret {
            Some(secret) => {
                let (frame, csrf) = admin.frame(&state, &req, Section::Clients);
                let page = SecretPage {
                    frame,
                    id: c.client.id,
                    secret: secret.expose().to_string(),
                    previous_until: None,
                };
                html(StatusCode::OK, &csrf, page.render())
            }
            None => see_other(&format!("/admin/clients/{}", c.client.id)),
        },
        Err(e @ (AdminError::Invalid(_) | AdminError::Conflict(_))) => {
            form_page(&state, &req, &admin, StatusCode::BAD_REQUEST, |frame| {
                FormPage {
                    frame,
                    client: None,
                    fields: form,
                    error: Some(e.to_string()),
                    notice: None,
                    overlaps: overlap_choices(&state),
                }
            })
        }
        Err(e) => admin_failure(&e),
    }
}

/// GET /admin/clients/{id}: the client, its settings as an editable form, and its actions.
async fn client_page(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let client = match clients::show(&state.provider, &id).await {
        Ok(c) => c,
        Err(e) => return admin_failure(&e),
    };
    form_page(&state, &req, &admin, StatusCode::OK, |frame| FormPage {
        frame,
        fields: ClientFields::of(&client),
        client: Some(ClientLine::from(&client)),
        error: None,
        notice: None,
        overlaps: overlap_choices(&state),
    })
}

/// POST /admin/clients/{id}: saves the settings; a wrong one comes back inline.
async fn update(
    f: AdminForm<ClientFields>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let AdminForm { admin, form } = f;
    match clients::update(&state.provider, &admin.actor, &id, form.settings()).await {
        Ok(client) => form_page(&state, &req, &admin, StatusCode::OK, |frame| FormPage {
            frame,
            fields: ClientFields::of(&client),
            client: Some(ClientLine::from(&client)),
            error: None,
            notice: Some("Saved.".into()),
            overlaps: overlap_choices(&state),
        }),
        Err(AdminError::Invalid(message)) => {
            let client = match clients::show(&state.provider, &id).await {
                Ok(c) => c,
                Err(e) => return admin_failure(&e),
            };
            form_page(&state, &req, &admin, StatusCode::BAD_REQUEST, |frame| {
                FormPage {
                    frame,
                    client: Some(ClientLine::from(&client)),
                    fields: form,
                    error: Some(message),
                    notice: None,
                    overlaps: overlap_choices(&state),
                }
            })
        }
        Err(e) => admin_failure(&e),
    }
}

#[derive(Deserialize)]
struct OverlapQuery {
    #[serde(default)]
    overlap: Option<i64>,
}

/// GET /admin/clients/{id}/rotate-secret?overlap=SECONDS: asks before rotating.
async fn rotate_page(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<OverlapQuery>,
) -> HttpResponse {
    let overlap = query.overlap.unwrap_or_else(|| default_overlap(&state));
    let hours = overlap as f64 / 3600.0;
    confirm::render(
        &state,
        &req,
        &admin,
        Section::Clients,
        Confirm {
            title: format!("Rotate the secret of {id}?"),
            message: if overlap == 0 {
                "A new secret is made and shown once. The current secret stops working now.".into()
            } else {
                format!(
                    "A new secret is made and shown once. The current secret keeps working for \
                     {hours} more hours, so services can switch without downtime."
                )
            },
            action: format!("/admin/clients/{id}/rotate-secret"),
            fields: vec![("overlap".into(), overlap.to_string())],
            button: "Rotate the secret".into(),
            cancel: format!("/admin/clients/{id}"),
        },
    )
}

#[derive(Deserialize)]
struct RotateForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    overlap: String,
}

csrf_forms!(RotateForm);

/// POST /admin/clients/{id}/rotate-secret: the new secret, shown once.
async fn rotate(
    f: AdminForm<RotateForm>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let AdminForm { admin, form } = f;
    let Ok(overlap) = form.overlap.trim().parse::<i64>() else {
        return admin_failure(&AdminError::Invalid(
            "the overlap is a number of seconds".into(),
        ));
    };
    match clients::rotate_secret(&state.provider, &admin.actor, &id, overlap).await {
        Ok(r) => {
            let (frame, csrf) = admin.frame(&state, &req, Section::Clients);
            let page = SecretPage {
                frame,
                id: id.into_inner(),
                secret: r.secret.expose().to_string(),
                previous_until: Some(when(r.previous_valid_until)),
            };
            html(StatusCode::OK, &csrf, page.render())
        }
        Err(e) => admin_failure(&e),
    }
}

/// GET /admin/clients/{id}/disable
async fn disable_page(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    confirm::render(
        &state,
        &req,
        &admin,
        Section::Clients,
        Confirm {
            title: format!("Disable {id}?"),
            message: "It gets no more tokens, its refresh tokens are revoked and its access \
                      tokens stop at once on introspection. Enabling it later revives none of them."
                .into(),
            action: format!("/admin/clients/{id}/disable"),
            fields: vec![],
            button: "Disable".into(),
            cancel: format!("/admin/clients/{id}"),
        },
    )
}

/// POST /admin/clients/{id}/disable
async fn disable(
    f: AdminForm<CsrfOnly>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    match clients::disable(&state.provider, &f.admin.actor, &id).await {
        Ok(_) => see_other(&format!("/admin/clients/{id}")),
        Err(e) => admin_failure(&e),
    }
}

/// GET /admin/clients/{id}/enable
async fn enable_page(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    confirm::render(
        &state,
        &req,
        &admin,
        Section::Clients,
        Confirm {
            title: format!("Enable {id}?"),
            message: "It can get tokens again. What it had before it was disabled stays revoked."
                .into(),
            action: format!("/admin/clients/{id}/enable"),
            fields: vec![],
            button: "Enable".into(),
            cancel: format!("/admin/clients/{id}"),
        },
    )
}

/// POST /admin/clients/{id}/enable
async fn enable(
    f: AdminForm<CsrfOnly>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    match clients::enable(&state.provider, &f.admin.actor, &id).await {
        Ok(()) => see_other(&format!("/admin/clients/{id}")),
        Err(e) => admin_failure(&e),
    }
}

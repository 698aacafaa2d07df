//! "Confirm this destructive action": a section's GET shows this page (what will happen, and
//! a form holding the CSRF token and the fields to send), its POST does the action. With
//! JavaScript off and the keyboard alone this is the whole interaction.
//!
//! ```ignore
//! // GET /admin/users/{id}/disable
//! async fn disable_page(admin: Admin, state: web::Data<AppState>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
//!     confirm::render(&state, &req, &admin, Section::Users, Confirm {
//!         title: "Disable this user?".into(),
//!         message: format!("{email} will be signed out everywhere and cannot sign in."),
//!         action: format!("/admin/users/{id}/disable"),
//!         fields: vec![],
//!         button: "Disable".into(),
//!         cancel: format!("/admin/users/{id}"),
//!     })
//! }
//! // POST /admin/users/{id}/disable takes an `AdminForm<CsrfOnly>` and calls the engine.
//! ```

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{Admin, AdminFrame, Section};
use crate::http::AppState;
use crate::http::browser::html;

/// What the confirmation page says and where its form goes.
pub struct Confirm {
    /// The question, e.g. "Disable this user?".
    pub title: String,
    /// What will happen, in a sentence or two.
    pub message: String,
    /// The POST target that does it (a console path).
    pub action: String,
    /// Hidden fields the POST needs besides the CSRF token (name, value).
    pub fields: Vec<(String, String)>,
    /// The button's label, e.g. "Disable".
    pub button: String,
    /// Where "Cancel" goes.
    pub cancel: String,
}

#[derive(Template)]
#[template(path = "admin/confirm.html")]
struct ConfirmPage {
    frame: AdminFrame,
    confirm: Confirm,
}

/// The confirmation page of `confirm`, in the console's frame.
pub fn render(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    section: Section,
    confirm: Confirm,
) -> HttpResponse {
    let (frame, csrf) = admin.frame(state, req, section);
    html(
        StatusCode::OK,
        &csrf,
        ConfirmPage { frame, confirm }.render(),
    )
}

/// A form that carries nothing but its CSRF token (most confirmations).
#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf_token: String,
}

csrf_forms!(CsrfOnly);

#[derive(Template)]
#[template(path = "admin/done.html")]
struct DonePage {
    frame: AdminFrame,
    title: String,
    message: String,
    back: String,
}

/// The page after a confirmed action: what it did, and a link `back`.
pub fn done(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    section: Section,
    message: String,
    back: &str,
) -> HttpResponse {
    let (frame, csrf) = admin.frame(state, req, section);
    let page = DonePage {
        frame,
        title: "Done".into(),
        message,
        back: back.into(),
    };
    html(StatusCode::OK, &csrf, page.render())
}

/// "1 session ended", "3 sessions ended".
pub fn sessions_ended(n: u64) -> String {
    format!("{n} session{} ended", if n == 1 { "" } else { "s" })
}

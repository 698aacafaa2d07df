//! The console's re-authentication: asked when an admin's session is not multi-factor, or its
//! console window closed (`admin::access`). The password first (this page), then the second
//! factor through the existing step-up (`auth::mfa::second_step`, the second-step page with
//! its code and security-key options); the completed step-up opens the window and comes back
//! to `/admin` (`http::second_step::finish`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::cross_site_refused;
use crate::admin::access;
use crate::auth::mfa::manage::ChangeError;
use crate::auth::mfa::{self, MfaError, second_step};
use crate::auth::session::ActiveSession;
use crate::http::AppState;
use crate::http::browser::{checked_form, current_session, html, see_other, too_many_requests};
use crate::http::cookies;
use crate::http::errors::failure_page;
use crate::secret::SecretString;

#[derive(Template)]
#[template(path = "admin/reauth.html")]
struct ReauthPage {
    csrf_token: String,
    email: String,
    error: Option<String>,
}

/// The re-authentication page for the admin of `active`.
pub(super) async fn page(
    state: &AppState,
    req: &HttpRequest,
    active: &ActiveSession,
    status: StatusCode,
    error: Option<&str>,
) -> HttpResponse {
    let csrf = cookies::csrf(&state.provider, req, state.secure_cookies());
    let view = ReauthPage {
        csrf_token: csrf.token.clone(),
        email: active.user.email.clone(),
        error: error.map(String::from),
    };
    html(status, &csrf, view.render())
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    password: String,
}

csrf_forms!(PasswordForm);

/// POST /admin/reauth: the password; right, the second step follows.
pub(super) async fn confirm_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    if super::cross_site(&req, &state.config.issuer) {
        return cross_site_refused();
    }
    let form: PasswordForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let active = match current_session(&state, &req).await {
        Ok(Some(a)) => a,
        Ok(None) => return see_other("/login"),
        Err(res) => return res,
    };
    if !access::is_admin(&active.user) {
        return crate::http::errors::not_found().await;
    }
    let throttle = state.config.throttle_policy();
    let password = SecretString::new(form.password);
    match access::confirm_password(p, &state.passwords, &throttle, &active, &password).await {
        Ok(()) => {}
        Err(ChangeError::WrongPassword) => {
            return page(
                &state,
                &req,
                &active,
                StatusCode::UNAUTHORIZED,
                Some("The password is not right."),
            )
            .await;
        }
        Err(ChangeError::Locked(wait)) => return too_many_requests(wait),
        Err(e) => {
            tracing::error!(error = %e, "admin re-authentication failed");
            return failure_page(&e);
        }
    }
    second_factor(&state, &req, &active).await
}

/// Begins the step-up of this session (the second factor), or sends an admin without one to
/// set it up.
async fn second_factor(
    state: &AppState,
    req: &HttpRequest,
    active: &ActiveSession,
) -> HttpResponse {
    let p = &state.provider;
    let begun = async {
        if !mfa::has_second_factor(p, &active.user.id).await? {
            return Ok(None);
        }
        let methods = second_step::methods(p, &active.user.id).await?;
        let handle = second_step::begin(
            p,
            &active.user.id,
            &active.session.amr,
            None,
            Some(&active.session.id),
        )
        .await?;
        Ok::<_, MfaError>(Some((handle, methods)))
    };
    match begun.await {
        Ok(Some((handle, methods))) => crate::http::second_step::render(
            state,
            req,
            StatusCode::OK,
            None,
            methods,
            None,
            Some(handle),
        ),
        Ok(None) => see_other(&crate::http::second_step::enrolment_url()),
        Err(e) => {
            tracing::error!(error = %e, "could not begin the admin's second step");
            failure_page(&e)
        }
    }
}

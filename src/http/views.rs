//! One typed view per template; askama escapes every value.

use askama::Template;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub csrf_token: String,
    pub request: String,
    pub email: String,
    pub error: Option<String>,
    pub client: Option<String>,
    pub registration: bool,
}

pub struct ScopeLine {
    pub name: String,
    pub description: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    pub csrf_token: String,
    pub request: String,
    pub client: String,
    pub email: String,
    pub scopes: Vec<ScopeLine>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage {
    pub csrf_token: String,
    pub request: String,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
pub struct SignedOutPage;

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub email: Option<String>,
    pub csrf_token: String,
}

pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "know who you are".into(),
        "profile" => "see your name".into(),
        "email" => "see your email address".into(),
        "offline_access" => "stay signed in while you are away".into(),
        other => format!("access {other}"),
    }
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub email: String,
    pub name: Option<String>,
    pub email_verified: bool,
    pub notice: Option<String>,
    pub csrf_token: String,
    /// An admin: the page links to the console.
    pub admin: bool,
}

#[derive(Template)]
#[template(path = "notice.html")]
pub struct NoticePage {
    pub title: String,
    pub message: String,
    pub link_href: Option<String>,
    pub link_text: String,
}

#[derive(Template)]
#[template(path = "forgot.html")]
pub struct ForgotPage {
    pub csrf_token: String,
}

/// The page a confirmation link opens: a button that spends the link (mail scanners that
/// prefetch links spend nothing).
#[derive(Template)]
#[template(path = "verify_email.html")]
pub struct VerifyEmailPage {
    pub token: String,
}

#[derive(Template)]
#[template(path = "reset.html")]
pub struct ResetPage {
    pub csrf_token: String,
    pub token: String,
    pub error: Option<String>,
    pub min_chars: usize,
    pub max_chars: usize,
}

#[derive(Template)]
#[template(path = "change_password.html")]
pub struct ChangePasswordPage {
    pub csrf_token: String,
    pub email: String,
    pub error: Option<String>,
    pub min_chars: usize,
    pub max_chars: usize,
}

#[derive(Template)]
#[template(path = "register.html")]
pub struct RegisterPage {
    pub csrf_token: String,
    pub email: String,
    pub name: String,
    pub error: Option<String>,
    pub min_chars: usize,
    pub max_chars: usize,
}

pub struct SessionLine {
    pub id: String,
    pub device: String,
    pub ip: Option<String>,
    pub clients: String,
    pub created: String,
    pub last_seen: String,
    pub expires: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "sessions.html")]
pub struct SessionsPage {
    pub sessions: Vec<SessionLine>,
    pub csrf_token: String,
    pub notice: Option<String>,
}

/// A timestamp as people read it (UTC).
pub fn when(t: i64) -> String {
    let secs = u64::try_from(t).unwrap_or(0);
    let rendered = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
    )
    .to_string();
    rendered.replace('T', " ").replace('Z', " UTC")
}

/// A passkey or security key as the passkeys section lists it.
pub struct PasskeyLine {
    pub id: String,
    pub name: String,
    /// "Passkey" or "Security key".
    pub kind: String,
    pub added: String,
    pub last_used: Option<String>,
}

#[derive(Template)]
#[template(path = "passkeys.html")]
pub struct PasskeysPage {
    pub csrf_token: String,
    pub keys: Vec<PasskeyLine>,
    pub notice: Option<String>,
}

/// The second step of a sign-in (or a step-up): a one-time code (an authenticator app's or a
/// recovery code), and a security key when the user has one.
#[derive(Template)]
#[template(path = "second_step.html")]
pub struct SecondStepPage {
    pub csrf_token: String,
    pub client: Option<String>,
    pub error: Option<String>,
    /// The user has a security key or passkey: offer it (its markup has its own section).
    pub security_keys: bool,
}

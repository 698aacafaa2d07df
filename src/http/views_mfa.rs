//! Views of the account security pages (`/account/security`): one typed view per template.

use askama::Template;

/// A factor as a line of the security page.
pub struct FactorLine {
    pub id: String,
    /// "Authenticator app", "Passkey", "Security key".
    pub kind: String,
    pub name: String,
    pub added: String,
    /// `None` when the factor was not used yet.
    pub last_used: Option<String>,
}

#[derive(Template)]
#[template(path = "account_security.html")]
pub struct SecurityPage {
    pub csrf_token: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// Authenticator apps.
    pub apps: Vec<FactorLine>,
    /// Passkeys and security keys, for the passkeys section (named `keys` as the passkey
    /// pages' `passkeys_section.html` partial expects).
    pub keys: Vec<FactorLine>,
    pub has_factors: bool,
    pub codes_left: i64,
    pub codes_in_a_set: usize,
}

/// Adding an authenticator app: the QR code, the key beside it, and the confirmation form.
#[derive(Template)]
#[template(path = "account_security_totp.html")]
pub struct TotpEnrolmentPage {
    pub csrf_token: String,
    /// The enrolment bound to this session (the confirmation form sends it back).
    pub enrolment: String,
    /// Our own inline `<svg>` (rendered from the `otpauth://` URI, no user input in it).
    pub qr_svg: String,
    /// The key in groups of four.
    pub key: String,
    pub name: String,
    pub error: Option<String>,
    pub expires: String,
}

/// Recovery codes, shown once: after the first factor, or after regenerating.
#[derive(Template)]
#[template(path = "account_security_codes.html")]
pub struct RecoveryCodesPage {
    pub heading: String,
    pub intro: String,
    pub codes: Vec<String>,
}

/// "Confirm it's you": the password again before a change, carrying the change to make.
#[derive(Template)]
#[template(path = "account_security_reauth.html")]
pub struct ReauthPage {
    pub csrf_token: String,
    pub email: String,
    /// What happens after: `add-totp`, `remove`, `regenerate`.
    pub then: String,
    pub factor_id: String,
    pub error: Option<String>,
    /// The user has a factor: a one-time code may be typed instead of the password.
    pub code_accepted: bool,
}

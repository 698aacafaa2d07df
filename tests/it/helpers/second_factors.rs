//! Second factors as a person holds them: an authenticator app (the key its enrolment showed,
//! codes computed here with totp-rs at any time step) and recovery codes; the second-step page.

use reqwest::{Response, StatusCode};
use totp_rs::{Algorithm, Builder, Totp};

use super::pages::read_html;
use super::{TestApp, TestUser, input_value, tags};

/// RFC 6238 as Tessera runs it: SHA-1, 6 digits, 30-second steps.
const STEP: i64 = 30;

/// An authenticator app holding a user's key.
pub struct Authenticator {
    totp: Totp,
}

impl Authenticator {
    /// From the key as an enrolment shows it (base32, in groups of four).
    pub fn from_shown_key(key: &str) -> Self {
        let compact: String = key.chars().filter(|c| !c.is_whitespace()).collect();
        let secret = totp_rs::Secret::try_from_base32(compact.trim_end_matches('='))
            .expect("the shown key is base32");
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_step_duration(STEP as u64)
            .with_secret(secret.as_ref().to_vec())
            .build()
            .expect("a TOTP key");
        Self { totp }
    }

    /// The code of the time step `steps` away from now (0: the current one).
    pub fn code(&self, steps: i64) -> String {
        self.totp
            .generate((now() + steps * STEP).max(0) as u64)
            .to_string()
    }

    /// The code of the time step holding `unix`.
    pub fn code_at(&self, unix: i64) -> String {
        self.totp.generate(unix as u64).to_string()
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// How many whole seconds are left in the current 30-second step.
pub fn seconds_left_in_step() -> i64 {
    STEP - now() % STEP
}

/// The second step's form as a browser meets it.
#[derive(Debug, Clone)]
pub struct SecondStepPage {
    pub status: StatusCode,
    pub csrf_token: String,
    pub html: String,
}

/// Reads the second-step page (any status: the caller checks it): a form posted to
/// `/login/second-step` with a one-time-code input.
pub async fn expect_second_step_page(resp: Response) -> SecondStepPage {
    let (status, html) = read_html(resp).await;
    let form = tags(&html, "form")
        .into_iter()
        .find(|f| f.attr("action") == Some("/login/second-step"))
        .unwrap_or_else(|| panic!("expected the second-step page ({status}):\n{html}"));
    assert!(
        form.attr("method")
            .is_some_and(|m| m.eq_ignore_ascii_case("post"))
    );
    let code = tags(&html, "input")
        .into_iter()
        .find(|t| t.attr("name") == Some("code"))
        .unwrap_or_else(|| panic!("the second-step page has a code input:\n{html}"));
    assert_eq!(code.attr("autocomplete"), Some("one-time-code"));
    assert_eq!(code.attr("inputmode"), Some("numeric"));
    let csrf_token = input_value(&html, "csrf_token")
        .unwrap_or_else(|| panic!("the second-step page has a csrf_token:\n{html}"));
    SecondStepPage {
        status,
        csrf_token,
        html,
    }
}

impl TestApp {
    /// Gives `user` an authenticator app, as the enrolment does (a key, confirmed by a code),
    /// through Tessera's own use cases on this app's database and master key; returns the app
    /// and the first recovery codes. The confirming code's step is then forgotten, so every
    /// code of the present window is still unused for the tests.
    pub async fn enrol_authenticator(&self, user: &TestUser) -> (Authenticator, Vec<String>) {
        let mut env: Vec<(String, String)> = [
            "TESSERA_DATABASE_URL",
            "TESSERA_MASTER_KEY",
            "TESSERA_DATA_DIR",
            "TESSERA_ISSUER",
            "TESSERA_REDIS_URL",
            "TESSERA_REDIS_PREFIX",
        ]
        .into_iter()
        .filter_map(|k| self.setting(k).map(|v| (k.to_owned(), v.to_owned())))
        .collect();
        env.push(("TESSERA_MAIL_TO_LOG".into(), "true".into()));
        let config = tessera::config::Config::load_from(None, &env).expect("the app's settings");
        let p = tessera::startup::provider(&config)
            .await
            .expect("open the app's store");
        let found = {
            use tessera::store::UserStore;
            p.store
                .find_user_by_email(&user.email)
                .await
                .expect("read the user")
                .expect("the user exists")
        };
        let enrolment = tessera::auth::mfa::begin_totp_enrolment(&p, &found)
            .await
            .expect("begin the enrolment");
        let app = Authenticator::from_shown_key(enrolment.key.expose());
        let name =
            tessera::auth::mfa::FactorName::parse("Phone", "Authenticator").expect("a factor name");
        let confirmed = tessera::auth::mfa::confirm_totp_enrolment(
            &p,
            &found.id,
            &enrolment.id,
            &name,
            &app.code(0),
        )
        .await
        .expect("confirm the enrolment");
        self.execute_sql(&format!(
            "UPDATE mfa_factors SET last_step = 0 WHERE id = '{}'",
            confirmed.factor_id
        ))
        .await;
        let codes = confirmed
            .recovery_codes
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.expose().to_owned())
            .collect();
        (app, codes)
    }

    /// The browser posts a code to the second step.
    pub async fn post_second_step_in(
        &self,
        browser: &reqwest::Client,
        page: &SecondStepPage,
        code: &str,
    ) -> Response {
        browser
            .post(self.url("/login/second-step"))
            .form(&[("csrf_token", page.csrf_token.as_str()), ("code", code)])
            .send()
            .await
            .expect("POST /login/second-step")
    }

    pub async fn post_second_step(&self, page: &SecondStepPage, code: &str) -> Response {
        self.post_second_step_in(&self.client, page, code).await
    }
}

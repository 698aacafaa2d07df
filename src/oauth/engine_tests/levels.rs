//! The level a request needs and what `next_step` asks of a session below it: the role, the
//! client's `require_mfa`, `acr_values`; the second step for a user with a factor, enrolment for
//! one without, `login_required` for `prompt=none`.

use crate::auth::mfa::{
    FactorName, begin_totp_enrolment, confirm_totp_enrolment, totp::TotpSecret,
};
use crate::oauth::authorize::{AuthorizationRequest, Next, next_step};
use crate::oauth::error::OAuthError;
use crate::store::{Client, User};
use crate::testkit::Kit;

fn request(client: &Client, acr_values: &[&str], prompt_none: bool) -> AuthorizationRequest {
    AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri: crate::testkit::REDIRECT_URI.into(),
        scope: vec!["openid".into()],
        state: None,
        nonce: None,
        code_challenge: crate::testkit::challenge(crate::testkit::VERIFIER),
        prompt: if prompt_none {
            vec![crate::oauth::authorize::Prompt::None]
        } else {
            vec![]
        },
        max_age: None,
        resource: None,
        acr_values: acr_values.iter().map(|a| a.to_string()).collect(),
    }
}

async fn with_app(k: &Kit, user: &User) {
    let e = begin_totp_enrolment(&k.p, user).await.unwrap();
    let app = TotpSecret::parse_base32(e.key.expose()).unwrap();
    let name = FactorName::parse("Phone", "").unwrap();
    let code = app.code_at(k.now()).unwrap();
    confirm_totp_enrolment(&k.p, &user.id, &e.id, &name, &code)
        .await
        .unwrap();
}

/// What a password-only session of `user` is asked for.
async fn asked(k: &Kit, user: &User, client: &Client, req: &AuthorizationRequest) -> Next {
    let (_, session) = k.session(user).await;
    next_step(&k.p, client, req, Some(&session), false, k.now())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_password_only_session_is_enough_when_nothing_asks_for_more() {
    let k = Kit::new().await;
    let user = k.user("ada@example.test").await;
    let client = k.public_client("erp").await;
    assert_eq!(
        asked(&k, &user, &client, &request(&client, &[], false)).await,
        Next::Issue
    );
    assert_eq!(
        asked(&k, &user, &client, &request(&client, &["1"], false)).await,
        Next::Issue
    );
}

#[tokio::test]
async fn acr_values_2_a_required_role_or_a_strict_client_ask_for_the_second_step() {
    let k = Kit::new().await;
    let ada = k.user("ada@example.test").await;
    with_app(&k, &ada).await;
    let open = k.public_client("erp").await;
    let mut strict = k.public_client("payroll").await;
    strict.require_mfa = true;
    for values in [&["2"][..], &["1", "2"], &["2", "1"]] {
        assert_eq!(
            asked(&k, &ada, &open, &request(&open, values, false)).await,
            Next::SecondStep,
            "{values:?}"
        );
    }
    assert_eq!(
        asked(&k, &ada, &strict, &request(&strict, &[], false)).await,
        Next::SecondStep
    );

    let root = User {
        roles: vec!["admin".into()],
        ..k.user("root@example.test").await
    };
    with_app(&k, &root).await;
    assert_eq!(
        asked(&k, &root, &open, &request(&open, &[], false)).await,
        Next::SecondStep
    );
}

#[tokio::test]
async fn who_needs_the_second_factor_and_has_none_is_sent_to_enrol() {
    let k = Kit::new().await;
    let mut root = k.user("root@example.test").await;
    root.roles = vec!["admin".into()];
    let client = k.public_client("erp").await;
    assert_eq!(
        asked(&k, &root, &client, &request(&client, &[], false)).await,
        Next::Enrol
    );
    // Removing the role from the policy lifts the requirement.
    let k = Kit::with(|s| s.mfa_required_roles.clear()).await;
    let mut root = k.user("root@example.test").await;
    root.roles = vec!["admin".into()];
    let client = k.public_client("erp").await;
    assert_eq!(
        asked(&k, &root, &client, &request(&client, &[], false)).await,
        Next::Issue
    );
}

#[tokio::test]
async fn a_multi_factor_session_meets_every_requirement_and_prompt_none_below_it_is_refused() {
    let k = Kit::new().await;
    let user = k.user("ada@example.test").await;
    with_app(&k, &user).await;
    let client = k.public_client("erp").await;
    let (_, mut session) = k.session(&user).await;
    let silent = request(&client, &["2"], true);
    let r = next_step(&k.p, &client, &silent, Some(&session), false, k.now()).await;
    assert!(matches!(r, Err(OAuthError::LoginRequired)), "{r:?}");

    session.session.amr = ["pwd", "otp", "mfa"].map(String::from).into();
    let r = next_step(&k.p, &client, &silent, Some(&session), false, k.now()).await;
    assert_eq!(r.unwrap(), Next::Issue);
}

//! The console gate and the API's token check, on a ManualClock.

use super::*;
use crate::auth::session::{self, DeviceInfo};
use crate::store::Client;
use crate::store::ClientStore;
use crate::testkit::{Kit, PASSWORD};

const IDLE: i64 = 900;

async fn admin(kit: &Kit, email: &str) -> User {
    let hash = Kit::cheap_hasher()
        .hash(&SecretString::new(PASSWORD))
        .await
        .unwrap();
    let u = User {
        id: crate::crypto::random_id(),
        email: email.into(),
        name: None,
        roles: vec![ADMIN_ROLE.into()],
        password_hash: SecretString::new(hash),
        disabled: false,
        email_verified: true,
        created_at: kit.now(),
    };
    kit.p.store.insert_user(&u).await.unwrap();
    u
}

fn rules() -> ThrottlePolicy {
    crate::config::Config::default().throttle_policy()
}

/// A session of `user` signed in now with `amr`.
async fn signed_in(kit: &Kit, user: &User, amr: &[&str]) -> ActiveSession {
    let device = DeviceInfo {
        user_agent: None,
        ip: None,
    };
    let amr = amr.iter().map(|a| a.to_string()).collect();
    session::start(&kit.p, user, amr, device, kit.now())
        .await
        .unwrap()
        .1
}

fn allowed(v: &Verdict) -> bool {
    matches!(v, Verdict::Allowed(_))
}

#[tokio::test]
async fn an_admin_signed_in_with_a_second_factor_gets_in_as_themselves() {
    let kit = Kit::new().await;
    let u = admin(&kit, "root@example.com").await;
    let s = signed_in(&kit, &u, &["pwd", "otp", "mfa"]).await;
    match console(&kit.p, Some(&s), IDLE).await {
        Verdict::Allowed(actor) => assert_eq!(actor.audit_name(), format!("admin:{}", u.id)),
        other => panic!("expected the admin in, got {other:?}"),
    }
}

#[tokio::test]
async fn nobody_signed_in_signs_in_a_non_admin_is_told_nothing_and_one_factor_is_not_enough() {
    let kit = Kit::new().await;
    assert!(matches!(console(&kit.p, None, IDLE).await, Verdict::SignIn));
    let user = kit.user("ann@example.com").await;
    let s = signed_in(&kit, &user, &["pwd", "otp", "mfa"]).await;
    assert!(matches!(
        console(&kit.p, Some(&s), IDLE).await,
        Verdict::Hidden
    ));
    let root = admin(&kit, "root@example.com").await;
    let s = signed_in(&kit, &root, &["pwd"]).await;
    assert!(matches!(
        console(&kit.p, Some(&s), IDLE).await,
        Verdict::Reauth
    ));
}

#[tokio::test]
async fn the_console_window_closes_after_15_idle_minutes_and_each_request_slides_it() {
    let kit = Kit::new().await;
    let u = admin(&kit, "root@example.com").await;
    let s = signed_in(&kit, &u, &["pwd", "otp", "mfa"]).await;
    // Used every 14 minutes, the window stays open long after the sign-in.
    for _ in 0..4 {
        kit.advance(14 * 60);
        assert!(allowed(&console(&kit.p, Some(&s), IDLE).await));
    }
    // Exactly 15 minutes after the last request: still open; one second more: closed.
    kit.advance(IDLE);
    assert!(allowed(&console(&kit.p, Some(&s), IDLE).await));
    kit.advance(IDLE + 1);
    assert!(matches!(
        console(&kit.p, Some(&s), IDLE).await,
        Verdict::Reauth
    ));
    // A refused request does not slide it.
    kit.advance(1);
    assert!(matches!(
        console(&kit.p, Some(&s), IDLE).await,
        Verdict::Reauth
    ));
}

#[tokio::test]
async fn a_sign_in_more_than_15_minutes_old_needs_the_reauthentication_before_the_first_request() {
    let kit = Kit::new().await;
    let u = admin(&kit, "root@example.com").await;
    let s = signed_in(&kit, &u, &["pwd", "otp", "mfa"]).await;
    kit.advance(IDLE + 1);
    assert!(matches!(
        console(&kit.p, Some(&s), IDLE).await,
        Verdict::Reauth
    ));
}

#[tokio::test]
async fn the_window_reopens_only_after_the_password_and_then_the_second_factor() {
    let kit = Kit::new().await;
    let u = admin(&kit, "root@example.com").await;
    let s = signed_in(&kit, &u, &["pwd", "otp", "mfa"]).await;
    kit.advance(IDLE + 1);
    // A step-up alone (no password typed on the console) opens nothing.
    assert!(!reauthenticated(&kit.p, &s, IDLE).await);
    let hasher = Kit::cheap_hasher();
    let wrong = SecretString::new("not the password");
    assert!(matches!(
        confirm_password(&kit.p, &hasher, &rules(), &s, &wrong).await,
        Err(ChangeError::WrongPassword)
    ));
    assert!(!reauthenticated(&kit.p, &s, IDLE).await);
    let right = SecretString::new(PASSWORD);
    confirm_password(&kit.p, &hasher, &rules(), &s, &right)
        .await
        .unwrap();
    // The password alone does not open the window either.
    assert!(matches!(
        console(&kit.p, Some(&s), IDLE).await,
        Verdict::Reauth
    ));
    // The step-up completed: open, once.
    assert!(reauthenticated(&kit.p, &s, IDLE).await);
    assert!(allowed(&console(&kit.p, Some(&s), IDLE).await));
    assert!(!reauthenticated(&kit.p, &s, IDLE).await);
    // A password typed more than 5 minutes before the step-up is too old.
    kit.advance(IDLE + 1);
    confirm_password(&kit.p, &hasher, &rules(), &s, &right)
        .await
        .unwrap();
    kit.advance(manage::REAUTH_WINDOW + 1);
    assert!(!reauthenticated(&kit.p, &s, IDLE).await);
}

#[tokio::test]
async fn a_non_admin_cannot_open_the_window_with_the_reauthentication() {
    let kit = Kit::new().await;
    let u = kit.user("ann@example.com").await;
    let s = signed_in(&kit, &u, &["pwd", "otp", "mfa"]).await;
    let hasher = Kit::cheap_hasher();
    confirm_password(&kit.p, &hasher, &rules(), &s, &SecretString::new(PASSWORD))
        .await
        .unwrap();
    assert!(!reauthenticated(&kit.p, &s, IDLE).await);
    assert!(matches!(
        console(&kit.p, Some(&s), IDLE).await,
        Verdict::Hidden
    ));
}

async fn admin_client(kit: &Kit, id: &str, scopes: &[&str]) -> Client {
    let c = Client {
        id: id.into(),
        secret_hash: Some(crate::secret::Secret::wrap(
            kit.p.crypto.token_hash("s3cret"),
        )),
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        grant_types: vec!["client_credentials".into()],
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        audiences: vec!["aud".into()],
        first_party: true,
        require_mfa: false,
        created_at: kit.now(),
        disabled_at: None,
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        backchannel_logout_uri: None,
    };
    kit.p.store.insert_client(&c).await.unwrap();
    c
}

#[tokio::test]
async fn the_api_takes_a_client_token_with_the_admin_scope_and_nothing_less() {
    let kit = Kit::new().await;
    assert!(matches!(
        api_actor(&kit.p, None).await,
        Err(ApiDenied::Unauthenticated(_))
    ));
    assert!(matches!(
        api_actor(&kit.p, Some("not-a-jwt")).await,
        Err(ApiDenied::Unauthenticated(_))
    ));
    let c = admin_client(&kit, "ops", &[ADMIN_SCOPE, "api:read"]).await;
    let exp = kit.now() + 600;
    let mint = |scope: &str| {
        kit.p
            .mint_access_token(&c, None, "aud", scope, crate::crypto::random_id(), exp)
            .unwrap()
    };
    let with = mint(ADMIN_SCOPE);
    match api_actor(&kit.p, Some(&with)).await {
        Ok(actor) => assert_eq!(actor.audit_name(), "api:ops"),
        Err(e) => panic!("{e:?}"),
    }
    let without = mint("api:read");
    assert!(matches!(
        api_actor(&kit.p, Some(&without)).await,
        Err(ApiDenied::InsufficientScope(_))
    ));
    // Expired.
    kit.advance(601);
    assert!(matches!(
        api_actor(&kit.p, Some(&with)).await,
        Err(ApiDenied::Unauthenticated(_))
    ));
}

#[tokio::test]
async fn a_token_of_a_client_not_registered_for_the_scope_is_refused() {
    let kit = Kit::new().await;
    // A token minted with the scope for a client whose registration lacks it (as after the
    // registration changed) carries no authority.
    let c = admin_client(&kit, "reports", &["api:read"]).await;
    let token = kit
        .p
        .mint_access_token(
            &c,
            None,
            "aud",
            ADMIN_SCOPE,
            crate::crypto::random_id(),
            kit.now() + 600,
        )
        .unwrap();
    assert!(matches!(
        api_actor(&kit.p, Some(&token)).await,
        Err(ApiDenied::InsufficientScope(_))
    ));
}

#[tokio::test]
async fn a_locked_console_asks_for_the_reauthentication_even_right_after_the_sign_in() {
    let kit = Kit::new().await;
    let u = admin(&kit, "root@example.com").await;
    let s = signed_in(&kit, &u, &["pwd", "otp", "mfa"]).await;
    let actor = match console(&kit.p, Some(&s), IDLE).await {
        Verdict::Allowed(a) => a,
        other => panic!("{other:?}"),
    };
    lock(&kit.p, &actor, &s).await;
    assert!(matches!(
        console(&kit.p, Some(&s), IDLE).await,
        Verdict::Reauth
    ));
    kit.advance(1);
    assert!(matches!(
        console(&kit.p, Some(&s), IDLE).await,
        Verdict::Reauth
    ));
    confirm_password(
        &kit.p,
        &Kit::cheap_hasher(),
        &rules(),
        &s,
        &SecretString::new(PASSWORD),
    )
    .await
    .unwrap();
    assert!(reauthenticated(&kit.p, &s, IDLE).await);
    assert!(allowed(&console(&kit.p, Some(&s), IDLE).await));
}

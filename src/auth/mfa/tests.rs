//! The second-factor use cases on a real store (the engine test kit), with a clock the tests
//! move.

use super::ceremony::{self, CeremonyKind, Taken};
use super::*;
use crate::store::SessionStore;
use crate::testkit::Kit;

/// A kit and a user of it (`p` is the kit's provider).
async fn kit_with_user() -> (Kit, User) {
    let kit = Kit::new().await;
    let user = kit.user(&format!("ann-{}@example.com", random_id())).await;
    (kit, user)
}

async fn another_user(kit: &Kit) -> User {
    kit.user(&format!("bob-{}@example.com", random_id())).await
}

fn phone() -> FactorName {
    FactorName::parse("Phone", "Authenticator app").unwrap()
}

/// Enrols an authenticator app for `user` with a code read from the key shown, as a person
/// would; returns its secret and what the confirmation returned.
async fn enrol(p: &Provider, user: &User) -> (TotpSecret, ConfirmedTotp) {
    let e = begin_totp_enrolment(p, user).await.unwrap();
    let secret = TotpSecret::parse_base32(e.key.as_str()).unwrap();
    let code = secret.code_at(p.now()).unwrap();
    let confirmed = confirm_totp_enrolment(p, &user.id, &e.id, &phone(), &code)
        .await
        .unwrap();
    (secret, confirmed)
}

#[tokio::test]
async fn an_authenticator_app_counts_only_once_a_code_from_it_confirms_it() {
    let (kit, user) = kit_with_user().await;
    let p = &kit.p;
    let e = begin_totp_enrolment(p, &user).await.unwrap();
    assert!(
        e.uri
            .as_str()
            .starts_with("otpauth://totp/id.example.test:ann-")
    );
    assert!(e.qr_svg.starts_with("<svg"));
    assert!(!has_second_factor(p, &user.id).await.unwrap());

    let secret = TotpSecret::parse_base32(e.key.as_str()).unwrap();
    let wrong = secret.code_at(p.now() + 300).unwrap();
    assert!(matches!(
        confirm_totp_enrolment(p, &user.id, &e.id, &phone(), &wrong).await,
        Err(MfaError::InvalidCode)
    ));
    let code = secret.code_at(p.now()).unwrap();
    let confirmed = confirm_totp_enrolment(p, &user.id, &e.id, &phone(), &code)
        .await
        .unwrap();
    let listed = factors(p, &user.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].id.as_str(),
            listed[0].kind,
            listed[0].name.as_str()
        ),
        (confirmed.factor_id.as_str(), FactorKind::Totp, "Phone")
    );
    // Confirming twice does not add a second factor.
    assert!(matches!(
        confirm_totp_enrolment(p, &user.id, &e.id, &phone(), &code).await,
        Err(MfaError::EnrolmentGone)
    ));
    // The code that confirmed the app cannot also sign in.
    assert!(matches!(
        verify_one_time_code(p, &user.id, &code).await,
        Err(MfaError::InvalidCode)
    ));
}

#[tokio::test]
async fn the_first_authenticator_app_brings_recovery_codes_and_the_second_does_not() {
    let (kit, user) = kit_with_user().await;
    let p = &kit.p;
    let (_, first) = enrol(p, &user).await;
    let codes = first.recovery_codes.unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(recovery_codes_left(p, &user.id).await.unwrap(), 10);
    let (_, second) = enrol(p, &user).await;
    assert!(second.recovery_codes.is_none());
}

#[tokio::test]
async fn an_enrolment_left_for_more_than_ten_minutes_expires() {
    let (kit, user) = kit_with_user().await;
    let p = &kit.p;
    let e = begin_totp_enrolment(p, &user).await.unwrap();
    let secret = TotpSecret::parse_base32(e.key.as_str()).unwrap();
    kit.advance(ENROLMENT_TTL);
    let code = secret.code_at(p.now()).unwrap();
    assert!(matches!(
        confirm_totp_enrolment(p, &user.id, &e.id, &phone(), &code).await,
        Err(MfaError::EnrolmentGone)
    ));
    assert!(factors(p, &user.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_code_is_accepted_once_within_one_step_of_the_clock_and_never_an_older_one() {
    let (kit, user) = kit_with_user().await;
    let p = &kit.p;
    let (secret, confirmed) = enrol(p, &user).await;
    let at = |offset: i64| secret.code_at(p.now() + offset).unwrap();
    let accepted = OneTimeCode::Totp {
        factor_id: confirmed.factor_id.clone(),
    };

    kit.advance(120);
    // One step late (the user read it just before it changed): accepted.
    assert_eq!(
        verify_one_time_code(p, &user.id, &at(-30)).await.unwrap(),
        accepted
    );
    let now_code = at(0);
    assert_eq!(
        verify_one_time_code(p, &user.id, &now_code).await.unwrap(),
        accepted
    );
    // The same code again, replayed within its window: refused.
    assert!(matches!(
        verify_one_time_code(p, &user.id, &now_code).await,
        Err(MfaError::InvalidCode)
    ));

    kit.advance(120);
    // Two steps off either way: refused.
    for offset in [-60, 60] {
        assert!(matches!(
            verify_one_time_code(p, &user.id, &at(offset)).await,
            Err(MfaError::InvalidCode)
        ));
    }
    // One step early (the phone's clock runs fast): accepted, and then the current step is
    // older than the last accepted one, so its code is refused.
    assert_eq!(
        verify_one_time_code(p, &user.id, &at(30)).await.unwrap(),
        accepted
    );
    assert!(matches!(
        verify_one_time_code(p, &user.id, &at(0)).await,
        Err(MfaError::InvalidCode)
    ));
    let used = factors(p, &user.id).await.unwrap();
    assert_eq!(used[0].last_used_at, Some(p.now()));
}

#[tokio::test]
async fn another_users_app_does_not_open_this_account() {
    let (kit, user) = kit_with_user().await;
    let p = &kit.p;
    let other = another_user(&kit).await;
    enrol(p, &user).await;
    let (theirs, _) = enrol(p, &other).await;
    let code = theirs.code_at(p.now() + 30).unwrap();
    assert!(matches!(
        verify_one_time_code(p, &user.id, &code).await,
        Err(MfaError::InvalidCode)
    ));
}

#[tokio::test]
async fn a_recovery_code_works_once_however_it_is_typed_and_regenerating_voids_the_old_set() {
    let (kit, user) = kit_with_user().await;
    let p = &kit.p;
    let (_, confirmed) = enrol(p, &user).await;
    let codes = confirmed.recovery_codes.unwrap();
    let typed = codes[0].as_str().to_uppercase().replace('-', " ");
    assert_eq!(
        verify_one_time_code(p, &user.id, &typed).await.unwrap(),
        OneTimeCode::RecoveryCode { left: 9 }
    );
    assert_eq!(OneTimeCode::RecoveryCode { left: 9 }.amr(), Amr::Otp);
    assert!(matches!(
        verify_one_time_code(p, &user.id, codes[0].as_str()).await,
        Err(MfaError::InvalidCode)
    ));
    assert_eq!(recovery_codes_left(p, &user.id).await.unwrap(), 9);

    let fresh = regenerate_recovery_codes(p, &user.id).await.unwrap();
    assert_eq!(recovery_codes_left(p, &user.id).await.unwrap(), 10);
    assert!(matches!(
        verify_one_time_code(p, &user.id, codes[1].as_str()).await,
        Err(MfaError::InvalidCode)
    ));
    assert!(
        verify_one_time_code(p, &user.id, fresh[1].as_str())
            .await
            .is_ok()
    );
    // Another user's code is not this user's.
    let other = another_user(&kit).await;
    assert!(matches!(
        verify_one_time_code(p, &other.id, fresh[2].as_str()).await,
        Err(MfaError::InvalidCode)
    ));
}

#[tokio::test]
async fn a_user_removes_their_own_factor_and_no_one_elses() {
    let (kit, user) = kit_with_user().await;
    let p = &kit.p;
    let other = another_user(&kit).await;
    let (_, confirmed) = enrol(p, &user).await;
    assert!(
        !remove_factor(p, &other.id, &confirmed.factor_id)
            .await
            .unwrap()
    );
    assert!(has_second_factor(p, &user.id).await.unwrap());
    assert!(
        remove_factor(p, &user.id, &confirmed.factor_id)
            .await
            .unwrap()
    );
    assert!(!has_second_factor(p, &user.id).await.unwrap());
}

#[tokio::test]
async fn resetting_mfa_removes_every_factor_and_code_and_ends_every_session() {
    let (kit, user) = kit_with_user().await;
    let p = &kit.p;
    enrol(p, &user).await;
    kit.session(&user).await;
    kit.session(&user).await;
    assert_eq!(
        p.store
            .list_user_sessions(&user.id, p.now())
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(reset_mfa(p, &user.id, "cli").await.unwrap(), 1);
    assert!(factors(p, &user.id).await.unwrap().is_empty());
    assert_eq!(recovery_codes_left(p, &user.id).await.unwrap(), 0);
    assert!(
        p.store
            .list_user_sessions(&user.id, p.now())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_ceremony_finishes_once_for_its_own_kind_and_not_after_five_minutes() {
    let (kit, user) = kit_with_user().await;
    let p = &kit.p;
    let state = vec!["challenge".to_string()];
    let handle = ceremony::begin(
        p,
        CeremonyKind::WebAuthnRegistration,
        Some(&user.id),
        &state,
    )
    .await
    .unwrap();
    let finish = |kind| ceremony::finish::<Vec<String>>(p, kind, handle.as_str());
    assert_eq!(finish(CeremonyKind::PasskeySignIn).await.unwrap(), None);
    assert_eq!(
        finish(CeremonyKind::WebAuthnRegistration).await.unwrap(),
        Some(Taken {
            user_id: Some(user.id.clone()),
            state: state.clone()
        })
    );
    assert_eq!(
        finish(CeremonyKind::WebAuthnRegistration).await.unwrap(),
        None
    );

    let late = ceremony::begin(p, CeremonyKind::PasskeySignIn, None, &state)
        .await
        .unwrap();
    kit.advance(ceremony::CEREMONY_TTL);
    assert_eq!(
        ceremony::finish::<Vec<String>>(p, CeremonyKind::PasskeySignIn, late.as_str())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        ceremony::finish::<Vec<String>>(p, CeremonyKind::PasskeySignIn, "no-such-handle")
            .await
            .unwrap(),
        None
    );
}

#[test]
fn factor_names_are_trimmed_bounded_and_default_when_empty() {
    assert_eq!(
        FactorName::parse("  Phone ", "App").unwrap().as_str(),
        "Phone"
    );
    assert_eq!(FactorName::parse("   ", "App").unwrap().as_str(), "App");
    assert!(FactorName::parse(&"x".repeat(65), "App").is_err());
    assert!(FactorName::parse("a\u{0007}b", "App").is_err());
    assert_eq!(
        FactorName::parse(&"é".repeat(64), "App").unwrap().as_str(),
        "é".repeat(64)
    );
}

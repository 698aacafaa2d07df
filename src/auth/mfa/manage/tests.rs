//! Managing one's own factors on a real store with a clock the tests move: the five-minute
//! re-authentication edge, the enrolment bound to its session, the confirmation throttle, and
//! what a change does to the other sessions.

use super::*;
use crate::auth::mfa::totp::TotpSecret;
use crate::auth::mfa::{ENROLMENT_TTL, has_second_factor, recovery_codes_left};
use crate::config::Config;
use crate::crypto::random_id;
use crate::store::SessionStore;
use crate::testkit::{Kit, PASSWORD};

struct Fixture {
    kit: Kit,
    mailer: Mailer,
    throttle: ThrottlePolicy,
}

impl Fixture {
    async fn new() -> Self {
        Self {
            kit: Kit::new().await,
            mailer: Mailer::Log,
            throttle: Config::default().throttle_policy(),
        }
    }

    fn ctx(&self) -> ChangeContext<'_> {
        ChangeContext {
            mailer: &self.mailer,
            throttle: &self.throttle,
            ip: None,
            user_agent: None,
        }
    }

    fn p(&self) -> &Provider {
        &self.kit.p
    }

    /// A user signed in just now.
    async fn signed_in(&self) -> ActiveSession {
        let user = self
            .kit
            .user(&format!("ann-{}@example.com", random_id()))
            .await;
        self.kit.session(&user).await.1
    }

    async fn live_sessions(&self, user: &User) -> usize {
        self.p()
            .store
            .list_user_sessions(&user.id, self.p().now())
            .await
            .unwrap()
            .len()
    }
}

fn phone() -> FactorName {
    FactorName::parse("Phone", "Authenticator app").unwrap()
}

/// What a person reads off the enrolment page: the key, and the form's token.
fn shown(p: &Provider, active: &ActiveSession, e: &TotpEnrolment) -> (TotpSecret, String) {
    let secret = TotpSecret::parse_base32(e.key.as_str()).unwrap();
    (secret, enrolment_token(p, &active.session.id, &e.id))
}

/// Adds an authenticator app from `active`'s session; returns its key and the confirmation.
async fn add_app(f: &Fixture, active: &ActiveSession) -> (TotpSecret, ConfirmedTotp) {
    let p = f.p();
    let e = start_totp(p, active).await.unwrap();
    let (secret, token) = shown(p, active, &e);
    let code = secret.code_at(p.now()).unwrap();
    let confirmed = finish_totp(p, &f.ctx(), active, &token, &phone(), &code)
        .await
        .unwrap();
    (secret, confirmed)
}

#[tokio::test]
async fn a_change_needs_an_authentication_at_most_five_minutes_old() {
    let f = Fixture::new().await;
    let p = f.p();
    let active = f.signed_in().await;
    f.kit.advance(REAUTH_WINDOW);
    assert!(
        start_totp(p, &active).await.is_ok(),
        "five minutes to the second: still fresh"
    );
    f.kit.advance(1);
    assert!(matches!(
        start_totp(p, &active).await,
        Err(ChangeError::ReauthNeeded)
    ));
    assert!(matches!(
        regenerate(p, &f.ctx(), &active).await,
        Err(ChangeError::ReauthNeeded)
    ));
    assert!(matches!(
        remove(p, &f.ctx(), &active, "any").await,
        Err(ChangeError::ReauthNeeded)
    ));
    assert_eq!(recovery_codes_left(p, &active.user.id).await.unwrap(), 0);
}

#[tokio::test]
async fn the_password_typed_again_opens_five_more_minutes_and_a_wrong_one_does_not() {
    let f = Fixture::new().await;
    let p = f.p();
    let hasher = Kit::cheap_hasher();
    let active = f.signed_in().await;
    f.kit.advance(3600);
    let wrong = SecretString::new("not the password");
    assert!(matches!(
        confirm_password(p, &hasher, &f.throttle, &active, &wrong).await,
        Err(ChangeError::WrongPassword)
    ));
    assert!(!recently_authenticated(p, &active.session).await);

    confirm_password(
        p,
        &hasher,
        &f.throttle,
        &active,
        &SecretString::new(PASSWORD),
    )
    .await
    .unwrap();
    assert_eq!(last_authenticated(p, &active.session).await, p.now());
    f.kit.advance(REAUTH_WINDOW);
    assert!(start_totp(p, &active).await.is_ok());
    f.kit.advance(1);
    assert!(matches!(
        start_totp(p, &active).await,
        Err(ChangeError::ReauthNeeded)
    ));
}

#[tokio::test]
async fn a_code_from_the_app_confirms_it_is_you_once() {
    let f = Fixture::new().await;
    let p = f.p();
    let active = f.signed_in().await;
    let (secret, confirmed) = add_app(&f, &active).await;
    f.kit.advance(3600);
    let code = secret.code_at(p.now()).unwrap();
    confirm_code(p, &f.throttle, &active, &code).await.unwrap();
    assert!(recently_authenticated(p, &active.session).await);
    // The same code again, inside its window: refused.
    assert!(matches!(
        confirm_code(p, &f.throttle, &active, &code).await,
        Err(ChangeError::Mfa(MfaError::InvalidCode))
    ));
    f.kit.advance(REAUTH_WINDOW + 1);
    assert!(!recently_authenticated(p, &active.session).await);
    // A recovery code works too, once.
    let recovery = &confirmed.recovery_codes.unwrap()[0];
    confirm_code(p, &f.throttle, &active, recovery.as_str())
        .await
        .unwrap();
    assert!(
        confirm_code(p, &f.throttle, &active, recovery.as_str())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_re_authentication_counts_for_its_own_session_only() {
    let f = Fixture::new().await;
    let p = f.p();
    let active = f.signed_in().await;
    let (_, other) = f.kit.session(&active.user).await;
    f.kit.advance(3600);
    confirm_password(
        p,
        &Kit::cheap_hasher(),
        &f.throttle,
        &active,
        &SecretString::new(PASSWORD),
    )
    .await
    .unwrap();
    assert!(recently_authenticated(p, &active.session).await);
    assert!(!recently_authenticated(p, &other.session).await);
}

#[tokio::test]
async fn adding_an_app_ends_the_other_sessions_and_keeps_this_one() {
    let f = Fixture::new().await;
    let p = f.p();
    let active = f.signed_in().await;
    f.kit.session(&active.user).await;
    f.kit.session(&active.user).await;
    assert_eq!(f.live_sessions(&active.user).await, 3);
    let (_, confirmed) = add_app(&f, &active).await;
    assert_eq!(confirmed.recovery_codes.map(|c| c.len()), Some(10));
    let left = p
        .store
        .list_user_sessions(&active.user.id, p.now())
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, active.session.id);
}

#[tokio::test]
async fn an_enrolment_is_confirmed_only_by_the_session_that_began_it() {
    let f = Fixture::new().await;
    let p = f.p();
    let active = f.signed_in().await;
    let (_, elsewhere) = f.kit.session(&active.user).await;
    let e = start_totp(p, &active).await.unwrap();
    let (secret, token) = shown(p, &active, &e);
    let code = secret.code_at(p.now()).unwrap();
    assert!(matches!(
        finish_totp(p, &f.ctx(), &elsewhere, &token, &phone(), &code).await,
        Err(ChangeError::OtherSession)
    ));
    // A bare enrolment id (no binding) is refused too.
    assert!(matches!(
        finish_totp(p, &f.ctx(), &elsewhere, &e.id, &phone(), &code).await,
        Err(ChangeError::OtherSession)
    ));
    assert!(!has_second_factor(p, &active.user.id).await.unwrap());
    assert_eq!(f.live_sessions(&active.user).await, 2);
    // The session that began it still can.
    finish_totp(p, &f.ctx(), &active, &token, &phone(), &code)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_code_of_another_pending_enrolment_does_not_confirm_this_one() {
    let f = Fixture::new().await;
    let p = f.p();
    let active = f.signed_in().await;
    let first = start_totp(p, &active).await.unwrap();
    let (first_key, first_token) = shown(p, &active, &first);
    let second = start_totp(p, &active).await.unwrap();
    let (second_key, second_token) = shown(p, &active, &second);
    // Another user's pending enrolment, too.
    let other = f.signed_in().await;
    let theirs = start_totp(p, &other).await.unwrap();
    let (their_key, _) = shown(p, &other, &theirs);

    for wrong in [&first_key, &their_key] {
        let code = wrong.code_at(p.now()).unwrap();
        assert!(matches!(
            finish_totp(p, &f.ctx(), &active, &second_token, &phone(), &code).await,
            Err(ChangeError::Mfa(MfaError::InvalidCode))
        ));
    }
    // Beginning again replaced the first enrolment: its own code no longer finishes it.
    let code = first_key.code_at(p.now()).unwrap();
    assert!(matches!(
        finish_totp(p, &f.ctx(), &active, &first_token, &phone(), &code).await,
        Err(ChangeError::Mfa(MfaError::EnrolmentGone))
    ));
    assert!(!has_second_factor(p, &active.user.id).await.unwrap());
    let code = second_key.code_at(p.now()).unwrap();
    finish_totp(p, &f.ctx(), &active, &second_token, &phone(), &code)
        .await
        .unwrap();
}

#[tokio::test]
async fn confirming_twice_adds_one_app_and_the_second_confirmation_does_nothing() {
    let f = Fixture::new().await;
    let p = f.p();
    let active = f.signed_in().await;
    let e = start_totp(p, &active).await.unwrap();
    let (secret, token) = shown(p, &active, &e);
    let code = secret.code_at(p.now()).unwrap();
    let first = finish_totp(p, &f.ctx(), &active, &token, &phone(), &code).await;
    assert!(first.unwrap().recovery_codes.is_some());
    f.kit.advance(30);
    let next = secret.code_at(p.now()).unwrap();
    assert!(matches!(
        finish_totp(p, &f.ctx(), &active, &token, &phone(), &next).await,
        Err(ChangeError::Mfa(MfaError::EnrolmentGone))
    ));
    assert_eq!(factors(p, &active.user.id).await.unwrap().len(), 1);
    assert_eq!(recovery_codes_left(p, &active.user.id).await.unwrap(), 10);
}

#[tokio::test]
async fn an_enrolment_confirms_until_its_last_second_and_not_after() {
    let f = Fixture::new().await;
    let p = f.p();
    let active = f.signed_in().await;
    let late = start_totp(p, &active).await.unwrap();
    let (secret, token) = shown(p, &active, &late);
    f.kit.advance(ENROLMENT_TTL);
    let code = secret.code_at(p.now()).unwrap();
    assert!(matches!(
        finish_totp(p, &f.ctx(), &active, &token, &phone(), &code).await,
        Err(ChangeError::Mfa(MfaError::EnrolmentGone))
    ));
    assert!(matches!(
        show_totp(p, &active.user, &late.id).await,
        Err(MfaError::EnrolmentGone)
    ));

    let fresh = f.signed_in().await;
    let e = start_totp(p, &fresh).await.unwrap();
    let (secret, token) = shown(p, &fresh, &e);
    f.kit.advance(ENROLMENT_TTL - 1);
    // Shown again with the same key, until the end.
    let again = show_totp(p, &fresh.user, &e.id).await.unwrap();
    assert_eq!(again.key.as_str(), e.key.as_str());
    let code = secret.code_at(p.now()).unwrap();
    finish_totp(p, &f.ctx(), &fresh, &token, &phone(), &code)
        .await
        .unwrap();
}

#[tokio::test]
async fn bulk_guesses_at_the_confirmation_lock_it_even_for_the_right_code() {
    let f = Fixture::new().await;
    let p = f.p();
    let active = f.signed_in().await;
    let e = start_totp(p, &active).await.unwrap();
    let (secret, token) = shown(p, &active, &e);
    let right = secret.code_at(p.now()).unwrap();
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..f.throttle.threshold {
        assert!(matches!(
            finish_totp(p, &f.ctx(), &active, &token, &phone(), wrong).await,
            Err(ChangeError::Mfa(MfaError::InvalidCode))
        ));
    }
    assert!(matches!(
        finish_totp(p, &f.ctx(), &active, &token, &phone(), &right).await,
        Err(ChangeError::Locked(_))
    ));
    assert!(!has_second_factor(p, &active.user.id).await.unwrap());
    // The lock ends; the enrolment was left alone and the right code finishes it.
    f.kit.advance(f.throttle.base);
    let right = secret.code_at(p.now()).unwrap();
    finish_totp(p, &f.ctx(), &active, &token, &phone(), &right)
        .await
        .unwrap();
}

#[tokio::test]
async fn removing_another_users_factor_is_refused_and_changes_nothing() {
    let f = Fixture::new().await;
    let p = f.p();
    let owner = f.signed_in().await;
    let (_, theirs) = add_app(&f, &owner).await;
    let attacker = f.signed_in().await;
    f.kit.session(&attacker.user).await;
    assert!(matches!(
        remove(p, &f.ctx(), &attacker, &theirs.factor_id).await,
        Err(ChangeError::NoSuchFactor)
    ));
    assert!(has_second_factor(p, &owner.user.id).await.unwrap());
    assert_eq!(f.live_sessions(&attacker.user).await, 2);

    let removed = remove(p, &f.ctx(), &owner, &theirs.factor_id)
        .await
        .unwrap();
    assert_eq!(removed.name, "Phone");
    assert!(!has_second_factor(p, &owner.user.id).await.unwrap());
    assert!(matches!(
        remove(p, &f.ctx(), &owner, &theirs.factor_id).await,
        Err(ChangeError::NoSuchFactor)
    ));
}

#[tokio::test]
async fn regenerating_recovery_codes_voids_the_old_set() {
    let f = Fixture::new().await;
    let p = f.p();
    let active = f.signed_in().await;
    let (_, confirmed) = add_app(&f, &active).await;
    let old = confirmed.recovery_codes.unwrap();
    let fresh = regenerate(p, &f.ctx(), &active).await.unwrap();
    assert_eq!(fresh.len(), 10);
    assert!(
        super::super::verify_one_time_code(p, &active.user.id, old[0].as_str())
            .await
            .is_err()
    );
    assert!(
        super::super::verify_one_time_code(p, &active.user.id, fresh[0].as_str())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_notice_names_the_change_when_it_happened_and_what_to_do_if_it_was_not_you() {
    let f = Fixture::new().await;
    let active = f.signed_in().await;
    let notice = Notice {
        subject: "An authenticator app was added to your account",
        what: "An authenticator app (\u{201c}Phone\u{201d}) was added to".into(),
    };
    let mail = security_notice(f.p(), &active.user, &notice);
    assert_eq!(mail.to, active.user.email);
    assert_eq!(mail.subject, notice.subject);
    let text = mail.text.expose();
    assert!(text.starts_with(&format!(
        "An authenticator app (\u{201c}Phone\u{201d}) was added to your account {} on {}.",
        active.user.email,
        utc(f.p().now())
    )));
    assert!(text.contains("https://id.example.test/password/forgot"));
    assert_eq!(utc(1_800_000_000), "2027-01-15 08:00:00 UTC");
}

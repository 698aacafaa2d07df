//! The operator's user actions on a real provider with a manual clock: search, filters and
//! keyset pages, the last-admin rule, invitations and their expiry, forced resets, unlock.

use std::sync::{Arc, Mutex};

use super::*;
use crate::auth::policy::PasswordPolicy;
use crate::auth::signin::{SignInError, SignInOutcome, SignInRequest, SignInRules, sign_in};
use crate::config::SessionLimitPolicy;
use crate::mail::Mail;
use crate::store::{ConsentStore, FactorKind, MfaFactor};
use crate::testkit::{Kit, PASSWORD};

/// Three failures lock for 60 s, doubling up to 600 s.
const POLICY: ThrottlePolicy = ThrottlePolicy {
    threshold: 3,
    base: 60,
    max: 600,
    ip_limit: 1000,
    ip_window: 900,
};

const INVITATION_TTL: i64 = 72 * 3600;
const RESET_TTL: i64 = 1800;

fn rules(mailer: &Mailer) -> UserRules<'_> {
    UserRules {
        mailer,
        throttle: POLICY,
        invitation_ttl: INVITATION_TTL,
        reset_ttl: RESET_TTL,
    }
}

type Outbox = Arc<Mutex<Vec<Mail>>>;

fn memory_mailer() -> (Mailer, Outbox) {
    let outbox = Outbox::default();
    (Mailer::Memory(outbox.clone()), outbox)
}

/// The token of the link in the last mail sent.
fn last_link_token(outbox: &Outbox) -> String {
    let sent = outbox.lock().unwrap();
    let text = sent.last().expect("a mail was sent").text.expose().clone();
    let start = text.find("token=").expect("a link in the mail") + "token=".len();
    text[start..].split_whitespace().next().unwrap().to_string()
}

fn policy() -> PasswordPolicy {
    PasswordPolicy {
        min_chars: 12,
        max_chars: 256,
    }
}

/// A user (password [`PASSWORD`]) with this name and these roles, created now.
async fn add(k: &Kit, email: &str, name: &str, roles: &[&str]) -> User {
    let user = k.user(email).await;
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        k.p.store
            .set_user_roles(&user.id, &roles, k.now())
            .await
            .unwrap(),
        Guarded::Done
    );
    k.p.store
        .set_user_name(&user.id, Some(name), k.now())
        .await
        .unwrap();
    k.p.store.find_user(&user.id).await.unwrap().unwrap()
}

async fn page(k: &Kit, input: ListInput) -> UserPage {
    let mailer = Mailer::Log;
    list(&k.p, &rules(&mailer), &input).await.unwrap()
}

async fn emails(k: &Kit, input: ListInput) -> Vec<String> {
    page(k, input)
        .await
        .users
        .into_iter()
        .map(|u| u.email)
        .collect()
}

fn search(query: &str) -> ListInput {
    ListInput {
        query: query.into(),
        ..ListInput::default()
    }
}

async fn password_sign_in(k: &Kit, email: &str, password: &str) -> Result<(), SignInError> {
    let hasher = Kit::cheap_hasher();
    let rules = SignInRules {
        hasher: &hasher,
        throttle: POLICY,
        max_sessions: 0,
        session_policy: SessionLimitPolicy::EvictOldest,
    };
    let request = SignInRequest {
        email,
        password: SecretString::new(password),
        ip: Some("198.51.100.7".into()),
        ip_key: Some("198.51.100.7".into()),
        user_agent: None,
        trusted_device: None,
        previous_session: None,
        wants_mfa: false,
        resume: None,
    };
    match sign_in(&k.p, &rules, request).await? {
        SignInOutcome::SignedIn(_) | SignInOutcome::MustEnrol(_) => Ok(()),
        SignInOutcome::SecondStep { .. } => Ok(()),
    }
}

async fn totp_factor(k: &Kit, user: &User, name: &str) {
    let factor = MfaFactor {
        id: random_id(),
        user_id: user.id.clone(),
        kind: FactorKind::Totp,
        name: name.into(),
        created_at: k.now(),
        last_used_at: None,
        secret_enc: Some(vec![1, 2, 3]),
        last_step: None,
        credential_id: None,
        credential: None,
        passwordless: false,
    };
    k.p.store.insert_factor(&factor).await.unwrap();
}

#[tokio::test]
async fn a_search_finds_users_by_a_prefix_or_a_substring_of_email_name_or_id_in_any_case() {
    let k = Kit::new().await;
    let ann = add(&k, "ann.smith@example.test", "Ann Smith", &[]).await;
    let bob = add(&k, "bob@corp.test", "Robert Jones", &[]).await;
    let only_ann = vec![ann.email.clone()];
    let only_bob = vec![bob.email.clone()];

    assert_eq!(emails(&k, search("ANN")).await, only_ann, "email prefix");
    assert_eq!(emails(&k, search("smith@ex")).await, only_ann, "substring");
    assert_eq!(emails(&k, search("corp")).await, only_bob);
    assert_eq!(emails(&k, search("rob")).await, only_bob, "name prefix");
    assert_eq!(
        emails(&k, search("  JONES ")).await,
        only_bob,
        "name, any case"
    );
    assert_eq!(emails(&k, search(&bob.id)).await, only_bob, "the id");
    assert_eq!(
        emails(&k, search(&bob.id[..10])).await,
        only_bob,
        "id prefix"
    );
    assert_eq!(emails(&k, search("%")).await, Vec::<String>::new());
    assert_eq!(emails(&k, search("nobody")).await, Vec::<String>::new());
    assert_eq!(emails(&k, search("")).await.len(), 2);
}

#[tokio::test]
async fn the_filters_find_disabled_users_users_without_a_second_factor_and_locked_users() {
    let k = Kit::new().await;
    let ann = add(&k, "ann@example.test", "Ann", &[]).await;
    let bob = add(&k, "bob@example.test", "Bob", &[]).await;
    totp_factor(&k, &ann, "Phone").await;
    disable(&k.p, &Actor::Cli, &bob.id).await.unwrap();

    let disabled = ListInput {
        disabled: true,
        ..ListInput::default()
    };
    assert_eq!(emails(&k, disabled).await, vec![bob.email.clone()]);
    let without_mfa = ListInput {
        without_mfa: true,
        ..ListInput::default()
    };
    assert_eq!(emails(&k, without_mfa).await, vec![bob.email.clone()]);
    let all = page(&k, ListInput::default()).await;
    let ann_row = all.users.iter().find(|u| u.id == ann.id).unwrap();
    assert_eq!(ann_row.factors, 1);
    assert_eq!(ann_row.locked_until, None);

    let locked = || ListInput {
        locked: true,
        ..ListInput::default()
    };
    assert_eq!(emails(&k, locked()).await, Vec::<String>::new());
    for _ in 0..3 {
        assert!(
            password_sign_in(&k, &ann.email, "wrong password!")
                .await
                .is_err()
        );
    }
    let found = page(&k, locked()).await.users;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, ann.id);
    assert_eq!(found[0].locked_until, Some(k.now() + 60));
    assert!(matches!(
        password_sign_in(&k, &ann.email, PASSWORD).await,
        Err(SignInError::Locked(_))
    ));

    assert!(
        unlock(&k.p, &Actor::Admin("op".into()), &ann.id)
            .await
            .unwrap()
    );
    assert_eq!(emails(&k, locked()).await, Vec::<String>::new());
    password_sign_in(&k, &ann.email, PASSWORD).await.unwrap();
    let audit = k.p.store.audit_about(&ann.id, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "user.unlocked" && a.actor.as_deref() == Some("admin:op"))
    );

    // A lock that ends by itself leaves the list when it ends.
    for _ in 0..3 {
        assert!(
            password_sign_in(&k, &ann.email, "wrong password!")
                .await
                .is_err()
        );
    }
    k.advance(59);
    assert_eq!(emails(&k, locked()).await, vec![ann.email.clone()]);
    k.advance(1);
    assert_eq!(emails(&k, locked()).await, Vec::<String>::new());
}

#[tokio::test]
async fn pages_follow_each_other_without_gap_or_repeat_when_users_share_a_creation_second() {
    let k = Kit::new().await;
    for i in 0..7 {
        k.user(&format!("u{i}@example.test")).await;
    }
    let first = page(
        &k,
        ListInput {
            limit: Some(3),
            ..ListInput::default()
        },
    )
    .await;
    assert_eq!(first.users.len(), 3);
    assert!(first.previous.is_none());
    let next = |cursor: &Option<Cursor>| ListInput {
        limit: Some(3),
        cursor: cursor.clone(),
        ..ListInput::default()
    };
    let second = page(&k, next(&first.next)).await;
    let third = page(&k, next(&second.next)).await;
    assert_eq!(second.users.len(), 3);
    assert_eq!(third.users.len(), 1);
    assert!(third.next.is_none());
    let ids: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|p| p.users.iter().map(|u| u.id.clone()))
        .collect();
    let mut expected = ids.clone();
    expected.sort();
    expected.reverse();
    assert_eq!(ids, expected, "newest first, then by id, across pages");
    expected.dedup();
    assert_eq!(expected.len(), 7, "every user once");

    // Back from the third page: the second, then the first.
    let back = page(&k, next(&third.previous)).await;
    assert_eq!(back.users, second.users);
    let back = page(&k, next(&back.previous)).await;
    assert_eq!(back.users, first.users);
    assert!(back.previous.is_none());

    // A cursor that is not one is refused.
    assert!(matches!(
        Cursor::parse("x.1.abc"),
        Err(AdminError::Invalid(_))
    ));
    assert_eq!(
        Cursor::parse(&first.next.clone().unwrap().encode()).unwrap(),
        first.next.unwrap()
    );
}

#[tokio::test]
async fn the_list_sorts_by_last_sign_in_newest_first_and_never_signed_in_last() {
    let k = Kit::new().await;
    let never = k.user("never@example.test").await;
    let early = k.user("early@example.test").await;
    let late = k.user("late@example.test").await;
    k.advance(10);
    k.session(&early).await;
    let early_at = k.now();
    k.advance(10);
    k.session(&late).await;
    let by_signin = ListInput {
        sort: UserSort::LastSignIn,
        ..ListInput::default()
    };
    let found = page(&k, by_signin.clone()).await.users;
    let order: Vec<&str> = found.iter().map(|u| u.email.as_str()).collect();
    assert_eq!(order, [&late.email, &early.email, &never.email]);
    assert_eq!(found[1].last_signin_at, Some(early_at));
    assert_eq!(found[2].last_signin_at, None);

    // A later sign-in moves a user up.
    k.advance(10);
    k.session(&early).await;
    let found = page(&k, by_signin).await.users;
    assert_eq!(found[0].email, early.email);
}

#[tokio::test]
async fn the_last_enabled_admin_keeps_the_role_and_an_admin_cannot_demote_or_disable_themselves() {
    let k = Kit::new().await;
    let ann = add(&k, "ann@example.test", "Ann", &["admin"]).await;
    let bob = add(&k, "bob@example.test", "Bob", &[]).await;
    let none: &[&str] = &[];

    for actor in [Actor::Cli, Actor::Admin(bob.id.clone())] {
        assert!(matches!(
            set_roles(&k.p, &actor, &ann.id, none).await,
            Err(AdminError::Invalid(_))
        ));
        assert!(matches!(
            disable(&k.p, &actor, &ann.id).await,
            Err(AdminError::Invalid(_))
        ));
    }
    let stored = k.p.store.find_user(&ann.id).await.unwrap().unwrap();
    assert_eq!(stored.roles, ["admin"]);
    assert!(!stored.disabled);

    set_roles(&k.p, &Actor::Cli, &bob.id, &["admin", "ops"])
        .await
        .unwrap();
    let as_ann = Actor::Admin(ann.id.clone());
    assert!(matches!(
        set_roles(&k.p, &as_ann, &ann.id, &["ops"]).await,
        Err(AdminError::Invalid(_))
    ));
    assert!(matches!(
        disable(&k.p, &as_ann, &ann.id).await,
        Err(AdminError::Invalid(_))
    ));
    // Another admin may.
    let as_bob = Actor::Admin(bob.id.clone());
    let changed = set_roles(&k.p, &as_bob, &ann.id, &["ops"]).await.unwrap();
    assert_eq!(changed.roles, ["ops"]);
    let entry = k.p.store.audit_about(&ann.id, 1).await.unwrap().remove(0);
    assert_eq!(entry.action, "user.roles_changed");
    assert_eq!(entry.actor, Some(format!("admin:{}", bob.id)));
    // Now bob is the last one.
    assert!(matches!(
        set_roles(&k.p, &Actor::Cli, &bob.id, none).await,
        Err(AdminError::Invalid(_))
    ));
    assert!(matches!(
        set_roles(&k.p, &Actor::Cli, "nobody", none).await,
        Err(AdminError::NotFound(_))
    ));
}

#[test]
fn roles_are_short_lower_case_names_and_names_are_plain_text() {
    assert_eq!(
        parse_roles(&["ops", "admin", "ops", "a_b-9"]).unwrap(),
        ["ops", "admin", "a_b-9"]
    );
    for bad in ["Admin", "a b", "", "é", &"x".repeat(33)] {
        assert!(parse_roles(&[bad]).is_err(), "{bad:?}");
    }
    let many: Vec<String> = (0..17).map(|i| format!("r{i}")).collect();
    assert!(parse_roles(&many).is_err());
    assert_eq!(parse_name(Some("  Ann  ")).unwrap().as_deref(), Some("Ann"));
    assert_eq!(parse_name(Some("   ")).unwrap(), None);
    assert!(parse_name(Some("a\u{0}b")).is_err());
    assert!(parse_name(Some(&"n".repeat(129))).is_err());
}

#[tokio::test]
async fn an_invitation_creates_a_user_without_a_password_whose_link_works_once_until_it_expires() {
    let k = Kit::new().await;
    let (mailer, outbox) = memory_mailer();
    let r = rules(&mailer);
    let actor = Actor::Admin("op".into());
    let new = NewUser {
        email: " Nia@Example.test ".into(),
        name: Some(" Nia ".into()),
        roles: vec!["staff".into()],
    };
    let invited = invite(&k.p, &actor, &r, &new).await.unwrap();
    assert!(invited.mailed);
    assert_eq!(invited.user.email, "nia@example.test");
    assert_eq!(invited.user.name.as_deref(), Some("Nia"));
    assert_eq!(invited.expires_at, k.now() + INVITATION_TTL);
    {
        let sent = outbox.lock().unwrap();
        assert_eq!(sent[0].to, "nia@example.test");
        assert!(sent[0].text.expose().contains("invitation"));
    }
    let token = last_link_token(&outbox);
    // No password works before the invitation is accepted.
    assert!(matches!(
        password_sign_in(&k, "nia@example.test", PASSWORD).await,
        Err(SignInError::BadCredentials)
    ));
    assert!(!page(&k, search("nia")).await.users[0].has_password);
    assert!(matches!(
        invite(&k.p, &actor, &r, &new).await,
        Err(AdminError::Conflict(_))
    ));
    let bad = NewUser {
        email: "not an email".into(),
        ..new.clone()
    };
    assert!(matches!(
        invite(&k.p, &actor, &r, &bad).await,
        Err(AdminError::Invalid(_))
    ));

    k.set(invited.expires_at - 1);
    assert!(recovery::reset_link_usable(&k.p, &token).await.unwrap());
    let chosen = SecretString::new("a brand new passphrase");
    recovery::complete_password_reset(&k.p, &Kit::cheap_hasher(), &policy(), &token, &chosen)
        .await
        .unwrap();
    password_sign_in(&k, "nia@example.test", chosen.expose())
        .await
        .unwrap();
    assert!(!recovery::reset_link_usable(&k.p, &token).await.unwrap());
    let audit = k.p.store.audit_about(&invited.user.id, 10).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert!(actions.contains(&"user.invitation_accepted"), "{actions:?}");
    assert!(actions.contains(&"user.invited"));
    assert!(
        audit
            .iter()
            .any(|a| a.action == "user.created" && a.actor.as_deref() == Some("admin:op"))
    );

    // Another invitation, at its end: the link is dead.
    let other = NewUser {
        email: "omar@example.test".into(),
        name: None,
        roles: vec![],
    };
    let invited = invite(&k.p, &actor, &r, &other).await.unwrap();
    let token = last_link_token(&outbox);
    k.set(invited.expires_at);
    assert!(!recovery::reset_link_usable(&k.p, &token).await.unwrap());
    assert!(
        recovery::complete_password_reset(&k.p, &Kit::cheap_hasher(), &policy(), &token, &chosen)
            .await
            .is_err()
    );
    // A new invitation replaces it.
    invite_again(&k.p, &actor, &r, &invited.user.id)
        .await
        .unwrap();
    assert!(
        recovery::reset_link_usable(&k.p, &last_link_token(&outbox))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn disabling_ends_every_session_and_refresh_token_at_once_and_enabling_lets_the_user_back() {
    let k = Kit::new().await;
    let s = k.signed_in().await;
    let actor = Actor::Admin("op".into());
    assert_eq!(disable(&k.p, &actor, &s.user.id).await.unwrap(), 1);
    assert!(k.refresh(&s.client, &s.refresh_token()).await.is_err());
    assert!(k.resolve(&s.cookie).await.is_none());
    assert!(show(&k.p, &s.user.id).await.unwrap().sessions.is_empty());
    assert!(page(&k, search("ada")).await.users[0].disabled);
    enable(&k.p, &actor, &s.user.id).await.unwrap();
    password_sign_in(&k, &s.user.email, PASSWORD).await.unwrap();
    let entry = k.p.store.audit_about(&s.user.id, 5).await.unwrap();
    assert!(
        entry
            .iter()
            .any(|a| a.action == "user.disabled" && a.actor.as_deref() == Some("admin:op"))
    );
}

#[tokio::test]
async fn a_forced_reset_stops_the_old_password_and_every_session_and_mails_a_working_link() {
    let k = Kit::new().await;
    let s = k.signed_in().await;
    let (mailer, outbox) = memory_mailer();
    let done = force_password_reset(&k.p, &Actor::Cli, &rules(&mailer), &s.user.id)
        .await
        .unwrap();
    assert_eq!(
        done,
        ForcedReset {
            sessions_ended: 1,
            mailed: true
        }
    );
    assert!(k.refresh(&s.client, &s.refresh_token()).await.is_err());
    assert!(matches!(
        password_sign_in(&k, &s.user.email, PASSWORD).await,
        Err(SignInError::BadCredentials)
    ));
    let token = last_link_token(&outbox);
    let chosen = SecretString::new("another long passphrase");
    recovery::complete_password_reset(&k.p, &Kit::cheap_hasher(), &policy(), &token, &chosen)
        .await
        .unwrap();
    password_sign_in(&k, &s.user.email, chosen.expose())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_users_page_shows_sessions_factors_consents_and_audit_entries_but_no_secret() {
    let k = Kit::new().await;
    let s = k.signed_in().await;
    totp_factor(&k, &s.user, "Phone").await;
    k.p.store
        .save_consent(&s.user.id, "webapp", &["openid".into()], k.now())
        .await
        .unwrap();
    sign_out_everywhere(&k.p, &Actor::Cli, &s.user.id)
        .await
        .unwrap();
    let (_, again) = k.session(&s.user).await;

    let detail = show(&k.p, &s.user.id).await.unwrap();
    assert_eq!(detail.user.email, s.user.email);
    assert_eq!(detail.sessions.len(), 1);
    assert_eq!(detail.sessions[0].id, again.session.id);
    assert_eq!(detail.sessions[0].device.as_deref(), Some("engine-test"));
    assert_eq!(detail.factors.len(), 1);
    assert_eq!(detail.factors[0].name, "Phone");
    assert_eq!(detail.factors[0].kind, "totp");
    assert_eq!(detail.consents[0].client_id, "webapp");
    assert!(
        detail
            .audit
            .iter()
            .any(|a| a.action == "sessions.revoked_all" && a.actor.as_deref() == Some("cli"))
    );
    let json = serde_json::to_string(&detail).unwrap();
    assert!(!json.contains("argon2"), "no password hash: {json}");
    assert!(!json.contains("secret_enc"));
    assert!(matches!(
        show(&k.p, "nobody").await,
        Err(AdminError::NotFound(_))
    ));
    assert_eq!(find(&k.p, "ADA@example.test").await.unwrap().id, s.user.id);
    assert_eq!(find(&k.p, &s.user.id).await.unwrap().id, s.user.id);
}

/// An invited user who sets their password through a "forgot password" link instead (the
/// invitation mail went astray, or they simply went to the sign-in page) has a password: the
/// invitation link, still within its days-long lifetime, must stop working, or whoever holds
/// that mail can later replace the password and take the account. And the other way round.
#[tokio::test]
async fn setting_a_password_through_either_link_kills_the_other_kind_too() {
    let k = Kit::new().await;
    let (mailer, outbox) = memory_mailer();
    let r = rules(&mailer);
    let actor = Actor::Admin("op".into());
    let new = NewUser {
        email: "nia@example.test".into(),
        name: None,
        roles: vec![],
    };
    let invited = invite(&k.p, &actor, &r, &new).await.unwrap();
    let invitation = last_link_token(&outbox);
    let reset = recovery::issue(
        &k.p,
        &invited.user,
        crate::store::AccountTokenKind::PasswordReset,
        RESET_TTL,
    )
    .await
    .unwrap();
    let chosen = SecretString::new("a passphrase she chose");
    recovery::complete_password_reset(&k.p, &Kit::cheap_hasher(), &policy(), &reset, &chosen)
        .await
        .unwrap();
    assert!(
        !recovery::reset_link_usable(&k.p, &invitation)
            .await
            .unwrap(),
        "the invitation link still opens the password form"
    );
    let attacker = SecretString::new("the passphrase of a thief");
    assert!(
        recovery::complete_password_reset(
            &k.p,
            &Kit::cheap_hasher(),
            &policy(),
            &invitation,
            &attacker
        )
        .await
        .is_err()
    );
    password_sign_in(&k, "nia@example.test", chosen.expose())
        .await
        .unwrap();

    // The other way round: a reset link asked for before the invitation was accepted.
    let other = NewUser {
        email: "omar@example.test".into(),
        ..new
    };
    let invited = invite(&k.p, &actor, &r, &other).await.unwrap();
    let invitation = last_link_token(&outbox);
    let reset = recovery::issue(
        &k.p,
        &invited.user,
        crate::store::AccountTokenKind::PasswordReset,
        RESET_TTL,
    )
    .await
    .unwrap();
    recovery::complete_password_reset(&k.p, &Kit::cheap_hasher(), &policy(), &invitation, &chosen)
        .await
        .unwrap();
    assert!(!recovery::reset_link_usable(&k.p, &reset).await.unwrap());
}

/// "Earlier reset links stop working": a forced reset (the operator suspects the account)
/// ends a live invitation link too, which also opens the password form.
#[tokio::test]
async fn a_forced_reset_kills_a_live_invitation_link() {
    let k = Kit::new().await;
    let (mailer, outbox) = memory_mailer();
    let r = rules(&mailer);
    let actor = Actor::Admin("op".into());
    let new = NewUser {
        email: "pia@example.test".into(),
        name: None,
        roles: vec![],
    };
    let invited = invite(&k.p, &actor, &r, &new).await.unwrap();
    let invitation = last_link_token(&outbox);
    force_password_reset(&k.p, &actor, &r, &invited.user.id)
        .await
        .unwrap();
    assert!(
        !recovery::reset_link_usable(&k.p, &invitation)
            .await
            .unwrap(),
        "the invitation link survives a forced reset"
    );
    assert!(
        recovery::reset_link_usable(&k.p, &last_link_token(&outbox))
            .await
            .unwrap()
    );
}

/// The operator sets the password of an invited user (`tessera user set-password`): the
/// invitation mail, live for days, must not set another one afterwards.
#[tokio::test]
async fn a_password_the_operator_sets_kills_a_live_invitation_link() {
    let k = Kit::new().await;
    let (mailer, outbox) = memory_mailer();
    let r = rules(&mailer);
    let actor = Actor::Cli;
    let new = NewUser {
        email: "quinn@example.test".into(),
        name: None,
        roles: vec![],
    };
    let invited = invite(&k.p, &actor, &r, &new).await.unwrap();
    let invitation = last_link_token(&outbox);
    let chosen = SecretString::new("an operator's long passphrase");
    set_password(
        &k.p,
        &actor,
        &Kit::cheap_hasher(),
        &policy(),
        &invited.user.id,
        &chosen,
    )
    .await
    .unwrap();
    assert!(
        !recovery::reset_link_usable(&k.p, &invitation)
            .await
            .unwrap(),
        "the invitation link survives a password the operator set"
    );
}

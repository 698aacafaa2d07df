//! The operator's user list and the changes the last-admin rule guards.
use super::*;
use crate::audit::AuditEvent;
use crate::crypto::{Crypto, MasterKey};

fn query() -> UserQuery {
    UserQuery {
        search: String::new(),
        disabled: false,
        without_mfa: false,
        recently_locked: false,
        locks_since: 0,
        sort: UserSort::Created,
        cursor: None,
        direction: PageDirection::After,
        limit: 100,
    }
}

fn ids(rows: &[UserRow]) -> Vec<String> {
    rows.iter().map(|r| r.user.id.clone()).collect()
}

async fn add(s: &SqlStore, email: &str, created_at: i64, roles: &[&str]) -> User {
    let mut u = user(email);
    u.created_at = created_at;
    u.roles = roles.iter().map(|r| r.to_string()).collect();
    s.insert_user(&u).await.unwrap();
    u
}

contract!(
    keyset_pages_of_users_with_equal_keys_neither_skip_nor_repeat_rows_in_both_directions,
    |s: SqlStore| async move {
        let mut all = Vec::new();
        for i in 0..5 {
            all.push(add(&s, &format!("same{i}@example.com"), 500, &[]).await.id);
        }
        all.push(add(&s, "older@example.com", 400, &[]).await.id);
        let mut expected = all[..5].to_vec();
        expected.sort();
        expected.reverse();
        expected.push(all[5].clone());

        let mut q = query();
        q.limit = 2;
        let mut seen = Vec::new();
        loop {
            let rows = s.list_users(&q).await.unwrap();
            seen.extend(ids(&rows));
            match rows.last() {
                Some(last) if rows.len() == 2 => {
                    q.cursor = Some((last.sort_key(UserSort::Created), last.user.id.clone()))
                }
                _ => break,
            }
        }
        assert_eq!(seen, expected);

        // Before the fourth row: the two rows above it, in the list's order.
        q.cursor = Some((500, expected[3].clone()));
        q.direction = PageDirection::Before;
        assert_eq!(ids(&s.list_users(&q).await.unwrap()), expected[1..3]);
        q.limit = 10;
        assert_eq!(ids(&s.list_users(&q).await.unwrap()), expected[..3]);
    }
);

contract!(
    the_user_list_searches_email_name_and_id_and_filters_disabled_mfa_and_locks,
    |s: SqlStore| async move {
        let mut ann = user("ann_x@example.com");
        ann.name = Some("Ann Ögren".into());
        s.insert_user(&ann).await.unwrap();
        let mut bob = user("bob@example.com");
        bob.name = Some("BOB 100%".into());
        s.insert_user(&bob).await.unwrap();
        let search = |text: &str| {
            let mut q = query();
            q.search = text.into();
            q
        };
        assert_eq!(
            ids(&s.list_users(&search("ann_")).await.unwrap()),
            [ann.id.clone()]
        );
        assert_eq!(
            ids(&s.list_users(&search("100%")).await.unwrap()),
            [bob.id.clone()]
        );
        assert_eq!(
            ids(&s.list_users(&search("bob 1")).await.unwrap()),
            [bob.id.clone()]
        );
        assert!(s.list_users(&search("n%x")).await.unwrap().is_empty());
        let id = ann.id.to_lowercase();
        assert_eq!(
            ids(&s.list_users(&search(&id)).await.unwrap()),
            [ann.id.clone()]
        );

        s.set_user_disabled(&bob.id, true, 200).await.unwrap();
        let mut q = query();
        q.disabled = true;
        assert_eq!(ids(&s.list_users(&q).await.unwrap()), [bob.id.clone()]);

        s.insert_factor(&MfaFactor {
            id: random_id(),
            user_id: ann.id.clone(),
            kind: FactorKind::Totp,
            name: "Phone".into(),
            created_at: 100,
            last_used_at: None,
            secret_enc: Some(vec![1]),
            last_step: None,
            credential_id: None,
            credential: None,
            passwordless: false,
        })
        .await
        .unwrap();
        let mut q = query();
        q.without_mfa = true;
        assert_eq!(ids(&s.list_users(&q).await.unwrap()), [bob.id.clone()]);
        let rows = s.list_users(&query()).await.unwrap();
        let factors: Vec<i64> = rows.iter().map(|r| r.factors).collect();
        let ann_at = rows.iter().position(|r| r.user.id == ann.id).unwrap();
        assert_eq!(factors[ann_at], 1);
        assert_eq!(factors[1 - ann_at], 0);

        // Locks recorded in the audit log at or after `locks_since` count.
        let crypto = std::sync::Arc::new(Crypto::new(&MasterKey::generate()));
        let lock = AuditEvent::new("signin.locked").subject(&ann.id);
        s.append_audit(&crypto, 300, &lock).await.unwrap();
        let other = AuditEvent::new("signin.failure").subject(&bob.id);
        s.append_audit(&crypto, 300, &other).await.unwrap();
        let mut q = query();
        q.recently_locked = true;
        q.locks_since = 300;
        let rows = s.list_users(&q).await.unwrap();
        assert_eq!(ids(&rows), [ann.id.clone()]);
        assert!(rows[0].recently_locked);
        q.locks_since = 301;
        assert!(s.list_users(&q).await.unwrap().is_empty());
    }
);

contract!(
    every_new_session_records_the_last_sign_in_and_an_older_one_never_lowers_it,
    |s: SqlStore| async move {
        let u = user("ann@example.com");
        s.insert_user(&u).await.unwrap();
        assert_eq!(s.last_signin(&u.id).await.unwrap(), None);
        let mut late = session(&u.id);
        late.created_at = 700;
        s.insert_session(&late).await.unwrap();
        assert_eq!(s.last_signin(&u.id).await.unwrap(), Some(700));
        let mut early = session(&u.id);
        early.created_at = 600;
        s.insert_session(&early).await.unwrap();
        assert_eq!(s.last_signin(&u.id).await.unwrap(), Some(700));
        let mut q = query();
        q.sort = UserSort::LastSignIn;
        let never = user("never@example.com");
        s.insert_user(&never).await.unwrap();
        let rows = s.list_users(&q).await.unwrap();
        assert_eq!(ids(&rows), [u.id.clone(), never.id.clone()]);
        assert_eq!(rows[0].last_signin_at, Some(700));
        assert_eq!(rows[1].last_signin_at, None);
    }
);

contract!(
    roles_and_disabling_never_leave_no_enabled_admin_even_when_two_admins_race,
    |s: SqlStore| async move {
        let ann = add(&s, "ann@example.com", 100, &["admin"]).await;
        let bob = add(&s, "bob@example.com", 100, &["admin", "ops"]).await;
        assert_eq!(
            s.set_user_roles("nobody", &[], 200).await.unwrap(),
            Guarded::NotFound
        );
        let ops = vec!["ops".to_string()];
        let (a, b) = tokio::join!(
            s.set_user_roles(&ann.id, &[], 200),
            s.set_user_roles(&bob.id, &ops, 200)
        );
        let mut outcomes = [a.unwrap(), b.unwrap()];
        outcomes.sort_by_key(|o| *o == Guarded::Done);
        assert_eq!(outcomes, [Guarded::LastAdmin, Guarded::Done]);
        let ann_now = s.find_user(&ann.id).await.unwrap().unwrap();
        let bob_now = s.find_user(&bob.id).await.unwrap().unwrap();
        let holders = [&ann_now, &bob_now]
            .iter()
            .filter(|u| u.roles.iter().any(|r| r == "admin"))
            .count();
        assert_eq!(holders, 1);
        let last = if ann_now.roles.is_empty() {
            bob_now
        } else {
            ann_now
        };
        assert_eq!(
            s.set_user_disabled_guarded(&last.id, true, 300)
                .await
                .unwrap(),
            Guarded::LastAdmin
        );
        assert!(!s.find_user(&last.id).await.unwrap().unwrap().disabled);
        // With another enabled admin, the first may go; a disabled admin does not count.
        let carl = add(&s, "carl@example.com", 100, &["admin"]).await;
        assert_eq!(
            s.set_user_disabled_guarded(&last.id, true, 300)
                .await
                .unwrap(),
            Guarded::Done
        );
        assert_eq!(
            s.set_user_roles(&carl.id, &[], 300).await.unwrap(),
            Guarded::LastAdmin
        );
        assert_eq!(
            s.set_user_disabled_guarded(&last.id, false, 300)
                .await
                .unwrap(),
            Guarded::Done
        );
        assert_eq!(
            s.set_user_roles(&carl.id, &["ops".into()], 300)
                .await
                .unwrap(),
            Guarded::Done
        );
        assert_eq!(s.find_user(&carl.id).await.unwrap().unwrap().roles, ["ops"]);
    }
);

contract!(
    a_users_name_audit_entries_and_consents_are_read_back,
    |s: SqlStore| async move {
        let u = user("ann@example.com");
        s.insert_user(&u).await.unwrap();
        assert!(s.set_user_name(&u.id, Some("Ann B"), 200).await.unwrap());
        assert_eq!(
            s.find_user(&u.id).await.unwrap().unwrap().name.as_deref(),
            Some("Ann B")
        );
        assert!(s.set_user_name(&u.id, None, 200).await.unwrap());
        assert_eq!(s.find_user(&u.id).await.unwrap().unwrap().name, None);
        assert!(!s.set_user_name("nobody", None, 200).await.unwrap());

        let crypto = std::sync::Arc::new(Crypto::new(&MasterKey::generate()));
        for action in ["a.first", "a.second", "a.third"] {
            s.append_audit(&crypto, 200, &AuditEvent::new(action).subject(&u.id))
                .await
                .unwrap();
        }
        s.append_audit(&crypto, 200, &AuditEvent::new("other").subject("x"))
            .await
            .unwrap();
        let actions: Vec<String> = s
            .audit_about(&u.id, 2)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect();
        assert_eq!(actions, ["a.third", "a.second"]);

        s.save_consent(&u.id, "zeta", &["openid".into()], 210)
            .await
            .unwrap();
        s.save_consent(&u.id, "alpha", &["openid".into(), "email".into()], 220)
            .await
            .unwrap();
        let consents = s.user_consents(&u.id).await.unwrap();
        assert_eq!(consents.len(), 2);
        assert_eq!(consents[0].client_id, "alpha");
        assert_eq!(consents[0].scopes, ["openid", "email"]);
        assert_eq!(consents[0].granted_at, 220);
        assert!(s.user_consents("nobody").await.unwrap().is_empty());
    }
);

//! The console's Users section as an admin meets it (pages and forms, JavaScript off): the
//! list (search, filters, sort, pages), a user's page, every action on a user and what it does
//! to their tokens and sign-in, the invitation form, and what others (non-admins, an idle
//! admin, a form without its token or from another site) get.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;
use crate::mail_sink::MailSink;

use crate::helpers::{console_page as page, console_post as post};

/// The text between `start` (which must end inside or at the end of a start tag) and the next
/// `end`, for every occurrence, unescaped.
fn texts_after(html: &str, start: &str, end: &str) -> Vec<String> {
    html.split(start)
        .skip(1)
        .filter_map(|rest| {
            let rest = &rest[rest.find('>')? + 1..];
            rest.find(end).map(|i| unescape_html(&rest[..i]))
        })
        .collect()
}

/// The emails the list shows, in order (each row's heading links to the user's page).
fn listed(html: &str) -> Vec<String> {
    texts_after(html, "<th scope=\"row\"><a href=\"/admin/users/", "</a>")
}

/// The ids the list links to, in order.
fn listed_ids(html: &str) -> Vec<String> {
    html.split("<th scope=\"row\"><a href=\"/admin/users/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(String::from))
        .collect()
}

/// The `rel` link of the list's pager (`next` or `prev`), unescaped.
fn pager(html: &str, rel: &str) -> Option<String> {
    tags(html, "a")
        .into_iter()
        .find(|a| a.attr("rel") == Some(rel))
        .and_then(|a| a.attr("href").map(String::from))
}

/// Confirms `action` on the user's page: GET shows the question, POST does it; the done
/// page's sentence.
async fn confirm_and_do(
    app: &TestApp,
    browser: &reqwest::Client,
    user_id: &str,
    action: &str,
    question: &str,
) -> String {
    let path = format!("/admin/users/{user_id}/{action}");
    let confirm = page(app, browser, &path).await;
    assert!(confirm.contains(question), "{confirm}");
    assert!(
        tags(&confirm, "form")
            .iter()
            .any(|f| f.attr("action") == Some(path.as_str()) && f.attr("method") == Some("post")),
        "{confirm}"
    );
    let resp = post(app, browser, &confirm, &path, &[]).await;
    let (status, done) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK, "POST {path}:\n{done}");
    texts_after(&done, "id=\"done-message\"", "</p>")
        .pop()
        .unwrap_or_else(|| panic!("the done page:\n{done}"))
}

#[tokio::test]
async fn the_user_list_searches_by_any_part_of_email_name_or_id_filters_sorts_and_pages() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_LOCKOUT_THRESHOLD", "2");
    })
    .await;
    let admin = app.signed_in_admin().await;
    let b = &admin.browser;
    let dana = app
        .add_user_with("dana.kowalski@example.test", Some("Dana K"), &[])
        .await;
    let eli = app
        .add_user_with("eli@example.test", Some("Eli Kowal"), &["staff"])
        .await;
    let finn = app.add_user("finn@example.test").await;
    let gus = app.add_user("gus@example.test").await;

    // Every user, the admin included, on the first page; the table says who they are.
    let all = page(&app, b, "/admin/users").await;
    let emails: BTreeSet<String> = listed(&all).into_iter().collect();
    for u in [&admin.user, &dana, &eli, &finn, &gus] {
        assert!(emails.contains(&u.email), "{} is listed:\n{all}", u.email);
    }
    assert!(all.contains("Dana K") && all.contains("staff"), "{all}");
    assert!(pager(&all, "next").is_none(), "one page holds them all");

    // A substring of the email (any case) or of the name; a prefix of the id.
    let found = page(&app, b, "/admin/users?q=KOWAL").await;
    assert_eq!(
        listed(&found).into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([dana.email.clone(), eli.email.clone()]),
        "the email of one, the name of the other"
    );
    assert!(found.contains("value=\"KOWAL\""), "the search is kept");
    let by_id = page(&app, b, &format!("/admin/users?q={}", &finn.id[..10])).await;
    assert_eq!(listed(&by_id), [finn.email.as_str()]);
    let none = page(&app, b, "/admin/users?q=nobody-like-this").await;
    assert!(none.contains("No user matches."), "{none}");

    // Filters: disabled; without a second factor (the admin has one); locked out.
    app.disable_user(&gus.email).await;
    let disabled = page(&app, b, "/admin/users?disabled=on").await;
    assert_eq!(listed(&disabled), [gus.email.as_str()]);
    assert!(disabled.contains(">disabled<"), "{disabled}");
    let without = page(&app, b, "/admin/users?without_mfa=on").await;
    let without: BTreeSet<String> = listed(&without).into_iter().collect();
    assert!(without.contains(&dana.email) && !without.contains(&admin.user.email));
    for _ in 0..2 {
        let other = app.new_browser();
        app.plain_sign_in_in(&other, &finn.email, "not the password!")
            .await;
    }
    let locked = page(&app, b, "/admin/users?locked=on").await;
    assert_eq!(listed(&locked), [finn.email.as_str()], "{locked}");
    assert!(locked.contains(">locked<"), "{locked}");
    let message = confirm_and_do(&app, b, &finn.id, "unlock", "Lift the lock-out of").await;
    assert_eq!(message, "The lock-out is lifted.");
    let locked = page(&app, b, "/admin/users?locked=on").await;
    assert!(listed(&locked).is_empty(), "{locked}");

    // Sorted by last sign-in: the one who signed in last comes first.
    let eli_browser = app.new_browser();
    app.sign_in_to_account_in(&eli_browser, &eli).await;
    let recent = page(&app, b, "/admin/users?sort=last_sign_in").await;
    assert_eq!(listed(&recent).first(), Some(&eli.email), "{recent}");

    // Pages of two: the pages together hold every user once; "newer" goes back.
    let mut seen: Vec<String> = Vec::new();
    let mut path = "/admin/users?limit=2".to_string();
    let mut first_page = Vec::new();
    let mut second_page_html = String::new();
    for n in 0.. {
        assert!(n < 5, "the pages end");
        let html = page(&app, b, &path).await;
        let rows = listed(&html);
        assert!(rows.len() <= 2, "{html}");
        if n == 0 {
            first_page = rows.clone();
            assert!(
                pager(&html, "prev").is_none(),
                "the first page has no newer one"
            );
        }
        if n == 1 {
            second_page_html = html.clone();
        }
        seen.extend(rows);
        match pager(&html, "next") {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 5, "{seen:?}");
    let back = pager(&second_page_html, "prev").expect("the second page links back");
    assert_eq!(listed(&page(&app, b, &back).await), first_page);

    // A cursor altered, made up, or made for the other order: a friendly error, not a 500.
    let next = pager(&page(&app, b, "/admin/users?limit=2").await, "next").unwrap();
    let cursor = next.split("cursor=").nth(1).unwrap().to_string();
    let mut altered = cursor.clone().into_bytes();
    altered[3] = if altered[3] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for bad in [
        format!("/admin/users?limit=2&cursor={altered}"),
        "/admin/users?cursor=a.1.x".to_string(),
        format!("/admin/users?limit=2&sort=last_sign_in&cursor={cursor}"),
        "/admin/users?limit=0".to_string(),
        "/admin/users?sort=email".to_string(),
    ] {
        let resp = app.admin_get_in(b, &bad).await;
        let (status, html) = read_html(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}:\n{html}");
        assert!(html.contains("role=\"alert\""), "said inline: {html}");
        assert!(listed(&html).is_empty());
    }
}

#[tokio::test]
async fn disabling_a_user_asks_first_then_stops_their_tokens_at_once_and_enabling_lets_them_back() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let b = &admin.browser;
    let user = app.add_user("dana.kowalski@example.test").await;
    let erp = app.add_client(ClientSpec::first_party("erp")).await;
    let rs = app.add_client(ClientSpec::service("rs")).await;
    let tokens = app.tokens_for(&erp, &user).await;

    // The user's page shows the session with its client, and the consent-free first party.
    let shown = page(&app, b, &format!("/admin/users/{}", user.id)).await;
    assert!(shown.contains(&user.email), "{shown}");
    assert!(
        shown.contains(">erp<") || shown.contains("erp</td>"),
        "{shown}"
    );
    assert!(
        shown.contains("/admin/sessions/revoke?id="),
        "a session can be ended from here:\n{shown}"
    );

    // The confirmation changes nothing by itself.
    let path = format!("/admin/users/{}/disable", user.id);
    page(&app, b, &path).await;
    assert!(app.is_active(&rs.auth(), &tokens.access_token).await);

    let message = confirm_and_do(
        &app,
        b,
        &user.id,
        "disable",
        "Disable dana.kowalski@example.test?",
    )
    .await;
    assert_eq!(message, "Disabled; 1 session ended.");
    app.assert_refresh_refused(&erp, tokens.refresh_token(), "a disabled user's")
        .await;
    assert!(!app.is_active(&rs.auth(), &tokens.access_token).await);
    let shown = page(&app, b, &format!("/admin/users/{}", user.id)).await;
    assert!(shown.contains("<strong>disabled</strong>"), "{shown}");
    assert!(shown.contains("No live session."), "{shown}");
    assert!(shown.contains(&format!("/admin/users/{}/enable", user.id)));

    let message = confirm_and_do(&app, b, &user.id, "enable", "Enable dana.kowalski").await;
    assert!(message.starts_with("Enabled"), "{message}");
    let again = app.tokens_for(&erp, &user).await;
    assert!(app.is_active(&rs.auth(), &again.access_token).await);

    // The user's page lists both, with this admin as the actor.
    let shown = page(&app, b, &format!("/admin/users/{}", user.id)).await;
    let actor = format!("admin:{}", admin.user.id);
    for action in ["user.disabled", "user.enabled"] {
        assert!(shown.contains(action), "{action}:\n{shown}");
    }
    assert!(shown.contains(&actor), "{shown}");

    // An admin cannot disable themselves: said, not done.
    let own = format!("/admin/users/{}/disable", admin.user.id);
    let confirm = page(&app, b, &own).await;
    let resp = post(&app, b, &confirm, &own, &[]).await;
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("cannot disable your own account"), "{html}");
    page(&app, b, "/admin/users").await;
}

#[tokio::test]
async fn sign_out_everywhere_forced_reset_mfa_reset_and_edits_each_do_what_they_say() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let b = &admin.browser;
    let (user, _phone) = app.add_admin("ops@example.test").await;
    let erp = app.add_client(ClientSpec::first_party("erp")).await;
    let rs = app.add_client(ClientSpec::service("rs")).await;
    let plain = app.add_user("plain@example.test").await;
    let tokens = app.tokens_for(&erp, &plain).await;

    // Sign out everywhere: the session's tokens stop.
    let message = confirm_and_do(
        &app,
        b,
        &plain.id,
        "sign-out-everywhere",
        "Sign plain@example.test out everywhere?",
    )
    .await;
    assert_eq!(message, "Signed out everywhere; 1 session ended.");
    assert!(!app.is_active(&rs.auth(), &tokens.access_token).await);
    app.assert_refresh_refused(&erp, tokens.refresh_token(), "a signed-out user's")
        .await;

    // A forced reset: the password no longer signs in.
    let message = confirm_and_do(
        &app,
        b,
        &plain.id,
        "force-password-reset",
        "Force a password reset for plain@example.test?",
    )
    .await;
    assert!(
        message.starts_with("The password no longer works"),
        "{message}"
    );
    let other = app.new_browser();
    let resp = app
        .plain_sign_in_in(&other, &plain.email, &plain.password)
        .await;
    assert_ne!(resp.status(), StatusCode::SEE_OTHER, "no sign-in");
    let shown = page(&app, b, &format!("/admin/users/{}", plain.id)).await;
    assert!(shown.contains("none yet"), "{shown}");
    assert!(shown.contains(&format!("/admin/users/{}/invite", plain.id)));

    // Reset MFA: the factor's name was shown (never its secret), then it is gone.
    let shown = page(&app, b, &format!("/admin/users/{}", user.id)).await;
    assert!(shown.contains("Phone"), "the factor's name:\n{shown}");
    assert!(shown.contains("authenticator app"), "{shown}");
    let message = confirm_and_do(
        &app,
        b,
        &user.id,
        "reset-mfa",
        "Reset the second factors of ops@example.test?",
    )
    .await;
    assert!(message.starts_with("1 second factor removed"), "{message}");
    let shown = page(&app, b, &format!("/admin/users/{}", user.id)).await;
    assert!(!shown.contains("Phone"), "{shown}");
    let without = page(&app, b, "/admin/users?without_mfa=on&q=ops%40").await;
    assert_eq!(listed(&without), ["ops@example.test"]);

    // Name and roles: saved and shown; a bad one comes back inline with what was typed.
    let path = format!("/admin/users/{}", user.id);
    let shown = page(&app, b, &path).await;
    let resp = post(
        &app,
        b,
        &shown,
        &format!("{path}/name"),
        &[("name", "Ops Lead")],
    )
    .await;
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Saved."), "{html}");
    assert!(html.contains("Ops Lead"), "{html}");
    let resp = post(
        &app,
        b,
        &shown,
        &format!("{path}/roles"),
        &[("roles", "admin, Bad Role!")],
    )
    .await;
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("is not a role"), "{html}");
    assert!(html.contains("value=\"admin, Bad Role!\""), "kept:\n{html}");
    let resp = post(
        &app,
        b,
        &shown,
        &format!("{path}/roles"),
        &[("roles", "staff support")],
    )
    .await;
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let staff = page(&app, b, "/admin/users?q=ops%40").await;
    assert!(staff.contains("staff, support"), "{staff}");
    let control = "a\u{7}b";
    let resp = post(
        &app,
        b,
        &shown,
        &format!("{path}/name"),
        &[("name", control)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // An admin cannot take their own admin role.
    let own = format!("/admin/users/{}", admin.user.id);
    let mine = page(&app, b, &own).await;
    let resp = post(
        &app,
        b,
        &mine,
        &format!("{own}/roles"),
        &[("roles", "staff")],
    )
    .await;
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("cannot remove your own admin role"), "{html}");
    page(&app, b, "/admin/users").await;

    // Each action is in the log with this admin as the actor.
    let actor = format!("admin:{}", admin.user.id);
    let audit = app.audit_tail(40).await;
    for action in [
        "user.password_reset_forced",
        "user.name_changed",
        "user.roles_changed",
    ] {
        assert!(
            audit
                .iter()
                .any(|a| a.action == action && a.actor.as_deref() == Some(actor.as_str())),
            "{action}: {audit:?}"
        );
    }
}

#[tokio::test]
async fn an_admin_invites_a_user_by_mail_and_a_wrong_form_comes_back_inline() {
    let sink = MailSink::start().await;
    let smtp_url = sink.smtp_url();
    let app = spawn_app_with(|c| {
        c.env("TESSERA_SMTP_URL", &smtp_url);
        c.env("TESSERA_MAIL_FROM", "Tessera <no-reply@tessera.test>");
    })
    .await;
    let admin = app.signed_in_admin().await;
    let b = &admin.browser;
    let existing = app.add_user("taken@example.test").await;

    let form = page(&app, b, "/admin/users/new").await;
    for (email, says) in [
        ("not an email", "email"),
        ("taken@example.test", "already exists"),
    ] {
        let resp = post(
            &app,
            b,
            &form,
            "/admin/users/new",
            &[("email", email), ("name", "Nia"), ("roles", "staff")],
        )
        .await;
        let (status, html) = read_html(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{email}:\n{html}");
        assert!(html.contains("id=\"form-error\""), "{html}");
        assert!(html.to_lowercase().contains(says), "{html}");
        assert!(
            html.contains("value=\"Nia\""),
            "what was typed stays:\n{html}"
        );
    }
    let resp = post(
        &app,
        b,
        &form,
        "/admin/users/new",
        &[
            ("email", "nia@example.test"),
            ("name", "Nia"),
            ("roles", "Bad!"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        !page(&app, b, "/admin/users?q=nia")
            .await
            .contains("nia@example.test"),
        "nothing was created"
    );

    let resp = post(
        &app,
        b,
        &form,
        "/admin/users/new",
        &[
            ("email", "nia@example.test"),
            ("name", "Nia"),
            ("roles", "staff"),
        ],
    )
    .await;
    let (status, done) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done.contains("nia@example.test was created."), "{done}");
    assert!(done.contains("The invitation was mailed."), "{done}");
    let mail = sink.next_mail_to("nia@example.test").await;
    let prefix = format!("{}/password/reset?token=", app.issuer);
    let first = mail.link(&prefix);

    let list = page(&app, b, "/admin/users?q=nia").await;
    assert_eq!(listed(&list), ["nia@example.test"]);
    assert!(list.contains("no password yet"), "{list}");
    let id = listed_ids(&list).pop().expect("the new user's id");

    // A new invitation: the earlier link stops working, the new one sets the password.
    let message = confirm_and_do(
        &app,
        b,
        &id,
        "invite",
        "Send nia@example.test a new invitation?",
    )
    .await;
    assert!(
        message.starts_with("The invitation was mailed."),
        "{message}"
    );
    let second = sink.next_mail_to("nia@example.test").await.link(&prefix);
    assert_ne!(first, second);
    let browser = app.new_browser();
    let html = browser
        .get(second.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = input_value(&html, "csrf_token").expect("the form of the new link");
    for (link, expected) in [(&first, StatusCode::BAD_REQUEST), (&second, StatusCode::OK)] {
        let token = link
            .query_pairs()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let chosen = "my own long passphrase";
        let resp = browser
            .post(app.url("/password/reset"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("token", token.as_str()),
                ("password", chosen),
                ("confirm", chosen),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected, "{link}");
    }
    let shown = page(&app, b, &format!("/admin/users/{id}")).await;
    assert!(
        shown.contains("user.invited") && shown.contains("staff"),
        "{shown}"
    );
    let _ = existing;
}

#[tokio::test]
async fn the_users_pages_are_404_to_a_non_admin_and_ask_an_idle_admin_to_sign_in_again() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_ADMIN_IDLE_TIMEOUT", "3s");
    })
    .await;
    let admin = app.signed_in_admin().await;
    let target = app.add_user("target@example.test").await;
    let ann = app.add_user("ann@example.com").await;
    let browser = app.new_browser();
    app.sign_in_to_account_in(&browser, &ann).await;
    let id = &target.id;
    let gets = [
        "/admin/users".to_string(),
        "/admin/users?q=target".to_string(),
        "/admin/users/new".to_string(),
        format!("/admin/users/{id}"),
        format!("/admin/users/{id}/disable"),
        format!("/admin/users/{id}/reset-mfa"),
    ];
    for path in &gets {
        let resp = app.admin_get_in(&browser, path).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "GET {path}");
    }
    let csrf = app.csrf_token_in(&browser).await;
    let posts = [
        "/admin/users/new".to_string(),
        format!("/admin/users/{id}/disable"),
        format!("/admin/users/{id}/name"),
        format!("/admin/users/{id}/roles"),
        format!("/admin/users/{id}/sign-out-everywhere"),
    ];
    for path in &posts {
        let resp = browser
            .post(app.url(path))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", "evil@example.test"),
                ("name", "Evil"),
                ("roles", "admin"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "POST {path}");
    }

    // An admin idle past the window gets the re-authentication page, for pages and forms.
    let b = &admin.browser;
    let confirm = page(&app, b, &format!("/admin/users/{id}/disable")).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    expect_admin_reauth_page(app.admin_get_in(b, "/admin/users").await).await;
    let resp = post(
        &app,
        b,
        &confirm,
        &format!("/admin/users/{id}/disable"),
        &[],
    )
    .await;
    expect_admin_reauth_page(resp).await;

    // Nothing happened to the target.
    let shown = app.cli(&["user", "show", id, "--json"], None).await;
    shown.assert_success("tessera user show");
    let shown: serde_json::Value = serde_json::from_str(shown.stdout.trim()).unwrap();
    assert_eq!(shown["user"]["disabled"], false);
    assert_eq!(shown["user"]["roles"], serde_json::json!([]));
    let out = app.cli(&["user", "show", "evil@example.test"], None).await;
    assert!(!out.status.success(), "no user was created");
}

#[tokio::test]
async fn user_forms_without_their_token_or_from_another_site_change_nothing_and_unknown_ids_are_404()
 {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let b = &admin.browser;
    let target = app
        .add_user_with("target@example.test", Some("Tara"), &[])
        .await;
    let id = &target.id;
    let html = page(&app, b, &format!("/admin/users/{id}/disable")).await;
    let csrf = input_value(&html, "csrf_token").unwrap();
    let actions: [(String, &[(&str, &str)]); 4] = [
        (format!("/admin/users/{id}/disable"), &[]),
        (format!("/admin/users/{id}/name"), &[("name", "Changed")]),
        (format!("/admin/users/{id}/roles"), &[("roles", "admin")]),
        (
            "/admin/users/new".to_string(),
            &[("email", "evil@example.test")],
        ),
    ];
    for (action, fields) in &actions {
        let resp = b.post(app.url(action)).form(fields).send().await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "{action} without its token"
        );
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
        form.extend_from_slice(fields);
        let resp = b
            .post(app.url(action))
            .header("Origin", "https://evil.example")
            .header("Sec-Fetch-Site", "cross-site")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "{action} from another site"
        );
    }
    // Nothing changed: the user's page and the list say so.
    let shown = page(&app, b, &format!("/admin/users/{id}")).await;
    assert!(
        shown.contains("<dd id=\"user-status\">active</dd>"),
        "{shown}"
    );
    assert!(shown.contains("<dt>Name</dt><dd>Tara</dd>"), "{shown}");
    assert!(shown.contains("<dt>Roles</dt><dd>none</dd>"), "{shown}");
    let evil = page(&app, b, "/admin/users?q=evil").await;
    assert!(listed(&evil).is_empty(), "no user was created:\n{evil}");

    // An unknown id: the 404 page, for the user's page, a confirmation and an action.
    for path in [
        "/admin/users/no-such-user",
        "/admin/users/no-such-user/disable",
        "/admin/users/no-such-user/force-password-reset",
    ] {
        let (status, html) = read_html(app.admin_get_in(b, path).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}:\n{html}");
        assert!(html.contains("does not exist"), "{html}");
    }
    let resp = post(&app, b, &html, "/admin/users/no-such-user/disable", &[]).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = post(
        &app,
        b,
        &html,
        "/admin/users/no-such-user/name",
        &[("name", "x")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

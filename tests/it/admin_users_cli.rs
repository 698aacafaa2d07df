//! The operator's user commands (`tessera user list/show/set-role/set-name/invite/sign-out-all`),
//! run against a real server: what they print, and what they change for the people signed in.

use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::helpers::*;
use crate::mail_sink::MailSink;

fn json(out: &CliOutput, what: &str) -> Value {
    out.assert_success(what);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("`{what}` should print JSON ({e}):\n{}", out.stdout))
}

fn emails(list: &Value) -> Vec<String> {
    list["users"]
        .as_array()
        .expect("a users array")
        .iter()
        .map(|u| u["email"].as_str().expect("an email").to_owned())
        .collect()
}

#[tokio::test]
async fn user_list_finds_users_by_a_substring_of_their_email_and_pages_with_its_cursor() {
    let app = spawn_app().await;
    app.add_user_with("ann.smith@example.test", Some("Ann Smith"), &[])
        .await;
    app.add_user_with("bob@corp.test", Some("Robert"), &[])
        .await;
    app.add_user("carl@corp.test").await;

    let found = json(
        &app.cli(&["user", "list", "--query", "SMITH", "--json"], None)
            .await,
        "tessera user list --query",
    );
    assert_eq!(emails(&found), ["ann.smith@example.test"]);

    let first = json(
        &app.cli(
            &["user", "list", "--query", "corp", "--limit", "1", "--json"],
            None,
        )
        .await,
        "tessera user list --limit 1",
    );
    let cursor = first["next"].as_str().expect("a next cursor").to_owned();
    let second = json(
        &app.cli(
            &[
                "user", "list", "--query", "corp", "--limit", "1", "--cursor", &cursor, "--json",
            ],
            None,
        )
        .await,
        "tessera user list --cursor",
    );
    let mut both = [emails(&first), emails(&second)].concat();
    both.sort();
    assert_eq!(both, ["bob@corp.test", "carl@corp.test"]);
    assert!(second["next"].is_null());

    let bad = app
        .cli(&["user", "list", "--cursor", "not-a-cursor"], None)
        .await;
    assert!(!bad.status.success(), "a malformed cursor is refused");
    assert!(bad.stderr.contains("cursor"), "it says why: {}", bad.stderr);
}

#[tokio::test]
async fn set_role_refuses_to_remove_the_last_admin_and_show_prints_the_user_without_secrets() {
    let app = spawn_app().await;
    let admin = app
        .add_user_with("root@example.test", None, &["admin"])
        .await;
    let staff = app.add_user("staff@example.test").await;

    let refused = app
        .cli(&["user", "set-role", &admin.email, "--none"], None)
        .await;
    assert!(
        !refused.status.success(),
        "the last admin keeps the role: {}",
        refused.stdout
    );
    assert!(refused.stderr.contains("admin"), "{}", refused.stderr);

    app.cli(&["user", "set-role", &staff.id, "--role", "admin"], None)
        .await
        .assert_success("tessera user set-role ID --role admin");
    app.cli(&["user", "set-role", &admin.email, "--role", "ops"], None)
        .await
        .assert_success("tessera user set-role EMAIL --role ops");
    app.cli(
        &["user", "set-name", &admin.email, "--name", "Root Operator"],
        None,
    )
    .await
    .assert_success("tessera user set-name");

    let shown = json(
        &app.cli(&["user", "show", &admin.email, "--json"], None)
            .await,
        "tessera user show --json",
    );
    assert_eq!(shown["user"]["roles"], serde_json::json!(["ops"]));
    assert_eq!(shown["user"]["name"], "Root Operator");
    assert_eq!(shown["user"]["has_password"], true);
    let actions: Vec<&str> = shown["audit"]
        .as_array()
        .expect("audit entries")
        .iter()
        .filter(|a| a["actor"] == "cli")
        .map(|a| a["action"].as_str().unwrap_or_default())
        .collect();
    assert!(actions.contains(&"user.roles_changed"), "{actions:?}");
    assert!(actions.contains(&"user.name_changed"), "{actions:?}");
    assert!(
        !shown.to_string().contains("argon2"),
        "no password hash is printed: {shown}"
    );
}

#[tokio::test]
async fn sign_out_all_ends_the_users_refresh_tokens_at_once() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let request = AuthRequest::new(&client);
    let code = app.obtain_code(&request, &user).await;
    let tokens = expect_tokens(app.redeem_code(&client.auth(), &request, &code).await).await;

    app.cli(&["user", "sign-out-all", &user.email], None)
        .await
        .assert_success("tessera user sign-out-all");

    let resp = app.refresh(&client.auth(), tokens.refresh_token()).await;
    expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn an_invited_user_chooses_a_password_through_the_mailed_link_once() {
    let sink = MailSink::start().await;
    let smtp_url = sink.smtp_url();
    let app = spawn_app_with(|c| {
        c.env("TESSERA_SMTP_URL", &smtp_url);
        c.env("TESSERA_MAIL_FROM", "Tessera <no-reply@tessera.test>");
    })
    .await;

    let out = app
        .cli(
            &[
                "user",
                "invite",
                "nia@example.test",
                "--name",
                "Nia",
                "--role",
                "staff",
            ],
            None,
        )
        .await;
    out.assert_success("tessera user invite");
    let id = out.stdout.trim().to_owned();
    let again = app.cli(&["user", "invite", "nia@example.test"], None).await;
    assert!(
        !again.status.success(),
        "a second invitation to the same email is refused"
    );

    let mail = sink.next_mail_to("nia@example.test").await;
    assert!(
        mail.body.to_lowercase().contains("invitation"),
        "the mail says it is an invitation:\n{}",
        mail.body
    );
    let link: Url = mail.link(&format!("{}/password/reset?token=", app.issuer));
    let token = link
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("the link carries a token");

    let shown = json(
        &app.cli(&["user", "show", &id, "--json"], None).await,
        "tessera user show",
    );
    assert_eq!(shown["user"]["has_password"], false);

    let browser = app.new_browser();
    let opened = browser.get(link.as_str()).send().await.expect("GET");
    assert_eq!(opened.status(), StatusCode::OK);
    let html = opened.text().await.expect("the form");
    let csrf = input_value(&html, "csrf_token").expect("a CSRF token in the form");
    let chosen = "my own long passphrase";
    let form = [
        ("csrf_token", csrf.as_str()),
        ("token", token.as_str()),
        ("password", chosen),
        ("confirm", chosen),
    ];
    let done = browser
        .post(app.url("/password/reset"))
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_eq!(done.status(), StatusCode::OK);
    let replay = browser
        .post(app.url("/password/reset"))
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_eq!(
        replay.status(),
        StatusCode::BAD_REQUEST,
        "the link works once"
    );

    let shown = json(
        &app.cli(&["user", "show", &id, "--json"], None).await,
        "tessera user show",
    );
    assert_eq!(shown["user"]["has_password"], true);
    assert_eq!(shown["user"]["email_verified"], true);
    let actions: Vec<&str> = shown["audit"]
        .as_array()
        .expect("audit entries")
        .iter()
        .map(|a| a["action"].as_str().unwrap_or_default())
        .collect();
    assert!(actions.contains(&"user.invitation_accepted"), "{actions:?}");
    assert!(actions.contains(&"user.invited"), "{actions:?}");
}

/// Ids are base64url, so one in 64 begins with `-`: every command still takes it as the user
/// (it once read as an unknown flag, and a test failed on such an id now and then).
#[tokio::test]
async fn a_user_whose_id_begins_with_a_hyphen_is_named_by_that_id() {
    let app = spawn_app().await;
    app.add_user_with("dash@example.test", None, &[]).await;
    let changed = app
        .execute_sql("UPDATE users SET id = '-Bdash' WHERE email = 'dash@example.test'")
        .await;
    assert_eq!(changed, 1);
    app.cli(&["user", "set-name", "-Bdash", "--name", "Dash"], None)
        .await
        .assert_success("tessera user set-name -Bdash");
    let shown = json(
        &app.cli(&["user", "show", "-Bdash", "--json"], None).await,
        "tessera user show -Bdash",
    );
    assert_eq!(shown["user"]["email"], "dash@example.test");
    assert_eq!(shown["user"]["name"], "Dash");
}

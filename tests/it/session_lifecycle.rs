//! How sessions and their tokens end: refresh races and replays, disabled users, new
//! passwords, the devices-and-sessions page, session limits, the operator's session commands
//! and RP-initiated logout. Whatever ends a session ends its tokens at once.

use reqwest::StatusCode;

use crate::helpers::*;

const WRONG_CREDENTIALS: &str = "The email or password is incorrect.";
const TOO_MANY_DEVICES: &str = "You are signed in on too many devices";

async fn user_and_webapp(app: &TestApp) -> (TestUser, RegisteredClient) {
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    (user, client)
}

/// The SSO session an access token was issued under.
fn sid(tokens: &TokenResponse) -> String {
    jwt_claims(&tokens.access_token)["sid"]
        .as_str()
        .expect("a user's access token names its session (sid)")
        .to_owned()
}

fn session_cookie_set(resp: &reqwest::Response) -> bool {
    set_cookies(resp)
        .iter()
        .any(|c| c.name == "tessera_session" && !c.value.is_empty())
}

#[tokio::test]
async fn three_tabs_refreshing_the_same_token_for_200_rounds_never_fail_and_keep_one_chain() {
    const ROUNDS: u64 = 200;
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    let auth = client.auth();
    let mut current = app
        .tokens_for(&client, &user)
        .await
        .refresh_token()
        .to_owned();

    for round in 1..=ROUNDS {
        let (a, b, c) = tokio::join!(
            app.refresh(&auth, &current),
            app.refresh(&auth, &current),
            app.refresh(&auth, &current),
        );
        let mut successors = Vec::new();
        for (tab, resp) in [a, b, c].into_iter().enumerate() {
            let status = resp.status();
            if status != StatusCode::OK {
                let body = resp.text().await.unwrap_or_default();
                panic!(
                    "round {round}: tab {} failed to refresh ({status}): {body}",
                    tab + 1
                );
            }
            successors.push(expect_tokens(resp).await.refresh_token().to_owned());
        }
        assert!(
            successors.iter().all(|s| *s == successors[0]),
            "round {round}: the three tabs got different refresh tokens, so the chain forked"
        );
        assert_ne!(successors[0], current, "round {round}: the token rotated");
        current = successors.swap_remove(0);
    }

    let metrics = app.metrics().await;
    assert_eq!(
        metrics.get("tessera_refresh_rotations_total"),
        ROUNDS,
        "one rotation per round"
    );
    assert_eq!(
        metrics.get("tessera_refresh_races_total"),
        2 * ROUNDS,
        "the two tabs that lost each round were counted as races"
    );
    assert_eq!(
        metrics.get("tessera_refresh_reuse_detected_total"),
        0,
        "racing tabs are never mistaken for a replay"
    );

    let last = expect_tokens(app.refresh(&auth, &current).await).await;
    assert_eq!(
        app.userinfo(&last.access_token).await.status(),
        StatusCode::OK,
        "the chain is still alive after 200 rounds"
    );
}

/// Reuse detection's consequences. A token two rotations old is reuse whatever the grace window
/// (its edges are engine tests: `oauth::engine_tests::refresh`), so nothing here waits for it.
#[tokio::test]
async fn a_stolen_refresh_token_replayed_after_the_app_refreshed_twice_ends_the_family_and_the_session()
 {
    let app = spawn_app().await;
    let (user, webapp) = user_and_webapp(&app).await;
    let wiki = app.add_client(ClientSpec::first_party("wiki")).await;
    let stolen = app.tokens_for(&webapp, &user).await;
    let wiki_tokens = app.tokens_for(&wiki, &user).await;
    assert_eq!(sid(&stolen), sid(&wiki_tokens), "one SSO session");
    // The legitimate app rotates twice; the thief keeps the first token.
    let once = expect_tokens(app.refresh(&webapp.auth(), stolen.refresh_token()).await).await;
    let rotated = expect_tokens(app.refresh(&webapp.auth(), once.refresh_token()).await).await;

    let replay = app.refresh(&webapp.auth(), stolen.refresh_token()).await;
    expect_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;

    app.assert_refresh_refused(
        &webapp,
        rotated.refresh_token(),
        "the family's newest token",
    )
    .await;
    app.assert_refresh_refused(
        &wiki,
        wiki_tokens.refresh_token(),
        "the session's wiki token",
    )
    .await;
    app.assert_inactive(&webapp, &rotated.access_token, "the webapp's access token")
        .await;
    app.assert_inactive(&wiki, &wiki_tokens.access_token, "the wiki's access token")
        .await;
    expect_sign_in_page(app.authorize(&AuthRequest::new(&webapp)).await).await;

    let reuse: Vec<AuditLine> = app
        .audit_tail(50)
        .await
        .into_iter()
        .filter(|l| l.action == "refresh.reuse_detected")
        .collect();
    assert_eq!(reuse.len(), 1, "one replay, one audit entry: {reuse:?}");
    assert_eq!(reuse[0].subject.as_deref(), Some(user.id.as_str()));
    assert_eq!(reuse[0].detail["session"], sid(&stolen).as_str());
    let metrics = app.metrics().await;
    assert_eq!(metrics.get("tessera_refresh_reuse_detected_total"), 1);
}

#[tokio::test]
async fn disabling_a_user_stops_every_grant_at_once_and_enabling_restores_sign_in() {
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    let tokens = app.tokens_for(&client, &user).await;
    let pending = AuthRequest::new(&client);
    let code = app.obtain_code(&pending, &user).await;

    app.disable_user(&user.email).await;

    app.assert_inactive(
        &client,
        &tokens.access_token,
        "a disabled user's access token",
    )
    .await;
    assert_eq!(
        app.userinfo(&tokens.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.assert_refresh_refused(&client, tokens.refresh_token(), "a disabled user's token")
        .await;
    let redeemed = app.redeem_code(&client.auth(), &pending, &code).await;
    expect_oauth_error(redeemed, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(
        !app.is_signed_in_in(&app.client, &client).await,
        "the browser's SSO session is gone"
    );
    let page = expect_sign_in_page(app.authorize(&AuthRequest::new(&client)).await).await;
    let refused = app.post_login(&page, &user.email, &user.password).await;
    assert!(
        !session_cookie_set(&refused),
        "no session for a disabled user"
    );
    let refused = sign_in_page_with_status(refused).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        visible_text(&refused.html).contains(WRONG_CREDENTIALS),
        "a disabled user gets the generic message, nothing that reveals the account state:\n{}",
        refused.html
    );

    app.enable_user(&user.email).await;

    assert!(
        !app.is_signed_in_in(&app.client, &client).await,
        "enabling does not bring back the session that disabling ended"
    );
    let request = AuthRequest::new(&client);
    let callback = app.sign_in(&request, &user).await;
    let fresh = app.exchange_code(&client, &request, &callback.code()).await;
    expect_tokens(app.refresh(&client.auth(), fresh.refresh_token()).await).await;
}

#[tokio::test]
async fn a_password_set_through_the_cli_ends_every_session_of_the_user() {
    const NEW_PASSWORD: &str = "a completely different passphrase";
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    let laptop = app.tokens_for(&client, &user).await;
    let phone_browser = app.new_browser();
    let phone = app.tokens_for_in(&phone_browser, &client, &user).await;

    app.set_password(&user.email, NEW_PASSWORD).await;

    for (device, tokens) in [("laptop", &laptop), ("phone", &phone)] {
        app.assert_inactive(&client, &tokens.access_token, device)
            .await;
        app.assert_refresh_refused(&client, tokens.refresh_token(), device)
            .await;
    }
    assert!(!app.is_signed_in_in(&app.client, &client).await);
    assert!(!app.is_signed_in_in(&phone_browser, &client).await);

    let page = expect_sign_in_page(app.authorize(&AuthRequest::new(&client)).await).await;
    let old = sign_in_page_with_status(app.post_login(&page, &user.email, PASSWORD).await).await;
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "the old password is gone"
    );
    let request = AuthRequest::new(&client);
    let page = expect_sign_in_page(app.authorize(&request).await).await;
    let resp = app.post_login(&page, &user.email, NEW_PASSWORD).await;
    expect_callback(&resp, &client.redirect_uri).code();
}

#[tokio::test]
async fn signing_out_all_other_devices_keeps_this_one_and_signing_out_all_devices_ends_it_too() {
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    let laptop_browser = &app.client;
    let laptop = app.tokens_for(&client, &user).await;
    let phone_browser = app.new_browser();
    let phone = app.tokens_for_in(&phone_browser, &client, &user).await;

    let page = app.sessions_page_in(laptop_browser).await;
    assert_eq!(page.ids(), [sid(&laptop), sid(&phone)].into());
    let resp = app
        .revoke_all_sessions_in(laptop_browser, &page, true)
        .await;
    let page = expect_sessions_page(resp).await;

    assert_eq!(
        page.ids(),
        [sid(&laptop)].into(),
        "only this device is left"
    );
    assert_eq!(page.current().id, sid(&laptop));
    assert!(
        page.text().contains("Signed out 1 other device"),
        "the page says what happened: {}",
        page.text()
    );
    app.assert_inactive(&client, &phone.access_token, "the phone")
        .await;
    app.assert_refresh_refused(&client, phone.refresh_token(), "the phone")
        .await;
    assert!(!app.is_signed_in_in(&phone_browser, &client).await);
    app.assert_active(&client, &laptop.access_token, "the laptop")
        .await;
    let laptop = expect_tokens(app.refresh(&client.auth(), laptop.refresh_token()).await).await;
    assert!(app.is_signed_in_in(laptop_browser, &client).await);

    let resp = app
        .revoke_all_sessions_in(laptop_browser, &page, false)
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "a signed-out page");

    app.assert_inactive(&client, &laptop.access_token, "the laptop")
        .await;
    app.assert_refresh_refused(&client, laptop.refresh_token(), "the laptop")
        .await;
    assert!(!app.is_signed_in_in(laptop_browser, &client).await);
    let account = app.get("/account").await;
    assert_eq!(expect_see_other(&account).path(), "/login");
}

#[tokio::test]
async fn signing_in_again_right_after_signing_out_all_devices_gives_tokens_that_work() {
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    let before = app.tokens_for(&client, &user).await;
    let page = app.sessions_page_in(&app.client).await;
    let resp = app.revoke_all_sessions_in(&app.client, &page, false).await;
    assert_eq!(resp.status(), StatusCode::OK, "a signed-out page");
    app.assert_inactive(&client, &before.access_token, "the token from before")
        .await;

    let after = app.tokens_for(&client, &user).await;

    app.assert_active(&client, &after.access_token, "the token of the new sign-in")
        .await;
    assert_eq!(
        app.userinfo(&after.access_token).await.status(),
        StatusCode::OK,
        "the new sign-in's access token is accepted"
    );
}

#[tokio::test]
async fn the_sessions_page_marks_this_browser_and_signs_out_another_session_by_id() {
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    let laptop = app.tokens_for(&client, &user).await;
    let phone_browser = app.new_browser();
    let phone = app.tokens_for_in(&phone_browser, &client, &user).await;

    let page = app.sessions_page_in(&app.client).await;
    assert_eq!(page.ids(), [sid(&laptop), sid(&phone)].into());
    assert_eq!(page.current().id, sid(&laptop), "this browser's session");
    let from_phone = app.sessions_page_in(&phone_browser).await;
    assert_eq!(from_phone.current().id, sid(&phone), "the phone's session");

    let resp = app
        .revoke_session_in(&app.client, &page, &sid(&phone))
        .await;
    let page = expect_sessions_page(resp).await;

    assert_eq!(page.ids(), [sid(&laptop)].into());
    app.assert_inactive(&client, &phone.access_token, "the phone")
        .await;
    app.assert_refresh_refused(&client, phone.refresh_token(), "the phone")
        .await;
    assert!(!app.is_signed_in_in(&phone_browser, &client).await);
    app.assert_active(&client, &laptop.access_token, "the laptop")
        .await;
    expect_tokens(app.refresh(&client.auth(), laptop.refresh_token()).await).await;
}

#[tokio::test]
async fn signing_out_another_users_session_id_from_my_sessions_page_does_nothing_to_it() {
    let app = spawn_app().await;
    let (ada, client) = user_and_webapp(&app).await;
    let bob = app.add_user("bob@example.test").await;
    app.tokens_for(&client, &ada).await;
    let bobs_browser = app.new_browser();
    let bobs = app.tokens_for_in(&bobs_browser, &client, &bob).await;

    let page = app.sessions_page_in(&app.client).await;
    assert!(
        !page.ids().contains(&sid(&bobs)),
        "Ada's page does not list Bob's session"
    );
    let resp = app.revoke_session_in(&app.client, &page, &sid(&bobs)).await;
    let page = expect_sessions_page(resp).await;
    assert_eq!(page.sessions.len(), 1, "Ada's own session is untouched");

    app.assert_active(&client, &bobs.access_token, "Bob's access token")
        .await;
    assert!(app.is_signed_in_in(&bobs_browser, &client).await);
    expect_tokens(app.refresh(&client.auth(), bobs.refresh_token()).await).await;
    let bobs_page = app.sessions_page_in(&bobs_browser).await;
    assert_eq!(bobs_page.ids(), [sid(&bobs)].into());
}

#[tokio::test]
async fn with_a_limit_of_two_sessions_a_third_sign_in_ends_the_oldest_session() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_MAX_SESSIONS_PER_USER", "2")
            .env("TESSERA_SESSION_LIMIT_POLICY", "evict_oldest");
    })
    .await;
    let (user, client) = user_and_webapp(&app).await;
    let browsers = [app.new_browser(), app.new_browser(), app.new_browser()];
    let mut tokens = Vec::new();
    for browser in &browsers {
        tokens.push(app.tokens_for_in(browser, &client, &user).await);
    }

    app.assert_refresh_refused(&client, tokens[0].refresh_token(), "the oldest session")
        .await;
    app.assert_inactive(&client, &tokens[0].access_token, "the oldest session")
        .await;
    assert!(!app.is_signed_in_in(&browsers[0], &client).await);
    for (n, (browser, tokens)) in browsers.iter().zip(&tokens).enumerate().skip(1) {
        let whose = format!("sign-in {}", n + 1);
        app.assert_active(&client, &tokens.access_token, &whose)
            .await;
        let refreshed = app.refresh(&client.auth(), tokens.refresh_token()).await;
        assert_eq!(
            refreshed.status(),
            StatusCode::OK,
            "{whose} still refreshes"
        );
        assert!(app.is_signed_in_in(browser, &client).await, "{whose}");
    }
    let page = app.sessions_page_in(&browsers[2]).await;
    assert_eq!(page.ids(), [sid(&tokens[1]), sid(&tokens[2])].into());
}

#[tokio::test]
async fn with_a_limit_of_two_sessions_and_the_refuse_policy_a_third_sign_in_is_refused() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_MAX_SESSIONS_PER_USER", "2")
            .env("TESSERA_SESSION_LIMIT_POLICY", "refuse");
    })
    .await;
    let (user, client) = user_and_webapp(&app).await;
    let (first_browser, second_browser) = (app.new_browser(), app.new_browser());
    let first = app.tokens_for_in(&first_browser, &client, &user).await;
    let second = app.tokens_for_in(&second_browser, &client, &user).await;

    let third_browser = app.new_browser();
    let page = expect_sign_in_page(
        app.authorize_in(&third_browser, &AuthRequest::new(&client))
            .await,
    )
    .await;
    let resp = app
        .post_login_in(&third_browser, &page, &user.email, &user.password)
        .await;
    assert!(
        !session_cookie_set(&resp),
        "the third browser gets no session"
    );
    let refused = sign_in_page_with_status(resp).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        visible_text(&refused.html).contains(TOO_MANY_DEVICES),
        "the page says why:\n{}",
        refused.html
    );
    assert!(!app.is_signed_in_in(&third_browser, &client).await);

    for (whose, browser, tokens) in [
        ("the first sign-in", &first_browser, &first),
        ("the second sign-in", &second_browser, &second),
    ] {
        app.assert_active(&client, &tokens.access_token, whose)
            .await;
        expect_tokens(app.refresh(&client.auth(), tokens.refresh_token()).await).await;
        assert!(app.is_signed_in_in(browser, &client).await, "{whose}");
    }
}

#[tokio::test]
async fn session_list_shows_each_live_session_with_its_apps_and_session_revoke_ends_them() {
    let app = spawn_app().await;
    let (user, webapp) = user_and_webapp(&app).await;
    let wiki = app.add_client(ClientSpec::first_party("wiki")).await;
    let laptop_webapp = app.tokens_for(&webapp, &user).await;
    let laptop_wiki = app.tokens_for(&wiki, &user).await;
    let phone_browser = app.new_browser();
    let phone = app.tokens_for_in(&phone_browser, &webapp, &user).await;
    let (laptop_sid, phone_sid) = (sid(&laptop_webapp), sid(&phone));

    let rows = app.cli_sessions(&user.email).await;
    let listed: Vec<(String, Vec<String>)> = rows
        .iter()
        .map(|r| (r.id.clone(), r.clients.iter().cloned().collect()))
        .collect();
    assert_eq!(rows.len(), 2, "two live sessions: {rows:?}");
    assert!(
        listed.contains(&(laptop_sid.clone(), vec!["webapp".into(), "wiki".into()])),
        "the laptop's session lists both apps: {listed:?}"
    );
    assert!(
        listed.contains(&(phone_sid.clone(), vec!["webapp".into()])),
        "the phone's session lists the webapp: {listed:?}"
    );

    app.cli_revoke_session(&laptop_sid).await;

    for (whose, client, tokens) in [
        ("the laptop's webapp", &webapp, &laptop_webapp),
        ("the laptop's wiki", &wiki, &laptop_wiki),
    ] {
        app.assert_inactive(client, &tokens.access_token, whose)
            .await;
        app.assert_refresh_refused(client, tokens.refresh_token(), whose)
            .await;
    }
    app.assert_active(&webapp, &phone.access_token, "the phone")
        .await;
    app.assert_active(&webapp, phone.refresh_token(), "the phone's refresh token")
        .await;
    let rows = app.cli_sessions(&user.email).await;
    assert_eq!(
        rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![phone_sid]
    );

    app.cli_revoke_all_sessions(&user.email).await;

    app.assert_inactive(&webapp, &phone.access_token, "the phone")
        .await;
    app.assert_refresh_refused(&webapp, phone.refresh_token(), "the phone")
        .await;
    assert!(!app.is_signed_in_in(&phone_browser, &webapp).await);
    assert!(
        app.cli_sessions(&user.email).await.is_empty(),
        "no live session is left"
    );
}

#[tokio::test]
async fn rp_logout_makes_the_sessions_access_tokens_inactive_at_once() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let signed_out = "https://webapp.example.test/signed-out";
    let webapp = app
        .add_client(ClientSpec::first_party("webapp").post_logout_redirect_uri(signed_out))
        .await;
    let wiki = app.add_client(ClientSpec::first_party("wiki")).await;
    let tokens = app.tokens_for(&webapp, &user).await;
    let wiki_tokens = app.tokens_for(&wiki, &user).await;
    app.assert_active(&webapp, &tokens.access_token, "before logout")
        .await;

    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", tokens.id_token())
        .append_pair("post_logout_redirect_uri", signed_out)
        .finish();
    let resp = app.get(&format!("/logout?{query}")).await;
    expect_callback(&resp, signed_out);

    app.assert_inactive(&webapp, &tokens.access_token, "the webapp's access token")
        .await;
    app.assert_inactive(&wiki, &wiki_tokens.access_token, "the wiki's access token")
        .await;
    assert_eq!(
        app.userinfo(&tokens.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

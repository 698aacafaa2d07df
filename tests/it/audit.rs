//! The audit log: what happened is written down, in order, and `tessera audit verify` notices
//! when anyone edits or removes an entry behind the server's back.

use reqwest::StatusCode;

use crate::helpers::*;

/// Whether `text` names the number `n` on its own (not as part of a longer number).
fn names_number(text: &str, n: i64) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|word| word == n.to_string())
}

/// Whether `text` names `entry <n>` (and not, say, entry 20).
fn names_entry(text: &str, n: i64) -> bool {
    let needle = format!("entry {n}");
    text.match_indices(&needle).any(|(at, _)| {
        !text[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// A user, a first-party client and one sign-in: a few entries in the log.
async fn some_history(app: &TestApp) -> (TestUser, RegisteredClient) {
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    app.tokens_for(&client, &user).await;
    (user, client)
}

#[tokio::test]
async fn sign_ins_failures_a_refresh_race_and_a_disable_are_in_the_audit_log_and_it_verifies() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;

    let page = expect_sign_in_page(app.authorize(&AuthRequest::new(&client)).await).await;
    let resp = app.post_login(&page, &user.email, "not the password").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let page = expect_sign_in_page(app.authorize(&AuthRequest::new(&client)).await).await;
    let resp = app.post_login(&page, "nobody@example.test", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let tokens = app.tokens_for(&client, &user).await;
    let sid = jwt_claims(&tokens.access_token)["sid"].clone();
    let auth = client.auth();
    let (one, two) = tokio::join!(
        app.refresh(&auth, tokens.refresh_token()),
        app.refresh(&auth, tokens.refresh_token())
    );
    expect_tokens(one).await;
    expect_tokens(two).await;
    app.disable_user(&user.email).await;
    let page = expect_sign_in_page(app.authorize(&AuthRequest::new(&client)).await).await;
    let resp = app.post_login(&page, &user.email, &user.password).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let log = app.audit_tail(100).await;
    let actions: Vec<&str> = log.iter().map(|l| l.action.as_str()).collect();
    let find = |what: &str, matches: &dyn Fn(&AuditLine) -> bool| -> AuditLine {
        log.iter()
            .find(|l| matches(l))
            .cloned()
            .unwrap_or_else(|| panic!("the audit log has no {what}; it has {actions:?}"))
    };
    let failure = |reason: &'static str| {
        move |l: &AuditLine| l.action == "signin.failure" && l.detail["reason"] == reason
    };
    let wrong_password = find("wrong-password failure", &failure("wrong_password"));
    let unknown = find("unknown-account failure", &failure("unknown_account"));
    let success = find("sign-in", &|l| l.action == "signin.success");
    let race = find("refresh race", &|l| l.action == "refresh.race");
    let disabled = find("disable", &|l| l.action == "user.disabled");
    let refused = find("disabled-account failure", &failure("account_disabled"));

    for entry in [&wrong_password, &success, &race, &disabled, &refused] {
        assert_eq!(
            entry.subject.as_deref(),
            Some(user.id.as_str()),
            "{} is about the user: {entry:?}",
            entry.action
        );
    }
    assert_eq!(
        unknown.subject.as_deref(),
        Some("nobody@example.test"),
        "an unknown account is recorded by the email tried"
    );
    for entry in [&wrong_password, &unknown, &success, &refused] {
        assert_eq!(
            entry.ip.as_deref(),
            Some("127.0.0.1"),
            "{} records where it came from: {entry:?}",
            entry.action
        );
    }
    assert_eq!(success.detail["session"], sid, "{success:?}");
    assert_eq!(race.actor.as_deref(), Some("webapp"), "{race:?}");
    assert_eq!(disabled.actor.as_deref(), Some("cli"), "{disabled:?}");
    let order: Vec<i64> = [
        &wrong_password,
        &unknown,
        &success,
        &race,
        &disabled,
        &refused,
    ]
    .iter()
    .map(|e| e.seq)
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "the entries are in the order things happened: {actions:?}"
    );
    let seqs: Vec<i64> = log.iter().map(|l| l.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "entries are numbered 1, 2, 3, ... with no gap"
    );

    let verified = app.audit_verify().await;
    verified.assert_success("tessera audit verify");
    assert_eq!(
        verified.stdout.lines().next().unwrap_or_default(),
        format!("audit log intact: {} entries verified", seqs.len()),
        "every entry was checked"
    );
}

#[tokio::test]
async fn editing_one_audit_row_in_the_database_makes_audit_verify_fail_naming_that_entry() {
    let app = spawn_app().await;
    some_history(&app).await;
    app.audit_verify()
        .await
        .assert_success("tessera audit verify before any tampering");
    let original = app
        .audit_tail(100)
        .await
        .into_iter()
        .find(|l| l.seq == 2)
        .expect("the log has an entry 2")
        .action;
    let forged = if original == "keys.rotated" {
        "user.created"
    } else {
        "keys.rotated"
    };

    let edited = app
        .execute_sql(&format!(
            "UPDATE audit_events SET action = '{forged}' WHERE seq = 2"
        ))
        .await;
    assert_eq!(edited, 1);

    let out = app.audit_verify().await;
    assert!(
        !out.status.success(),
        "`tessera audit verify` passed an edited log:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("AUDIT LOG TAMPERED") && names_entry(&out.stderr, 2),
        "the failure names entry 2: {}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("intact"),
        "nothing claims the log is intact: {}",
        out.stdout
    );

    // Put back as it was, the entry verifies again: the check is about the content.
    app.execute_sql(&format!(
        "UPDATE audit_events SET action = '{original}' WHERE seq = 2"
    ))
    .await;
    app.audit_verify()
        .await
        .assert_success("tessera audit verify after the edit was undone");
}

#[tokio::test]
async fn deleting_the_newest_audit_row_is_caught_because_the_head_remembers() {
    let app = spawn_app().await;
    let (user, _client) = some_history(&app).await;
    app.disable_user(&user.email).await;
    let newest = app.audit_tail(1).await[0].clone();
    assert_eq!(newest.action, "user.disabled");
    let verified = app.audit_verify().await;
    verified.assert_success("tessera audit verify before any tampering");
    assert_eq!(
        verified.stdout.lines().next().unwrap_or_default(),
        format!("audit log intact: {} entries verified", newest.seq)
    );

    let deleted = app
        .execute_sql("DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)")
        .await;
    assert_eq!(deleted, 1);
    assert_eq!(app.audit_tail(1).await[0].seq, newest.seq - 1);

    let out = app.audit_verify().await;
    assert!(
        !out.status.success(),
        "`tessera audit verify` passed a log whose newest entry was deleted:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("AUDIT LOG TAMPERED") && names_number(&out.stderr, newest.seq),
        "the failure says the log should reach entry {}: {}",
        newest.seq,
        out.stderr
    );
}

#[tokio::test]
async fn deleting_the_tail_and_moving_the_head_back_by_sql_is_caught_by_audit_verify() {
    let app = spawn_app().await;
    let (user, _client) = some_history(&app).await;
    app.disable_user(&user.email).await;
    let newest = app.audit_tail(1).await[0].clone();
    assert!(newest.seq >= 3, "some history was written: {newest:?}");
    app.audit_verify()
        .await
        .assert_success("tessera audit verify on an untouched log");

    // A database writer without the master key: remove the last two entries and point the head
    // at the new last row, exactly as the server would have left it after that row.
    let keep = newest.seq - 2;
    let deleted = app
        .execute_sql(&format!("DELETE FROM audit_events WHERE seq > {keep}"))
        .await;
    assert_eq!(deleted, 2);
    let moved = app
        .execute_sql(&format!(
            "UPDATE audit_head SET seq = {keep}, \
             last_hash = (SELECT hash FROM audit_events WHERE seq = {keep}) WHERE id = 1"
        ))
        .await;
    assert_eq!(moved, 1);

    let out = app.audit_verify().await;
    assert!(
        !out.status.success(),
        "`tessera audit verify` passed a truncated log whose head was moved back:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("AUDIT LOG TAMPERED"),
        "the failure says the log was tampered with: {}",
        out.stderr
    );

    // Appending more does not launder the truncation.
    app.add_user("grace@example.test").await;
    let out = app.audit_verify().await;
    assert!(
        !out.status.success(),
        "an append after the truncation made `tessera audit verify` pass:\n{}",
        out.stdout
    );
}

#[tokio::test]
async fn a_pinned_head_catches_a_rollback_of_the_whole_log_to_an_older_consistent_state() {
    let app = spawn_app().await;
    some_history(&app).await;
    // A consistent copy of the log as it is now (what a restored backup would bring back).
    app.execute_sql("CREATE TABLE old_events AS SELECT * FROM audit_events")
        .await;
    app.execute_sql("CREATE TABLE old_head AS SELECT * FROM audit_head")
        .await;
    app.add_user("grace@example.test").await;

    let out = app.audit_verify().await;
    out.assert_success("tessera audit verify");
    let pin = out
        .stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--pin="))
        .unwrap_or_else(|| panic!("audit verify prints a pin for the head: {}", out.stdout))
        .to_owned();
    app.cli(&["audit", "verify", "--pin", &pin], None)
        .await
        .assert_success("tessera audit verify --pin on the same log");
    app.add_user("linus@example.test").await;
    app.cli(&["audit", "verify", "--pin", &pin], None)
        .await
        .assert_success("tessera audit verify --pin after more entries");

    app.execute_sql("DELETE FROM audit_events").await;
    app.execute_sql("INSERT INTO audit_events SELECT * FROM old_events")
        .await;
    app.execute_sql("DELETE FROM audit_head").await;
    app.execute_sql("INSERT INTO audit_head SELECT * FROM old_head")
        .await;
    // Without a pin the rolled-back log is consistent: that is the documented limit.
    app.audit_verify()
        .await
        .assert_success("tessera audit verify (no pin) on the rolled-back log");
    let out = app.cli(&["audit", "verify", "--pin", &pin], None).await;
    assert!(
        !out.status.success() && out.stderr.contains("AUDIT LOG TAMPERED"),
        "a pinned head that is gone fails verification:\n{}\n{}",
        out.stdout,
        out.stderr
    );
}

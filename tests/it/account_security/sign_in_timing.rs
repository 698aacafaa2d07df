//! No account enumeration by timing: a wrong password and an unknown email take the same time.

use super::*;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_take_the_same_time() {
    let _alone = have_the_machine_alone().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_LOCKOUT_THRESHOLD", "1000");
        c.env("TESSERA_IP_FAILURE_LIMIT", "1000");
        c.env("TESSERA_SIGNIN_RATE_LIMIT", "0");
    })
    .await;
    let user = app.add_user("quinn@example.test").await;
    let login = open(&app, &app.client, "/login").await;
    let csrf = input_value(&login.html, "csrf_token").expect("a csrf_token");
    let attempt = |email: String| {
        let form = [
            ("csrf_token", csrf.clone()),
            ("request", String::new()),
            ("email", email),
            ("password", WRONG_PASSWORD.to_owned()),
        ];
        let request = app.client.post(app.url("/login")).form(&form);
        async move {
            let start = Instant::now();
            let resp = request.send().await.expect("POST /login");
            let status = resp.status();
            resp.bytes().await.expect("read the answer");
            let took = start.elapsed();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            took
        }
    };
    // Warm up both paths (pools, caches) before measuring.
    for _ in 0..2 {
        attempt(user.email.clone()).await;
        attempt("warmup@example.test".to_owned()).await;
    }
    // Fifteen timings of each kind, taken in alternation. A neighbour (another test, another
    // process) can only ever add time, so each timing is the quickest of three tries made in
    // turn with the other kind: what remains is the server's own work.
    let (mut existing, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..15 {
        let (mut fastest_existing, mut fastest_unknown) = (Duration::MAX, Duration::MAX);
        for j in 0..3 {
            let unknown_email = format!("nobody{i}.{j}@example.test");
            if (i + j) % 2 == 0 {
                fastest_existing = fastest_existing.min(attempt(user.email.clone()).await);
                fastest_unknown = fastest_unknown.min(attempt(unknown_email).await);
            } else {
                fastest_unknown = fastest_unknown.min(attempt(unknown_email).await);
                fastest_existing = fastest_existing.min(attempt(user.email.clone()).await);
            }
        }
        existing.push(fastest_existing);
        unknown.push(fastest_unknown);
    }
    let (a, b) = (median(existing.clone()), median(unknown.clone()));
    let ratio = a.max(b).as_secs_f64() / a.min(b).as_secs_f64();
    assert!(
        ratio < 1.25,
        "a wrong password (median {a:?}) and an unknown email (median {b:?}) should take about \
         the same time, but one takes {ratio:.2}x the other\nexisting: {existing:?}\nunknown: {unknown:?}"
    );
}

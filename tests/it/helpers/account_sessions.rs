//! The devices-and-sessions page (`/account/sessions`) and its sign-out forms.

use std::collections::BTreeSet;

use reqwest::{Response, StatusCode};

use super::pages::read_html;
use super::{TestApp, input_value, tags, visible_text};

/// One `<li class="session ...">` of the devices-and-sessions page.
#[derive(Debug, Clone)]
pub struct ListedSession {
    pub id: String,
    /// Marked as the session of the browser looking at the page.
    pub current: bool,
}

/// The devices-and-sessions page (`/account/sessions`).
#[derive(Debug, Clone)]
pub struct SessionsPage {
    pub csrf_token: String,
    pub sessions: Vec<ListedSession>,
    pub html: String,
}

impl SessionsPage {
    pub fn ids(&self) -> BTreeSet<String> {
        self.sessions.iter().map(|s| s.id.clone()).collect()
    }

    /// The one session marked as this browser's.
    pub fn current(&self) -> &ListedSession {
        let current: Vec<&ListedSession> = self.sessions.iter().filter(|s| s.current).collect();
        assert_eq!(
            current.len(),
            1,
            "exactly one session is marked current, not {current:?}:\n{}",
            self.html
        );
        current[0]
    }

    /// What a person reads on the page.
    pub fn text(&self) -> String {
        visible_text(&self.html)
    }
}

/// A 200 devices-and-sessions page: one `<li class="session">` per live session, each with a
/// `data-session-id`, and the forms that sign devices out.
pub async fn expect_sessions_page(resp: Response) -> SessionsPage {
    let (status, html) = read_html(resp).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the sessions page is a 200:\n{html}"
    );
    let sessions = tags(&html, "li")
        .into_iter()
        .filter(|li| {
            li.attr("class")
                .is_some_and(|c| c.split_whitespace().any(|c| c == "session"))
        })
        .map(|li| {
            let id = li.attr("data-session-id").unwrap_or_default().to_owned();
            assert!(!id.is_empty(), "a listed session carries its id: {li:?}");
            let current = li
                .attr("class")
                .is_some_and(|c| c.split_whitespace().any(|c| c == "current"));
            ListedSession { id, current }
        })
        .collect();
    let forms: Vec<String> = tags(&html, "form")
        .iter()
        .filter_map(|f| f.attr("action").map(str::to_owned))
        .collect();
    assert!(
        forms.iter().any(|a| a == "/account/sessions/revoke-all"),
        "the sessions page offers to sign devices out, its forms go to {forms:?}:\n{html}"
    );
    let csrf_token = input_value(&html, "csrf_token").unwrap_or_default();
    assert!(
        !csrf_token.is_empty(),
        "the sessions page carries a csrf_token:\n{html}"
    );
    SessionsPage {
        csrf_token,
        sessions,
        html,
    }
}

impl TestApp {
    /// GET /account/sessions; the browser must be signed in.
    pub async fn sessions_page_in(&self, browser: &reqwest::Client) -> SessionsPage {
        let resp = browser
            .get(self.url("/account/sessions"))
            .send()
            .await
            .expect("GET /account/sessions");
        expect_sessions_page(resp).await
    }

    /// "Sign out" next to one session of the sessions page.
    pub async fn revoke_session_in(
        &self,
        browser: &reqwest::Client,
        page: &SessionsPage,
        session_id: &str,
    ) -> Response {
        let form = [
            ("csrf_token", page.csrf_token.as_str()),
            ("session_id", session_id),
        ];
        browser
            .post(self.url("/account/sessions/revoke"))
            .form(&form)
            .send()
            .await
            .expect("POST /account/sessions/revoke")
    }

    /// "Sign out all other devices" (`keep_current`) or "Sign out all devices".
    pub async fn revoke_all_sessions_in(
        &self,
        browser: &reqwest::Client,
        page: &SessionsPage,
        keep_current: bool,
    ) -> Response {
        let form = [
            ("csrf_token", page.csrf_token.as_str()),
            ("keep_current", if keep_current { "yes" } else { "no" }),
        ];
        browser
            .post(self.url("/account/sessions/revoke-all"))
            .form(&form)
            .send()
            .await
            .expect("POST /account/sessions/revoke-all")
    }
}

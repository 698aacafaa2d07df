//! Cursor pagination shared by every list (console pages and API endpoints).
//!
//! A list is sorted by a key that is unique per row (e.g. `(created_at, id)`); a page is the
//! rows after a key, at most `limit` of them. The cursor handed out for the next page is the
//! last row's key, serialised and MACed (`base64url(json) . base64url(mac)`): opaque to the
//! caller, and a cursor that was altered, made up, or made for another list is refused
//! ([`AdminError::Invalid`], a 400) instead of being trusted as a position.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::AdminError;
use crate::crypto::{b64, b64_decode};
use crate::oauth::Provider;

/// Rows per page when the request names no limit.
pub const DEFAULT_LIMIT: usize = 50;
/// The most rows a page may hold.
pub const MAX_LIMIT: usize = 200;
/// The longest cursor accepted (a sort key is small).
const MAX_CURSOR: usize = 1024;

/// Which rows to read: those after `after` (from the start when `None`), at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<K> {
    pub after: Option<K>,
    pub limit: usize,
}

/// One page of rows, and the key to continue after when there may be more.
#[derive(Debug, Clone)]
pub struct Page<T, K> {
    pub items: Vec<T>,
    pub next: Option<K>,
}

impl<T, K> Page<T, K> {
    /// A page from up to `limit + 1` rows read after the request's position: the extra row
    /// only says there is more, and the last kept row's key (`key`) is where the next page
    /// starts.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> K) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(key) } else { None };
        Self { items: rows, next }
    }
}

fn purpose(list: &str) -> String {
    format!("admin-cursor:{list}")
}

/// The cursor for continuing `list` after `key`.
pub fn seal_cursor<K: Serialize>(p: &Provider, list: &str, key: &K) -> Result<String, AdminError> {
    let body = serde_json::to_vec(key)
        .map_err(|_| AdminError::Invalid("the position could not be encoded".into()))?;
    let tag = p.crypto.mac(&purpose(list), &body);
    Ok(format!("{}.{}", b64(&body), b64(&tag)))
}

/// The key a cursor of `list` carries; anything else is [`AdminError::Invalid`].
pub fn open_cursor<K: DeserializeOwned>(
    p: &Provider,
    list: &str,
    cursor: &str,
) -> Result<K, AdminError> {
    let bad = || AdminError::Invalid("the cursor is not valid".into());
    if cursor.len() > MAX_CURSOR {
        return Err(bad());
    }
    let (body, tag) = cursor.split_once('.').ok_or_else(bad)?;
    let (body, tag) = (
        b64_decode(body).ok_or_else(bad)?,
        b64_decode(tag).ok_or_else(bad)?,
    );
    if !p.crypto.verify_mac(&purpose(list), &body, &tag) {
        return Err(bad());
    }
    serde_json::from_slice(&body).map_err(|_| bad())
}

/// A page request from the text a caller sent (`cursor`, `limit`, either may be absent).
pub fn page_request<K: DeserializeOwned>(
    p: &Provider,
    list: &str,
    cursor: Option<&str>,
    limit: Option<&str>,
) -> Result<PageRequest<K>, AdminError> {
    let limit = match limit.map(str::trim).filter(|l| !l.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                AdminError::Invalid(format!("limit must be a number from 1 to {MAX_LIMIT}"))
            })?,
    };
    let after = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(open_cursor(p, list, c)?),
    };
    Ok(PageRequest { after, limit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Kit;

    #[tokio::test]
    async fn a_cursor_round_trips_and_an_altered_or_foreign_one_is_refused() {
        let kit = Kit::new().await;
        let p = &kit.p;
        let key = (1_700_000_000_i64, "u-42".to_string());
        let cursor = seal_cursor(p, "users", &key).unwrap();
        let back: (i64, String) = open_cursor(p, "users", &cursor).unwrap();
        assert_eq!(back, key);
        // Another list's cursor is not a position in this one.
        assert!(open_cursor::<(i64, String)>(p, "sessions", &cursor).is_err());
        // A key changed by the caller (same MAC) is refused.
        let (_, tag) = cursor.split_once('.').unwrap();
        let forged_body = b64(&serde_json::to_vec(&(1_i64, "u-1")).unwrap());
        let forged = format!("{forged_body}.{tag}");
        assert!(matches!(
            open_cursor::<(i64, String)>(p, "users", &forged),
            Err(AdminError::Invalid(_))
        ));
        for junk in ["", "abc", "a.b", &"x".repeat(2000)] {
            assert!(
                open_cursor::<(i64, String)>(p, "users", junk).is_err(),
                "{junk}"
            );
        }
    }

    #[tokio::test]
    async fn limits_default_cap_and_refuse_nonsense() {
        let kit = Kit::new().await;
        let p = &kit.p;
        let r: PageRequest<i64> = page_request(p, "x", None, None).unwrap();
        assert_eq!(
            r,
            PageRequest {
                after: None,
                limit: DEFAULT_LIMIT
            }
        );
        let r: PageRequest<i64> = page_request(p, "x", None, Some("7")).unwrap();
        assert_eq!(r.limit, 7);
        for bad in ["0", "201", "-1", "ten"] {
            assert!(
                page_request::<i64>(p, "x", None, Some(bad)).is_err(),
                "{bad}"
            );
        }
        let c = seal_cursor(p, "x", &9_i64).unwrap();
        let r: PageRequest<i64> = page_request(p, "x", Some(&c), None).unwrap();
        assert_eq!(r.after, Some(9));
    }

    #[test]
    fn a_page_keeps_limit_rows_and_continues_after_the_last_only_when_there_is_more() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |n| *n);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(page.next, Some(2));
        let page = Page::from_rows(vec![1, 2], 2, |n| *n);
        assert_eq!(page.next, None);
    }
}

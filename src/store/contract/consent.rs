//! Consent.
use super::*;

contract!(consent_is_saved_and_replaced, |s: SqlStore| async move {
    assert!(s.find_consent("u", "c").await.unwrap().is_empty());
    s.save_consent("u", "c", &["openid".into()], 1)
        .await
        .unwrap();
    s.save_consent("u", "c", &["openid".into(), "email".into()], 2)
        .await
        .unwrap();
    assert_eq!(
        s.find_consent("u", "c").await.unwrap(),
        vec!["openid", "email"]
    );
});

//! Signing keys.
use super::*;

contract!(
    keys_are_listed_until_they_expire_or_are_revoked,
    |s: SqlStore| async move {
        let key = |kid: &str, activate_at| SigningKeyRecord {
            kid: kid.into(),
            alg: "ES256".into(),
            private_enc: vec![1],
            public_jwk: "{}".into(),
            created_at: 0,
            activate_at,
            expire_at: None,
            revoked_at: None,
        };
        s.insert_key(&key("a", 0)).await.unwrap();
        s.insert_key(&key("b", 10)).await.unwrap();
        s.insert_key(&key("c", 20)).await.unwrap();
        s.set_key_expiry("a", 50).await.unwrap();
        s.revoke_key("c", 30).await.unwrap();
        let kids = |v: Vec<SigningKeyRecord>| v.into_iter().map(|k| k.kid).collect::<Vec<_>>();
        assert_eq!(kids(s.live_keys(49).await.unwrap()), vec!["a", "b"]);
        assert_eq!(kids(s.live_keys(50).await.unwrap()), vec!["b"]);
    }
);

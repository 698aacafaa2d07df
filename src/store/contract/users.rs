//! Users and clients: stored as given, their keys unique.
use super::*;

contract!(
    users_round_trip_and_emails_are_unique,
    |s: SqlStore| async move {
        let u = user("ann@example.com");
        s.insert_user(&u).await.unwrap();
        assert_eq!(
            s.find_user_by_email("ann@example.com").await.unwrap(),
            Some(u.clone())
        );
        assert_eq!(s.find_user(&u.id).await.unwrap(), Some(u.clone()));
        assert!(matches!(
            s.insert_user(&user("ann@example.com")).await,
            Err(StoreError::Conflict)
        ));
        assert!(s.set_user_disabled(&u.id, true, 200).await.unwrap());
        assert!(s.find_user(&u.id).await.unwrap().unwrap().disabled);
        assert!(!s.set_user_disabled("nobody", true, 200).await.unwrap());
    }
);

contract!(
    clients_round_trip_and_ids_are_unique,
    |s: SqlStore| async move {
        let c = Client {
            id: "erp".into(),
            secret_hash: Some(crate::secret::Secret::wrap(vec![1, 2, 3])),
            redirect_uris: vec!["https://erp.example/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["authorization_code".into()],
            scopes: vec!["openid".into()],
            audiences: vec!["https://api".into()],
            first_party: true,
            require_mfa: false,
            created_at: 1,
        };
        s.insert_client(&c).await.unwrap();
        assert_eq!(s.find_client("erp").await.unwrap(), Some(c.clone()));
        assert!(matches!(
            s.insert_client(&c).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(s.find_client("nope").await.unwrap(), None);
    }
);

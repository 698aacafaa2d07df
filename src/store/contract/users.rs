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
            disabled_at: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            backchannel_logout_uri: None,
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

contract!(
    clients_are_listed_edited_rotated_and_disabled_in_place,
    |s: SqlStore| async move {
        let mut c = Client {
            id: "svc".into(),
            secret_hash: Some(crate::secret::Secret::wrap(vec![1])),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["a".into()],
            audiences: vec![],
            first_party: false,
            require_mfa: false,
            created_at: 1,
            disabled_at: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            backchannel_logout_uri: None,
        };
        let mut public = c.clone();
        public.id = "app".into();
        public.secret_hash = None;
        s.insert_client(&c).await.unwrap();
        s.insert_client(&public).await.unwrap();
        let ids: Vec<String> = s
            .list_clients()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["app", "svc"]);

        c.scopes = vec!["a".into(), "b".into()];
        c.audiences = vec!["https://api".into()];
        c.require_mfa = true;
        c.created_at = 99; // not editable: stays 1
        assert!(s.update_client(&c).await.unwrap());
        c.created_at = 1;
        assert_eq!(s.find_client("svc").await.unwrap(), Some(c.clone()));
        let mut nobody = c.clone();
        nobody.id = "nobody".into();
        assert!(!s.update_client(&nobody).await.unwrap());

        assert!(s.rotate_client_secret("svc", &[2], 500).await.unwrap());
        assert!(s.rotate_client_secret("svc", &[3], 600).await.unwrap());
        let rotated = s.find_client("svc").await.unwrap().unwrap();
        assert_eq!(
            rotated.secret_hash.as_ref().map(|h| h.expose().clone()),
            Some(vec![3])
        );
        assert_eq!(
            rotated
                .previous_secret_hash
                .as_ref()
                .map(|h| h.expose().clone()),
            Some(vec![2])
        );
        assert_eq!(rotated.previous_secret_expires_at, Some(600));
        assert!(
            !s.rotate_client_secret("app", &[4], 600).await.unwrap(),
            "public: no secret"
        );
        assert_eq!(s.find_client("app").await.unwrap(), Some(public));

        assert!(s.set_client_disabled("svc", Some(700)).await.unwrap());
        assert_eq!(
            s.find_client("svc").await.unwrap().unwrap().disabled_at,
            Some(700)
        );
        assert!(s.set_client_disabled("svc", None).await.unwrap());
        assert_eq!(
            s.find_client("svc").await.unwrap().unwrap().disabled_at,
            None
        );
        assert!(!s.set_client_disabled("nobody", Some(1)).await.unwrap());
    }
);

contract!(
    a_clients_refresh_tokens_and_codes_are_revoked_together_and_no_other_clients,
    |s: SqlStore| async move {
        let mine = [refresh("f1", None), refresh("f2", None)];
        let mut theirs = refresh("f3", None);
        theirs.client_id = "other".into();
        for t in mine.iter().chain([&theirs]) {
            s.insert_refresh(t).await.unwrap();
        }
        let mut used = refresh("f4", None);
        used.rotated_at = Some(150);
        s.insert_refresh(&used).await.unwrap();
        let code = a_code();
        s.insert_code(&code).await.unwrap();
        assert_eq!(
            s.revoke_client_grants("app", 200).await.unwrap(),
            2,
            "live ones counted"
        );
        assert_eq!(s.revoke_client_grants("app", 300).await.unwrap(), 0);
        let found = s.find_refresh(&used.token_hash).await.unwrap().unwrap();
        assert_eq!(found.revoked_at, Some(200), "a rotated one is revoked too");
        assert!(
            s.find_code(&code.code_hash).await.unwrap().is_none(),
            "its codes are gone"
        );
        for t in &mine {
            let found = s.find_refresh(&t.token_hash).await.unwrap().unwrap();
            assert_eq!(found.revoked_at, Some(200));
        }
        let found = s.find_refresh(&theirs.token_hash).await.unwrap().unwrap();
        assert_eq!(found.revoked_at, None);
    }
);

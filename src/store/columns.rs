//! Column lists shared by the store's SQL, as macros so they can be `concat!`ed into static
//! statements (declared first in `store`, so every store module can use them).

/// The users columns, for `concat!` into static SQL.
macro_rules! user_columns {
    () => {
        "id, email, name, roles, password_hash, disabled, email_verified, created_at"
    };
}

/// The users columns of a join on `users u`, as `u_{column}` for `sql::user_from_prefixed`.
macro_rules! joined_user_columns {
    () => {
        "u.id AS u_id, u.email AS u_email, u.name AS u_name, u.roles AS u_roles, \
         u.password_hash AS u_password_hash, u.disabled AS u_disabled, \
         u.email_verified AS u_email_verified, u.created_at AS u_created_at"
    };
}

/// A refresh token with its user and session (`refresh_grant_from`), up to the `WHERE`.
macro_rules! refresh_grant_select {
    () => {
        concat!(
            "SELECT r.token_hash, r.family_id, r.client_id, r.user_id, r.session_id, r.scope, \
             r.audience, r.auth_time, r.amr, r.created_at, r.idle_expires_at, r.expires_at, \
             r.rotated_at, r.successor_hash, r.successor_enc, r.revoked_at, ",
            joined_user_columns!(),
            ", s.id AS s_id, s.revoked_at AS s_revoked_at \
             FROM refresh_tokens r \
             LEFT JOIN users u ON u.id = r.user_id \
             LEFT JOIN sessions s ON s.id = r.session_id "
        )
    };
}

//! The row types, each declared once with its column list (declared first in `store`, so every
//! store module can use the column macros).
//!
//! `record!` gives a type's column list as a macro, for `concat!` into static SQL, and its
//! [`Record`] mapping from that one list: read by column name, bound as `$1..$n` in the list's
//! order. A field and its column share a name; how each field's type is stored is `sql::row`'s
//! business. Columns are always listed, never `*`: a statement prepared before a migration
//! added a column would otherwise disagree with the table about how many columns a row has.

use super::sql::AnyQuery;
use super::sql::row::{Columns, Record, bind};
use super::{AuthCode, Client, RefreshToken, Session, SigningKeyRecord, StoreResult, User};
use crate::audit::AuditRecord;
use crate::revocation::Revocation;

/// `record!(Type => list_macro { field, ... })`: declares `list_macro!()` (the columns, comma
/// separated) and `Record for Type`. With `, joined_macro as a` it also declares
/// `joined_macro!()`: `a.{column} AS a_{column}` for each column, for a join that reads the type
/// with `Record::from_prefixed(row, "a_")`.
macro_rules! record {
    ($ty:ty => $columns:ident, $joined:ident as $alias:ident { $first:ident $(, $field:ident)* $(,)? }) => {
        record!($ty => $columns { $first $(, $field)* });
        macro_rules! $joined {
            () => {
                concat!(
                    stringify!($alias), ".", stringify!($first), " AS ", stringify!($alias), "_", stringify!($first)
                    $(, ", ", stringify!($alias), ".", stringify!($field), " AS ", stringify!($alias), "_", stringify!($field))*
                )
            };
        }
    };
    ($ty:ty => $columns:ident { $first:ident $(, $field:ident)* $(,)? }) => {
        macro_rules! $columns {
            () => {
                concat!(stringify!($first) $(, ", ", stringify!($field))*)
            };
        }
        impl Record for $ty {
            fn read(c: &Columns<'_>) -> StoreResult<Self> {
                Ok(Self {
                    $first: c.get(stringify!($first))?,
                    $($field: c.get(stringify!($field))?,)*
                })
            }
            fn bind_columns<'q>(&self, query: AnyQuery<'q>) -> AnyQuery<'q> {
                let query = bind(query, &self.$first);
                $(let query = bind(query, &self.$field);)*
                query
            }
        }
    };
}

record!(User => user_columns, joined_user_columns as u {
    id, email, name, roles, password_hash, disabled, email_verified, created_at,
});

record!(Client => client_columns {
    id, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, scopes, audiences,
    first_party, require_mfa, created_at, disabled_at, previous_secret_hash,
    previous_secret_expires_at, backchannel_logout_uri,
});

record!(Session => session_columns {
    id, token_hash, user_id, created_at, created_ms, last_seen_at, expires_at, auth_time, amr,
    user_agent, ip, revoked_at,
});

record!(AuthCode => code_columns {
    code_hash, client_id, user_id, session_id, redirect_uri, scope, nonce, code_challenge,
    resource, auth_time, amr, created_at, expires_at,
});

record!(RefreshToken => refresh_columns {
    token_hash, family_id, client_id, user_id, session_id, scope, audience, auth_time, amr,
    created_at, idle_expires_at, expires_at, rotated_at, successor_hash, successor_enc, revoked_at,
});

record!(SigningKeyRecord => key_columns {
    kid, alg, private_enc, public_jwk, created_at, activate_at, expire_at, revoked_at,
});

record!(AuditRecord => audit_columns {
    seq, at, action, actor, subject, ip, user_agent, detail, prev_hash, hash,
});

record!(Revocation => revocation_columns { kind, subject, at, expires_at, user_id });

/// `SELECT` a row type's columns (its column macro's name), then the rest of the statement:
/// `select!(session_columns, "FROM sessions WHERE id = $1")`.
macro_rules! select {
    ($columns:ident, $($rest:tt)+) => {
        concat!("SELECT ", $columns!(), " ", $($rest)+)
    };
}

/// `INSERT INTO {table} ({columns}) VALUES ({values})`, with a row type's column macro.
macro_rules! insert_into {
    ($table:literal, $columns:ident, $values:literal) => {
        concat!(
            "INSERT INTO ",
            $table,
            " (",
            $columns!(),
            ") VALUES (",
            $values,
            ")"
        )
    };
}

/// A refresh token with its user and session (`refresh::refresh_grant_from`), up to the `WHERE`.
/// The token's columns are qualified by hand (`r.`; a test checks they are `refresh_columns!`).
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

/// `columns` with each one qualified as `{table}.{column}` (to check hand-qualified lists).
#[cfg(test)]
pub(super) fn qualified(table: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{table}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::qualified;

    #[test]
    fn a_refresh_grant_is_selected_with_every_column_of_its_token() {
        let columns = qualified("r", refresh_columns!());
        assert!(refresh_grant_select!().starts_with(&format!("SELECT {columns}, ")));
    }

    #[test]
    fn a_joined_user_is_selected_with_every_user_column_under_its_prefix() {
        let joined: Vec<String> = user_columns!()
            .split(", ")
            .map(|c| format!("u.{c} AS u_{c}"))
            .collect();
        assert_eq!(joined_user_columns!(), joined.join(", "));
    }
}

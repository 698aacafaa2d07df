//! How the store's values are kept in a row, in one place. Both backends store them the same
//! way, so nothing here asks which backend runs: a flag is an integer 0 or 1 (`INTEGER` on
//! SQLite, `BIGINT` on PostgreSQL: sqlx's `Any` driver has no portable boolean column), a list
//! (roles, scopes, redirect URIs, `amr`) is JSON text, bytes are a `BLOB` or `BYTEA`, a timestamp
//! is Unix seconds in a 64-bit integer, and NULL is `None`.
//!
//! A row type ([`Record`]) is declared once in `store::columns` with its column list; its
//! fields are read and bound through [`Value`], by their Rust type.

use std::borrow::Cow;

use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use super::AnyQuery;
use crate::store::{StoreError, StoreResult};

/// A Rust value as one column holds it.
pub(in crate::store) trait Value: Sized {
    /// What the column holds, as sqlx reads and binds it.
    type Stored: for<'r> sqlx::Decode<'r, Any>
        + for<'q> sqlx::Encode<'q, Any>
        + sqlx::Type<Any>
        + 'static;
    fn to_stored(&self) -> Self::Stored;
    /// `column` names the column in the error when the stored value is malformed.
    fn from_stored(stored: Self::Stored, column: &str) -> StoreResult<Self>;
}

/// The values sqlx keeps as they are.
macro_rules! stored_as_is {
    ($($ty:ty),*) => {$(
        impl Value for $ty {
            type Stored = Self;
            fn to_stored(&self) -> Self {
                self.clone()
            }
            fn from_stored(stored: Self, _: &str) -> StoreResult<Self> {
                Ok(stored)
            }
        }
    )*};
}

stored_as_is!(String, i64, Vec<u8>);

/// A flag: 0 or 1 (any other integer reads as set).
impl Value for bool {
    type Stored = i64;
    fn to_stored(&self) -> i64 {
        i64::from(*self)
    }
    fn from_stored(stored: i64, _: &str) -> StoreResult<Self> {
        Ok(stored != 0)
    }
}

/// A list: JSON text.
impl Value for Vec<String> {
    type Stored = String;
    fn to_stored(&self) -> String {
        list(self)
    }
    fn from_stored(stored: String, column: &str) -> StoreResult<Self> {
        serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
    }
}

/// NULL is `None`.
impl<T: Value> Value for Option<T> {
    type Stored = Option<T::Stored>;
    fn to_stored(&self) -> Self::Stored {
        self.as_ref().map(T::to_stored)
    }
    fn from_stored(stored: Self::Stored, column: &str) -> StoreResult<Self> {
        stored.map(|s| T::from_stored(s, column)).transpose()
    }
}

/// A secret (a password hash, a client secret's hash) is stored as its value.
impl<T: Value> Value for crate::secret::Secret<T> {
    type Stored = T::Stored;
    fn to_stored(&self) -> Self::Stored {
        self.expose().to_stored()
    }
    fn from_stored(stored: Self::Stored, column: &str) -> StoreResult<Self> {
        T::from_stored(stored, column).map(Self::wrap)
    }
}

/// A revocation's kind, by its name.
impl Value for crate::revocation::RevocationKind {
    type Stored = String;
    fn to_stored(&self) -> String {
        self.as_str().to_string()
    }
    fn from_stored(stored: String, _: &str) -> StoreResult<Self> {
        Self::parse(&stored).ok_or_else(|| StoreError::Corrupt(format!("revocation kind {stored}")))
    }
}

/// A list as it is stored: JSON text.
pub(super) fn list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// The columns of one row, named `{prefix}{column}` (a prefix tells a joined table's columns
/// apart, as `u_` for `joined_user_columns!`).
pub(in crate::store) struct Columns<'r> {
    row: &'r AnyRow,
    prefix: &'static str,
}

impl Columns<'_> {
    pub(in crate::store) fn get<T: Value>(&self, column: &str) -> StoreResult<T> {
        let name = match self.prefix {
            "" => Cow::Borrowed(column),
            prefix => Cow::Owned(format!("{prefix}{column}")),
        };
        let stored = self.row.try_get::<T::Stored, _>(name.as_ref())?;
        T::from_stored(stored, &name)
    }
}

/// A type stored as one row, declared with `record!` (in `store::columns`): read from its
/// columns by name, bound as `$1..$n` in the order of its column list.
pub(in crate::store) trait Record: Sized {
    fn read(columns: &Columns<'_>) -> StoreResult<Self>;
    /// Binds every column, in the order of the type's column list.
    fn bind_columns<'q>(&self, query: AnyQuery<'q>) -> AnyQuery<'q>;

    fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Self::from_prefixed(row, "")
    }

    /// Read from columns selected as `{prefix}{column}` (joined reads).
    fn from_prefixed(row: &AnyRow, prefix: &'static str) -> StoreResult<Self> {
        Self::read(&Columns { row, prefix })
    }
}

/// Binds one value as the next parameter.
pub(in crate::store) fn bind<'q, T: Value>(query: AnyQuery<'q>, value: &T) -> AnyQuery<'q> {
    query.bind(value.to_stored())
}

/// One column of a row, read as `T`.
pub(in crate::store) fn column<T: Value>(row: &AnyRow, name: &str) -> StoreResult<T> {
    Columns { row, prefix: "" }.get(name)
}

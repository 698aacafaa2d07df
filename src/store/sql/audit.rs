//! The audit log: an append-only chain of entries, each linked to the one before by a keyed
//! hash, and a head whose MAC only a process with the master key can write (`crate::audit`).

use std::sync::Arc;

use super::row::column;
use super::{AnyQuery, SqlStore};
use crate::audit::{AuditEvent, AuditRecord};
use crate::clock::Timestamp;
use crate::crypto::Crypto;
use crate::store::{AuditFilter, AuditStore, Backend, StoreResult};

/// The audit chain's head: the last entry's sequence number and hash.
pub(in crate::store) type AuditHead = (i64, Vec<u8>);

/// PostgreSQL: appends an event as the successor of the head this process last saw, in one
/// statement: the head moves only if it is still where this process left it (compare-and-set on
/// its sequence number), and the event is inserted only if it moved.
/// The head's new MAC (`$11`) is computed by the process before the statement: the database never
/// sees the key. Comparing the last hash (`$9`) too means a head forged in between is never
/// overwritten with a genuine MAC by this path; the locked path then finds it forged.
const APPEND_AFTER_KNOWN_HEAD: &str = concat!(
    "WITH head AS (UPDATE audit_head SET seq = $1, last_hash = $10, head_mac = $11 \
     WHERE id = 1 AND seq = $1 - 1 AND last_hash = $9 RETURNING seq) \
     INSERT INTO audit_events (",
    audit_columns!(),
    ") SELECT seq, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM head"
);

/// Binds an audit entry's columns as `$1`..`$10`, in `audit_events` order: sequence number,
/// time, the event's fields, detail, the previous hash and the entry's hash.
fn bind_entry<'q>(
    query: AnyQuery<'q>,
    (seq, at): (i64, Timestamp),
    e: &'q AuditEvent,
    detail: &'q str,
    prev: Vec<u8>,
    hash: Vec<u8>,
) -> AnyQuery<'q> {
    query
        .bind(seq)
        .bind(at)
        .bind(&e.action)
        .bind(&e.actor)
        .bind(&e.subject)
        .bind(&e.ip)
        .bind(&e.user_agent)
        .bind(detail)
        .bind(prev)
        .bind(hash)
}

/// Appends `e` after whatever the head is, inside the caller's transaction: takes the head
/// row's lock first (its first statement), so appends from every process queue there until
/// that transaction ends. Returns the new head.
pub(in crate::store) async fn append_locked_in(
    tx: &mut sqlx::AnyConnection,
    crypto: &Crypto,
    at: Timestamp,
    e: &AuditEvent,
) -> StoreResult<AuditHead> {
    let head = sqlx::query(
        "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, last_hash, head_mac",
    )
    .fetch_one(&mut *tx)
    .await?;
    let seq: i64 = column(&head, "seq")?;
    let prev: Vec<u8> = column(&head, "last_hash")?;
    let prev_mac: Option<Vec<u8>> = column(&head, "head_mac")?;
    // The head this entry extends must be one a process with the master key wrote;
    // otherwise the new head stays unsealed (an empty MAC), so appending never launders a
    // truncated tail and `tessera audit verify` keeps failing until an operator looks.
    let authentic = crate::audit::head_is_authentic(crypto, seq - 1, &prev, prev_mac.as_deref());
    let detail = e.detail.to_string();
    let hash = crate::audit::event_link(crypto, &prev, seq, at, e, &detail);
    let new_mac = if authentic {
        crate::audit::head_mac(crypto, seq, &hash)
    } else {
        tracing::error!(
            entry = seq - 1,
            "the audit log's head is not authenticated (moved or its MAC removed without \
             the master key); appending anyway and leaving it unsealed: run `tessera audit verify`"
        );
        Vec::new()
    };
    let insert = sqlx::query(insert_into!(
        "audit_events",
        audit_columns,
        "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10"
    ));
    bind_entry(insert, (seq, at), e, &detail, prev, hash.clone())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE audit_head SET last_hash = $1, head_mac = $2 WHERE id = 1")
        .bind(hash.clone())
        .bind(new_mac)
        .execute(&mut *tx)
        .await?;
    Ok((seq, hash))
}

/// PostgreSQL: appends `e` as the successor of `head` (as this process last saw it) in one
/// statement on `conn` (a pool, or the caller's transaction); `None` when another append moved
/// the head meanwhile (the caller then takes [`append_locked_in`]).
pub(in crate::store) async fn append_after_in<'c, E>(
    conn: E,
    crypto: &Crypto,
    (seq, prev): AuditHead,
    at: Timestamp,
    e: &AuditEvent,
) -> StoreResult<Option<AuditHead>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let next = seq + 1;
    let detail = e.detail.to_string();
    let hash = crate::audit::event_link(crypto, &prev, next, at, e, &detail);
    let query = sqlx::query(APPEND_AFTER_KNOWN_HEAD);
    let mac = crate::audit::head_mac(crypto, next, &hash);
    let appended = bind_entry(query, (next, at), e, &detail, prev, hash.clone())
        .bind(mac)
        .execute(conn)
        .await?
        .rows_affected();
    Ok((appended == 1).then_some((next, hash)))
}

/// Appends `e` inside the caller's transaction `tx`, keeping the chain and the head's MAC as
/// [`AuditStore::append_audit`] does: on PostgreSQL through `known` (the head this process
/// last wrote, whose lock queues this process's appends) when it is still the head, else
/// after the locked head. `known` is given the new head before the caller commits: should the
/// commit fail, the next append's compare-and-set misses it and takes the locked path.
pub(in crate::store) async fn append_in_tx(
    tx: &mut sqlx::AnyConnection,
    known: Option<&tokio::sync::Mutex<Option<AuditHead>>>,
    crypto: &Crypto,
    at: Timestamp,
    e: &AuditEvent,
) -> StoreResult<i64> {
    let Some(known) = known else {
        return Ok(append_locked_in(tx, crypto, at, e).await?.0);
    };
    let mut known = known.lock().await;
    let appended = match known.take() {
        Some(head) => append_after_in(&mut *tx, crypto, head, at, e).await?,
        None => None,
    };
    let new = match appended {
        Some(new) => new,
        None => append_locked_in(tx, crypto, at, e).await?,
    };
    let seq = new.0;
    *known = Some(new);
    Ok(seq)
}

impl SqlStore {
    /// Appends after whatever the head is, in a transaction of its own. Returns the new head.
    async fn append_audit_locked(
        &self,
        crypto: &Arc<Crypto>,
        at: Timestamp,
        e: &AuditEvent,
    ) -> StoreResult<AuditHead> {
        let (crypto, e) = (Arc::clone(crypto), e.clone());
        self.write(move |writer| async move {
            let mut tx = writer.begin().await?;
            let head = append_locked_in(&mut tx, &crypto, at, &e).await?;
            tx.commit().await?;
            Ok(head)
        })
        .await
    }

    /// PostgreSQL: one round trip instead of five when no other process appended since this one
    /// last did; `None` when one did (the caller then takes the locked path).
    pub(in crate::store) async fn append_audit_after(
        &self,
        crypto: &Crypto,
        head: AuditHead,
        at: Timestamp,
        e: &AuditEvent,
    ) -> StoreResult<Option<AuditHead>> {
        append_after_in(&self.writer, crypto, head, at, e).await
    }
}

impl AuditStore for SqlStore {
    async fn append_audit(
        &self,
        crypto: &Arc<Crypto>,
        at: Timestamp,
        e: &AuditEvent,
    ) -> StoreResult<i64> {
        if self.backend == Backend::Sqlite {
            // One writer in one process: the transaction costs no round trips.
            return Ok(self.append_audit_locked(crypto, at, e).await?.0);
        }
        let mut known = self.audit_head.lock().await;
        // On an error the head is unknown (the statement may have committed): it stays `None`,
        // and the next append takes the locked path.
        let appended = match known.take() {
            Some(head) => self.append_audit_after(crypto, head, at, e).await?,
            None => None,
        };
        let new = match appended {
            Some(new) => new,
            None => self.append_audit_locked(crypto, at, e).await?,
        };
        let seq = new.0;
        *known = Some(new);
        Ok(seq)
    }

    async fn audit_after(&self, after: i64, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        let query = sqlx::query(select!(
            audit_columns,
            "FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
        ));
        self.read_all(query.bind(after).bind(limit)).await
    }

    async fn audit_tail(&self, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        let query = sqlx::query(select!(
            audit_columns,
            "FROM audit_events ORDER BY seq DESC LIMIT $1"
        ));
        self.read_all(query.bind(limit)).await
    }

    async fn search_audit(
        &self,
        f: &AuditFilter,
        before: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        let (sql, args) = audit_search_sql(f);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(before);
        for arg in args {
            query = match arg {
                SearchArg::Text(t) => query.bind(t),
                SearchArg::Time(t) => query.bind(t),
            };
        }
        self.read_all(query.bind(limit)).await
    }

    async fn audit_counts(
        &self,
        since: Timestamp,
        bucket: i64,
    ) -> StoreResult<Vec<(String, i64, i64)>> {
        let bucket = bucket.max(1);
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT action, (at - $1) / $2 AS bucket, COUNT(*) AS n FROM audit_events \
             WHERE at >= $1 GROUP BY action, bucket",
        )
        .bind(since)
        .bind(bucket)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn audit_head(&self) -> StoreResult<(i64, Vec<u8>, Option<Vec<u8>>)> {
        let row = sqlx::query("SELECT seq, last_hash, head_mac FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((
            column(&row, "seq")?,
            column(&row, "last_hash")?,
            column(&row, "head_mac")?,
        ))
    }

    async fn seal_audit_head(&self, crypto: &Crypto) -> StoreResult<Option<i64>> {
        // The UPDATE below only seals the head read here if it is still unsealed and unmoved.
        let (seq, hash, mac) = self.audit_head().await?;
        if mac.is_some() {
            return Ok(None);
        }
        let sealed = sqlx::query(
            "UPDATE audit_head SET head_mac = $1 \
             WHERE id = 1 AND seq = $2 AND last_hash = $3 AND head_mac IS NULL",
        )
        .bind(crate::audit::head_mac(crypto, seq, &hash))
        .bind(seq)
        .bind(hash)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok((sealed == 1).then_some(seq))
    }
}

/// A value bound to one condition of an audit search.
#[derive(Debug, PartialEq)]
enum SearchArg {
    Text(String),
    Time(Timestamp),
}

/// The audit search's statement, holding a condition only for each filter that is set (`$1` the
/// page's upper bound, then the filters' values in order, then the limit). A condition written
/// as `($n = '' OR subject = $n)` would keep one statement for every filter, but PostgreSQL then
/// switches to a generic plan after five runs on a connection, and that plan cannot use the
/// `(subject, seq)` index: a user's entries took 126 ms instead of 0.14 ms on 500,000 entries
/// (`EXPLAIN ANALYZE` in BENCHMARKS.md). A few distinct statements keep each plan right.
fn audit_search_sql(f: &AuditFilter) -> (String, Vec<SearchArg>) {
    let mut sql = String::from(select!(audit_columns, "FROM audit_events WHERE seq < $1"));
    let mut args = Vec::new();
    let mut add = |condition: &str, arg: SearchArg| {
        args.push(arg);
        let n = args.len() + 1;
        sql.push_str(" AND ");
        sql.push_str(&condition.replace("$n", &format!("${n}")));
    };
    if !f.actor.is_empty() {
        let condition = "substr(COALESCE(actor, ''), 1, length($n)) = $n";
        add(condition, SearchArg::Text(f.actor.clone()));
    }
    if !f.subject.is_empty() {
        add("subject = $n", SearchArg::Text(f.subject.clone()));
    }
    if !f.action.is_empty() {
        let condition = "substr(action, 1, length($n)) = $n";
        add(condition, SearchArg::Text(f.action.clone()));
    }
    if let Some(since) = f.since {
        add("at >= $n", SearchArg::Time(since));
    }
    if let Some(until) = f.until {
        add("at <= $n", SearchArg::Time(until));
    }
    let limit = args.len() + 2;
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${limit}"));
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_search_names_only_the_filters_that_are_set() {
        let none = AuditFilter::default();
        let (sql, args) = audit_search_sql(&none);
        assert!(sql.ends_with("FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT $2"));
        assert!(args.is_empty());

        let subject = AuditFilter {
            subject: "u1".into(),
            until: Some(9),
            ..AuditFilter::default()
        };
        let (sql, args) = audit_search_sql(&subject);
        assert!(
            sql.ends_with(
                "WHERE seq < $1 AND subject = $2 AND at <= $3 ORDER BY seq DESC LIMIT $4"
            ),
            "{sql}"
        );
        assert_eq!(args, vec![SearchArg::Text("u1".into()), SearchArg::Time(9)]);
        assert!(!sql.contains("= ''"), "{sql}");
    }
}

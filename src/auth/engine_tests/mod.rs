//! Lifetime rules of people and their browsers at their edges (one second before, at, one
//! second after), on a real [`crate::oauth::Provider`] with a hand-moved clock
//! ([`crate::testkit`]): session idle and absolute limits, sign-in lock-outs and address limits,
//! and the links sent by mail.

mod links;
mod sessions;
mod throttle;

//! Operator actions on users: filled in by issue 15.

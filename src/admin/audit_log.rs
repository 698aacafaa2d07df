//! Operator actions on audit log: filled in by issue 15.

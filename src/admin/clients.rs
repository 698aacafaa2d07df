//! Operator actions on clients: filled in by issue 15.

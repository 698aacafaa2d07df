//! Operator actions on sessions: filled in by issue 15.

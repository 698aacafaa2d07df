//! Operator actions on keys: filled in by issue 15.

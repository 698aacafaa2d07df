//! Operator actions on overview: filled in by issue 15.

//! Engine tests of the second step on a ManualClock.

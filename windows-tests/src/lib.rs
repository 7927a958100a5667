//! Nothing here: the suite is in `tests/windows.rs`.

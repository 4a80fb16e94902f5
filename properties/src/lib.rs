//! Model-based property tests of the storage drivers live in `tests/`.

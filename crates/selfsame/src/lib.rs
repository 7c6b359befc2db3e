//! selfsame library.

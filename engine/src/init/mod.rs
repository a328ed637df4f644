//! init placeholder

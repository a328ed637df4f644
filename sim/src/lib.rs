//! Seeded discrete-event simulator (see issue "Simulator"); nothing here yet.

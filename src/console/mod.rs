//! The web console for the district, schools and police: who may sign in and with which role
//! (`users`). The pages, sessions and audit log build on it.

pub mod users;

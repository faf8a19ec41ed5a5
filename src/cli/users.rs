//! `schooldns users add | passwd | disable | list`: the people who sign in to the web console,
//! in the users file (`[console] users`). A running server watches the file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::config::{DEFAULT_CONFIG_PATH, LoadedConfig};
use crate::console::users::{self, ConsoleRole};

/// `schooldns users`.
#[derive(Debug, Args)]
pub struct UsersArgs {
    /// Config file (names the users file and the schools).
    #[arg(long, short, default_value = DEFAULT_CONFIG_PATH, global = true)]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// The `users` verbs.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a person; prints a one-time password they must change at first sign-in.
    Add {
        /// Sign-in name (lowercase letters, digits, `.`, `_`, `-`).
        name: String,
        /// `district` (everything), `police` (reads every school, changes nothing) or
        /// `school:<id>` (its own school only).
        #[arg(long)]
        role: String,
        /// Name shown in the console ("Nguyễn Thị Lan").
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Give a person a new one-time password (and enable them again).
    Passwd {
        /// Sign-in name.
        name: String,
    },
    /// Stop a person from signing in.
    Disable {
        /// Sign-in name.
        name: String,
    },
    /// List the people, their roles and states (never their passwords).
    List,
}

/// Runs `schooldns users …`.
pub fn run(args: &UsersArgs) -> anyhow::Result<ExitCode> {
    let loaded = LoadedConfig::read(&args.config)?;
    let config = &loaded.config;
    let path = config.console.users.clone().with_context(|| {
        format!(
            "{} has no [console] users file; add `[console] users = \"config/users.toml\"`",
            args.config.display()
        )
    })?;
    match &args.command {
        UsersCommand::Add {
            name,
            role,
            display_name,
        } => {
            let Some(parsed) = ConsoleRole::parse(role) else {
                bail!("--role {role:?}: expected district, police or school:<id>");
            };
            if let ConsoleRole::School(id) = &parsed
                && !config.has_school(id)
            {
                bail!(
                    "--role {role:?}: no school {id:?} (schools: {})",
                    config.school_ids().join(", ")
                );
            }
            let password = users::add(&path, name, &parsed, display_name.as_deref())?;
            println!("added {name} ({parsed})");
            println!("one-time password: {password}");
            println!("(shown once; {name} must change it at first sign-in)");
        }
        UsersCommand::Passwd { name } => {
            let password = users::passwd(&path, name)?;
            println!("new one-time password for {name}: {password}");
            println!("(shown once; it must be changed at the next sign-in)");
        }
        UsersCommand::Disable { name } => {
            users::disable(&path, name)?;
            println!("disabled {name}; a running server ends their sessions after reloading");
        }
        UsersCommand::List => {
            let all = users::read(&path)?;
            if all.is_empty() {
                println!("no users yet (add one with `schooldns users add NAME --role district`)");
            }
            println!("{:<20} {:<24} {:<10} display name", "name", "role", "state");
            for user in &all {
                let state = if user.disabled {
                    "disabled"
                } else if user.must_change {
                    "new"
                } else {
                    "active"
                };
                println!(
                    "{:<20} {:<24} {:<10} {}",
                    user.name,
                    user.role,
                    state,
                    user.display_name.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

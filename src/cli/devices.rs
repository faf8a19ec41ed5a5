//! `schooldns devices add | revoke | list`: manage home devices in the devices file. A running
//! server watches the file, so changes take effect without a restart.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::config::{Config, DEFAULT_CONFIG_PATH, LoadedConfig};
use crate::devices::edit::{self, NewDevice};
use crate::devices::file;
use crate::devices::setup::Endpoints;

/// `schooldns devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Config file (names the devices file and the public hostname).
    #[arg(long, short, default_value = DEFAULT_CONFIG_PATH, global = true)]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: DevicesCommand,
}

/// The `devices` verbs.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Add a device or family with a fresh token; prints the token and the setup link.
    Add {
        /// Age profile for the device.
        #[arg(long)]
        profile: String,
        /// Display name ("Lan's phone").
        #[arg(long)]
        name: String,
        /// Id for hit records (default: made from the name).
        #[arg(long)]
        id: Option<String>,
        /// School the student belongs to.
        #[arg(long)]
        school: Option<String>,
        /// Let that school see this device's hits.
        #[arg(long, requires = "school")]
        share_with_school: bool,
    },
    /// Revoke a device: its token is refused from the next reload (at once for a running
    /// server).
    Revoke {
        /// The device id.
        id: String,
    },
    /// List devices (tokens hidden unless asked for).
    List {
        /// Also print each token.
        #[arg(long)]
        show_tokens: bool,
    },
}

/// Runs `schooldns devices …`.
pub fn run(args: &DevicesArgs) -> anyhow::Result<ExitCode> {
    let loaded = LoadedConfig::read(&args.config)?;
    let config = &loaded.config;
    let path = devices_file(config, &args.config)?;
    match &args.command {
        DevicesCommand::Add {
            profile,
            name,
            id,
            school,
            share_with_school,
        } => {
            if !config.profiles.contains_key(profile) {
                let known: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
                bail!("unknown profile {profile:?} (known: {})", known.join(", "));
            }
            if let Some(school) = school
                && !config.has_school(school)
            {
                bail!("unknown school {school:?}");
            }
            let added = edit::add(
                &path,
                &NewDevice {
                    id: id.clone(),
                    name: name.clone(),
                    profile: profile.clone(),
                    school: school.clone(),
                    share_with_school: *share_with_school,
                },
            )?;
            println!("added device {} ({name}), profile {profile}", added.id);
            if let Some(warning) = server_addresses_warning(config) {
                eprintln!("warning: {warning}");
            }
            println!("token:          {}", added.token);
            match Endpoints::from_config(config) {
                Some(endpoints) => {
                    println!("setup link:     {}", endpoints.setup_url(&added.token));
                    println!("Android (DoT):  {}", endpoints.dot_name(&added.token));
                    println!("DoH template:   {}", endpoints.doh_url(&added.token));
                }
                None => println!(
                    "(set [tls] hostname in {} to get the setup link)",
                    args.config.display()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        DevicesCommand::Revoke { id } => {
            edit::revoke(&path, id)?;
            println!("revoked device {id}; a running server refuses its token after reloading");
            Ok(ExitCode::SUCCESS)
        }
        DevicesCommand::List { show_tokens } => {
            list(&path, *show_tokens)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The Windows 11 step of the setup page needs the service's IP address beside the DoH
/// template; without `[devices] server_addresses` the page can only say "ask the school".
pub fn server_addresses_warning(config: &Config) -> Option<&'static str> {
    (config.devices.file.is_some() && config.devices.server_addresses.is_empty()).then_some(
        "[devices] server_addresses is empty: the setup page's Windows 11 step cannot show \
         the address to enter (set the service's public IP addresses)",
    )
}

fn devices_file(config: &Config, config_path: &Path) -> anyhow::Result<PathBuf> {
    config.devices.file.clone().with_context(|| {
        format!(
            "{} has no [devices] file; add `[devices] file = \"config/devices.toml\"`",
            config_path.display()
        )
    })
}

fn list(path: &Path, show_tokens: bool) -> anyhow::Result<()> {
    if !path.exists() {
        println!("no devices yet ({} does not exist)", path.display());
        return Ok(());
    }
    let loaded = file::read(path)?;
    println!(
        "{:<24} {:<12} {:<16} {:<7} {:<8} name",
        "id", "profile", "school", "shared", "state"
    );
    for d in &loaded.file.devices {
        println!(
            "{:<24} {:<12} {:<16} {:<7} {:<8} {}{}",
            d.id.get_ref(),
            d.profile.get_ref(),
            d.school.as_ref().map_or("-", |s| s.get_ref().as_str()),
            if d.share_with_school { "yes" } else { "no" },
            if d.revoked { "revoked" } else { "live" },
            d.name,
            if show_tokens {
                format!("  {}", d.token.get_ref())
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

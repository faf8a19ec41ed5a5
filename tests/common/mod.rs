//! Helpers shared by the integration tests: a temporary district with config and lists.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use schooldns::config::LoadedConfig;
use schooldns::name::QueryName;
use schooldns::policy::{Compiler, Explanation, Policy};

/// A temporary folder holding a config file and list files; paths in the config are written
/// relative to it and resolved by making them absolute before compiling.
pub struct District {
    pub dir: tempfile::TempDir,
}

impl District {
    pub fn new() -> District {
        District {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating folders).
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes `schooldns.toml`, replacing `@/` with this folder's absolute path.
    pub fn config(&self, text: &str) -> PathBuf {
        let root = format!("{}/", self.dir.path().display());
        self.write("schooldns.toml", &text.replace("@/", &root))
    }

    pub fn load(&self) -> LoadedConfig {
        LoadedConfig::read(&self.path("schooldns.toml")).expect("config parses")
    }

    pub fn compile(&self) -> Policy {
        Compiler::default()
            .compile(&self.load())
            .unwrap_or_else(|e| panic!("compile: {e}"))
    }
}

/// Decides and explains in one call.
pub fn explain(policy: &Policy, client: &str, name: &str) -> Explanation {
    let client: IpAddr = client.parse().unwrap();
    let q = QueryName::from_user(name).unwrap();
    let d = policy.decide(client, &q);
    policy.explain(client, &q, &d)
}

/// The repository root (where `config/` and `blocklists/` are).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture's path.
pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

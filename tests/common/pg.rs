//! A throwaway PostgreSQL cluster for tests: Debian's server binaries, `initdb` into a temporary
//! folder, `pg_ctl` on a loopback port, a `schooldns` role with a password (SCRAM over TCP, as a
//! district runs it) and a `schooldns` database. Stopped and deleted when dropped.
//!
//! PostgreSQL refuses to run as root: under root (CI) the cluster runs as the `postgres`
//! system user the Debian package makes, through `runuser`.
//!
//! Without PostgreSQL installed, [`Pg::start`] returns `None` and the test says it skipped,
//! unless `SCHOOLDNS_REQUIRE_POSTGRES` is set (CI sets it), when it fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The password of the `schooldns` role.
const PASSWORD: &str = "test-only-9f2c";

pub struct Pg {
    pub dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    user: Option<&'static str>,
}

/// The newest installed server's binaries.
fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists() && bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

impl Pg {
    /// Starts a cluster, or `None` (with a note) where PostgreSQL is not installed.
    pub fn start() -> Option<Pg> {
        let Some(bin) = server_bin() else {
            assert!(
                std::env::var_os("SCHOOLDNS_REQUIRE_POSTGRES").is_none(),
                "SCHOOLDNS_REQUIRE_POSTGRES is set but no PostgreSQL server is installed \
                 (apt-get install postgresql)"
            );
            eprintln!("skipped: no PostgreSQL server installed (apt-get install postgresql)");
            return None;
        };
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let user = root.then_some("postgres");
        let dir = tempfile::Builder::new()
            .prefix("schooldns-pg")
            .tempdir_in("/tmp")
            .unwrap();
        let pg = Pg {
            port: super::free_port(),
            dir,
            bin,
            user,
        };
        std::fs::write(pg.dir.path().join("pw"), "postgres-only\n").unwrap();
        if let Some(user) = user {
            let status = Command::new("chown")
                .args(["-R", user])
                .arg(pg.dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data().display().to_string(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", pg.dir.path().join("pw").display()),
                "-E",
                "UTF8",
                "--no-instructions",
            ],
        );
        let conf = format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             shared_buffers = 128MB\nmax_connections = 60\n",
            pg.port,
            pg.dir.path().display()
        );
        let conf_path = pg.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_path, text).unwrap();
        pg.start_server();
        pg.psql_in(
            "postgres",
            &format!("CREATE ROLE schooldns LOGIN PASSWORD '{PASSWORD}'"),
        );
        pg.psql_in("postgres", "CREATE DATABASE schooldns OWNER schooldns");
        std::fs::write(pg.password_file(), format!("{PASSWORD}\n")).unwrap();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server's programs (as `postgres` under root).
    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        let path = self.bin.join(program);
        let output = match self.user {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&path)
                .args(args)
                .current_dir(self.dir.path())
                .output(),
            None => Command::new(&path).args(args).output(),
        }
        .unwrap();
        assert!(
            output.status.success() || program == "pg_ctl",
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn start_server(&self) {
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-l",
                &log.display().to_string(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server at once (connections are cut, as when the database host goes away).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// Starts it again after [`Pg::stop`].
    pub fn restart(&self) {
        self.start_server();
    }

    /// `psql` as the superuser over the Unix socket; returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("schooldns", sql)
    }

    /// `psql` in database `db`.
    fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = self.run(
            "psql",
            &[
                "-h",
                &self.dir.path().display().to_string(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// One number from a query.
    pub fn count(&self, sql: &str) -> i64 {
        let text = self.psql(sql);
        text.parse()
            .unwrap_or_else(|_| panic!("`{sql}` gave `{text}`"))
    }

    /// The URL schooldns connects with (no password: it is in [`Pg::password_file`]).
    pub fn url(&self) -> String {
        format!("postgres://schooldns@127.0.0.1:{}/schooldns", self.port)
    }

    /// The password file.
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("schooldns.password")
    }

    /// `[hitlog]` keys for an instance named `instance` with its spool at `spool`.
    pub fn hitlog_keys(&self, instance: &str, spool: &Path) -> String {
        format!(
            "backend = \"postgres\"\nurl = \"{}\"\npassword_file = \"{}\"\ninstance = \"{instance}\"\n\
             path = \"{}\"\n",
            self.url(),
            self.password_file().display(),
            spool.display()
        )
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop();
    }
}

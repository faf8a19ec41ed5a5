//! A small W3C WebDriver client for the console's browser tests: starts Debian's
//! `chromedriver` on a loopback port, opens a headless Chromium session, and drives it with
//! plain JSON over HTTP (navigate, find, type, click, read, screenshot, cookies). Calls block;
//! tests run them with `block_in_place` on a multi-threaded runtime.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The element reference key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session.
pub struct Browser {
    base: String,
    driver: Child,
    agent: ureq::Agent,
}

impl Browser {
    /// A headless Chromium of `width`×`height` speaking `lang`; `None` when chromedriver is
    /// not installed (CI installs it and requires it).
    pub fn start(width: u32, height: u32, lang: &str) -> Option<Browser> {
        if Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("SCHOOLDNS_REQUIRE_CLIENTS").is_none(),
                "chromedriver is required here but not installed"
            );
            eprintln!("skipping: chromedriver is not installed");
            return None;
        }
        let port = super::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while agent.get(&format!("{base}/status")).call().is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut browser = Browser {
            base,
            driver,
            agent,
        };
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("chromium");
        let session = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": binary,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--no-first-run",
                             format!("--window-size={width},{height}"), format!("--lang={lang}")],
                    "prefs": {"intl.accept_languages": lang}
                }
            }}}),
        );
        let id = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser.base = format!("{}/session/{id}", browser.base);
        browser.size(width, height);
        Some(browser)
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.to_string()),
        }
        .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        let text = response
            .into_body()
            .read_to_string()
            .expect("a webdriver answer");
        let value: Value = serde_json::from_str(&text).expect("webdriver JSON");
        if let Some(error) = value["value"]["error"].as_str() {
            panic!(
                "webdriver {method} {path}: {error}: {}",
                value["value"]["message"]
            );
        }
        value.get("value").cloned().unwrap_or(value)
    }

    /// Sets the window's outer size (the viewport follows).
    pub fn size(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        );
    }

    /// Opens a URL and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.call("GET", "/url", Value::Null)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits up to 5 s for the URL to contain `part` (a submitted form's page to load).
    pub fn wait_url(&self, part: &str) {
        let start = Instant::now();
        while !self.url().contains(part) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "still at {}, wanted {part}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page's HTML as the browser has it.
    pub fn source(&self) -> String {
        self.call("GET", "/source", Value::Null)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The first element matching `css`, waiting up to 5 s for it.
    pub fn find(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let url = format!("{}/element", self.base);
            let found: Value = self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(json!({"using": "css selector", "value": css}).to_string())
                .ok()
                .and_then(|r| r.into_body().read_to_string().ok())
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            if let Some(id) = found["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no element {css:?} on {}:\n{}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether an element matching `css` is on the page now.
    pub fn has(&self, css: &str) -> bool {
        let found = self.call(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": css}),
        );
        found.as_array().is_some_and(|a| !a.is_empty())
    }

    /// The visible text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.call("GET", &format!("/element/{id}/text"), Value::Null)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Clears a field and types into it.
    pub fn fill(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/clear"), json!({}));
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    fn press(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Clicks a link or a form's button and waits (up to 5 s) for the next page to load.
    pub fn click(&self, css: &str) {
        self.script("window.__before_click = true; return 0");
        self.press(css);
        let start = Instant::now();
        loop {
            let value = self.script(
                "return document.readyState === 'complete' && window.__before_click === undefined",
            );
            if value == Value::Bool(true) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{css}: no page loaded after the click"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ticks a radio button or a checkbox (no page load follows).
    pub fn tick(&self, css: &str) {
        self.press(css);
    }

    /// Chooses an option of a `<select>` by value.
    pub fn choose(&self, select_css: &str, value: &str) {
        self.press(&format!("{select_css} option[value=\"{value}\"]"));
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self.call("GET", "/cookie", Value::Null);
        cookies
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["value"].as_str().map(str::to_string))
    }

    /// Saves a PNG of the viewport.
    pub fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let data = self.call("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or(""))
            .expect("a base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Runs a script in the page and returns its value.
    pub fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

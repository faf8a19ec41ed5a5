//! The parent-facing setup pages: `GET /setup/<token>` (HTML, Vietnamese and English) and
//! `GET /apple/<token>.mobileconfig` (an Apple DNS settings profile).
//!
//! Both are built from the live policy's device and the config's public endpoints, served by
//! the DoH listener (the hostname parents already use) and the admin listener. Pages are plain
//! HTML with inline style and no script, so they work on any phone browser; every value from a
//! file is escaped.

use std::fmt::Write;
use std::net::IpAddr;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::live::Live;
use crate::policy::devices::Device;

/// A setup page or profile, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupResponse {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// For downloads: the file name to save as.
    pub filename: Option<String>,
}

impl SetupResponse {
    /// Headers every listener sends with a setup page (besides `Content-Type` and
    /// `Cache-Control: no-store`): the token is in the URL, so it must not leak through a
    /// referrer, and the page runs nothing.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("Referrer-Policy", "no-referrer".to_string()),
            ("X-Content-Type-Options", "nosniff".to_string()),
            (
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'".to_string(),
            ),
        ];
        if let Some(name) = &self.filename {
            headers.push((
                "Content-Disposition",
                format!("attachment; filename=\"{name}\""),
            ));
        }
        headers
    }
}

/// Serves `/setup/<token>` and `/apple/<token>.mobileconfig` from the live policy's devices.
pub struct SetupPages {
    /// The live state: the devices, and the config's public endpoints.
    live: Arc<Live>,
    /// The DoT and DoH ports actually bound, for a config that asked for port 0.
    bound_ports: (Option<u16>, Option<u16>),
    /// Which devices just asked for the check name.
    checks: Arc<super::check::DeviceChecks>,
}

impl SetupPages {
    /// Pages for the live devices, with the live config's public endpoints.
    /// `bound_ports` are the ports the first DoT and DoH listeners actually got (they differ
    /// from the config when it asks for port 0).
    pub fn new(
        live: Arc<Live>,
        bound_ports: (Option<u16>, Option<u16>),
        checks: Arc<super::check::DeviceChecks>,
    ) -> SetupPages {
        SetupPages {
            live,
            bound_ports,
            checks,
        }
    }

    /// The public endpoints of `config`, with the ports actually bound.
    fn endpoints(&self, config: &Config) -> Option<Endpoints> {
        let mut endpoints = Endpoints::from_config(config);
        if let Some(e) = endpoints.as_mut() {
            let (dot, doh) = self.bound_ports;
            if let Some(port) = dot {
                e.dot_port = (port != 853).then_some(port);
            }
            if let Some(port) = doh {
                e.doh_port = (port != 443).then_some(port);
            }
        }
        endpoints
    }

    /// The response for a path, or `None` if the path is not a setup path. Unknown and
    /// revoked tokens get the same 404, so the pages cannot be used to test tokens apart.
    pub fn get(&self, path: &str) -> Option<SetupResponse> {
        let (token, apple, check) = if let Some(token) = path.strip_prefix("/setup/") {
            (token, false, false)
        } else if let Some(token) = path.strip_prefix("/check/") {
            (token, false, true)
        } else {
            let file = path.strip_prefix("/apple/")?;
            (file.strip_suffix(".mobileconfig")?, true, false)
        };
        let not_found = || SetupResponse {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: "Không tìm thấy thiết bị này (mã sai hoặc đã bị thu hồi).
                   No such device: the code is wrong or was revoked.
"
            .into(),
            filename: None,
        };
        let live = self.live.load();
        let Some(endpoints) = self.endpoints(&live.config) else {
            return Some(SetupResponse {
                status: 503,
                content_type: "text/plain; charset=utf-8",
                body: "[tls] hostname is not configured\n".into(),
                filename: None,
            });
        };
        let policy = &live.policy;
        let token = token.to_ascii_lowercase();
        let Some(device) = policy
            .devices()
            .by_token(&token)
            .and_then(|i| policy.devices().get(i))
        else {
            return Some(not_found());
        };
        if check {
            let seen = self.checks.seen(&token, CHECK_WINDOW);
            return Some(SetupResponse {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: check_page(&endpoints, device, seen.is_some()),
                filename: None,
            });
        }
        Some(if apple {
            SetupResponse {
                status: 200,
                content_type: "application/x-apple-aspen-config",
                body: mobileconfig(&endpoints, device),
                filename: Some(format!("{}.mobileconfig", device.id)),
            }
        } else {
            // Parents see the profile's description ("Tiểu học · Primary"), not its id.
            let profile = policy
                .profiles()
                .get(device.profile as usize)
                .map_or("", |p| p.name.as_str());
            let profile = live
                .config
                .profiles
                .get(profile)
                .and_then(|p| p.description.as_deref())
                .unwrap_or(profile);
            SetupResponse {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: page(&endpoints, device, profile),
                filename: None,
            }
        })
    }
}

/// How recent a device's query for the check name must be for its check page to say yes.
const CHECK_WINDOW: std::time::Duration = std::time::Duration::from_secs(120);

/// The check page: whether this device's DNS just came through schooldns with its token.
fn check_page(endpoints: &Endpoints, device: &Device, working: bool) -> String {
    let name = escape(&device.name);
    let setup = escape(&endpoints.setup_url(&device.token));
    let (mark, vi, en) = if working {
        (
            "✓",
            "Bộ lọc đang hoạt động trên thiết bị này.",
            "The filter is on for this device.",
        )
    } else {
        (
            "✗",
            "Bộ lọc CHƯA hoạt động: thiết bị này không hỏi DNS qua máy chủ của nhà trường.",
            "The filter is NOT on: this device does not ask the school's DNS server.",
        )
    };
    format!(
        "<!DOCTYPE html><html lang=\"vi\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{mark} {name}</title></head>\
         <body><h1 id=\"result\" data-working=\"{working}\">{mark} <span lang=\"vi\">{vi}</span><br>\
         <span lang=\"en\">{en}</span></h1><p>“{name}”</p>\
         <p><a href=\"{setup}\">Hướng dẫn cài đặt · Setup steps</a></p></body></html>"
    )
}

/// Where a device reaches the service, as the setup pages spell it.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `[tls] hostname`.
    pub hostname: String,
    /// The DoH port, when not 443.
    pub doh_port: Option<u16>,
    /// The DoT port, when not 853 (Android only uses 853: the page warns).
    pub dot_port: Option<u16>,
    /// `[devices] server_addresses`.
    pub server_addresses: Vec<IpAddr>,
    /// `[devices] help`: who parents ask.
    pub help: Option<String>,
}

impl Endpoints {
    /// The endpoints of a config with `[tls] hostname`; ports from the first DoT and DoH
    /// listeners.
    pub fn from_config(config: &Config) -> Option<Endpoints> {
        let hostname = config.tls.hostname.as_ref()?.get_ref().to_ascii_lowercase();
        let port = |addrs: &[std::net::SocketAddr], standard: u16| {
            addrs.first().map(|a| a.port()).filter(|&p| p != standard)
        };
        Some(Endpoints {
            hostname,
            doh_port: port(&config.server.doh, 443),
            dot_port: port(&config.server.dot, 853),
            server_addresses: config.devices.server_addresses.clone(),
            help: config.devices.help.clone(),
        })
    }

    fn origin(&self) -> String {
        match self.doh_port {
            Some(port) => format!("https://{}:{port}", self.hostname),
            None => format!("https://{}", self.hostname),
        }
    }

    /// The DoH URL template for a token.
    pub fn doh_url(&self, token: &str) -> String {
        format!("{}/dns-query/{token}", self.origin())
    }

    /// The DoT server name for a token (Android's "Private DNS provider hostname").
    pub fn dot_name(&self, token: &str) -> String {
        format!("{token}.{}", self.hostname)
    }

    /// The setup page's address.
    pub fn setup_url(&self, token: &str) -> String {
        format!("{}/setup/{token}", self.origin())
    }

    /// The "check that it works" page's address: its host name is the check name, which the
    /// device must resolve through schooldns for the page to say yes.
    pub fn check_url(&self, token: &str) -> String {
        match self.doh_port {
            Some(port) => format!("https://check.{}:{port}/check/{token}", self.hostname),
            None => format!("https://check.{}/check/{token}", self.hostname),
        }
    }

    /// The Apple profile's address.
    pub fn mobileconfig_url(&self, token: &str) -> String {
        format!("{}/apple/{token}.mobileconfig", self.origin())
    }
}

/// Escapes text for HTML and XML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One instruction block: a heading and steps, each in Vietnamese then English.
fn section(html: &mut String, id: &str, title: (&str, &str), steps: &[(String, String)]) {
    let _ = write!(
        html,
        "<section id=\"{id}\"><h2><span lang=\"vi\">{}</span> · <span lang=\"en\">{}</span></h2><ol>",
        title.0, title.1
    );
    for (vi, en) in steps {
        let _ = write!(
            html,
            "<li><span lang=\"vi\">{vi}</span><br><span lang=\"en\" class=\"en\">{en}</span></li>"
        );
    }
    html.push_str("</ol></section>");
}

/// The setup page for a device.
pub fn page(endpoints: &Endpoints, device: &Device, profile: &str) -> String {
    let token = &device.token;
    let dot = escape(&endpoints.dot_name(token));
    let doh = escape(&endpoints.doh_url(token));
    let apple = escape(&endpoints.mobileconfig_url(token));
    let name = escape(&device.name);
    let profile = escape(profile);
    let code = |text: &str| format!("<code>{text}</code>");
    let qr = qr_code(&endpoints.setup_url(token))
        .map(|svg| {
            format!(
                "<figure class=\"qr\">{svg}<figcaption><span lang=\"vi\">Quét mã này bằng máy ảnh \
                 của thiết bị cần cài đặt để mở trang này trên thiết bị đó.</span><br>\
                 <span lang=\"en\" class=\"en\">Scan this code with the camera of the device to \
                 set up, to open this page on it.</span></figcaption></figure>"
            )
        })
        .unwrap_or_default();
    let mut html = String::with_capacity(16384);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"vi\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>Cài đặt lọc web an toàn · Safe browsing setup — {name}</title><style>\
         body{{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:42rem;\
         margin:0 auto;padding:1rem;line-height:1.5;color:#1b1b1b;background:#fff}}\
         h1{{font-size:1.4rem}}h2{{font-size:1.1rem;margin-top:1.6rem;border-top:1px solid #ddd;\
         padding-top:1rem}}code{{display:inline-block;background:#f1f3f5;padding:.15rem .35rem;\
         border-radius:4px;word-break:break-all;user-select:all;font-size:.95rem}}\
         .en{{color:#555}}.button{{display:inline-block;background:#0b5ed7;color:#fff;\
         padding:.6rem 1rem;border-radius:6px;text-decoration:none;margin:.3rem 0}}\
         .note{{background:#fff8e1;padding:.6rem;border-radius:6px}}nav a{{margin-right:.8rem}}\
         .qr{{margin:1rem 0;text-align:center}}.qr svg{{width:12rem;height:12rem}}\
         </style></head><body>\
         <h1><span lang=\"vi\">Lọc web an toàn cho “{name}”</span><br>\
         <span lang=\"en\" class=\"en\">Safe browsing for “{name}”</span></h1>\
         <p><span lang=\"vi\">Thiết bị này sẽ dùng hồ sơ lọc <b>{profile}</b> của nhà trường, \
         ở nhà cũng như ở trường. Làm theo hướng dẫn cho đúng loại thiết bị bên dưới.</span><br>\
         <span lang=\"en\" class=\"en\">This device will use the school's <b>{profile}</b> \
         filtering profile, at home as at school. Follow the steps for your kind of device \
         below.</span></p>\
         <p class=\"note\"><span lang=\"vi\">Hãy giữ kín trang này: đường dẫn chứa mã riêng của \
         thiết bị.</span><br><span lang=\"en\" class=\"en\">Keep this page private: its \
         address holds the device's own code.</span></p>{qr}\
         <nav><a href=\"#android\">Android</a><a href=\"#apple\">iPhone · iPad · Mac</a>\
         <a href=\"#windows\">Windows 11</a><a href=\"#browsers\">Chrome · Edge · Firefox</a></nav>"
    );
    let mut android = vec![
        (
            "Mở <b>Cài đặt</b> → <b>Mạng và Internet</b> (hoặc <b>Kết nối</b> → \
             <b>Cài đặt kết nối khác</b>) → <b>DNS riêng tư</b>."
                .to_string(),
            "Open <b>Settings</b> → <b>Network &amp; internet</b> (or <b>Connections</b> → \
             <b>More connection settings</b>) → <b>Private DNS</b>."
                .to_string(),
        ),
        (
            format!(
                "Chọn <b>Tên máy chủ của nhà cung cấp DNS riêng tư</b> và nhập: {}",
                code(&dot)
            ),
            format!(
                "Choose <b>Private DNS provider hostname</b> and enter: {}",
                code(&dot)
            ),
        ),
        ("Bấm <b>Lưu</b>.".into(), "Tap <b>Save</b>.".into()),
    ];
    if let Some(port) = endpoints.dot_port {
        android.push((
            format!("Lưu ý: máy chủ này dùng cổng {port}; Android chỉ dùng cổng 853."),
            format!("Note: this server listens on port {port}; Android only uses port 853."),
        ));
    }
    section(
        &mut html,
        "android",
        ("Android 9 trở lên", "Android 9 or later"),
        &android,
    );
    section(
        &mut html,
        "apple",
        ("iPhone, iPad và Mac", "iPhone, iPad and Mac"),
        &[
            (
                format!(
                    "Mở trang này bằng Safari trên chính thiết bị đó và bấm: \
                     <a class=\"button\" href=\"{apple}\">Tải hồ sơ DNS</a>"
                ),
                format!(
                    "Open this page in Safari on that device and tap: \
                     <a class=\"button\" href=\"{apple}\">Download the DNS profile</a>"
                ),
            ),
            (
                "iPhone/iPad: <b>Cài đặt</b> → <b>Đã tải về hồ sơ</b> → <b>Cài đặt</b>. \
                 Mac: <b>Cài đặt hệ thống</b> → <b>Quyền riêng tư &amp; Bảo mật</b> → \
                 <b>Hồ sơ</b> → bấm đúp vào hồ sơ → <b>Cài đặt</b>."
                    .into(),
                "iPhone/iPad: <b>Settings</b> → <b>Profile Downloaded</b> → <b>Install</b>. \
                 Mac: <b>System Settings</b> → <b>Privacy &amp; Security</b> → \
                 <b>Profiles</b> → double-click the profile → <b>Install</b>."
                    .into(),
            ),
            (
                format!(
                    "Hồ sơ hiện chữ <b>Chưa xác minh</b>: điều đó là bình thường, vì hồ sơ do nhà \
                     trường tạo, không do Apple ký. Hãy kiểm tra hồ sơ có tên “{name}” và máy chủ \
                     {host}.",
                    host = code(&escape(&endpoints.hostname))
                ),
                format!(
                    "The profile shows <b>Not Verified</b>: that is expected, as the school made \
                     it and Apple did not sign it. Check that it is named “{name}” and that its \
                     server is {host}.",
                    host = code(&escape(&endpoints.hostname))
                ),
            ),
        ],
    );
    let address = if endpoints.server_addresses.is_empty() {
        (
            "địa chỉ IP mà nhà trường cung cấp".to_string(),
            "the IP address the school gives you".to_string(),
        )
    } else {
        let list: Vec<String> = endpoints
            .server_addresses
            .iter()
            .map(|a| code(&a.to_string()))
            .collect();
        (list.join(" "), list.join(" "))
    };
    section(
        &mut html,
        "windows",
        ("Windows 11", "Windows 11"),
        &[
            (
                "Mở <b>Cài đặt</b> → <b>Mạng &amp; Internet</b> → <b>Wi-Fi</b> (hoặc \
                 <b>Ethernet</b>) → <b>Thuộc tính phần cứng</b> → <b>Gán máy chủ DNS</b> → \
                 <b>Chỉnh sửa</b> → <b>Thủ công</b>, bật <b>IPv4</b>."
                    .into(),
                "Open <b>Settings</b> → <b>Network &amp; internet</b> → <b>Wi-Fi</b> (or \
                 <b>Ethernet</b>) → <b>Hardware properties</b> → <b>DNS server assignment</b> → \
                 <b>Edit</b> → <b>Manual</b>, turn on <b>IPv4</b>."
                    .into(),
            ),
            (
                format!("<b>DNS ưu tiên</b>: {}", address.0),
                format!("<b>Preferred DNS</b>: {}", address.1),
            ),
            (
                format!(
                    "<b>Mã hóa DNS</b>: <b>Bật (mẫu thủ công)</b>, <b>Mẫu DNS qua HTTPS</b>: {}",
                    code(&doh)
                ),
                format!(
                    "<b>DNS over HTTPS</b>: <b>On (manual template)</b>, <b>DNS over HTTPS \
                     template</b>: {}",
                    code(&doh)
                ),
            ),
            ("Bấm <b>Lưu</b>.".into(), "Click <b>Save</b>.".into()),
        ],
    );
    section(
        &mut html,
        "browsers",
        (
            "Trình duyệt Chrome, Edge, Firefox",
            "Chrome, Edge and Firefox browsers",
        ),
        &[
            (
                format!(
                    "Chrome: <b>Cài đặt</b> → <b>Quyền riêng tư và bảo mật</b> → <b>Bảo mật</b> → \
                     <b>Sử dụng DNS an toàn</b> → <b>Tùy chỉnh</b>: {}",
                    code(&doh)
                ),
                format!(
                    "Chrome: <b>Settings</b> → <b>Privacy and security</b> → <b>Security</b> → \
                     <b>Use secure DNS</b> → <b>Custom</b>: {}",
                    code(&doh)
                ),
            ),
            (
                format!(
                    "Edge: <b>Cài đặt</b> → <b>Quyền riêng tư, tìm kiếm và dịch vụ</b> → \
                     <b>Bảo mật</b> → <b>Sử dụng DNS an toàn</b> → <b>Chọn nhà cung cấp dịch vụ</b>: {}",
                    code(&doh)
                ),
                format!(
                    "Edge: <b>Settings</b> → <b>Privacy, search, and services</b> → \
                     <b>Security</b> → <b>Use secure DNS</b> → <b>Choose a service provider</b>: {}",
                    code(&doh)
                ),
            ),
            (
                format!(
                    "Firefox: <b>Cài đặt</b> → <b>Riêng tư &amp; Bảo mật</b> → <b>DNS qua HTTPS</b> \
                     → <b>Bảo vệ tối đa</b> → <b>Tùy chỉnh</b>: {}",
                    code(&doh)
                ),
                format!(
                    "Firefox: <b>Settings</b> → <b>Privacy &amp; Security</b> → <b>DNS over \
                     HTTPS</b> → <b>Max Protection</b> → <b>Custom</b>: {}",
                    code(&doh)
                ),
            ),
        ],
    );
    let check = escape(&endpoints.check_url(token));
    section(
        &mut html,
        "check",
        ("Kiểm tra bộ lọc đã hoạt động", "Check that it works"),
        &[
            (
                format!(
                    "Sau khi cài đặt, trên chính thiết bị của con, mở: \
                     <a class=\"button\" href=\"{check}\">Kiểm tra</a>"
                ),
                format!(
                    "After the setup, on your child's device itself, open: \
                     <a class=\"button\" href=\"{check}\">Check</a>"
                ),
            ),
            (
                "Trang hiện <b>✓ Bộ lọc đang hoạt động</b>: xong. Trang báo chưa hoạt động hoặc \
                 không mở được: hãy làm lại các bước ở trên, tắt VPN nếu có, rồi thử lại sau một phút."
                    .into(),
                "The page shows <b>✓ The filter is on</b>: done. It says the filter is not on, or \
                 does not open: do the steps above again, turn off any VPN, and try again in a minute."
                    .into(),
            ),
        ],
    );
    match &endpoints.help {
        Some(help) => {
            let help = escape(help);
            let _ = write!(
                html,
                "<p class=\"note\"><span lang=\"vi\">Cần giúp đỡ? Liên hệ: <b>{help}</b></span><br>\
                 <span lang=\"en\" class=\"en\">Need help? Contact: <b>{help}</b></span></p>"
            );
        }
        None => html.push_str(
            "<p class=\"en\"><span lang=\"vi\">Cần giúp đỡ? Hãy liên hệ giáo viên chủ nhiệm \
             hoặc phòng giáo dục.</span><br><span lang=\"en\">Need help? Ask the class teacher \
             or the district education office.</span></p>",
        ),
    }
    html.push_str("</body></html>");
    html
}

/// The QR code of `text` as inline SVG (dark modules on white, no XML declaration), made here:
/// the page needs nothing from outside.
pub fn qr_code(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(192, 192)
        .quiet_zone(true)
        .build();
    let start = svg.find("<svg")?;
    Some(svg[start..].to_string())
}

/// A deterministic UUID (version 4 layout) from a seed, so reinstalling a device's profile
/// replaces it instead of adding a second one.
fn uuid_from(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The Apple configuration profile: one `com.apple.dnsSettings.managed` payload with the
/// device's DoH URL.
pub fn mobileconfig(endpoints: &Endpoints, device: &Device) -> String {
    let url = escape(&endpoints.doh_url(&device.token));
    let name = escape(&device.name);
    let host = escape(&endpoints.hostname);
    let id = escape(&device.id);
    let addresses = if endpoints.server_addresses.is_empty() {
        String::new()
    } else {
        let items: String = endpoints
            .server_addresses
            .iter()
            .map(|a| format!("<string>{a}</string>"))
            .collect();
        format!("<key>ServerAddresses</key><array>{items}</array>")
    };
    let payload_uuid = uuid_from(&format!("dns:{}", device.token));
    let profile_uuid = uuid_from(&format!("profile:{}", device.token));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
			<key>DNSSettings</key>
			<dict>
				<key>DNSProtocol</key>
				<string>HTTPS</string>
				<key>ServerURL</key>
				<string>{url}</string>
				{addresses}
			</dict>
			<key>PayloadDescription</key>
			<string>Lọc web an toàn của nhà trường · School safe-browsing DNS</string>
			<key>PayloadDisplayName</key>
			<string>Safe browsing DNS ({host})</string>
			<key>PayloadIdentifier</key>
			<string>{host}.dns.{id}</string>
			<key>PayloadType</key>
			<string>com.apple.dnsSettings.managed</string>
			<key>PayloadUUID</key>
			<string>{payload_uuid}</string>
			<key>PayloadVersion</key>
			<integer>1</integer>
			<key>ProhibitDisablement</key>
			<true/>
		</dict>
	</array>
	<key>PayloadDescription</key>
	<string>Lọc web an toàn cho “{name}” · Safe browsing for “{name}”</string>
	<key>PayloadDisplayName</key>
	<string>Safe browsing — {name}</string>
	<key>PayloadIdentifier</key>
	<string>{host}.profile.{id}</string>
	<key>PayloadType</key>
	<string>Configuration</string>
	<key>PayloadUUID</key>
	<string>{profile_uuid}</string>
	<key>PayloadVersion</key>
	<integer>1</integer>
</dict>
</plist>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device {
            id: "lan-phone".into(),
            name: "Lan's <phone>".into(),
            profile: 0,
            slot: 0,
            school: None,
            share_with_school: false,
            revoked: false,
            token: "abcdefghijklmnopqrstuvwxyz234567".into(),
        }
    }

    fn endpoints() -> Endpoints {
        Endpoints {
            hostname: "dns.example.edu.vn".into(),
            doh_port: None,
            dot_port: Some(8853),
            server_addresses: vec!["203.0.113.10".parse().unwrap()],
            help: Some("Phòng GD&ĐT · 024 3825 0000".into()),
        }
    }

    #[test]
    fn page_escapes_and_names_every_endpoint() {
        let html = page(&endpoints(), &device(), "primary");
        assert!(html.contains("Lan&#39;s &lt;phone&gt;"));
        assert!(!html.contains("<phone>"));
        assert!(html.contains("abcdefghijklmnopqrstuvwxyz234567.dns.example.edu.vn"));
        assert!(
            html.contains("https://dns.example.edu.vn/dns-query/abcdefghijklmnopqrstuvwxyz234567")
        );
        assert!(html.contains("/apple/abcdefghijklmnopqrstuvwxyz234567.mobileconfig"));
        assert!(html.contains("203.0.113.10"));
        assert!(html.contains("cổng 8853"));
        assert!(html.contains("Not Verified") && html.contains("Chưa xác minh"));
        assert!(
            html.contains("Phòng GD&amp;ĐT · 024 3825 0000"),
            "the help contact, escaped"
        );
    }

    #[test]
    fn the_page_carries_a_qr_code_of_its_own_link() {
        let html = page(&endpoints(), &device(), "Tiểu học · Primary");
        let start = html.find("<svg").expect("an inline SVG QR code");
        let svg = &html[start..start + html[start..].find("</svg>").unwrap()];
        assert!(svg.contains("<path") || svg.contains("<rect"), "{svg}");
        assert!(!html.contains("<?xml"));
        assert!(html.contains("Tiểu học · Primary"));
        // The code holds the setup link: decoding it is the scanner's job; here, a code made
        // from another link differs.
        let other = qr_code("https://dns.example.edu.vn/setup/other").unwrap();
        assert_ne!(svg, &other[..other.find("</svg>").unwrap()]);
    }

    #[test]
    fn mobileconfig_is_a_valid_plist_with_the_doh_url() {
        let xml = mobileconfig(&endpoints(), &device());
        let value = plist::Value::from_reader_xml(xml.as_bytes()).unwrap();
        let top = value.as_dictionary().unwrap();
        assert_eq!(top["PayloadType"].as_string(), Some("Configuration"));
        let payload = top["PayloadContent"].as_array().unwrap()[0]
            .as_dictionary()
            .unwrap();
        assert_eq!(
            payload["PayloadType"].as_string(),
            Some("com.apple.dnsSettings.managed")
        );
        let dns = payload["DNSSettings"].as_dictionary().unwrap();
        assert_eq!(dns["DNSProtocol"].as_string(), Some("HTTPS"));
        assert_eq!(
            dns["ServerURL"].as_string(),
            Some("https://dns.example.edu.vn/dns-query/abcdefghijklmnopqrstuvwxyz234567")
        );
        // Stable identifiers: installing again replaces the profile.
        assert_eq!(xml, mobileconfig(&endpoints(), &device()));
        assert_ne!(top["PayloadUUID"], payload["PayloadUUID"]);
    }
}

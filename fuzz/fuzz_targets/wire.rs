//! Any bytes as a DNS query, over every transport, through the real pipeline (fast path, full
//! parse, policy, cache, refusal budgets) of a small district: it must answer or drop, never
//! panic, and every answer must decode and be no larger than the transport allows.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use schooldns::query::{Handled, Pipeline, Origin, Protocol};

const CONFIG: &str = r#"
[server]
udp = []
tcp = []
refused_per_second = 1000000
[upstream]
servers = []
timeout_ms = 10
[categories.adult]
lists = ["@LIST"]
[profiles.primary]
block = ["adult"]
answer = "10.0.0.80"
[profiles.other]
block = ["adult"]
[[schools]]
id = "a"
name = "A"
networks = ["10.0.0.0/8"]
profile = "primary"
subnets = { "10.9.0.0/16" = "other" }
"#;

fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("schooldns-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("fuzz-adult.txt"), "porn.example\n*.bad.example\n").unwrap();
        let path = dir.join("schooldns.toml");
        let list = dir.join("fuzz-adult.txt");
        std::fs::write(&path, CONFIG.replace("@LIST", list.to_str().unwrap())).unwrap();
        let loaded = schooldns::config::LoadedConfig::read(&path).unwrap();
        let policy = schooldns::policy::Compiler::default().compile(&loaded).unwrap();
        Pipeline::new(
            Arc::new(schooldns::live::Live::new(&loaded.config, policy)),
            Arc::new(schooldns::resolve::Resolver::new()),
            Arc::new(schooldns::metrics::Metrics::default()),
            schooldns::hitlog::HitSender::disabled(),
            Arc::new(schooldns::query::refusals::RefusalLimit::new()),
            Arc::new(schooldns::devices::check::DeviceChecks::default()),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, packet)) = data.split_first() else {
        return;
    };
    let protocol = match selector % 4 {
        0 => Protocol::Udp,
        1 => Protocol::Tcp,
        2 => Protocol::Dot,
        _ => Protocol::Doh,
    };
    let client: SocketAddr = match selector / 4 % 3 {
        0 => ([10, 1, 2, 3], 5353).into(),
        1 => ([10, 9, 0, 1], 5353).into(),
        _ => ([192, 0, 2, 1], 5353).into(),
    };
    let token = (selector & 0x80 != 0).then_some("sometoken");
    let origin = Origin {
        addr: client,
        protocol,
        token,
    };
    if let Handled::Done(Some(answer)) = pipeline().handle_now_from(packet, origin) {
        assert!(answer.len() >= 12, "an answer shorter than a header");
        if protocol == Protocol::Udp {
            assert!(answer.len() <= 1232.max(512), "UDP answer of {} bytes", answer.len());
        }
        assert!(answer[2] & 0x80 != 0, "an answer without QR");
        hickory_proto::op::Message::from_vec(&answer).expect("our answer decodes");
    }
});

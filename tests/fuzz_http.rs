//! Fuzzing the executor's request handling (issue 9): random requests to
//! `/boot/ipxe`, `/install/...`, `/artifacts/...` (Range headers included)
//! and `/v1/agents/facts`, against a real `kiln serve`. No answer is a
//! server error, nothing escapes the plan, and the server stays up.
//! `KILN_FUZZ_CASES` sets the number of requests (`make fuzz`).

mod common;
use common::*;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

fn request() -> impl Strategy<Value = (String, String, Vec<(String, String)>, Vec<u8>)> {
    let segment = prop::sample::select(vec![
        "boot",
        "ipxe",
        "install",
        "artifacts",
        "tiny",
        "vmlinuz",
        "initrd.img",
        "install.sh",
        "..",
        "%2e%2e",
        "%2f",
        "%5c",
        ".",
        "",
        "etc",
        "passwd",
        "v1",
        "agents",
        "facts",
        "machines",
        "m1",
        "menu.ipxe",
        "~",
        "%00",
        "0000",
    ]);
    let path = prop::collection::vec(segment, 1..6).prop_map(|s| format!("/{}", s.join("/")));
    let query = prop::sample::select(vec![
        "",
        "?mac=52-54-00-00-00-01",
        "?mac=52:54:00:00:00:02",
        "?mac=zz",
        "?mac=",
        "?mac=52-54-00-00-00-01&mac=x",
        "?x=%ff",
        "?mac=5254.0000.0001",
    ]);
    let method = prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "DELETE"]);
    let range = prop::sample::select(vec![
        "",
        "bytes=0-0",
        "bytes=0-",
        "bytes=-1",
        "bytes=5-2",
        "bytes=0-99999999",
        "bytes=a-b",
        "bytes=1-2,3-4",
        "items=0-1",
        "bytes=-0",
        "bytes=18446744073709551615-",
    ]);
    let auth = prop::sample::select(vec![
        "",
        "Bearer ",
        "Bearer x",
        "Basic abc",
        "Bearer 0000000000000000000000000000000000000000000000000000000000000000",
    ]);
    let body = prop_oneof![
        Just(Vec::new()),
        Just(br#"{"snapshot": {"postinstall_done": true}}"#.to_vec()),
        Just(b"{\"snapshot\": ".to_vec()),
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    (method, path, query, range, auth, body).prop_map(|(method, path, query, range, auth, body)| {
        let mut headers = Vec::new();
        if !range.is_empty() {
            headers.push(("Range".to_string(), range.to_string()));
        }
        if !auth.is_empty() {
            headers.push(("Authorization".to_string(), auth.to_string()));
        }
        headers.push(("Content-Type".to_string(), "application/json".to_string()));
        (method.to_string(), format!("{path}{query}"), headers, body)
    })
}

#[test]
fn random_requests_never_get_a_server_error() {
    let repo = tiny_site(b"kernel-bytes", b"initrd");
    let r = repo.path();
    std::fs::create_dir_all(r.join("art/tiny")).unwrap();
    std::fs::write(r.join("art/tiny/vmlinuz"), b"kernel-bytes").unwrap();
    std::fs::write(r.join("art/tiny/initrd.img"), b"initrd").unwrap();
    let art = r.join("art");
    let s = serve_tiny(
        r,
        &["--artifacts", art.to_str().unwrap(), "--max-auth-failures", "1000000"],
    );
    let cases: u32 = std::env::var("KILN_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    let mut runner = TestRunner::new(Config::default());
    let strategy = request();
    for _ in 0..cases {
        let (method, path, headers, body) = strategy.new_tree(&mut runner).unwrap().current();
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let answer = http(&s.url, &method, &path, &pairs, &body);
        assert!(
            answer.status < 500,
            "{method} {path} {headers:?}: {} {}",
            answer.status,
            answer.text()
        );
        let text = String::from_utf8_lossy(&answer.body);
        assert!(!text.contains("root:"), "{method} {path} reached a system file");
    }
    assert_eq!(http(&s.url, "GET", "/healthz", &[], b"").status, 200);
}

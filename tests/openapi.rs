//! The OpenAPI document (`docs/openapi.yaml`) checked against the running
//! executor by schemathesis (PyPI): every operation is fuzzed and every
//! answer must match the document (status codes, content types, schemas),
//! with no server errors. `.ci/deps` installs schemathesis.

mod common;
use common::*;

use std::process::Command;

#[test]
fn schemathesis_finds_the_server_true_to_its_openapi_document() {
    let kernel = vec![7u8; 4096];
    let repo = tiny_site(&kernel, b"initrd");
    let r = repo.path();
    write(r, "operator-token", "schemathesis-operator-token-0123456789");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(r.join("operator-token"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let op = r.join("operator-token");
    // A fuzzer fails to authenticate on purpose, thousands of times: the
    // per-address limit is tested in tests/shedding.rs.
    let server = serve_tiny(
        r,
        &[
            "--operator-token-file",
            op.to_str().unwrap(),
            "--max-auth-failures",
            "1000000",
        ],
    );
    let out = Command::new("st")
        .args(["run", &format!("{}/openapi.yaml", server.url)])
        .args(["-H", "Authorization: Bearer schemathesis-operator-token-0123456789"])
        .args([
            "--exclude-path",
            "/v1/events",
            "--checks",
            "all",
            "--max-time",
            "25",
            "--seed",
            "1",
        ])
        .current_dir(r)
        .output()
        .unwrap_or_else(|e| panic!("schemathesis (`st`, PyPI schemathesis) is needed; .ci/deps installs it: {e}"));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
}

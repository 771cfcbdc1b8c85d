//! What kiln renders must work when it is applied, not only pass the
//! checkers: semantic checks of the fleet (issue 16).

mod common;
use common::*;

/// A Talos control plane endpoint (or VIP) inside a pool or DHCP range
/// would one day be handed to another machine: refused.
#[test]
fn an_endpoint_inside_a_pool_or_dhcp_range_is_refused() {
    let err = render_fails(|r| {
        edit(
            r,
            "sites/lab/site.yaml",
            "      endpoint: https://10.20.0.50:6443",
            "      endpoint: https://10.20.1.100:6443",
        )
    });
    assert!(
        err.contains("sites/lab/site.yaml:")
            && err.contains(
                "values.talos.endpoint: 10.20.1.100 is inside the IPAM pool 10.20.1.1-10.20.1.254 of network `prov`"
            ),
        "{err}"
    );
    let err = render_fails(|r| {
        edit(
            r,
            "sites/lab/site.yaml",
            "      vip: 10.20.0.50",
            "      vip: 10.20.0.150",
        )
    });
    assert!(
        err.contains("values.talos.vip: 10.20.0.150 is inside the dhcpRange 10.20.0.100-10.20.0.199 of network `prov`"),
        "{err}"
    );
}

/// The lab's Talos nodes get what the Talos generator writes and a
/// hand-written config loses: KubePrism, host DNS, the kubelet's seccomp
/// default, the PodSecurity admission config; a CNI; and the control plane
/// endpoint's VIP on the control plane node.
#[test]
fn lab_talos_configs_carry_the_generators_defaults() {
    let cp = std::fs::read_to_string(repo_root().join("out/lab/install/talos-cp-01/talos.yaml")).unwrap();
    let worker = std::fs::read_to_string(repo_root().join("out/lab/install/talos-w-01/talos.yaml")).unwrap();
    for config in [&cp, &worker] {
        let docs = kiln_compiler::yaml::parse_documents(config).unwrap();
        let main = &docs[0].value;
        assert_eq!(main["machine"]["features"]["kubePrism"]["enabled"], true, "{config}");
        assert_eq!(main["machine"]["features"]["kubePrism"]["port"], 7445);
        assert_eq!(main["machine"]["features"]["hostDNS"]["enabled"], true);
        assert_eq!(main["machine"]["kubelet"]["defaultRuntimeSeccompProfileEnabled"], true);
        assert_ne!(
            main["cluster"]["network"]["cni"]["name"], "none",
            "no CNI would ever be installed"
        );
    }
    let docs = kiln_compiler::yaml::parse_documents(&cp).unwrap();
    assert_eq!(
        docs[0].value["cluster"]["apiServer"]["admissionControl"][0]["name"],
        "PodSecurity"
    );
    assert!(
        docs.iter()
            .any(|d| d.value["kind"] == "Layer2VIPConfig" && d.value["name"] == "10.20.0.50"),
        "the endpoint has no VIP behind it"
    );
    let docs = kiln_compiler::yaml::parse_documents(&worker).unwrap();
    assert!(!docs.iter().any(|d| d.value["kind"] == "Layer2VIPConfig"));
}

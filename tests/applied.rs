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

fn docs_of(text: &str) -> Vec<serde_json::Value> {
    kiln_compiler::yaml::parse_documents(text)
        .unwrap()
        .into_iter()
        .map(|d| d.value)
        .collect()
}

/// The controller of the Flux instance that serves an API group.
fn controller_for(api_version: &str) -> Option<&'static str> {
    let group = api_version.split('/').next()?;
    match group {
        "source.toolkit.fluxcd.io" => Some("source-controller"),
        "helm.toolkit.fluxcd.io" => Some("helm-controller"),
        "kustomize.toolkit.fluxcd.io" => Some("kustomize-controller"),
        "notification.toolkit.fluxcd.io" => Some("notification-controller"),
        _ => None,
    }
}

/// Recipes are Flux objects applied to the workload cluster: every cluster
/// installs Flux there first (flux-operator and a FluxInstance, from the
/// management cluster), with every controller its recipes need, and every
/// recipe waits for it.
#[test]
fn recipes_wait_for_a_flux_in_the_workload_cluster_that_serves_them() {
    let out = repo_root().join("out");
    for cluster in ["analytics-gcp", "edge-proxmox", "prod-aws", "web-azure"] {
        let files = tree(&out.join(cluster));
        let text = |path: &str| {
            String::from_utf8(
                files
                    .get(path)
                    .unwrap_or_else(|| panic!("{cluster}: no {path}"))
                    .clone(),
            )
            .unwrap()
        };
        let operator = &docs_of(&text("addons/flux-operator/helmrelease.yaml"))[0];
        let instance = &docs_of(&text("addons/flux/helmrelease.yaml"))[0];
        for release in [operator, instance] {
            assert_eq!(
                release["spec"]["kubeConfig"]["secretRef"]["name"],
                format!("{cluster}-kubeconfig")
            );
            assert_eq!(release["spec"]["targetNamespace"], "flux-system");
        }
        assert_eq!(
            instance["spec"]["dependsOn"][0]["name"],
            format!("{cluster}-flux-operator")
        );
        let components: Vec<String> = instance["spec"]["values"]["instance"]["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let gate = &docs_of(&text("recipes/_addons-ready.yaml"))[0];
        let checked: Vec<&str> = gate["spec"]["healthChecks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap())
            .collect();
        assert!(
            checked.contains(&format!("{cluster}-flux").as_str()),
            "{cluster}: {checked:?}"
        );
        assert!(
            checked.contains(&format!("{cluster}-cilium").as_str()),
            "{cluster}: {checked:?}"
        );

        // Every recipe reaches the gate through its dependsOn, and every
        // Flux kind in its bundle has its controller in the workload cluster.
        let recipes: std::collections::BTreeMap<String, serde_json::Value> = files
            .iter()
            .filter(|(p, _)| {
                p.starts_with("recipes/") && !p.starts_with("recipes/_") && !p.ends_with("kustomization.yaml")
            })
            .map(|(_, b)| {
                let k = docs_of(std::str::from_utf8(b).unwrap()).remove(0);
                (k["metadata"]["name"].as_str().unwrap().to_string(), k)
            })
            .collect();
        assert!(!recipes.is_empty());
        for (name, k) in &recipes {
            let mut at = name.clone();
            let mut hops = 0;
            while at != format!("{cluster}-addons-ready") {
                at = recipes[&at]["spec"]["dependsOn"][0]["name"]
                    .as_str()
                    .unwrap()
                    .to_string();
                hops += 1;
                assert!(hops < 10, "{name} never reaches the gate");
            }
            let bundle = k["spec"]["path"].as_str().unwrap().trim_start_matches("./");
            for (path, bytes) in tree(&repo_root().join(bundle)) {
                for doc in docs_of(std::str::from_utf8(&bytes).unwrap()) {
                    let Some(api) = doc["apiVersion"].as_str() else {
                        continue;
                    };
                    if let Some(controller) = controller_for(api) {
                        assert!(
                            components.iter().any(|c| c == controller),
                            "{bundle}/{path}: {} needs {controller} in the workload cluster",
                            doc["kind"]
                        );
                    }
                }
            }
        }
    }
}

/// The shipped recipes are current: Gateway API instead of the retired
/// ingress-nginx, OCI charts through OCIRepository and `chartRef`, and no
/// chart source that nothing uses.
#[test]
fn recipes_use_current_sources_and_no_retired_ingress() {
    let mut sources = Vec::new();
    let mut used = Vec::new();
    for (path, bytes) in tree(&repo_root().join("recipes"))
        .into_iter()
        .chain(tree(&repo_root().join("out")))
    {
        if !path.ends_with(".yaml") || path.ends_with("ipam.lock.yaml") {
            continue;
        }
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            !text.contains("ingress-nginx") && !text.contains("ingressClassName: nginx"),
            "{path}"
        );
        for doc in docs_of(&text) {
            match doc["kind"].as_str() {
                Some("HelmRepository") => {
                    assert_ne!(
                        doc["spec"]["type"], "oci",
                        "{path}: an OCI chart belongs in an OCIRepository"
                    );
                    sources.push(format!(
                        "{}/{}",
                        path.split('/').next().unwrap(),
                        doc["metadata"]["name"]
                    ));
                }
                Some("HelmRelease") => {
                    let name = &doc["spec"]["chart"]["spec"]["sourceRef"]["name"];
                    if !name.is_null() {
                        used.push(format!("{}/{name}", path.split('/').next().unwrap()));
                    }
                }
                _ => {}
            }
        }
    }
    for s in &sources {
        assert!(used.contains(s), "{s} is a chart source nothing uses");
    }
}

/// Installers fetch their sources from somewhere that answers: a mirror or
/// share the site declares (the executor serves only planned files, never
/// an install tree), a Windows image that is a `.wim` or `.esd`, and a
/// share with credentials (current Windows refuses SMB guest access).
#[test]
fn install_sources_must_be_declared_and_usable() {
    let site = "sites/lab/site.yaml";
    let err = render_fails(|r| {
        edit(
            r,
            site,
            "installTree: http://mirror.lab.example.net/rhel/9.4/x86_64/dvd",
            "installTree: http://10.20.0.2:8080/artifacts/rhel9/dvd",
        )
    });
    assert!(
        err.contains("values.rhel.installTree: http://10.20.0.2:8080/artifacts/rhel9/dvd is not under a source the site declares")
            && err.contains("spec.installSources"),
        "{err}"
    );
    let err = render_fails(|r| {
        edit(
            r,
            site,
            r"installImage: '\\fileserver.lab.example.net\install\win2022\sources\install.wim'",
            r"installImage: '\\fileserver.lab.example.net\install\win2022'",
        )
    });
    assert!(
        err.contains("values.windows.installImage") && err.contains("`.wim` or `.esd`"),
        "{err}"
    );
    let err = render_fails(|r| edit(r, site, "      shareUser: kiln-install\n", ""));
    assert!(
        err.contains("values.windows.shareUser") && err.contains("guest"),
        "{err}"
    );
}

/// A recipe says what it needs of its cluster's Talos machines; kiln
/// renders the kubelet mounts into the cluster's Talos configs and refuses
/// a cluster whose image does not declare the extensions (Longhorn needs
/// iscsi-tools and util-linux-tools, and /var/lib/longhorn in the kubelet).
#[test]
fn recipe_requirements_reach_the_talos_configs_or_are_refused() {
    for (file, patches_at) in [
        (
            "out/prod-aws/cluster/taloscontrolplane-prod-aws-control-plane.yaml",
            "/spec/controlPlaneConfig/controlplane/configPatches",
        ),
        (
            "out/prod-aws/cluster/talosconfigtemplate-prod-aws-workers.yaml",
            "/spec/template/spec/configPatches",
        ),
    ] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        let doc = &docs_of(&text)[0];
        let patches = doc.pointer(patches_at).unwrap().as_array().unwrap();
        let mounts = patches
            .iter()
            .find(|p| p["path"] == "/machine/kubelet/extraMounts")
            .unwrap_or_else(|| panic!("{file}: no kubelet mounts: {text}"));
        assert_eq!(mounts["value"][0]["destination"], "/var/lib/longhorn", "{file}");
        assert!(mounts["value"][0]["options"].to_string().contains("rshared"), "{file}");
    }
    let err = render_fails(|r| {
        edit(
            r,
            "sites/eu/clusters/prod-aws.yaml",
            "      extensions: [siderolabs/iscsi-tools, siderolabs/util-linux-tools]\n",
            "      extensions: [siderolabs/iscsi-tools]\n",
        )
    });
    assert!(
        err.contains("sites/eu/clusters/prod-aws.yaml:")
            && err.contains("recipe `base` needs the Talos extension siderolabs/util-linux-tools"),
        "{err}"
    );
}

/// A Proxmox cluster's control plane VIP inside the pool CAPMOX hands VM
/// addresses out of is refused.
#[test]
fn a_control_plane_vip_inside_the_vm_address_pool_is_refused() {
    let err = render_fails(|r| {
        edit(
            r,
            "sites/lab/clusters/edge-proxmox.yaml",
            "controlPlaneVIP: 192.0.2.20",
            "controlPlaneVIP: 192.0.2.170",
        )
    });
    assert!(
        err.contains("sites/lab/clusters/edge-proxmox.yaml:")
            && err.contains("values.controlPlaneVIP: 192.0.2.170 is inside the address pool 192.0.2.160-192.0.2.199"),
        "{err}"
    );
}

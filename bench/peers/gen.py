#!/usr/bin/env python3
"""Generates one workload twice, as a kiln repository and as a Kapitan
inventory (the peer `make bench-peers` compares kiln with):

* one site of MACHINES machines: name m%05d, MAC and IP from the index,
  role = index mod 3, rhel9 for an even index and windows2022 for an odd
  one; each gets an iPXE script and a kickstart or autounattend.xml; the
  site gets a dnsmasq host file and forward and reverse DNS zones;
* CLUSTERS Proxmox clusters of CAPI/Talos/Cilium manifests whose values are
  layered common -> provider -> cluster.

kiln renders with its own blueprints and cluster templates (which produce
more per machine and per cluster than the Kapitan templates here: the
comparison does not favour kiln). Kapitan gets the usual layout: one target
per machine and per cluster, classes for the layers, Jinja2 templates.

    python3 bench/peers/gen.py KILN_DIR KAPITAN_DIR [MACHINES] [CLUSTERS]
"""
import os
import shutil
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
kiln_dir, kapitan_dir = sys.argv[1], sys.argv[2]
machines = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
clusters = int(sys.argv[4]) if len(sys.argv) > 4 else 100
ROLES = ["compute", "storage", "infra"]


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def machine(i):
    host = i + 10
    return {
        "name": "m%05d" % i,
        "mac": "02:00:00:%02x:%02x:%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255),
        "ip": "10.0.%d.%d" % (host >> 8, host & 255),
        "role": ROLES[i % 3],
        "os": "rhel9" if i % 2 == 0 else "windows2022",
    }


for d in (kiln_dir, kapitan_dir):
    shutil.rmtree(d, ignore_errors=True)

# ------------------------------------------------------------------ kiln
for d in ("clusters", "recipes", "blueprints"):
    shutil.copytree(os.path.join(root, d), os.path.join(kiln_dir, d))
write(os.path.join(kiln_dir, "sites/dc1/site.yaml"), """apiVersion: kiln/v1alpha1
kind: Site
metadata: {name: dc1}
spec:
  domain: dc1.example.net
  bootServer: http://10.0.0.2:8080
  networks:
    - {name: prov, cidr: 10.0.0.0/16, gateway: 10.0.0.1, dns: [10.0.0.2]}
  dhcp: {servers: [dnsmasq]}
  installSources: ["http://mirror.example.net/", '\\\\\\\\files.example.net\\\\install\\\\']
  values:
    rhel: {installTree: "http://mirror.example.net/rhel/9.4/x86_64/dvd"}
    windows: {installImage: '\\\\\\\\files.example.net\\\\install\\\\win2022\\\\install.wim', shareUser: kiln-install, shareDomain: EXAMPLE}
""")
for rack in range((machines + 99) // 100):
    docs = []
    for i in range(rack * 100, min(machines, rack * 100 + 100)):
        m = machine(i)
        docs.append(
            "apiVersion: kiln/v1alpha1\nkind: Machine\nmetadata:\n  name: %(name)s\n  labels: {role: %(role)s}\n"
            "spec:\n  blueprint: %(os)s\n  interfaces:\n    - {mac: \"%(mac)s\", network: prov, ip: %(ip)s}\n" % m)
    write(os.path.join(kiln_dir, "sites/dc1/machines/rack%03d.yaml" % rack), "---\n".join(docs))
for c in range(clusters):
    write(os.path.join(kiln_dir, "sites/dc1/clusters/c%03d.yaml" % c),
          "apiVersion: kiln/v1alpha1\nkind: Cluster\nmetadata:\n  name: c%03d\nspec:\n  provider: proxmox\n"
          "  workers: {replicas: %d}\n  values:\n    controlPlaneVIP: 192.0.2.%d\n" % (c, 2 + c % 5, 1 + c % 90))

# --------------------------------------------------------------- Kapitan
K = kapitan_dir
write(os.path.join(K, "inventory/classes/common.yml"), """parameters:
  site: {domain: dc1.example.net, boot_server: "http://10.0.0.2:8080", dns: 10.0.0.2, gateway: 10.0.0.1}
  mirror: "http://mirror.example.net/rhel/9.4/x86_64/dvd"
  kubernetes_version: v1.35.2
  talos_version: v1.13.9
  cilium: {version: 1.18.2, kube_proxy_replacement: true, hubble: true}
  control_plane: {replicas: 3, cpu: 4, memory: 8192}
  workers: {replicas: 3, cpu: 4, memory: 16384}
""")
for os_name, files in (("rhel9", ["boot.ipxe", "ks.cfg"]), ("windows2022", ["boot.ipxe", "autounattend.xml"])):
    write(os.path.join(K, "inventory/classes/os/%s.yml" % os_name), """parameters:
  os: %s
  kapitan:
    compile:
      - output_path: .
        input_type: jinja2
        input_paths: [templates/%s]
""" % (os_name, os_name))
write(os.path.join(K, "inventory/classes/provider/proxmox.yml"), """parameters:
  provider: {name: proxmox, template_id: 100, bridge: vmbr0, storage: local-lvm, allowed_nodes: [pve1, pve2]}
  control_plane: {cpu: 2, memory: 4096}
  kapitan:
    compile:
      - output_path: .
        input_type: jinja2
        input_paths: [templates/cluster]
""")
write(os.path.join(K, "inventory/classes/site.yml"), """parameters:
  kapitan:
    compile:
      - output_path: .
        input_type: jinja2
        input_paths: [templates/site]
""")
site_machines = "".join("    - {name: %(name)s, mac: \"%(mac)s\", ip: %(ip)s}\n" % machine(i) for i in range(machines))
write(os.path.join(K, "inventory/targets/dc1.yml"),
      "classes: [common, site]\nparameters:\n  kapitan: {vars: {target: dc1}}\n  machines:\n" + site_machines)
for i in range(machines):
    m = machine(i)
    write(os.path.join(K, "inventory/targets/%s.yml" % m["name"]),
          "classes: [common, os.%(os)s]\nparameters:\n  kapitan: {vars: {target: %(name)s}}\n"
          "  machine: {name: %(name)s, mac: \"%(mac)s\", ip: %(ip)s, role: %(role)s}\n" % m)
for c in range(clusters):
    write(os.path.join(K, "inventory/targets/c%03d.yml" % c),
          "classes: [common, provider.proxmox]\nparameters:\n  kapitan: {vars: {target: c%03d}}\n"
          "  cluster: {name: c%03d, vip: 192.0.2.%d}\n  workers: {replicas: %d}\n" % (c, c, 1 + c % 90, 2 + c % 5))

P = "{{ inventory.parameters"
write(os.path.join(K, "templates/rhel9/boot.ipxe"), """#!ipxe
kernel %(P)s.site.boot_server }}/artifacts/rhel9/vmlinuz initrd=initrd.img inst.ks=%(P)s.site.boot_server }}/install/%(P)s.machine.name }}/ks.cfg inst.stage2=%(P)s.mirror }} ip=%(P)s.machine.ip }}::%(P)s.site.gateway }}:255.255.0.0:%(P)s.machine.name }}.%(P)s.site.domain }}::none
initrd %(P)s.site.boot_server }}/artifacts/rhel9/initrd.img
boot
""" % {"P": P})
write(os.path.join(K, "templates/windows2022/boot.ipxe"), """#!ipxe
kernel %(P)s.site.boot_server }}/artifacts/windows2022/wimboot
initrd %(P)s.site.boot_server }}/install/%(P)s.machine.name }}/autounattend.xml autounattend.xml
initrd %(P)s.site.boot_server }}/artifacts/windows2022/boot.wim boot.wim
boot
""" % {"P": P})
write(os.path.join(K, "templates/rhel9/ks.cfg"), """# kickstart for %(P)s.machine.name }} (%(P)s.machine.role }})
text
url --url=%(P)s.mirror }}
lang en_US.UTF-8
keyboard us
timezone Etc/UTC --utc
network --hostname=%(P)s.machine.name }}.%(P)s.site.domain }}
network --device=%(P)s.machine.mac }} --bootproto=static --ip=%(P)s.machine.ip }} --netmask=255.255.0.0 --gateway=%(P)s.site.gateway }} --nameserver=%(P)s.site.dns }} --onboot=yes --activate
firewall --enabled --service=ssh
selinux --enforcing
zerombr
clearpart --all --initlabel
autopart --type=lvm
bootloader --location=mbr
rootpw --lock
reboot
%%packages
@^minimal-environment
%%end
%%post --log=/root/ks-post.log
curl -fsS -X POST %(P)s.site.boot_server }}/v1/agents/facts -d '{"snapshot": {"postinstall_done": true}}'
%%end
""" % {"P": P})
write(os.path.join(K, "templates/windows2022/autounattend.xml"), """<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="windowsPE">
    <component name="Microsoft-Windows-Setup" processorArchitecture="amd64">
      <DiskConfiguration><Disk><DiskID>0</DiskID><WillWipeDisk>true</WillWipeDisk></Disk></DiskConfiguration>
      <ImageInstall><OSImage><InstallFrom><Path>\\\\files.example.net\\install\\win2022\\install.wim</Path></InstallFrom></OSImage></ImageInstall>
      <UserData><AcceptEula>true</AcceptEula></UserData>
    </component>
  </settings>
  <settings pass="specialize">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64">
      <ComputerName>%(P)s.machine.name }}</ComputerName>
    </component>
    <component name="Microsoft-Windows-TCPIP" processorArchitecture="amd64">
      <Interfaces><Interface><Identifier>%(P)s.machine.mac | replace(":", "-") | upper }}</Identifier>
        <UnicastIpAddresses><IpAddress>%(P)s.machine.ip }}/16</IpAddress></UnicastIpAddresses>
        <Routes><Route><Prefix>0.0.0.0/0</Prefix><NextHopAddress>%(P)s.site.gateway }}</NextHopAddress></Route></Routes>
      </Interface></Interfaces>
    </component>
  </settings>
</unattend>
""" % {"P": P})
write(os.path.join(K, "templates/site/dnsmasq-hosts.conf"), """{% for m in inventory.parameters.machines %}dhcp-host={{ m.mac }},{{ m.ip }},{{ m.name }},infinite
{% endfor %}""")
write(os.path.join(K, "templates/site/forward.zone"), """$ORIGIN %(P)s.site.domain }}.
$TTL 3600
@ IN SOA ns1 hostmaster 1 3600 900 1209600 300
@ IN NS ns1
{%% for m in inventory.parameters.machines %%}{{ m.name }} IN A {{ m.ip }}
{%% endfor %%}""" % {"P": P})
write(os.path.join(K, "templates/site/reverse.zone"), """$ORIGIN 0.10.in-addr.arpa.
$TTL 3600
@ IN SOA ns1.%(P)s.site.domain }}. hostmaster.%(P)s.site.domain }}. 1 3600 900 1209600 300
@ IN NS ns1.%(P)s.site.domain }}.
{%% for m in inventory.parameters.machines %%}{%% set o = m.ip.split(".") %%}{{ o[3] }}.{{ o[2] }} IN PTR {{ m.name }}.%(P)s.site.domain }}.
{%% endfor %%}""" % {"P": P})
C = P + ".cluster"
manifests = {
    "cluster.yaml": "apiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\nmetadata: {name: %(C)s.name }}}\nspec:\n  clusterNetwork: {pods: {cidrBlocks: [10.244.0.0/16]}}\n  controlPlaneRef: {kind: TalosControlPlane, name: %(C)s.name }}-cp}\n  infrastructureRef: {kind: ProxmoxCluster, name: %(C)s.name }}}\n",
    "proxmoxcluster.yaml": "apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1\nkind: ProxmoxCluster\nmetadata: {name: %(C)s.name }}}\nspec:\n  controlPlaneEndpoint: {host: %(C)s.vip }}, port: 6443}\n  allowedNodes: {{ inventory.parameters.provider.allowed_nodes }}\n",
    "controlplane.yaml": "apiVersion: controlplane.cluster.x-k8s.io/v1alpha3\nkind: TalosControlPlane\nmetadata: {name: %(C)s.name }}-cp}\nspec:\n  replicas: %(P)s.control_plane.replicas }}\n  version: %(P)s.kubernetes_version }}\n",
    "cp-template.yaml": "apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1\nkind: ProxmoxMachineTemplate\nmetadata: {name: %(C)s.name }}-cp}\nspec:\n  template:\n    spec: {numCores: %(P)s.control_plane.cpu }}, memoryMiB: %(P)s.control_plane.memory }}, templateID: %(P)s.provider.template_id }}}\n",
    "workers.yaml": "apiVersion: cluster.x-k8s.io/v1beta2\nkind: MachineDeployment\nmetadata: {name: %(C)s.name }}-workers}\nspec:\n  replicas: %(P)s.workers.replicas }}\n  clusterName: %(C)s.name }}\n",
    "worker-template.yaml": "apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1\nkind: ProxmoxMachineTemplate\nmetadata: {name: %(C)s.name }}-workers}\nspec:\n  template:\n    spec: {numCores: %(P)s.workers.cpu }}, memoryMiB: %(P)s.workers.memory }}, templateID: %(P)s.provider.template_id }}}\n",
    "talosconfig.yaml": "apiVersion: bootstrap.cluster.x-k8s.io/v1alpha3\nkind: TalosConfigTemplate\nmetadata: {name: %(C)s.name }}-workers}\nspec:\n  template:\n    spec: {generateType: worker, talosVersion: %(P)s.talos_version }}}\n",
    "cilium.yaml": "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: %(C)s.name }}-cilium}\nspec:\n  chart: {spec: {chart: cilium, version: %(P)s.cilium.version }}}}\n  values: {kubeProxyReplacement: %(P)s.cilium.kube_proxy_replacement }}, hubble: {enabled: %(P)s.cilium.hubble }}}}\n",
}
for name, text in manifests.items():
    write(os.path.join(K, "templates/cluster", name), text % {"C": C, "P": P})
print("generated %s and %s: %d machines, %d clusters" % (kiln_dir, kapitan_dir, machines, clusters))

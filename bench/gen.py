#!/usr/bin/env python3
"""Generates a large kiln repository for benchmarks: the example's templates,
recipes and blueprints, one bare-metal site with MACHINES machines and a
cloud site with CLUSTERS clusters.

    python3 bench/gen.py DIR [MACHINES] [CLUSTERS]
"""
import os
import shutil
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
dest = sys.argv[1]
machines = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
clusters = int(sys.argv[3]) if len(sys.argv) > 3 else 100

shutil.rmtree(dest, ignore_errors=True)
for d in ("clusters", "recipes", "blueprints"):
    shutil.copytree(os.path.join(root, d), os.path.join(dest, d))
os.makedirs(os.path.join(dest, "sites/dc1/machines"))
os.makedirs(os.path.join(dest, "sites/cloud/clusters"))
with open(os.path.join(root, "sites/lab/site.yaml")) as f:
    site = f.read().replace("name: lab", "name: dc1").replace(
        "pool: {start: 10.20.1.1, end: 10.20.1.254}", "pool: {start: 10.20.1.1, end: 10.20.255.254}")
with open(os.path.join(dest, "sites/dc1/site.yaml"), "w") as f:
    f.write(site)
blueprints = ["rhel9", "windows2022", "talos"]
for rack in range(machines // 100 + (machines % 100 > 0)):
    docs = []
    for i in range(rack * 100, min(machines, rack * 100 + 100)):
        docs.append(
            "apiVersion: kiln/v1alpha1\nkind: Machine\nmetadata:\n  name: m%05d\n  labels: {rack: r%03d}\n"
            "spec:\n  blueprint: %s\n  commission: %s\n  interfaces:\n    - {mac: \"02:00:00:%02x:%02x:%02x\", network: prov}\n"
            % (i, rack, blueprints[i % 3], "true" if i % 10 == 0 else "false", i >> 16 & 255, i >> 8 & 255, i & 255))
    with open(os.path.join(dest, "sites/dc1/machines/rack%03d.yaml" % rack), "w") as f:
        f.write("---\n".join(docs))
with open(os.path.join(dest, "sites/cloud/site.yaml"), "w") as f:
    f.write("apiVersion: kiln/v1alpha1\nkind: Site\nmetadata:\n  name: cloud\n")
providers = [("aws", "eu-west-1"), ("azure", "westeurope"), ("gcp", "europe-west4"), ("proxmox", None)]
for i in range(clusters):
    p, region = providers[i % 4]
    with open(os.path.join(dest, "sites/cloud/clusters/c%03d.yaml" % i), "w") as f:
        f.write("apiVersion: kiln/v1alpha1\nkind: Cluster\nmetadata:\n  name: c%03d\nspec:\n  provider: %s\n%s"
                "  workers: {replicas: %d}\n  recipes: [base, observability, devtools]\n"
                "  values:\n    talos:\n      extensions: [siderolabs/iscsi-tools, siderolabs/util-linux-tools]\n"
                % (i, p, "  region: %s\n" % region if region else "", 2 + i % 5))
print("generated %s: %d machines, %d clusters" % (dest, machines, clusters))

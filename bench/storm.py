#!/usr/bin/env python3
"""A boot storm: every machine of the bench fleet asks /boot/ipxe once, all
at the same time (CONCURRENCY connections), as after a power cut. Counts the
answers that are not a boot script with a token, then asks the operator API
how many machines are booting.

    python3 bench/storm.py URL OPERATOR_TOKEN [MACHINES] [CONCURRENCY]
"""
import http.client
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

url, token = sys.argv[1], sys.argv[2]
machines = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 256
host, port = url.replace("http://", "").split(":")


def boot(i):
    mac = "02-00-00-%02x-%02x-%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255)
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=60)
        c.request("GET", "/boot/ipxe?mac=" + mac)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status == 200 and "/install/" in body
    except Exception:
        return False


start = time.time()
with ThreadPoolExecutor(concurrency) as pool:
    ok = sum(pool.map(boot, range(machines)))
elapsed = time.time() - start
c = http.client.HTTPConnection(host, int(port), timeout=60)
c.request("GET", "/v1/machines", headers={"Authorization": "Bearer " + token})
states = {}
for m in json.loads(c.getresponse().read())["machines"]:
    states[m["state"]] = states.get(m["state"], 0) + 1
print("storm: %d machines, %d concurrent: %d scripts served, %d missed, %.1f s (%.0f boots/s); states %s"
      % (machines, concurrency, ok, machines - ok, elapsed, machines / elapsed, states))
sys.exit(0 if ok == machines else 1)

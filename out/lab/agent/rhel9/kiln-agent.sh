#!/bin/sh
# kiln agent (rhel9 at site lab): POSTs this machine's
# facts to the kiln executor with its agent credential.
set -u
CHECKIN_URL='@@kiln:server@@/v1/agents/checkin'
CREDENTIAL=${KILN_AGENT_CREDENTIAL:-/etc/kiln/agent-credential}

# kiln_json_str TEXT: TEXT as a JSON string literal (control characters dropped).
kiln_json_str() {
    printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

# kiln_read PATH: the first line of PATH without trailing blanks, or nothing.
kiln_read() {
    if [ -r "$1" ]; then
        head -n 1 "$1" 2>/dev/null | sed -e 's/[[:space:]]*$//'
    fi
}

# kiln_number TEXT: TEXT if it is a whole number, else 0.
kiln_number() {
    case $1 in ''|*[!0-9]*) echo 0 ;; *) echo "$1" ;; esac
}

# kiln_facts: the facts as one JSON object on stdout.
kiln_facts() {
    sys=${KILN_SYSFS:-/sys}
    proc=${KILN_PROCFS:-/proc}
    cpus=$(kiln_number "$(grep -c '^processor' "$proc/cpuinfo" 2>/dev/null)")
    model=$(sed -n -e 's/^model name[[:space:]]*:[[:space:]]*//p' "$proc/cpuinfo" 2>/dev/null | head -n 1)
    mem_kib=$(kiln_number "$(sed -n -e 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' "$proc/meminfo" 2>/dev/null)")
    disks=""
    for dev in "$sys"/block/*; do
        [ -e "$dev" ] || continue
        name=${dev##*/}
        case $name in
            loop*|ram*|zram*|dm-*|md*|sr*|fd*|nbd*|mtdblock*) continue ;;
        esac
        sectors=$(kiln_number "$(kiln_read "$dev/size")")
        removable=false
        [ "$(kiln_read "$dev/removable")" = 1 ] && removable=true
        disks="${disks:+$disks, }{\"name\": $(kiln_json_str "$name"), \"size_mib\": $((sectors / 2048)), \"removable\": $removable}"
    done
    nics=""
    for dev in "$sys"/class/net/*; do
        [ -e "$dev/device" ] || continue
        name=${dev##*/}
        mac=$(kiln_read "$dev/address" | tr 'A-F' 'a-f')
        addresses=""
        if command -v ip >/dev/null 2>&1; then
            for address in $(ip -o addr show dev "$name" scope global 2>/dev/null | awk '{print $4}'); do
                addresses="${addresses:+$addresses, }$(kiln_json_str "$address")"
            done
        fi
        nics="${nics:+$nics, }{\"name\": $(kiln_json_str "$name"), \"mac\": $(kiln_json_str "$mac"), \"addresses\": [$addresses]}"
    done
    printf '{"hostname": %s, "serial": %s, "vendor": %s, "product": %s, "cpu": {"count": %s, "model": %s}, "memory_mib": %s, "disks": [%s], "nics": [%s]}' \
        "$(kiln_json_str "$(kiln_read "$proc/sys/kernel/hostname")")" \
        "$(kiln_json_str "$(kiln_read "$sys/class/dmi/id/product_serial")")" \
        "$(kiln_json_str "$(kiln_read "$sys/class/dmi/id/sys_vendor")")" \
        "$(kiln_json_str "$(kiln_read "$sys/class/dmi/id/product_name")")" \
        "$cpus" "$(kiln_json_str "$model")" "$((mem_kib / 1024))" "$disks" "$nics"
}

body="{\"snapshot\": $(kiln_facts)}"
exec curl --fail --silent --show-error --max-time 30 -X POST \
    -H "Authorization: Bearer $(cat "$CREDENTIAL")" \
    -H 'Content-Type: application/json' \
    --data-binary "$body" "$CHECKIN_URL"

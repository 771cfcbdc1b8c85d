#!/bin/sh
# kiln: hardware commissioning of node-02 (generation 1)
# Checks CPUs, memory, disks (/sys/block) and NICs (/sys/class/net) against the
# commissioning minimums, then POSTs {"snapshot": {"hardware_ok": ..., ...}}
# to the kiln executor and reboots (success) or powers off (failure).
set -u
: "${PATH:=/usr/sbin:/usr/bin:/sbin:/bin}"
export PATH

REPORT_URL='@@kiln:server@@/v1/agents/facts'
TOKEN='@@kiln:token@@'
MACHINE='node-02'
PRIMARY_MAC='52:54:00:12:34:02'
EXPECTED_MACS='52:54:00:12:34:02 52:54:00:aa:34:02'
EXPECTED_SERIAL=''

MIN_CPUS=2
MIN_MEMORY_MIB=4096
MIN_DISKS=1
MIN_DISK_MIB=16384
MIN_NICS=1
REQUIRE_LINK=yes
CHECK_MACS=yes
CHECK_SERIAL=yes
REPORT_TIMEOUT=30
REPORT_RETRIES=10
REPORT_RETRY_DELAY=10
ON_SUCCESS='reboot'
ON_FAILURE='poweroff'

log() {
    echo "kiln-commission: $*" >&2
}

# json_str TEXT: TEXT as a JSON string literal (control characters dropped).
json_str() {
    printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

# read_file PATH: the first line of PATH without trailing blanks, or nothing.
read_file() {
    if [ -r "$1" ]; then
        head -n 1 "$1" 2>/dev/null | sed -e 's/[[:space:]]*$//'
    fi
}

hardware_ok=true
findings=""

# finding fail|warn MESSAGE: record a finding; a fail makes hardware_ok false.
finding() {
    if [ "$1" = fail ]; then
        hardware_ok=false
    fi
    findings="${findings:+$findings, }{\"severity\": \"$1\", \"message\": $(json_str "$2")}"
    log "$1: $2"
}

# --- CPU ---------------------------------------------------------------------
cpu_count=$(grep -c '^processor' /proc/cpuinfo 2>/dev/null)
case $cpu_count in ''|*[!0-9]*) cpu_count=0 ;; esac
cpu_model=$(sed -n -e 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
if [ "$cpu_count" -lt "$MIN_CPUS" ]; then
    finding fail "found $cpu_count CPUs, need at least $MIN_CPUS"
fi

# --- Memory ------------------------------------------------------------------
# MemTotal leaves out what the firmware and kernel reserve; the online memory
# blocks in sysfs add up to the installed size where the kernel exposes them.
memtotal_kib=$(sed -n -e 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' /proc/meminfo 2>/dev/null)
case $memtotal_kib in ''|*[!0-9]*) memtotal_kib=0 ;; esac
memtotal_mib=$((memtotal_kib / 1024))
memory_mib=$memtotal_mib
block_size_hex=$(read_file /sys/devices/system/memory/block_size_bytes)
case $block_size_hex in
    ''|*[!0-9a-fA-F]*) ;;
    *)
        blocks=0
        for block in /sys/devices/system/memory/memory*; do
            [ -r "$block/state" ] || continue
            if [ "$(read_file "$block/state")" = online ]; then
                blocks=$((blocks + 1))
            fi
        done
        block_mib=$(( 0x$block_size_hex / 1048576 ))
        if [ $((blocks * block_mib)) -gt "$memory_mib" ]; then
            memory_mib=$((blocks * block_mib))
        fi
        ;;
esac
if [ "$memory_mib" -lt "$MIN_MEMORY_MIB" ]; then
    finding fail "found $memory_mib MiB of memory, need at least $MIN_MEMORY_MIB MiB"
fi

# --- Disks -------------------------------------------------------------------
disks=""
big_disks=0
for dev in /sys/block/*; do
    [ -e "$dev" ] || continue
    name=${dev##*/}
    case $name in
        loop*|ram*|zram*|dm-*|md*|sr*|fd*|nbd*|mtdblock*) continue ;;
    esac
    sectors=$(read_file "$dev/size")
    case $sectors in ''|*[!0-9]*) sectors=0 ;; esac
    size_mib=$((sectors / 2048))
    rotational=false
    [ "$(read_file "$dev/queue/rotational")" = 1 ] && rotational=true
    removable=false
    [ "$(read_file "$dev/removable")" = 1 ] && removable=true
    model=$(read_file "$dev/device/model")
    serial=$(read_file "$dev/device/serial")
    disks="${disks:+$disks, }{\"name\": $(json_str "$name"), \"size_mib\": $size_mib, \"rotational\": $rotational, \"removable\": $removable, \"model\": $(json_str "$model"), \"serial\": $(json_str "$serial")}"
    if [ "$removable" = false ] && [ "$size_mib" -ge "$MIN_DISK_MIB" ]; then
        big_disks=$((big_disks + 1))
    fi
done
if [ "$big_disks" -lt "$MIN_DISKS" ]; then
    finding fail "found $big_disks fixed disks of at least $MIN_DISK_MIB MiB, need at least $MIN_DISKS"
fi

# --- NICs --------------------------------------------------------------------
nics=""
nic_count=0
found_macs=" "
primary_link=unknown
for dev in /sys/class/net/*; do
    [ -e "$dev/device" ] || continue
    name=${dev##*/}
    mac=$(read_file "$dev/address" | tr 'A-F' 'a-f')
    carrier=$(read_file "$dev/carrier")
    case $carrier in 1) link=true ;; 0) link=false ;; *) link=null ;; esac
    speed=$(read_file "$dev/speed")
    case $speed in ''|-*|*[!0-9]*) speed=null ;; esac
    driver=""
    if [ -L "$dev/device/driver" ]; then
        driver=$(readlink "$dev/device/driver")
        driver=${driver##*/}
    fi
    nics="${nics:+$nics, }{\"name\": $(json_str "$name"), \"mac\": $(json_str "$mac"), \"link\": $link, \"speed_mbps\": $speed, \"driver\": $(json_str "$driver")}"
    nic_count=$((nic_count + 1))
    found_macs="$found_macs$mac "
    if [ "$mac" = "$PRIMARY_MAC" ]; then
        primary_link=$link
    fi
done
if [ "$nic_count" -lt "$MIN_NICS" ]; then
    finding fail "found $nic_count physical NICs, need at least $MIN_NICS"
fi
if [ "$CHECK_MACS" = yes ]; then
    for mac in $EXPECTED_MACS; do
        case $found_macs in
            *" $mac "*) ;;
            *) finding fail "no NIC has MAC $mac, which the Machine declares" ;;
        esac
    done
fi
if [ "$REQUIRE_LINK" = yes ] && [ "$primary_link" != true ]; then
    finding fail "primary interface $PRIMARY_MAC has no link (carrier: $primary_link)"
fi

# --- Serial number -----------------------------------------------------------
dmi_serial=$(read_file /sys/class/dmi/id/product_serial)
if [ "$CHECK_SERIAL" = yes ] && [ -n "$EXPECTED_SERIAL" ]; then
    serial_ok=false
    for file in product_serial board_serial chassis_serial; do
        if [ "$(read_file "/sys/class/dmi/id/$file")" = "$EXPECTED_SERIAL" ]; then
            serial_ok=true
        fi
    done
    if [ "$serial_ok" = false ]; then
        finding fail "DMI serial \"$dmi_serial\" is not the Machine's serial \"$EXPECTED_SERIAL\""
    fi
fi

# --- Report ------------------------------------------------------------------
body="{\"snapshot\": {\"step\": \"commission\", \"machine\": $(json_str "$MACHINE"), \"hardware_ok\": $hardware_ok, \"cpu\": {\"count\": $cpu_count, \"model\": $(json_str "$cpu_model")}, \"memory_mib\": $memory_mib, \"memtotal_mib\": $memtotal_mib, \"disks\": [$disks], \"nics\": [$nics], \"serial\": $(json_str "$dmi_serial"), \"findings\": [$findings]}}"

# post BODY: POST BODY to the executor, each attempt bounded by timeout
# (busybox wget -T is unreliable, so the whole wget runs under timeout).
post() {
    if command -v timeout >/dev/null 2>&1; then
        limit="timeout $REPORT_TIMEOUT"
    else
        limit=""
    fi
    if command -v wget >/dev/null 2>&1; then
        $limit wget -q -O /dev/null \
            --header "Authorization: Bearer $TOKEN" \
            --header "Content-Type: application/json" \
            --post-data "$1" "$REPORT_URL"
    else
        $limit curl -fsS -o /dev/null -X POST \
            -H "Authorization: Bearer $TOKEN" \
            -H "Content-Type: application/json" \
            --data-binary "$1" "$REPORT_URL"
    fi
}

# finish ACTION: what to do with the machine once the report is in.
finish() {
    sync
    case $1 in
        reboot) reboot -f ;;
        poweroff) poweroff -f ;;
        halt) halt -f ;;
        *) log "leaving the machine running" ;;
    esac
}

log "hardware_ok=$hardware_ok cpus=$cpu_count memory_mib=$memory_mib disks=$big_disks nics=$nic_count"
attempt=0
while :; do
    attempt=$((attempt + 1))
    if post "$body"; then
        log "report sent"
        break
    fi
    if [ "$attempt" -ge "$REPORT_RETRIES" ]; then
        log "could not send the report to $REPORT_URL after $attempt attempts"
        finish "$ON_FAILURE"
        exit 1
    fi
    sleep "$REPORT_RETRY_DELAY"
done

if [ "$hardware_ok" = true ]; then
    finish "$ON_SUCCESS"
    exit 0
fi
finish "$ON_FAILURE"
exit 1

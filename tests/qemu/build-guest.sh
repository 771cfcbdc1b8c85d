#!/usr/bin/env bash
# Build the tiny Linux guest used by kiln's QEMU/iPXE end-to-end test.
#
#   tests/qemu/build-guest.sh OUTDIR
#
# Produces OUTDIR/vmlinuz and OUTDIR/initrd.img (see tests/qemu/README.md).
# Only Debian packages are used: the kernel comes from the linux-image-*-amd64
# package that linux-image-amd64 currently depends on (downloaded with
# `apt-get download`, never installed), userland is busybox-static.
#
# Idempotent: when OUTDIR already holds outputs built by this exact script
# (OUTDIR/.stamp), it only checks that the Debian packages are installed and
# exits (well under a second). The extracted kernel pieces are cached in
# OUTDIR/.kernel-<version>/ so a change to the init script rebuilds only the
# initrd.
#
# Environment:
#   KILN_GUEST_KERNEL_PKG  kernel image package to use instead of the one
#                          linux-image-amd64 depends on
#   KILN_GUEST_FORCE=1     rebuild even if OUTDIR looks complete
#   KILN_GUEST_SKIP_APT=1  do not check/install Debian packages
set -euo pipefail

log() { echo "build-guest: $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $# -eq 1 && -n $1 ]] || die "usage: $0 OUTDIR"
OUTDIR=$1
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

# Modules needed for a virtio-net-pci NIC on Debian's kernel (both are =m in
# Debian's config); their dependencies are resolved from the modules' own
# .modinfo "depends=" fields.
WANT_MODULES=(virtio_pci virtio_net)
PACKAGES=(qemu-system-x86 ipxe-qemu busybox-static cpio xz-utils)

# ---------------------------------------------------------------- packages
ensure_packages() {
    [[ ${KILN_GUEST_SKIP_APT:-} == 1 ]] && return 0
    local missing=() p st
    for p in "${PACKAGES[@]}"; do
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ $st == "install ok installed" ]] || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "missing packages ${missing[*]} and not root"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Unreachable third-party sources must not stop us: ignore update errors.
    apt-get update -qq || log "warning: apt-get update reported errors"
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2
}
ensure_packages

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
# Serialise concurrent builds into the same OUTDIR (parallel test runs).
exec 9>"$OUTDIR/.lock"
flock 9
STAMP_WANT="$(sha256sum "$SELF" | cut -d' ' -f1) ${KILN_GUEST_KERNEL_PKG:-default}"
if [[ ${KILN_GUEST_FORCE:-} != 1 && -s $OUTDIR/vmlinuz && -s $OUTDIR/initrd.img &&
      -f $OUTDIR/.stamp && "$(head -n1 "$OUTDIR/.stamp")" == "$STAMP_WANT" ]]; then
    log "up to date: $OUTDIR ($(sed -n 2p "$OUTDIR/.stamp"))"
    exit 0
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kiln-guest.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
chmod 0755 "$TMP"   # apt-get download drops privileges to _apt

# ---------------------------------------------------------------- kernel
kernel_pkg() {
    if [[ -n ${KILN_GUEST_KERNEL_PKG:-} ]]; then echo "$KILN_GUEST_KERNEL_PKG"; return; fi
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-amd64$/ { print $2; exit }'
}
PKG=$(kernel_pkg)
if [[ -z $PKG ]]; then
    log "linux-image-amd64 unknown to apt; running apt-get update"
    apt-get update -qq || log "warning: apt-get update reported errors"
    PKG=$(kernel_pkg)
fi
[[ -n $PKG ]] || die "cannot determine the kernel package linux-image-amd64 depends on"
KVER=${PKG#linux-image-}
KCACHE=$OUTDIR/.kernel-$KVER

if [[ ! -f $KCACHE/complete ]]; then
    log "fetching $PKG"
    mkdir -p "$TMP/deb"
    chmod 0777 "$TMP/deb"   # let apt's _apt user write there (no sandbox warning)
    if ! (cd "$TMP/deb" && apt-get download -qq "$PKG" >&2); then
        log "download failed; running apt-get update and retrying"
        apt-get update -qq || log "warning: apt-get update reported errors"
        (cd "$TMP/deb" && apt-get download -qq "$PKG" >&2) || die "apt-get download $PKG failed"
    fi
    DEB=$(ls "$TMP"/deb/*.deb)
    log "extracting $(basename "$DEB")"
    dpkg-deb -x "$DEB" "$TMP/k"
    rm -f "$DEB"
    MODDIR=$(ls -d "$TMP"/k/lib/modules/*/ 2>/dev/null | head -n1)
    [[ -n $MODDIR ]] || die "no lib/modules in $PKG"
    MODDIR=${MODDIR%/}
    VMLINUZ=$(ls "$TMP"/k/boot/vmlinuz-* | head -n1)
    [[ -f $VMLINUZ ]] || die "no vmlinuz in $PKG"

    # name -> path map (module names normalise '-' to '_').
    declare -A MODPATH=()
    while IFS=$'\t' read -r n f; do
        n=${n%%.ko*}; n=${n//-/_}
        MODPATH[$n]=$f
    done < <(find "$MODDIR" \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) -printf '%f\t%p\n')

    # Read the "depends=" entry of a module (handles compressed modules).
    mod_depends() {
        local f=$1
        case $f in
            *.xz) xz -dc "$f" ;;
            *.zst) zstd -dcq "$f" ;;
            *.gz) gzip -dc "$f" ;;
            *) cat "$f" ;;
        esac | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n1 | tr ',' ' '
    }
    # Depth-first: dependencies first, each module once.
    declare -A SEEN=()
    ORDER=()
    visit() {
        local n=${1//-/_} d
        [[ -n ${SEEN[$n]:-} ]] && return 0
        SEEN[$n]=1
        if [[ -z ${MODPATH[$n]:-} ]]; then
            if grep -qE "/${n//_/[-_]}\.ko" "$MODDIR/modules.builtin" 2>/dev/null; then
                return 0        # built into the kernel
            fi
            die "module $n not found in $PKG"
        fi
        for d in $(mod_depends "${MODPATH[$n]}"); do visit "$d"; done
        ORDER+=("$n")
    }
    for m in "${WANT_MODULES[@]}"; do visit "$m"; done

    rm -rf "$KCACHE.tmp"
    mkdir -p "$KCACHE.tmp/modules"
    cp "$VMLINUZ" "$KCACHE.tmp/vmlinuz"
    : > "$KCACHE.tmp/modules/load-order"
    for n in "${ORDER[@]}"; do
        f=${MODPATH[$n]}
        # busybox insmod takes plain .ko files: decompress at build time.
        case $f in
            *.xz) xz -dc "$f" ;;
            *.zst) zstd -dcq "$f" ;;
            *.gz) gzip -dc "$f" ;;
            *) cat "$f" ;;
        esac > "$KCACHE.tmp/modules/$n.ko"
        echo "$n.ko" >> "$KCACHE.tmp/modules/load-order"
    done
    echo "$PKG $(basename "$VMLINUZ")" > "$KCACHE.tmp/complete"
    rm -rf "$TMP/k" "$KCACHE"
    mv "$KCACHE.tmp" "$KCACHE"
    log "modules (load order): ${ORDER[*]}"
fi
# Older kernel caches are of no further use.
for d in "$OUTDIR"/.kernel-*; do
    [[ $d == "$KCACHE" || ! -d $d ]] || rm -rf "$d"
done

# ---------------------------------------------------------------- initrd
ROOT=$TMP/root
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc/udhcpc,lib/modules}
BUSYBOX=$(command -v busybox || true)
[[ -x /bin/busybox ]] && BUSYBOX=/bin/busybox
file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'INTERP'; }
[[ -n $BUSYBOX ]] || die "busybox not found (busybox-static)"
if command -v readelf >/dev/null && ! file_is_static "$BUSYBOX"; then
    die "$BUSYBOX is not statically linked (install busybox-static)"
fi
cp "$BUSYBOX" "$ROOT/bin/busybox"
# Applet symlinks at build time (equivalent of `busybox --install -s`).
while IFS= read -r a; do
    [[ $a == */* && $a != bin/busybox && ! -e $ROOT/$a ]] || continue   # skip linuxrc
    [[ -d $ROOT/${a%/*} ]] || mkdir -p "$ROOT/${a%/*}"
    ln -s /bin/busybox "$ROOT/$a"
done < <("$BUSYBOX" --list-full)
cp "$KCACHE"/modules/* "$ROOT/lib/modules/"
# The kernel opens /dev/console before running /init; needs root to create.
mknod -m 600 "$ROOT/dev/console" c 5 1 2>/dev/null || log "warning: cannot mknod dev/console (not root?)"

cat > "$ROOT/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
# Minimal udhcpc hook: configure address, default route and resolver.
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip -4 addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
        for r in $router; do ip -4 route add default via "$r" dev "$interface"; break; done
        : > /etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
        ;;
esac
exit 0
EOF
chmod 755 "$ROOT/etc/udhcpc/default.script"

cat > "$ROOT/init" <<'EOF'
#!/bin/sh
# kiln QEMU test guest: bring up the NIC, fetch and run the install script
# named by kiln.install=URL on the kernel command line, report, power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run

say() { echo "KILN-GUEST: $*"; }
off() {
    sync
    poweroff -f
    sleep 5
    echo o > /proc/sysrq-trigger
    sleep 60
}
fail() { say "FAILED $*"; off; }

echo   # the firmware leaves escape sequences on the line; start markers on a fresh one
say "init started, kernel $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime)s"
while read -r m; do
    [ -n "$m" ] || continue
    insmod "/lib/modules/$m" || fail "insmod $m"
done < /lib/modules/load-order

i=0
while [ ! -e /sys/class/net/eth0 ]; do
    i=$((i + 1))
    [ "$i" -le 100 ] || fail "no eth0 after 10s"
    sleep 0.1
done
ip link set lo up
sleep 0.5
url= ip6= mac=
for a in $(cat /proc/cmdline); do
    case "$a" in
        kiln.install=*) url=${a#kiln.install=} ;;
        kiln.ip6=*) ip6=${a#kiln.ip6=} ;;
        kiln.mac=*) mac=${a#kiln.mac=} ;;
    esac
done
nic=
if [ -n "$ip6" ]; then
    # An IPv6 network: the address kiln allocated, on the NIC with the
    # machine's MAC (as an installer's static ip= would).
    for dev in /sys/class/net/eth*; do
        [ "$(cat "$dev/address")" = "$mac" ] && nic=${dev##*/}
    done
    [ -n "$nic" ] || fail "no NIC with MAC $mac"
    echo 0 > "/proc/sys/net/ipv6/conf/$nic/accept_dad"
    ip link set "$nic" up
    ip -6 addr add "$ip6" dev "$nic" || fail "ip -6 addr add $ip6"
    sleep 1
    say "ipv6 ok on $nic $ip6, uptime $(cut -d' ' -f1 /proc/uptime)s"
else
    # The machine may have several NICs, and the one it booted from need not
    # be eth0 (a storage NIC may come first): the first that gets a lease wins.
    for dev in /sys/class/net/eth*; do
        dev=${dev##*/}
        ip link set "$dev" up
        if udhcpc -i "$dev" -q -n -t 4 -T 1; then nic=$dev; break; fi
    done
    [ -n "$nic" ] || fail "dhcp on every NIC"
    say "dhcp ok on $nic $(ip -4 -o addr show dev "$nic" | awk '{print $4}'), uptime $(cut -d' ' -f1 /proc/uptime)s"
fi
[ -n "$url" ] || fail "no kiln.install=URL on the kernel command line"

# busybox-static's wget -T segfaults: bound it with timeout instead.
timeout 30 wget -q -O /tmp/install.sh "$url" || fail "fetching install script $url"
say "install script fetched"
sh /tmp/install.sh
rc=$?
say "install script exit $rc"
[ "$rc" -eq 0 ] || say "FAILED install script exit $rc"
say "powering off, uptime $(cut -d' ' -f1 /proc/uptime)s"
off
EOF
chmod 755 "$ROOT/init"

log "packing initrd"
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
    xz -T1 --check=crc32 -9 > "$TMP/initrd.img"   # the kernel wants crc32 xz
cp "$KCACHE/vmlinuz" "$TMP/vmlinuz"
mv -f "$TMP/vmlinuz" "$OUTDIR/vmlinuz"
mv -f "$TMP/initrd.img" "$OUTDIR/initrd.img"
printf '%s\n%s\n' "$STAMP_WANT" "$(cat "$KCACHE/complete")" > "$OUTDIR/.stamp"
log "built $OUTDIR/vmlinuz ($(stat -c %s "$OUTDIR/vmlinuz") bytes), $OUTDIR/initrd.img ($(stat -c %s "$OUTDIR/initrd.img") bytes) from $(cat "$KCACHE/complete")"

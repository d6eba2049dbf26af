#!/usr/bin/env bash
# Install the real SIP peers the tests drive (Debian/Ubuntu): SIPp, baresip, linphonec,
# sipsak, SIPVicious, tshark, Kamailio, dnsmasq. Idempotent: when every binary (and the
# baresip modules the harness loads) is already there it exits at once without apt.
# Needs root (or sudo) when something is missing. See tests/peers/ and /work/shared/PEERS.md.
set -euo pipefail

PACKAGES=(sip-tester baresip-core linphone-cli sipsak sipvicious tshark kamailio dnsmasq-base)

# binary-or-file:package pairs that prove a package is installed
CHECKS=(
    /usr/bin/sipp:sip-tester
    /usr/bin/baresip:baresip-core
    /usr/lib/baresip/modules/ctrl_tcp.so:baresip-core
    /usr/lib/baresip/modules/ausine.so:baresip-core
    /usr/lib/baresip/modules/sndfile.so:baresip-core
    /usr/bin/linphonec:linphone-cli
    /usr/bin/sipsak:sipsak
    /usr/bin/svwar:sipvicious
    /usr/bin/tshark:tshark
    /usr/sbin/kamailio:kamailio
    /usr/sbin/dnsmasq:dnsmasq-base
)

missing=()
for check in "${CHECKS[@]}"; do
    path=${check%%:*}
    pkg=${check#*:}
    if [ ! -e "$path" ]; then
        case " ${missing[*]-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-peers: all SIP peers present"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-peers: missing ${missing[*]} and no apt-get; install them by hand" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install-peers: missing ${missing[*]}; run as root to install them" >&2
        exit 1
    fi
fi

echo "install-peers: installing ${PACKAGES[*]} (missing: ${missing[*]})"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
# tshark asks whether non-root users may capture; answer "no" up front.
echo "wireshark-common wireshark-common/install-setuid boolean false" |
    "${SUDO[@]}" debconf-set-selections 2>/dev/null || true
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${PACKAGES[@]}"

# Kamailio's package may start a system service on 5060; the tests run their own instances.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet kamailio 2>/dev/null; then
    "${SUDO[@]}" systemctl stop kamailio || true
    "${SUDO[@]}" systemctl disable kamailio || true
fi
echo "install-peers: done"

#!/usr/bin/env bash
# Installs the peers and load generators the bench needs (Debian/Ubuntu, as root or via sudo).
# Idempotent: does nothing when everything is already on PATH. Never starts the distro services.
set -euo pipefail

need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
command -v sniproxy >/dev/null || need+=(sniproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v openssl >/dev/null || need+=(openssl)

if [ ${#need[@]} -eq 0 ]; then
  echo "bench/install.sh: all tools present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "bench/install.sh: need root (or sudo) to install: ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
command -v apt-get >/dev/null || { echo "bench/install.sh: no apt-get; install by hand: ${need[*]}" >&2; exit 1; }

echo "bench/install.sh: installing ${need[*]}"
# policy-rc.d stops the packages' postinst from starting nginx/haproxy/sniproxy as system services.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod +x "$POLICY"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && $SUDO rm -f "$POLICY"' EXIT
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "bench/install.sh: done"

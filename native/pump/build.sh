#!/usr/bin/env bash
# Builds native/pump/build/pump.node, the optional native byte pump for passthrough connections (Node-API +
# libuv, its own epoll set, splice for bulk flows). Never fails the install: without a compiler or headers the
# data plane uses its JavaScript pump (src/dataplane/native-pump.ts picks automatically).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/build"
mkdir -p "$out"
rm -f "$out/pump.node"
cc="${CC:-}"
if [[ -z "$cc" ]]; then
  for c in cc gcc clang; do
    if command -v "$c" >/dev/null 2>&1; then cc="$c"; break; fi
  done
fi
if [[ -z "$cc" ]]; then
  echo "snigate: native pump not built (no C compiler); the JavaScript pump is used" >&2
  exit 0
fi
# Node-API and libuv headers: Node's own include dir (next to the binary), or the system's.
node_bin="$(cd "$here/../.." && pwd)/node_modules/.bin/node"
inc=""
for d in "${NODE_INCLUDE_DIR:-}" "$(dirname "$(readlink -f "$node_bin" 2>/dev/null || echo /nonexistent)")/../include/node" /usr/local/include/node /usr/include/node; do
  if [[ -n "$d" && -f "$d/node_api.h" && -f "$d/uv.h" ]]; then inc="$d"; break; fi
done
if [[ -z "$inc" ]]; then
  echo "snigate: native pump not built (no node_api.h + uv.h found); the JavaScript pump is used" >&2
  exit 0
fi
if "$cc" -O2 -Wall -Wextra -fPIC -shared -fvisibility=hidden -DNAPI_VERSION=8 -I"$inc" \
  -o "$out/pump.node.tmp" "$here/pump.c" "$here/fastpath.c" -Wl,--unresolved-symbols=ignore-all; then
  mv "$out/pump.node.tmp" "$out/pump.node"
else
  rm -f "$out/pump.node.tmp"
  echo "snigate: native pump build failed; the JavaScript pump is used" >&2
fi
exit 0

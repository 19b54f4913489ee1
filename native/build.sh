#!/usr/bin/env bash
# Builds the WAF addon native/modsecurity/build/modsecurity.node (libmodsecurity v3 through Node-API).
#
# Run at install (npm `prepare`). It never fails the install: when a prerequisite is missing it prints why, writes
# the reason to native/modsecurity/build/UNAVAILABLE (read by src/waf/addon.ts, which then reports the WAF as
# unavailable with that reason) and exits 0. `--strict` makes it exit 1 instead (for CI that requires the WAF).
#
# Route: the C++ compiler is called directly (no node-gyp, no python, no network). The addon uses only the
# ABI-stable Node-API C interface, whose headers are vendored in native/modsecurity/include; libmodsecurity is
# found through pkg-config (Debian: libmodsecurity-dev) with a fallback to /usr/include + -lmodsecurity.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$here/modsecurity"
out="$dir/build"
strict=0
[[ "${1:-}" == "--strict" ]] && strict=1

mkdir -p "$out"
rm -f "$out/UNAVAILABLE"

unavailable() {
  echo "snigate: WAF addon not built: $1" >&2
  echo "snigate: the WAF will report itself unavailable; install libmodsecurity-dev and g++, then run native/build.sh" >&2
  printf '%s\n' "$1" >"$out/UNAVAILABLE"
  rm -f "$out/modsecurity.node"
  exit "$strict"
}

cxx="${CXX:-}"
if [[ -z "$cxx" ]]; then
  for c in c++ g++ clang++; do
    if command -v "$c" >/dev/null 2>&1; then cxx="$c"; break; fi
  done
fi
[[ -n "$cxx" ]] || unavailable "no C++ compiler (c++, g++ or clang++) on PATH"

cflags=()
libs=()
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists modsecurity 2>/dev/null; then
  read -r -a cflags <<<"$(pkg-config --cflags modsecurity)"
  read -r -a libs <<<"$(pkg-config --libs modsecurity)"
elif [[ -f /usr/include/modsecurity/modsecurity.h ]]; then
  libs=(-lmodsecurity)
else
  unavailable "libmodsecurity development files not found (apt-get install libmodsecurity-dev)"
fi

tmp="$out/modsecurity.node.tmp.$$"
log="$out/build.log"
# Node-API symbols are resolved against the node binary at load time, hence no -lnode and no -z defs.
if ! "$cxx" -std=c++17 -O2 -g0 -fPIC -shared -fvisibility=hidden -Wall -Wextra \
  -I"$dir/include" "${cflags[@]}" "$dir/src/addon.cc" -o "$tmp" "${libs[@]}" >"$log" 2>&1; then
  rm -f "$tmp"
  unavailable "compiling the addon failed ($cxx): $(tail -n 5 "$log" | tr '\n' ' ')"
fi
mv -f "$tmp" "$out/modsecurity.node"
echo "snigate: WAF addon built: $out/modsecurity.node"

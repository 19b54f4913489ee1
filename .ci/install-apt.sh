#!/usr/bin/env bash
# Install the Debian packages the tests need (listed in .ci/apt-packages.txt), only those missing.
# Run by `npm test` (pretest) and by .ci/run, so a fresh machine needs no manual step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

# Services are never started here: each test starts and stops its own servers.
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' .ci/apt-packages.txt | grep -v '^$')
if ((${#wanted[@]} == 0)); then
  echo ".ci/apt-packages.txt lists no packages" >&2
  exit 1
fi
missing=()
for pkg in "${wanted[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "installing apt packages: ${missing[*]}"
  sudo=()
  if [[ "$(id -u)" != 0 ]]; then sudo=(sudo -E); fi
  "${sudo[@]}" apt-get update </dev/null
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
else
  echo "apt packages already installed"
fi


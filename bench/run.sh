#!/usr/bin/env bash
# `npm run bench [-- --quick]`: install the peers and load generators, then run the side-by-side bench.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/install.sh
# A passthrough proxy needs 2 fds per connection: raise the soft limit as far as the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 1048576 2>/dev/null || true
exec node_modules/.bin/node bench/main.ts "$@"

#!/usr/bin/env bash
# Sets up camgate on a Debian/Ubuntu machine and runs it with its default settings
# (http://127.0.0.1:8080, data in ./data). Settings come from the environment or ./.env.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-system-deps.sh
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q .  # not editable: setuptools warns about editable installs
exec .venv/bin/camgate serve "$@"

#!/usr/bin/env bash
# Sets up everything the test suite needs on a Debian/Ubuntu machine and runs it:
# system packages (FFmpeg, GStreamer's RTSP server for the test camera, Chromium), a virtualenv
# with camgate and its test extras, lint, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-system-deps.sh --test
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q '.[test]'  # not editable: setuptools warns about editable installs

.venv/bin/ruff check camgate tests bench
.venv/bin/mypy camgate
set +e
# Two workers, one test file each at a time: most tests wait on real time (camera frames, players),
# so two run side by side on two cores; every test owns its ports (tests/support/ports.py splits
# them between workers) and temp dirs. PYTEST_WORKERS=0 runs everything in this process.
.venv/bin/pytest -p no:cacheprovider --durations=15 -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit $status

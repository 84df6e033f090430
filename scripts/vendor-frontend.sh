#!/usr/bin/env bash
# Refreshes the front-end files camgate serves itself (no CDN) from the npm registry:
# hls.js and Swagger UI, into camgate/web/static/vendor/. Needs npm; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=camgate/web/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() {  # package@range -> unpacked under $work/<name>
  local spec=$1 name=$2
  (cd "$work" && npm pack --silent "$spec" >/dev/null && mkdir -p "$name" &&
    tar xzf ./*.tgz -C "$name" --strip-components=1 && rm ./*.tgz)
}

fetch "hls.js@1" hls
cp "$work/hls/dist/hls.min.js" "$vendor/hls.min.js"
cp "$work/hls/LICENSE" "$vendor/hls.js.LICENSE"

fetch "swagger-ui-dist@5" swagger
mkdir -p "$vendor/swagger-ui"
cp "$work/swagger/swagger-ui-bundle.js" "$work/swagger/swagger-ui.css" \
  "$work/swagger/LICENSE" "$work/swagger/NOTICE" "$vendor/swagger-ui/"
echo "vendored: hls.js $(node -p "require('$work/hls/package.json').version")," \
  "swagger-ui $(node -p "require('$work/swagger/package.json').version")"

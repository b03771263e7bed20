#!/usr/bin/env bash
# Install the map pages' front-end assets (Leaflet, leaflet.markercluster, jQuery) from the npm
# registry into api/static/vendor/, so that no page ever loads anything from a CDN.
#
# Usage: scripts/fetch_assets.sh [DEST]      (DEST defaults to api/static/vendor beside this script)
# Run once at setup time, on a machine that can reach the npm registry (or an npm mirror set with
# `npm config set registry URL`); afterwards the service and the standalone HTML maps work offline.
# Re-running is cheap: packages already present at the pinned version are skipped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${1:-$here/../api/static/vendor}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

# name@version  subdirectory-of-the-package-to-keep  local-directory-name
# Versions are pinned: api/static_assets.py maps the files by these directory names.
packages=(
  "leaflet@1.9.4 dist leaflet"
  "leaflet.markercluster@1.5.3 dist leaflet.markercluster"
  "jquery@3.7.1 dist jquery"
  "swagger-ui-dist@5.35.0 . swagger-ui"
)

command -v npm >/dev/null || { echo "fetch_assets.sh: npm not found; install Node.js/npm (apt-get install npm)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for entry in "${packages[@]}"; do
  read -r spec sub name <<<"$entry"
  version="${spec##*@}"
  if [[ -f "$dest/$name/.version" && "$(cat "$dest/$name/.version")" == "$version" ]]; then
    echo "fetch_assets.sh: $spec already installed"
    continue
  fi
  # npm pack fetches the registry tarball and verifies its integrity hash.
  tarball="$(cd "$work" && npm pack --silent "$spec" | tail -n 1)"
  mkdir -p "$work/$name"
  tar -xzf "$work/$tarball" -C "$work/$name"
  rm -rf "${dest:?}/$name"
  cp -r "$work/$name/package/$sub" "$dest/$name"
  cp "$work/$name/package/LICENSE"* "$dest/$name/" 2>/dev/null || true
  echo "$version" >"$dest/$name/.version"
  echo "fetch_assets.sh: installed $spec into $dest/$name"
done

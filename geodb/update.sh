#!/usr/bin/env sh
# Fetch or refresh the MaxMind databases geogate reads, then show what is in service.
#
#   GEOIP_CONF=/etc/GeoIP.conf GEOIP_DIR=/var/lib/geogate/geodb GEOGATE_CONFIG=config/geogate.yaml geodb/update.sh
#
# geoipupdate downloads only when MaxMind published a newer build, checks the download's hash, writes a
# temporary file and renames it over the old one. A running gateway sees the rename, verifies the new file off
# the request path and swaps it in; a broken file is refused and the old one stays in service (error logged,
# geogate_geodb_reloads_total{result="error"}). Exit status: geoipupdate's, then `geogate geodb info`'s.
set -eu

conf=${GEOIP_CONF:-/etc/GeoIP.conf}
dir=${GEOIP_DIR:-$(dirname "$0")}

if ! command -v geoipupdate >/dev/null 2>&1; then
  echo "geoipupdate not found: install it (Debian/Ubuntu: apt-get install geoipupdate; or the ghcr.io/maxmind/geoipupdate image)" >&2
  exit 127
fi
[ -r "$conf" ] || { echo "cannot read $conf (copy geodb/GeoIP.conf.example and fill in AccountID and LicenseKey)" >&2; exit 1; }

mkdir -p "$dir"
geoipupdate -f "$conf" -d "$dir" -v

# Show build dates and staleness as the gateway sees them (uses geo.databases from the config).
if [ -n "${GEOGATE_CONFIG:-}" ]; then
  if command -v geogate >/dev/null 2>&1; then geogate geodb info --config "$GEOGATE_CONFIG"
  else node "$(dirname "$0")/../dist/cli/index.js" geodb info --config "$GEOGATE_CONFIG"
  fi
fi

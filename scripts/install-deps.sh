#!/usr/bin/env bash
# Installs what MetaSync needs to build, run and test, from Debian 12 packages.
# Idempotent: installs only the packages that are missing. Run as root (or with sudo available).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
  libjson-c-dev libmicrohttpd-dev libsqlite3-dev libyaml-dev libcurl4-openssl-dev
  libcmocka-dev librdkafka-dev kcat
  python3-confluent-kafka python3-avro
  curl python3 python3-pytest python3-requests prometheus
  yamllint python3-yaml
  libssl-dev nodejs npm python3-boto3 python3-botocore
  libpq-dev postgresql-15 postgresql-contrib
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# NodeSource's nodejs package bundles npm (it Provides and Conflicts with Debian's npm): an npm
# command already on the PATH counts as installed.
kept=()
for p in "${missing[@]}"; do
  [ "$p" = npm ] && command -v npm >/dev/null && continue
  kept+=("$p")
done
missing=("${kept[@]}")
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them once before installing.
$SUDO apt-get update -qq
# --no-install-recommends keeps the set small; policy-rc.d style services (prometheus) are not started here.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

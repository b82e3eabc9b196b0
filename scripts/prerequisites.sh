#!/usr/bin/env bash
# Installs what building atoll needs on a fresh Debian/Ubuntu machine and is not there
# yet: cmake and SIMDe (the quickjs engine's build), and Python's venv (the OpenAPI
# tests install schemathesis into one), via apt. Does nothing when all are there.
set -euo pipefail
need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
[ -f /usr/include/simde/x86/sse2.h ] || need_apt+=(libsimde-dev)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "prerequisites: installing ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need_apt[@]}"
fi

#!/usr/bin/env bash
# Installs every system package that the build, the tests and the demo need, only where it is
# missing, and schemathesis (PyPI) into the repository's virtual environment .venv/. Safe to
# run again: on a ready machine it only asks dpkg and schemathesis for their versions.
set -euo pipefail

packages=(
  # build: bindgen for ffmpeg-next, pkg-config for every -sys crate
  pkg-config clang libclang-dev
  # FFmpeg libraries for ffmpeg-next, and the ffmpeg/ffprobe tools the tests check output with
  ffmpeg libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libavdevice-dev
  libswscale-dev libswresample-dev
  # the font that transcoded exports burn camera name and time in with (drawtext)
  fonts-dejavu-core
  # GStreamer for the camera simulator (x264enc lives in -ugly, clockoverlay in -x)
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x gstreamer1.0-tools
  # the export benchmark's reference web server (tests/bench/export.sh)
  nginx
  # the demo script and the central benchmark talk to central's API and read its JSON
  curl jq
  # the virtual environment schemathesis is installed into
  python3 python3-venv
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# schemathesis, the property-based API tester of tests/tests/schemathesis.rs, pinned.
schemathesis_version=4.32.5
venv="$(cd "$(dirname "$0")/.." && pwd)/.venv"
if [ "$("$venv/bin/st" --version 2>/dev/null || true)" != "st, version $schemathesis_version" ]; then
  echo "setup: installing schemathesis $schemathesis_version from PyPI into $venv" >&2
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

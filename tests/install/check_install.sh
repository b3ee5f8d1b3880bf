#!/usr/bin/env bash
# Installs geokv from the build tree into a scratch prefix, then builds a consumer with
# find_package(geokv) and another with pkg-config, and runs both against the installed
# libgeokv.so.<SOVERSION>.
set -euo pipefail
build_dir=$1 source_dir=$2 cxx_flags=${3:-} link_flags=${4:-}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
prefix=$scratch/prefix
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib*/ | head -n1)
ls "$libdir"/libgeokv.so.0 >/dev/null
ls "$prefix"/include/geokv/geokv.h "$prefix"/include/geokv/geokv.hpp >/dev/null

cmake -S "$source_dir/tests/install/consumer" -B "$scratch/cmake" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_RPATH="$libdir" \
  -DCMAKE_CXX_FLAGS="$cxx_flags" -DCMAKE_EXE_LINKER_FLAGS="$link_flags" >/dev/null
cmake --build "$scratch/cmake" >/dev/null
"$scratch/cmake/consumer_cmake" "$scratch/db1"

export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2086  # the flags are words
c++ -std=c++17 $cxx_flags "$source_dir/tests/install/consumer/consumer.cc" -o "$scratch/consumer_pc" \
  $(pkg-config --cflags --libs geokv) $link_flags -Wl,-rpath,"$libdir"
"$scratch/consumer_pc" "$scratch/db2"
echo "install ok: find_package(geokv) and pkg-config geokv both build and run"

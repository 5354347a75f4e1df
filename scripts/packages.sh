# Debian packages Veilwatt needs, installed with apt-get when missing (sudo when not root).
# Sourced by scripts/demo, scripts/test and .ci/run; `ensure_packages build [test]`.
#
#   build: a C/C++ toolchain (the linker; RocksDB is C++), Debian's RocksDB 7.8 (the node links
#          it, docs/decisions/0003-rocksdb.md) and libclang (bindgen reads its headers).
#   test:  Node.js and npm (the pinned snarkjs checks our ceremony files) and Chromium (the
#          regulator's report and the web pages are tested in a headless browser).

# Prints the packages of group $1 that are missing on this machine.
missing_packages() {
  case "$1" in
    build)
      { command -v cc && command -v c++; } >/dev/null 2>&1 || echo build-essential
      dpkg -s librocksdb-dev >/dev/null 2>&1 || echo librocksdb-dev
      dpkg -s libclang-dev >/dev/null 2>&1 || echo libclang-dev
      ;;
    test)
      # Node.js may come from elsewhere (nodesource, nvm): only a missing npm counts.
      command -v npm >/dev/null 2>&1 || echo nodejs npm
      { dpkg -s chromium || command -v chromium; } >/dev/null 2>&1 || echo chromium
      ;;
    *)
      echo "unknown package group: $1" >&2
      return 1
      ;;
  esac
}

ensure_packages() {
  local need=() group
  for group in "$@"; do
    # shellcheck disable=SC2207 # package names have no spaces
    need+=($(missing_packages "$group"))
  done
  [ ${#need[@]} -eq 0 ] && return 0
  echo "installing the missing Debian packages: ${need[*]}" >&2
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "no apt-get here: install ${need[*]} (or their equivalents: a C/C++ toolchain," \
      "RocksDB 7.x development files, libclang) and set ROCKSDB_LIB_DIR in .cargo/config.toml" >&2
    return 1
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "not root and no sudo: as root, run apt-get install ${need[*]}" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${need[@]}"
}

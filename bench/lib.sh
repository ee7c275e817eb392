# Shared by the podkit benchmarks (sourced, not run): page-cache control and
# what a measurement of podkit's own sources needs.  Needs PODKIT_BIN and
# SRC_DIR set by the sourcing script.

# Can this machine drop the page cache (root, /proc writable)?
CAN_DROP=0
if (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then CAN_DROP=1; fi

# Before every run: write back and drop the page cache (warm runs then re-read
# their inputs).  Without the drop every later run on this VM is 2-5x slower
# and noisy, for the peers and podkit alike (see README.md).
settle() {
    sync
    if [[ $CAN_DROP == 1 ]]; then
        echo 3 >/proc/sys/vm/drop_caches
    fi
}

# PYDIRS: the directories podkit's interpreter imports from (PYTHONPATH, so the
# source snapshot, included), for warm runs to read back into the cache.
python_dirs() {
    PYDIRS=()
    local d
    for d in $(cd / && "$PODKIT_BIN/python3" -c 'import sys, os; print("\n".join(p for p in sys.path if os.path.isdir(p)))') \
             "$SRC_DIR/libaci" "$SRC_DIR/stage0"; do
        if [[ -d $d ]]; then PYDIRS+=("$d"); fi
    done
}

# src_hash DIR: hash of podkit's Python sources under DIR
src_hash() {
    (cd "$1" && find libaci stage0 -name '*.py' | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)
}

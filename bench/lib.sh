# Shared by the podkit benchmarks (sourced, not run): page-cache control, idle
# CPUs before a round, and what a measurement of podkit's own sources needs.
# Sourcing defines functions only; a script that drops the page cache calls
# probe_drop first.  Needs PODKIT_BIN and SRC_DIR (python_dirs), log and
# RESULTS (quiet), QUIET_PCT and QUIET_WAIT (quiet) from the sourcing script.

# probe_drop: can this machine drop the page cache (root, /proc writable)?
# Sets CAN_DROP (and drops it once, to find out).
CAN_DROP=0
probe_drop() {
    CAN_DROP=0
    if (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then CAN_DROP=1; fi
}

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

# src_hash [DIR]: hash of podkit's sources (libaci, stage0, stage1; no .pyc) under DIR,
# by default the checkout
src_hash() {
    (cd "${1:-$SRC_TOP}" && find libaci stage0 stage1 -type f ! -name '*.pyc' | LC_ALL=C sort |
        xargs cat | sha256sum | cut -c1-12)
}

# git_state DIR...: "git REV" of the checkout, "+ uncommitted changes" when DIRs
# (relative to SRC_TOP) differ from it
git_state() {
    local dirty=""
    if [[ -n $(git -C "$SRC_TOP" --no-optional-locks status --porcelain -- "$@" 2>/dev/null) ]]; then
        dirty=" + uncommitted changes"
    fi
    echo "git $(git -C "$SRC_TOP" rev-parse --short HEAD 2>/dev/null || echo '?')$dirty"
}

# cpu_busy: percent of all CPUs busy during one second (from /proc/stat)
cpu_busy() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); d = (y[1] - x[1]) + (y[2] - x[2]);
        printf "%.0f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0) }'
}

# quiet ROUND [NOTE]: wait until the CPUs are idle enough (QUIET_PCT), at most
# QUIET_WAIT seconds; appends round, seconds waited, busy % (and NOTE) to
# RESULTS/rounds.tsv
quiet() {
    local round=$1 t0=$SECONDS busy
    busy=$(cpu_busy)
    if ((QUIET_PCT > 0)); then
        while ((busy > QUIET_PCT && SECONDS - t0 < QUIET_WAIT)); do
            sleep 2
            busy=$(cpu_busy)
        done
        if ((busy > QUIET_PCT)); then log "round $round: CPUs still ${busy}% busy after ${QUIET_WAIT} s; running anyway"
        elif ((SECONDS - t0 > 1)); then log "round $round: waited $((SECONDS - t0)) s for other jobs (CPUs ${busy}% busy now)"; fi
    fi
    printf '%s\t%s\t%s%s\n' "$round" "$((SECONDS - t0))" "$busy" "${2+$'\t'$2}" >>"$RESULTS/rounds.tsv"
}

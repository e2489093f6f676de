# Shared by the benchmark scripts (sourced; expects log and die to be defined by the caller).
# shellcheck shell=bash disable=SC2034  # M_BUSY is read by the sourcing script

# wait_quiet: before a measurement, wait (at most QUIET_MAX s) until the CPUs were at most
# QUIET_BUSY % busy over one second, so autovacuum after the previous step or other people's jobs on
# a shared machine do not land in the timing. Sets M_BUSY=1 when it gave up waiting.
QUIET_BUSY=${QUIET_BUSY:-25}
M_BUSY=0
wait_quiet() {
    M_BUSY=0
    [[ $QUIET_MAX -gt 0 && -r /proc/stat ]] || return 0
    local waited=0 a b busy
    while :; do
        a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
        sleep 1
        b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
        busy=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; printf "%d", (t > 0 ? 100 * (y[1] - x[1]) / t : 0) }')
        if [[ $busy -le $QUIET_BUSY ]]; then
            [[ $waited -eq 0 ]] || log "  waited ${waited}s for the CPUs to calm down"
            return 0
        fi
        waited=$((waited + 1))
        if [[ $waited -ge $QUIET_MAX ]]; then
            log "  CPUs still ${busy}% busy after ${waited}s: measuring anyway"
            M_BUSY=1
            return 0
        fi
    done
}

# install_reference SRC_DIR NODE_DIR: drizzle-multitenant 1.3.5 as pinned by SRC_DIR's
# package.json / package-lock.json, installed with `npm ci` into NODE_DIR unless already there.
install_reference() {
    local src=$1 dir=$2 v
    command -v node >/dev/null || die "node not found (Node 20 runs drizzle-multitenant)"
    command -v npm >/dev/null || die "npm not found (it installs drizzle-multitenant)"
    mkdir -p "$dir"
    if ! cmp -s "$src/package-lock.json" "$dir/package-lock.json" \
        || ! cmp -s "$src/package.json" "$dir/package.json" \
        || [[ ! -d "$dir/node_modules/drizzle-multitenant" ]]; then
        log "installing drizzle-multitenant 1.3.5 (npm ci) into $dir"
        cp "$src/package.json" "$src/package-lock.json" "$dir/"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2) \
            || die "npm ci failed in $dir (is the npm registry reachable? see npm's output above)"
    fi
    v=$(node -p "require('$dir/node_modules/drizzle-multitenant/package.json').version")
    [[ "$v" == 1.3.5 ]] || die "expected drizzle-multitenant 1.3.5 in $dir, found $v"
}

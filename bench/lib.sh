# bench/lib.sh - what bench/run.sh and bench/recursive.sh share: logging, pinning,
# package installation, the release build, and starting and stopping servers by PID
# (also on failure or Ctrl-C). Sourced, not run; the caller sets BENCH_DIR, REPO_DIR,
# NICE, PIN, SERVER_CPU, CLIENT_CPU, INSTALL, PACKAGES, BUILD, DNS64D_BIN and KEEP_WORK.
# shellcheck shell=bash

# ------------------------------------------------------------------ helpers
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# launcher ROLE: the command prefix for a server (ROLE=server) or the load side (client):
# the CPU it is pinned to (taskset) and its scheduling priority (nice).
launcher() {
  [[ "$NICE" == 0 ]] || printf 'nice -n %s ' "$NICE"
  if [[ "$PIN" == 1 ]]; then
    if [[ "$1" == server ]]; then echo "taskset -c $SERVER_CPU"; else echo "taskset -c $CLIENT_CPU"; fi
  fi
}

# descendants PID: every process below PID (found through the ppid field of /proc/*/stat).
descendants() {
  local parent="$1" stat rest p ppid
  for p in /proc/[0-9]*; do
    stat="$(cat "$p/stat" 2>/dev/null)" || continue
    rest="${stat##*) }"                    # fields after "pid (comm) "
    read -r _ ppid _ <<<"$rest"
    if [[ "$ppid" == "$parent" ]]; then
      echo "${p#/proc/}"
      descendants "${p#/proc/}"
    fi
  done
}

# daemon_pids: PIDs of running nsd and unbound processes, sorted (from /proc/*/comm).
daemon_pids() {
  local p comm
  for p in /proc/[0-9]*; do
    comm="$(cat "$p/comm" 2>/dev/null)" || continue
    if [[ "$comm" == nsd || "$comm" == unbound ]]; then echo "${p#/proc/}"; fi
  done | sort
}

# ------------------------------------------------------------------ 1. install
# Packages are installed only when a tool is missing (INSTALL=auto), always (1) or never (0).
# A temporary /usr/sbin/policy-rc.d (exit 101) keeps Debian from starting nsd and unbound;
# whatever started anyway is stopped by PID (only processes that were not running before).
install_packages() {
  local missing=0 tool
  for tool in dnsperf nsd unbound python3 ip unshare taskset; do
    command -v "$tool" >/dev/null 2>&1 || missing=1
  done
  if [[ "$INSTALL" == 0 || ( "$INSTALL" == auto && "$missing" == 0 ) ]]; then
    log "packages: dnsperf, nsd, unbound already installed"
    return 0
  fi
  local policy=/usr/sbin/policy-rc.d before after pid pkg new_daemons=()
  for pkg in nsd unbound; do   # daemons this install brings in for the first time
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || new_daemons+=("$pkg")
  done
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# temporary, from dns64d bench/run.sh: keep daemons from starting\nexit 101\n' \
      > "$policy"
    chmod 755 "$policy"
    # shellcheck disable=SC2064  # expand now: $policy is local
    trap "rm -f '$policy'" EXIT
    log "temporary $policy in place (exit 101: no daemon starts)"
  fi
  before="$(daemon_pids)"
  log "apt-get install ${PACKAGES[*]}"
  apt-get update -q || log "apt-get update: some indexes failed; installing from what is there"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
  if [[ "$(trap -p EXIT)" == *policy* ]]; then rm -f "$policy"; trap - EXIT; fi
  # Stop what the packages started despite policy-rc.d: under systemd, the units of newly
  # installed daemons (a daemon that was installed before is left as it was) ...
  if [[ -d /run/systemd/system && ${#new_daemons[@]} -gt 0 ]]; then
    for pkg in "${new_daemons[@]}"; do
      systemctl disable --now "$pkg.service" >/dev/null 2>&1 || true
    done
  fi
  # ... and any nsd or unbound process that was not running before the install.
  after="$(daemon_pids)"
  for pid in $(comm -13 <(echo "$before") <(echo "$after")); do
    log "stopping $(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid), started by the package install"
    kill "$pid" 2>/dev/null || true
  done
}

# ------------------------------------------------------------------ 2. build
build_dns64d() {
  if [[ "$BUILD" == 1 ]]; then
    command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain (rustup)"
    log "cargo build --release"
    (cd "$REPO_DIR" && cargo build --release)
  fi
  [[ -x "$DNS64D_BIN" ]] || die "no dns64d binary at $DNS64D_BIN"
}

# ------------------------------------------------------------------ process bookkeeping
WORK=""
STARTED=()          # "name pid" of every server this run started, in start order
LAST_PID=""
BG_PID=""           # the running bench.py, so an interrupt can stop its dnsperf too
FAILED=1

# start_server NAME ROLE CMD...: start CMD in the background (pinned for ROLE), record its PID.
start_server() {
  local name="$1" role="$2"; shift 2
  # shellcheck disable=SC2046  # launcher prints a list of words (or nothing)
  $(launcher "$role") "$@" </dev/null >>"$WORK/$name/out.log" 2>&1 &
  LAST_PID=$!
  STARTED+=("$name $LAST_PID")
  log "$name started (pid $LAST_PID$([[ "$PIN" == 1 ]] && echo ", pinned to CPU $([[ $role == server ]] && echo "$SERVER_CPU" || echo "$CLIENT_CPU")"))"
}

# stop_pid PID...: SIGTERM to each PID and the processes it forked, SIGKILL after 10 s.
stop_pid() {
  local all=() kids=() pid i
  for pid in "$@"; do
    kill -0 "$pid" 2>/dev/null || continue
    mapfile -t kids < <(descendants "$pid")   # collected before the signal: NSD's children
    all+=("$pid" "${kids[@]}")
  done
  [[ ${#all[@]} -gt 0 ]] || return 0
  kill -TERM "${all[@]}" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    local alive=0
    for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ "$alive" == 0 ]] && return 0
    sleep 0.25
  done
  log "SIGKILL ${all[*]}"
  kill -KILL "${all[@]}" 2>/dev/null || true
}

# stop_server NAME: stop the server of that name that this run started.
stop_server() {
  local entry keep=()
  for entry in "${STARTED[@]}"; do
    if [[ "${entry%% *}" == "$1" ]]; then stop_pid "${entry##* }"; else keep+=("$entry"); fi
  done
  STARTED=("${keep[@]}")
}

server_pid() {
  local entry
  for entry in "${STARTED[@]}"; do [[ "${entry%% *}" == "$1" ]] && echo "${entry##* }"; done
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  [[ -n "$BG_PID" ]] && stop_pid "$BG_PID"
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    log "stopping ${STARTED[i]% *} (pid ${STARTED[i]##* })"
    stop_pid "${STARTED[i]##* }"
  done
  if [[ -n "$WORK" && -d "$WORK" ]]; then
    if [[ "$FAILED" == 1 || "$KEEP_WORK" == 1 ]]; then
      log "configs and server logs kept in $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}

# run_py ARGS...: run bench.py in the background and wait, so that a signal reaches the trap
# at once (bash runs traps only between foreground commands).
run_py() {
  python3 "$BENCH_DIR/bench.py" "$@" &
  BG_PID=$!
  local rc=0
  wait "$BG_PID" || rc=$?
  BG_PID=""
  return "$rc"
}


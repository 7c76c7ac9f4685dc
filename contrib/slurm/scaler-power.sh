#!/bin/bash
# Slurm power saving → the CycleCloud scaler: POST /api/slurm/<action> with the hostlist slurmctld
# passed and, for resume, the JSON of $SLURM_RESUME_FILE. bash + curl only (head nodes rarely have
# Node.js). Use the wrappers as Slurm's programs:
#   ResumeProgram=/opt/scaler/resume.sh  SuspendProgram=/opt/scaler/suspend.sh  ResumeFailProgram=/opt/scaler/resume-fail.sh
#
# Settings come from a root-only file (mode 0600 or 0400), KEY=value lines, never sourced:
#   SCALER_URL=https://<app>.azurewebsites.net/api    (the API base, ending in /api)
#   SCALER_KEY=<function key>
#   SCALER_CLUSTER=<CycleCloud cluster name>
#   SCALER_LOG=/var/log/slurm/scaler-power.log        (optional; default next to the settings file)
#   SCALER_TIMEOUT=20                                  (optional; seconds per HTTP attempt)
#   SLURM_BIN_DIR=/opt/slurm/bin                       (optional; where sinfo and scontrol are when
#                                                       not in the system directories, e.g. a source build)
#   SCALER_SIGNING_KEY_FILE=/etc/slurm/scaler.signing-key  (optional; the HMAC key, mode 0600 or 0400:
#     each POST is signed as docs/api.md §4 says, so REQUIRE_SIGNED_WEBHOOKS=true works with Slurm)
# The file is scaler.conf next to $SLURM_CONF (slurmctld sets it), else /etc/slurm/scaler.conf.
#
# slurmctld gives its programs no PATH and never logs their output, so this script sets PATH, logs
# to SCALER_LOG, and reports a refusal where Slurm shows it: the exit status (in the slurmctld log)
# and, for a refused resume, `scontrol update state=down reason="scaler refused: …"` so the jobs are
# requeued now instead of after ResumeTimeout; an accepted resume-fail powers the nodes down
# (`state=power_down_force`) so they return as idle~ instead of staying down~. Exit: 0 accepted, 1 refused (4xx), 2 bad settings,
# 3 scaler unreachable or failing (5xx) after retries.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umask 077

action=${1:-}
nodes=${2:-}
case "$action" in resume | suspend | resume-fail | sync) ;; *)
  echo "usage: $0 resume|suspend|resume-fail <hostlist> | $0 sync" >&2
  exit 2
  ;;
esac

conf_dir=/etc/slurm
if [ -n "${SLURM_CONF:-}" ]; then conf_dir=$(dirname -- "$SLURM_CONF"); fi
settings=${SCALER_SLURM_SETTINGS:-$conf_dir/scaler.conf}
SCALER_URL='' SCALER_KEY='' SCALER_CLUSTER='' SCALER_LOG='' SCALER_TIMEOUT=20 SCALER_SIGNING_KEY_FILE='' SLURM_BIN_DIR=''

log() {
  local line
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) scaler-power[$$] $action: $*"
  if [ -n "$SCALER_LOG" ] && { printf '%s\n' "$line" >>"$SCALER_LOG"; } 2>/dev/null; then :; else printf '%s\n' "$line" >&2; fi
}

if [ ! -f "$settings" ] || [ ! -r "$settings" ]; then
  SCALER_LOG=$conf_dir/scaler-power.log
  log "settings file $settings is missing or unreadable"
  exit 2
fi
mode=$(stat -c %a -- "$settings" 2>/dev/null || echo '?')
owner=$(stat -c %u -- "$settings" 2>/dev/null || echo '?')
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in '#'* | '') continue ;; esac
  key=${line%%=*}
  value=${line#*=}
  case "$key" in
    SCALER_URL | SCALER_KEY | SCALER_CLUSTER | SCALER_LOG | SCALER_TIMEOUT | SCALER_SIGNING_KEY_FILE | SLURM_BIN_DIR) printf -v "$key" '%s' "$value" ;;
  esac
done <"$settings"
# Slurm's own commands first when they live elsewhere (an absolute directory only).
case "$SLURM_BIN_DIR" in /*) PATH=$SLURM_BIN_DIR:$PATH ;; esac
[ -n "$SCALER_LOG" ] || SCALER_LOG=$(dirname -- "$settings")/scaler-power.log

if [ "$mode" != 600 ] && [ "$mode" != 400 ]; then
  log "refusing to use $settings: mode $mode, must be 600 or 400 (it holds the function key)"
  exit 2
fi
if [ "$owner" != 0 ] && [ "$owner" != "$(id -u)" ]; then
  log "refusing to use $settings: owned by uid $owner, must be root or the Slurm user"
  exit 2
fi
for required in SCALER_URL SCALER_KEY SCALER_CLUSTER; do
  if [ -z "${!required}" ]; then
    log "$settings does not set $required"
    exit 2
  fi
done
if [ -z "$nodes" ] && [ "$action" != sync ]; then
  log "no hostlist given"
  exit 2
fi
if [ -n "$SCALER_SIGNING_KEY_FILE" ]; then
  if [ ! -f "$SCALER_SIGNING_KEY_FILE" ] || [ ! -r "$SCALER_SIGNING_KEY_FILE" ]; then
    log "signing key file $SCALER_SIGNING_KEY_FILE is missing or unreadable"
    exit 2
  fi
  key_mode=$(stat -c %a -- "$SCALER_SIGNING_KEY_FILE" 2>/dev/null || echo '?')
  if [ "$key_mode" != 600 ] && [ "$key_mode" != 400 ]; then
    log "refusing to use $SCALER_SIGNING_KEY_FILE: mode $key_mode, must be 600 or 400 (it holds the signing key)"
    exit 2
  fi
fi

# HMAC-SHA256 (RFC 2104) of file $2 under the key in file $1 (one trailing newline dropped), as hex.
# Built from openssl's plain digest so the key never appears on a command line (ps shows those).
hex_of() { od -An -v -tx1 | tr -d ' \n'; }
bytes_of() { printf "$(printf '%s' "$1" | sed 's/../\\x&/g')"; }
hmac_sha256_hex() {
  local key pad ipad='' opad='' inner i b
  key=$(hex_of <"$1")
  [ "${key: -2}" = 0a ] && key=${key%0a}
  [ ${#key} -gt 128 ] && key=$(bytes_of "$key" | openssl dgst -sha256 -binary | hex_of)
  pad=$(printf '%0128d' 0)
  key=$key${pad:${#key}}
  for ((i = 0; i < 128; i += 2)); do
    b=$((16#${key:i:2}))
    ipad+=$(printf '%02x' $((b ^ 0x36)))
    opad+=$(printf '%02x' $((b ^ 0x5c)))
  done
  inner=$({ bytes_of "$ipad"; cat -- "$2"; } | openssl dgst -sha256 -binary | hex_of)
  { bytes_of "$opad"; bytes_of "$inner"; } | openssl dgst -sha256 | sed 's/.*= *//'
}

json_string() { # JSON string literal of $1
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

body=$(mktemp) || exit 3
answer=$(mktemp) || exit 3
trap 'rm -f -- "$body" "$answer"' EXIT
if [ "$action" = sync ]; then
  # Slurm's view of its nodes: `sinfo -h -o '%T|%E|%N'` (state with its power suffix, reason, hostlist).
  # slurmctld stalls for seconds at a time (resolving cloud node names it cannot resolve, e.g. to
  # kill a cancelled job's steps there): while it is busy, ask again, up to 3 times, 1 s apart.
  for try in 1 2 3; do
    observed=$(date +%s)
    if report=$(sinfo -h -o '%T|%E|%N' 2>&1); then break; fi
    case "$report" in
      *'Socket timed out'* | *'Unable to contact slurm controller'* | *'Zero Bytes were transmitted'*) [ "$try" -lt 3 ] && sleep 1 && continue ;;
    esac
    log "sinfo failed: $report"
    exit 3
  done
  {
    printf '{"cluster":%s,"observedAt":%s,"lines":[' "$(json_string "$SCALER_CLUSTER")" "$observed"
    sep=''
    while IFS= read -r line; do
      [ -n "$line" ] || continue
      state=${line%%|*}
      rest=${line#*|}
      hosts=${rest##*|}
      reason=${rest%|*}
      printf '%s{"state":%s,"reason":%s,"nodes":%s}' "$sep" "$(json_string "$state")" "$(json_string "$reason")" "$(json_string "$hosts")"
      sep=','
    done <<<"$report"
    printf ']}'
  } >"$body"
  url="${SCALER_URL%/}/slurm/sync?format=text"
else
  {
    printf '{"cluster":%s,"nodes":%s' "$(json_string "$SCALER_CLUSTER")" "$(json_string "$nodes")"
    # The resume file lives only while this program runs: read it now. Slurm writes a JSON object.
    if [ "$action" = resume ] && [ -n "${SLURM_RESUME_FILE:-}" ] && [ -r "$SLURM_RESUME_FILE" ]; then
      resume_json=$(<"$SLURM_RESUME_FILE")
      case "$resume_json" in '{'*'}') printf ',"resumeFile":%s' "$resume_json" ;; esac
    fi
    printf '}'
  } >"$body"
  url="${SCALER_URL%/}/slurm/$action"
fi

# Signature headers for one attempt (docs/api.md §4: "<timestamp>.<METHOD>.<path>.<raw body>", the
# path as sent, without scheme, host or query). Empty without a signing key.
signature_headers() {
  [ -n "$SCALER_SIGNING_KEY_FILE" ] || return 0
  local timestamp path signed signature
  timestamp=$(date +%s)
  path=/${url#*://*/}
  path=${path%%\?*}
  signed=$(mktemp) || return 1
  { printf '%s.POST.%s.' "$timestamp" "$path"; cat -- "$body"; } >"$signed"
  signature=$(hmac_sha256_hex "$SCALER_SIGNING_KEY_FILE" "$signed")
  rm -f -- "$signed"
  [ ${#signature} -eq 64 ] || return 1
  printf 'header = "x-scaler-timestamp: %s"\nheader = "x-scaler-signature: sha256=%s"\n' "$timestamp" "$signature"
}

# Up to 4 attempts, 1 s apart. Each attempt is signed anew: the scaler refuses a signature it has
# seen (replay), so curl's own --retry, which resends the same headers, cannot be used.
for attempt in 1 2 3 4; do
  if ! headers=$(signature_headers); then
    log "could not sign the request (is openssl installed?)"
    exit 2
  fi
  # The key goes to curl on stdin (-K -), never on the command line where ps would show it.
  status=$(printf 'header = "x-functions-key: %s"\n%s\n' "$SCALER_KEY" "$headers" |
    curl -K - --silent --show-error --output "$answer" --write-out '%{http_code}' \
      --max-time "$SCALER_TIMEOUT" \
      -H 'content-type: application/json' --data-binary @"$body" \
      "$url" 2>&1)
  curl_exit=$?
  case "$status" in 429 | 5?? | 000 | '') ;; *) [ $curl_exit -eq 0 ] && break ;; esac
  [ $attempt -lt 4 ] && sleep 1
done
reply=$(head -c 600 -- "$answer" 2>/dev/null | tr '\n' ' ')

if [ "$action" = sync ] && [ "$status" = 200 ] && [ $curl_exit -eq 0 ]; then
  # One line per action: <down|hold|restore|power_down> TAB <hostlist> TAB <reason>. Hostlists and reasons
  # come from the scaler, which makes them one line without quotes; anything else is skipped.
  failed=0
  while IFS=$'\t' read -r what hosts reason; do
    case "$hosts" in '' | *[!A-Za-z0-9,.\[\]_-]*) continue ;; esac
    reason=${reason//\"/\'}
    case "$what" in
      down | hold) scontrol update nodename="$hosts" state=down reason="$reason" >/dev/null 2>&1 || failed=1 ;;
      restore) scontrol update nodename="$hosts" state=resume >/dev/null 2>&1 || failed=1 ;;
      power_down) scontrol update nodename="$hosts" state=power_down_force >/dev/null 2>&1 || failed=1 ;;
      *) continue ;;
    esac
    log "$what $hosts: $reason"
  done <"$answer"
  [ $failed -eq 0 ] || log "some scontrol updates failed (see above)"
  exit 0
fi

if [ $curl_exit -ne 0 ] || [ -z "$status" ] || [ "${status:0:1}" = 5 ] || [ "$status" = 000 ]; then
  log "scaler unreachable or failing for $nodes (curl exit $curl_exit, HTTP ${status:-none}): $reply"
  exit 3
fi
if [ "$status" = 202 ]; then
  log "accepted $nodes: $reply"
  if [ "$action" = resume-fail ]; then
    # After ResumeTimeout Slurm leaves the nodes down~ until an admin acts. Power them down instead:
    # they wait SuspendTimeout (at least a VM delete) in idle% and come back idle~, ready for the next
    # job, without ever resuming a name whose VM is still being deleted.
    scontrol update nodename="$nodes" state=power_down_force reason="resume failed; terminated by the scaler" >/dev/null 2>&1 ||
      log "scontrol could not power down $nodes"
  fi
  exit 0
fi
log "scaler refused $nodes (HTTP $status): $reply"
if [ "$action" = resume ]; then
  # Requeue the jobs now, with the reason visible in `sinfo -R` and the slurmctld log.
  detail=$(printf '%s' "$reply" | sed -n 's/.*"message":"\([^"]*\)".*/\1/p' | head -c 200)
  [ -n "$detail" ] || detail=$(printf '%s' "$reply" | sed -n 's/.*"detail":"\([^"]*\)".*/\1/p' | head -c 200)
  scontrol update nodename="$nodes" state=down reason="scaler refused resume (HTTP $status): ${detail:-see $SCALER_LOG}" >/dev/null 2>&1 ||
    log "scontrol update of $nodes failed"
fi
exit 1

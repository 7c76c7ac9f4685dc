#!/bin/bash
# Installs the scaler's Slurm programs on a head node, as root (README "Use it with Slurm", step 2):
#   - resume.sh, suspend.sh, resume-fail.sh, scaler-power.sh into --prefix (0755, root-owned),
#   - the settings file scaler.conf into --conf-dir (0600), from the options below,
#   - a systemd timer that runs `scaler-power.sh sync` every --interval seconds: it sends sinfo's
#     view to the scaler and applies the answer with scontrol (nodes that will not come up set down
#     with the reason; held down while their bucket has no room; resumed when it has room again).
#
# Usage:
#   SCALER_KEY='<function key>' install.sh --url https://<app>.azurewebsites.net/api --cluster hpc \
#     [--signing-key-file /etc/slurm/scaler.signing-key] [--prefix /opt/cyclecloud-scaler/slurm] \
#     [--conf-dir /etc/slurm] [--systemd-dir /etc/systemd/system] [--interval 10] [--no-start]
# The function key comes from the environment (or --key-file), never from the command line (ps shows it).
# Exit 0 installed; 2 bad options.
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umask 022

here=$(cd -- "$(dirname -- "$0")" && pwd)
prefix=/opt/cyclecloud-scaler/slurm
conf_dir=/etc/slurm
systemd_dir=/etc/systemd/system
interval=10
url=''
cluster=''
signing_key_file=''
key_file=''
start=1

die() {
  echo "install.sh: $*" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url=${2:-}; shift 2 ;;
    --cluster) cluster=${2:-}; shift 2 ;;
    --signing-key-file) signing_key_file=${2:-}; shift 2 ;;
    --key-file) key_file=${2:-}; shift 2 ;;
    --prefix) prefix=${2:-}; shift 2 ;;
    --conf-dir) conf_dir=${2:-}; shift 2 ;;
    --systemd-dir) systemd_dir=${2:-}; shift 2 ;;
    --interval) interval=${2:-}; shift 2 ;;
    --no-start) start=0; shift ;;
    *) die "unknown option $1 (see the usage at the top of this file)" ;;
  esac
done
key=${SCALER_KEY:-}
if [ -n "$key_file" ]; then
  [ -r "$key_file" ] || die "--key-file $key_file is not readable"
  key=$(head -n 1 -- "$key_file")
fi
case "$url" in http://* | https://*) ;; *) die "--url must be the scaler's API base, http(s)://…/api" ;; esac
[ -n "$cluster" ] || die '--cluster is required (the CycleCloud cluster name)'
case "$cluster" in *[!A-Za-z0-9._-]*) die "--cluster $cluster: only letters, digits, '.', '_' and '-'" ;; esac
[ -n "$key" ] || die 'the function key is required: SCALER_KEY in the environment, or --key-file'
case "$interval" in '' | *[!0-9]*) die '--interval must be whole seconds' ;; esac
[ "$interval" -ge 2 ] && [ "$interval" -le 60 ] || die '--interval must be 2 to 60 seconds (failures reach Slurm within about two intervals)'
if [ -n "$signing_key_file" ]; then
  [ -f "$signing_key_file" ] || die "--signing-key-file $signing_key_file does not exist"
  mode=$(stat -c %a -- "$signing_key_file")
  [ "$mode" = 600 ] || [ "$mode" = 400 ] || die "--signing-key-file $signing_key_file has mode $mode, must be 600 or 400"
fi

install -d -m 755 "$prefix"
for f in scaler-power.sh resume.sh suspend.sh resume-fail.sh; do install -m 755 "$here/$f" "$prefix/$f"; done
install -d -m 755 "$conf_dir"
settings=$conf_dir/scaler.conf
install -m 600 /dev/null "$settings"
{
  printf 'SCALER_URL=%s\nSCALER_KEY=%s\nSCALER_CLUSTER=%s\n' "$url" "$key" "$cluster"
  [ -z "$signing_key_file" ] || printf 'SCALER_SIGNING_KEY_FILE=%s\n' "$signing_key_file"
} >"$settings"

install -d -m 755 "$systemd_dir"
cat >"$systemd_dir/ccscale-slurm-sync.service" <<EOF
[Unit]
Description=CycleCloud scaler: apply the scaler's view of Slurm's cloud nodes (down, hold, resume)
After=network-online.target slurmctld.service
Wants=network-online.target

[Service]
Type=oneshot
Environment=SLURM_CONF=$conf_dir/slurm.conf
ExecStart=$prefix/scaler-power.sh sync
TimeoutStartSec=60
EOF
cat >"$systemd_dir/ccscale-slurm-sync.timer" <<EOF
[Unit]
Description=Run ccscale-slurm-sync every ${interval} s

[Timer]
OnBootSec=30s
OnUnitActiveSec=${interval}s
AccuracySec=1s

[Install]
WantedBy=timers.target
EOF
chmod 644 "$systemd_dir/ccscale-slurm-sync.service" "$systemd_dir/ccscale-slurm-sync.timer"

echo "installed the programs in $prefix, the settings in $settings (0600), and ccscale-slurm-sync.timer in $systemd_dir"
if [ $start -eq 1 ]; then
  if command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
    systemctl enable --now ccscale-slurm-sync.timer
    echo 'started ccscale-slurm-sync.timer (journalctl -u ccscale-slurm-sync for its runs)'
  else
    echo 'no systemctl here: run `'"$prefix"'/scaler-power.sh sync` every '"$interval"' s some other way (cron cannot go below a minute)' >&2
  fi
fi
echo "next: ResumeProgram=$prefix/resume.sh SuspendProgram=$prefix/suspend.sh ResumeFailProgram=$prefix/resume-fail.sh (ccscale slurm conf prints them)"

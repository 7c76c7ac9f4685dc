#!/bin/bash
# Slurm resume-fail program: see scaler-power.sh next to this file.
exec "$(dirname -- "$0")/scaler-power.sh" resume-fail "$@"

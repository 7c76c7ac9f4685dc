#!/bin/bash
# Slurm resume program: see scaler-power.sh next to this file.
exec "$(dirname -- "$0")/scaler-power.sh" resume "$@"

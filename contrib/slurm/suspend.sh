#!/bin/bash
# Slurm suspend program: see scaler-power.sh next to this file.
exec "$(dirname -- "$0")/scaler-power.sh" suspend "$@"

#!/usr/bin/env bash
# Submits the AeLLE experiment to Slurm: an array of COUNT shard tasks (sweep + spectra of
# one shard each) and a merge job (merge + aelle + report) that starts only if every shard
# succeeded (afterok) and is cancelled otherwise (kill-on-invalid-dep).
#
#   scripts/slurm/submit.sh COUNT [orchestrator args...]
#   scripts/slurm/submit.sh 50 --preset paper --run-dir /shared/runs/paper
#
# Environment: ORCHESTRATOR (path of the binary; default `orchestrator` on PATH),
# SBATCH_ARGS (extra sbatch flags for both jobs, e.g. "--partition=gpu --time=4:00:00"),
# OUT_DIR (where the job logs go; default the current directory).
# Prints "ARRAY_ID MERGE_ID". The run folder must be on a file system all nodes share.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
count=${1:?usage: submit.sh COUNT [orchestrator args...]}
shift
case "$count" in ''|*[!0-9]*|0) echo "submit.sh: COUNT must be a positive whole number, got '$count'" >&2; exit 2 ;; esac
out=${OUT_DIR:-.}
# shellcheck disable=SC2086
aid=$(sbatch --parsable ${SBATCH_ARGS:-} --array="0-$((count - 1))" \
  --output="$out/aelle-shard-%A_%a.out" "$here/shard.sbatch" "$count" "$@")
aid=${aid%%;*}
# shellcheck disable=SC2086
mid=$(sbatch --parsable ${SBATCH_ARGS:-} --dependency="afterok:$aid" --kill-on-invalid-dep=yes \
  --output="$out/aelle-merge-%j.out" "$here/merge.sbatch" "$@")
mid=${mid%%;*}
echo "$aid $mid"

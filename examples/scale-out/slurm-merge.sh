#!/bin/bash
# One Weld merge split over a Slurm job array: array task I computes part I of N of the output shards, N being the
# array's size (8 below; `sbatch --array=1-4 ...` runs it in 4 parts).
#   sbatch --export=ALL,RECIPE=recipe.yml,OUT=/shared/out/merged examples/scale-out/slurm-merge.sh
# then, once every task has finished:
#   sbatch --dependency=afterok:<jobid> --wrap "weld finalize /shared/out/merged"
# A failed or preempted task is simply run again: --resume keeps the shards it had finished (checksums verified).
# OUT must be on storage every node sees. Extra arguments are passed to weld (e.g. --dry-run to check the plan).
#SBATCH --job-name=weld-merge
#SBATCH --array=1-8
#SBATCH --cpus-per-task=16
#SBATCH --mem=8G
set -euo pipefail
parts=${SLURM_ARRAY_TASK_COUNT:-8}
weld merge "${RECIPE:?set RECIPE to the recipe file}" -o "${OUT:?set OUT to the output folder}" \
  --part "${SLURM_ARRAY_TASK_ID:?run as a Slurm array task}/${parts}" \
  --memory-limit 4B --resume "$@"

#!/usr/bin/env bash
# End-to-end bench: three synthetic Llama-3.2-1B-shaped models (bf16, 1 GB shards), the I/O floor measured with
# plain tools in the same run, then Weld linear, TIES (density 0.3) and DARE-TIES. Prints a markdown table:
# seconds, ratio to the floor, peak anonymous memory (RssAnon of the weld process, polled every 50 ms).
# Usage: bench/e2e/run.sh [WORK_DIR]   (needs ~12 GB of disk; the page cache holds the inputs)
# WELD_MEMORY_LIMIT sets --memory-limit for every run (default 1B = 10^9 bytes).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/weld-e2e}
mkdir -p "$work"
dotnet build -c Release src/Cli -v q -nologo >/dev/null
dotnet build -c Release bench/Weld.Bench -v q -nologo >/dev/null
weld="dotnet src/Cli/bin/Release/net10.0/weld.dll"
[ -f "$work/ft2/config.json" ] || dotnet bench/Weld.Bench/bin/Release/net10.0/Weld.Bench.dll make-models "$work" 2

inputs=$(ls "$work"/base/*.safetensors "$work"/ft1/*.safetensors "$work"/ft2/*.safetensors)
in_bytes=$(cat $inputs | wc -c)
out_bytes=$(cat "$work"/base/*.safetensors | wc -c)
cat $inputs > /dev/null   # warm the page cache

now() { date +%s.%N; }
# The floor: read every input once, write one model-sized output and sync it.
rm -rf "$work/floor-out"
t0=$(now); cat $inputs > /dev/null; cp -r "$work/base" "$work/floor-out"; sync; t1=$(now)
floor=$(echo "$t1 - $t0" | bc -l)
rm -rf "$work/floor-out"
# The same floor with the output written by dd with O_DIRECT, as Weld writes its shards (no page-cache copy).
mkdir -p "$work/floor-out"
t0=$(now); cat $inputs > /dev/null
for f in "$work"/base/*.safetensors; do dd if="$f" of="$work/floor-out/$(basename "$f")" bs=4M oflag=direct status=none; done
sync; t1=$(now)
floor_direct=$(echo "$t1 - $t0" | bc -l)
rm -rf "$work/floor-out"

run() { # name, extra flags, recipe text
  local name=$1 flags=$2 recipe="$work/$1.yml"
  printf '%s\n' "$3" > "$recipe"
  rm -rf "$work/out-$name"
  local peak=0
  local start; start=$(now)
  $weld merge "$recipe" -o "$work/out-$name" --out-shard-size 1B -q $flags &
  local pid=$!
  # Poll with shell builtins only: forking awk/sleep 50 times a second cost the merge ~2 s of its two cores on the
  # bench VM (every fork copies page tables, a trap to the hypervisor). dotnet runs weld.dll in the same process, so
  # RssAnon is the merge's own anonymous memory.
  exec 9<> <(:)
  while kill -0 $pid 2>/dev/null; do
    local key value rest
    while read -r key value rest; do
      if [ "$key" = "RssAnon:" ]; then [ "$value" -gt "$peak" ] && peak=$value; break; fi
    done < /proc/$pid/status 2>/dev/null || true
    read -t 0.05 -u 9 || true   # a 50 ms sleep without a fork
  done
  exec 9<&-
  wait $pid
  sync
  local end; end=$(now)
  local secs; secs=$(echo "$end - $start" | bc -l)
  printf '| %s | %s | %.2f | %.2f | %.0f |\n' "$name" "$flags" "$secs" "$(echo "$secs / $floor" | bc -l)" "$(echo "$peak / 1024" | bc -l)"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -r)"
echo "inputs: $in_bytes bytes in 3 models; output: $out_bytes bytes"
printf '| run | flags | seconds | ratio to floor | peak RssAnon MiB |\n|---|---|---:|---:|---:|\n'
printf '| floor (cat inputs + cp one model + sync) | | %.2f | 1.00 | |\n' "$floor"
printf '| floor, direct write (cat inputs + dd oflag=direct one model) | | %.2f | %.2f | |\n' "$floor_direct" "$(echo "$floor_direct / $floor" | bc -l)"
models="models:
  - model: $work/base
    parameters: {weight: 0.34}
  - model: $work/ft1
    parameters: {weight: 0.33}
  - model: $work/ft2
    parameters: {weight: 0.33}"
limit="--memory-limit ${WELD_MEMORY_LIMIT:-1B}"
run linear "$limit" "$models
merge_method: linear"
tv="models:
  - model: $work/ft1
    parameters: {weight: 0.5, density: 0.3}
  - model: $work/ft2
    parameters: {weight: 0.5, density: 0.3}
base_model: $work/base"
run ties "$limit" "$tv
merge_method: ties"
run dare_ties "$limit" "$tv
merge_method: dare_ties"

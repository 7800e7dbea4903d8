#!/usr/bin/env bash
# End-to-end bench: three synthetic Llama-3.2-1B-shaped models (bf16, 1 GB shards), the direct-write I/O floor
# measured with plain tools in the same run (`cat` of every input + `dd oflag=direct` of one model-sized output),
# then Weld at DEFAULT flags (no --memory-limit, no -j: what a new user gets) for each method. Every figure is the
# best of RUNS runs (default 3); the table gives seconds, the ratio to the floor, peak anonymous memory (RssAnon of
# the weld process, polled every 50 ms) and cores used ((user + system CPU time) / wall time of the merge, from the
# shell's `times` after `wait`: exact, no fork).
#
# Usage: bench/e2e/run.sh [WORK_DIR]    (needs ~13 GB of disk; the page cache holds the inputs)
#   RUNS=N               best of N (default 3)
#   METHODS="a b ..."    methods to run (default: linear ties dare_ties breadcrumbs_ties della sce; METHODS=all for
#                        every method of `weld merge` that fits three models)
#   VARIANTS="flags;..." extra rows per method with these flags (default: "--memory-limit 1B;-j 1"; VARIANTS= for none)
#   WELD_BENCH_LAYERS=N  model depth (default 16 = 1B-shaped; make-models' own default)
#   WELD_BENCH_SHAPE=3b  3B-shaped models (hidden 3072, 28 layers, intermediate 8192) instead of 1B
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/weld-e2e}
runs=${RUNS:-3}
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
min() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc -l)" = 1 ]; then echo "$2"; else echo "$1"; fi; }
# Children's user + system seconds so far, from the `times` builtin (second line: children). `times` must run in
# the shell that waited for the merge, not in a $(...) subshell: it writes to a file and `read` takes it back.
child_cpu() { # -> variable cpu
  times > "$work/.times"
  local _ u s
  { read -r _ _; read -r u s; } < "$work/.times"
  cpu=$(echo "${u%%m*}*60+$(t=${u#*m}; echo "${t%s}") + ${s%%m*}*60+$(t=${s#*m}; echo "${t%s}")" | bc -l)
}

# The floor: read every input once, write one model-sized output with O_DIRECT (as Weld writes its shards), sync.
floor=""
for _ in $(seq "$runs"); do
  rm -rf "$work/floor-out"; mkdir -p "$work/floor-out"
  t0=$(now); cat $inputs > /dev/null
  for f in "$work"/base/*.safetensors; do dd if="$f" of="$work/floor-out/$(basename "$f")" bs=4M oflag=direct status=none; done
  sync; t1=$(now)
  floor=$(min "$floor" "$(echo "$t1 - $t0" | bc -l)")
done
rm -rf "$work/floor-out"

once() { # recipe, flags -> "seconds peakKiB cores"
  local recipe=$1 flags=$2 out="$work/out-bench"
  rm -rf "$out"
  local peak=0 cpu cpu0; child_cpu; cpu0=$cpu
  local start; start=$(now)
  $weld merge "$recipe" -o "$out" --out-shard-size 1B -q $flags 2> "$work/.stderr" &
  local pid=$!
  # Poll with shell builtins only: forking awk/sleep 50 times a second cost the merge ~2 s of its two cores on the
  # bench VM. dotnet runs weld.dll in the same process, so RssAnon is the merge's own anonymous memory.
  exec 9<> <(:)
  while kill -0 $pid 2>/dev/null; do
    local key value rest
    while read -r key value rest; do
      if [ "$key" = "RssAnon:" ]; then [ "$value" -gt "$peak" ] && peak=$value; break; fi
    done < /proc/$pid/status 2>/dev/null || true
    read -t 0.05 -u 9 || true   # a 50 ms sleep without a fork
  done
  exec 9<&-
  if ! wait $pid; then echo "fail 0 0"; return 0; fi
  local end; end=$(now)   # weld fsyncs every shard before it exits: no sync needed here
  child_cpu; local cpu1=$cpu
  local secs; secs=$(echo "$end - $start" | bc -l)
  echo "$secs $peak $(echo "($cpu1 - $cpu0) / $secs" | bc -l) $(echo "$cpu1 - $cpu0" | bc -l)"
}

run() { # name, flags, recipe text: best of $runs
  local name=$1 flags=$2 recipe="$work/$1.yml"
  printf '%s\n' "$3" > "$recipe"
  local best="" bpeak=0 bcores=0 bcpu=0
  for _ in $(seq "$runs"); do
    read -r secs peak cores cpus < <(once "$recipe" "$flags")
    if [ "$secs" = fail ]; then
      # e.g. a method that needs whole tensors in memory, above the limit: say so in the row, go on
      printf '| %s | %s | fails: %s | | | | |\n' "$name" "${flags:-(default)}" "$(head -c 160 "$work/.stderr" | tr '\n|' '  ')"
      return 0
    fi
    if [ -z "$best" ] || [ "$(echo "$secs < $best" | bc -l)" = 1 ]; then best=$secs; bcores=$cores; bcpu=$cpus; fi
    [ "$peak" -gt "$bpeak" ] && bpeak=$peak
  done
  rm -rf "$work/out-bench"
  printf '| %s | %s | %.2f | **%.2f** | %.0f | %.2f | %.1f |\n' "$name" "${flags:-(default)}" "$best" \
    "$(echo "$best / $floor" | bc -l)" "$(echo "$bpeak / 1024" | bc -l)" "$bcores" "$bcpu"
}

echo "CPU pressure (some avg10/avg60): $(awk '/some/{print $2, $3}' /proc/pressure/cpu 2>/dev/null)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "inputs: $in_bytes bytes in 3 models; output: $out_bytes bytes; best of $runs runs"
printf '| method | flags | seconds | ratio to floor | peak RssAnon MiB | cores used | CPU s (user+sys) |\n|---|---|---:|---:|---:|---:|---:|\n'
printf '| floor (cat inputs + dd oflag=direct one model + sync) | | %.2f | 1.00 | | | |\n' "$floor"

base="$work/base"; ft1="$work/ft1"; ft2="$work/ft2"
recipe_for() { # method -> recipe text
  local m=$1
  local three="models:
  - model: $base
    parameters: {weight: 0.34}
  - model: $ft1
    parameters: {weight: 0.33}
  - model: $ft2
    parameters: {weight: 0.33}"
  local tv # two fine-tunes over the base, with $1 as their parameters
  tv() { printf 'models:\n  - model: %s\n    parameters: {%s}\n  - model: %s\n    parameters: {%s}\nbase_model: %s\nmerge_method: %s\n%s' \
    "$ft1" "$1" "$ft2" "$1" "$base" "$m" "${2:-}"; }
  case $m in
    linear|multislerp) printf '%s\nmerge_method: %s\n' "$three" "$m" ;;
    karcher) printf 'models:\n  - model: %s\n  - model: %s\n  - model: %s\nmerge_method: karcher\n' "$base" "$ft1" "$ft2" ;;
    task_arithmetic) tv "weight: 0.5" ;;
    magmax|ram|ramplus_tl|model_stock|consensus|divergence_weights|tsv) # no per-model parameters
      printf 'models:\n  - model: %s\n  - model: %s\nbase_model: %s\nmerge_method: %s\n' "$ft1" "$ft2" "$base" "$m" ;;
    ties) tv "weight: 0.5, density: 0.3" ;;
    dare_ties|dare_linear) tv "weight: 0.5, density: 0.3" ;;
    breadcrumbs|breadcrumbs_ties) tv "weight: 0.5, density: 0.3, gamma: 0.01" ;;
    breadcrumbs_paper) tv "weight: 0.5, beta: 0.69, gamma: 0.01" ;;
    della|della_linear) tv "weight: 0.5, density: 0.3, epsilon: 0.1" ;;
    sce) printf 'models:\n  - model: %s\n  - model: %s\nbase_model: %s\nmerge_method: sce\nparameters: {select_topk: 0.3}\n' "$ft1" "$ft2" "$base" ;;
    slerp) printf 'models:\n  - model: %s\n  - model: %s\nbase_model: %s\nmerge_method: slerp\nparameters: {t: 0.5}\n' "$base" "$ft1" "$base" ;;
    nuslerp) tv "weight: 0.5" ;;
    nearswap) printf 'models:\n  - model: %s\n  - model: %s\nbase_model: %s\nmerge_method: nearswap\nparameters: {t: 0.001}\n' "$base" "$ft1" "$base" ;;
    arcee_fusion) printf 'models:\n  - model: %s\n  - model: %s\nbase_model: %s\nmerge_method: arcee_fusion\n' "$base" "$ft1" "$base" ;;
    *) tv "weight: 0.5" ;;
  esac
}

methods=${METHODS:-linear ties dare_ties breadcrumbs_ties della sce}
[ "$methods" = all ] && methods="linear task_arithmetic ties dare_ties dare_linear breadcrumbs breadcrumbs_ties breadcrumbs_paper della della_linear sce magmax ram ramplus_tl model_stock consensus divergence_weights slerp nuslerp multislerp karcher nearswap arcee_fusion tsv"
IFS=';' read -r -a variants <<< "${VARIANTS---memory-limit 1B;-j 1}"
for m in $methods; do
  run "$m" "" "$(recipe_for "$m")"
  for v in "${variants[@]}"; do [ -n "$v" ] && run "$m" "$v" "$(recipe_for "$m")"; done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

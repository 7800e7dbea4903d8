#!/usr/bin/env bash
# Alignment bench: `weld align` of a synthetic Llama-3.2-1B-shaped fine-tune (bf16, 1 GB shards; made by
# run.sh's generator, `Weld.Bench make-models`) to its base. Prints seconds in all, seconds per sweep, peak RSS
# (/usr/bin/time -v: anonymous + mapped file pages) and peak RssAnon (the process's own buffers, polled every 20 ms).
# Usage: bench/e2e/align.sh [WORK_DIR]
#   ALIGN_ITERS   sweeps (--max-iter, default 2)
#   ALIGN_DEVICE  --device (default cpu; cuda for the cuBLAS path)
#   WELD_BENCH_LAYERS  decoder layers of the generated models (default 16 = 1B shape; 2 for a quick scaling check;
#                      models of another layer count need their own WORK_DIR)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/weld-align-${WELD_BENCH_LAYERS:-16}}
iters=${ALIGN_ITERS:-2}
device=${ALIGN_DEVICE:-cpu}
mkdir -p "$work"
dotnet build -c Release src/Cli -v q -nologo >/dev/null
dotnet build -c Release bench/Weld.Bench -v q -nologo >/dev/null
weld="dotnet src/Cli/bin/Release/net10.0/weld.dll"
[ -f "$work/ft1/config.json" ] || dotnet bench/Weld.Bench/bin/Release/net10.0/Weld.Bench.dll make-models "$work" 1
cat "$work"/base/*.safetensors "$work"/ft1/*.safetensors > /dev/null   # warm the page cache

rm -rf "$work/aligned"
start=$(date +%s.%N)
/usr/bin/time -v -o "$work/time.txt" $weld align --reference "$work/base" --model "$work/ft1" -o "$work/aligned" \
  --max-iter "$iters" --device "$device" > "$work/align.log" 2> "$work/align.err" &
pid=$!
peak=0
exec 9<> <(:)
child=""
while kill -0 $pid 2>/dev/null; do
  # time -v forks the dotnet process: poll its child, which runs weld.dll. Shell builtins only (a fork per sample
  # costs real time on a 2-core VM); the child is looked up once.
  [ -n "$child" ] || child=$(pgrep -P $pid | head -1 || true)
  if [ -n "$child" ]; then
    while read -r key value rest; do
      if [ "$key" = "RssAnon:" ]; then [ "$value" -gt "$peak" ] && peak=$value; break; fi
    done < /proc/$child/status 2>/dev/null || true
  fi
  read -t 0.2 -u 9 || true   # a 200 ms sleep without a fork
done
exec 9<&-
wait $pid
end=$(date +%s.%N)
secs=$(echo "$end - $start" | bc -l)
sweeps=$(grep -c '^iteration ' "$work/align.log")
maxrss=$(awk -F: '/Maximum resident set size/{gsub(/ /,"",$2); print $2}' "$work/time.txt")
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM; layers ${WELD_BENCH_LAYERS:-16}; device $device"
grep -E '^objective|^device' "$work/align.log" "$work/align.err" || true
printf '| layers | sweeps | seconds | seconds per sweep (incl. load + write) | peak RSS MiB | peak RssAnon MiB |\n|---:|---:|---:|---:|---:|---:|\n'
printf '| %s | %s | %.1f | %.1f | %.0f | %.0f |\n' "${WELD_BENCH_LAYERS:-16}" "$sweeps" "$secs" "$(echo "$secs / $sweeps" | bc -l)" \
  "$(echo "$maxrss / 1024" | bc -l)" "$(echo "$peak / 1024" | bc -l)"

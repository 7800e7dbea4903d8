#!/usr/bin/env bash
# Builds, tests and benchmarks the ILGPU kernels on a GPU machine; results go to $OUT (see bench/gpu/README.md).
#
#   bench/gpu/run.sh pack   On a machine WITH the .NET SDK (the dev box): builds Release and stages what a GPU machine
#                           without an SDK needs in artifacts/gpu-carry/ (a .NET runtime + the built bench, CLI and
#                           test assemblies). Carry that folder to the GPU machine.
#   bench/gpu/run.sh        On the GPU machine: builds with the SDK when there is one, else unpacks artifacts/gpu-carry/;
#                           then (1) the GPU tests on the CUDA accelerator (Weld.Bench gpu-tests), (2) every kernel
#                           against a device-to-device copy (Weld.Bench gpu-bench), (3) an end-to-end merge with
#                           --device cuda against the I/O floor (and its bytes against --device cpu), (4) the PTX.
#
# Without a CUDA device (ILGPU finds none) the same steps run on --device ilgpu-cpu at small sizes: a smoke test of
# the script, the harness and the emulated kernels, not a speed. Budget: under 8 minutes on an H200 machine.
# WELD_GPU_PREBUILT=1 uses artifacts/gpu-carry even where an SDK exists; WELD_BENCH_ELEMENTS sets the bench's tensor
# size; WELD_E2E_LAYERS the decoder layers of the synthetic end-to-end models (default 4).
# Exit status: 0 all GPU tests passed and every kernel met its target; 1 a test failed or the end-to-end bytes
# differ; 2 a target was missed or a test was skipped; 3 no usable device for the bench.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
carry=$repo/artifacts/gpu-carry
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

has_sdk() { command -v dotnet >/dev/null 2>&1 && [ -n "$(dotnet --list-sdks 2>/dev/null)" ]; }
projects=(bench/Weld.Bench src/Cli tests/Kernels.Tests tests/Engine.Tests tests/Cli.Tests)

if [ "${1:-}" = pack ]; then
  set -e
  has_sdk || { echo "pack needs the .NET SDK" >&2; exit 1; }
  build=$repo/artifacts/gpu-build
  for project in "${projects[@]}"; do dotnet build "$project" -c Release --artifacts-path "$build" -v q -nologo; done
  rm -rf "$carry" && mkdir -p "$carry/stage/app"
  # One folder: the bench's output first (it owns Weld.Bench.deps.json), then the CLI's and the test assemblies' files.
  cp -r "$build/bin/Weld.Bench/release/." "$carry/stage/app/"
  cp -rn "$build/bin/Weld.Cli/release/." "$build/bin/Weld.Kernels.Tests/release/." "$build/bin/Weld.Engine.Tests/release/." \
    "$build/bin/Weld.Cli.Tests/release/." "$carry/stage/app/"
  rm -rf "$carry/stage/app/arm64" "$carry/stage/app/x86"
  find "$carry/stage/app/runtimes" -mindepth 1 -maxdepth 1 ! -name linux-x64 ! -name unix -exec rm -rf {} + 2>/dev/null || true
  tar -C "$carry/stage" -cf - app | xz -T0 -6 > "$carry/app.tar.xz"
  dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
  runtime=$(ls -d "$dotnet_root"/shared/Microsoft.NETCore.App/* | sort -V | tail -1)
  tar -C "$dotnet_root" -cf - dotnet host "shared/Microsoft.NETCore.App/$(basename "$runtime")" | xz -T0 -6 > "$carry/dotnet-runtime.tar.xz"
  rm -rf "$carry/stage"
  du -sh "$carry"/*
  echo "carry artifacts/gpu-carry to the GPU machine and run bench/gpu/run.sh there"
  exit 0
fi

OUT=${OUT:-$repo/artifacts/gpu-out}
mkdir -p "$OUT"
log=$OUT/gpu-run.log
: > "$log"
say() { echo "$*" | tee -a "$log"; }
start_all=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start_all )) s"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || echo "nvidia-smi: none"; } | tee -a "$log"

# 0. Build (SDK) or unpack (carry). Both give the same folder layout to the steps below: $app holds every assembly.
if [ -z "${WELD_GPU_PREBUILT:-}" ] && has_sdk; then
  say "== build (SDK $(dotnet --version)) [$(elapsed)]"
  build=$repo/artifacts/gpu-build
  for project in "${projects[@]}"; do
    dotnet build "$project" -c Release --artifacts-path "$build" -v q -nologo 2>&1 | tail -2 | tee -a "$log"
    [ "${PIPESTATUS[0]}" = 0 ] || { say "build of $project failed"; exit 1; }
  done
  app=$build/app
  rm -rf "$app" && mkdir -p "$app"
  cp -r "$build/bin/Weld.Bench/release/." "$app/"
  cp -rn "$build/bin/Weld.Cli/release/." "$build/bin/Weld.Kernels.Tests/release/." "$build/bin/Weld.Engine.Tests/release/." \
    "$build/bin/Weld.Cli.Tests/release/." "$app/"
else
  [ -f "$carry/app.tar.xz" ] && [ -f "$carry/dotnet-runtime.tar.xz" ] || {
    say "no .NET SDK here and no artifacts/gpu-carry: run 'bench/gpu/run.sh pack' on the dev box and carry artifacts/gpu-carry"
    exit 1
  }
  work=${TMPDIR:-/tmp}/weld-gpu
  rm -rf "$work" && mkdir -p "$work/dotnet"
  tar -C "$work/dotnet" -xJf "$carry/dotnet-runtime.tar.xz"
  tar -C "$work" -xJf "$carry/app.tar.xz"
  export DOTNET_ROOT=$work/dotnet PATH=$work/dotnet:$PATH
  app=$work/app
  say "== prebuilt (runtime $(ls "$work/dotnet/shared/Microsoft.NETCore.App")) [$(elapsed)]"
fi
bench=(dotnet "$app/Weld.Bench.dll")
weld=(dotnet "$app/weld.dll")
# The tests read the zoo (tests/zoo links to examples/models) from the repository; the GPU machine has no ../shared.
export WELD_SHARED_MODELS=${WELD_SHARED_MODELS:-$repo/tests/zoo}

probe=$("${bench[@]}" gpu-probe 2>&1)
if [ $? = 0 ]; then
  device=cuda; elements=${WELD_BENCH_ELEMENTS:-67108864}; layers=${WELD_E2E_LAYERS:-4}
else
  device=ilgpu-cpu; elements=${WELD_BENCH_ELEMENTS:-200000}; layers=0
  say "no CUDA device ($probe): smoke test on --device ilgpu-cpu at small sizes; no figure below is a GPU figure"
fi

# 1. Tests: on cuda only the CUDA rows (the emulator rows run in CI); on ilgpu-cpu all of them.
say "== GPU tests on $device [$(elapsed)]"
"${bench[@]}" gpu-tests --device "$device" "$app/Weld.Kernels.Tests.dll" "$app/Weld.Engine.Tests.dll" "$app/Weld.Cli.Tests.dll" \
  > "$OUT/gpu-tests.log" 2>&1
test_status=$?
grep -E '^(FAIL|SKIP)|^gpu tests:' "$OUT/gpu-tests.log" | cut -c1-300 | tee -a "$log"

# 2. Kernels against a device-to-device copy.
say "== gpu-bench on $device, $elements elements [$(elapsed)]"
"${bench[@]}" gpu-bench "$OUT" "$elements" "$device" 2>&1 | tee -a "$log"
bench_status=${PIPESTATUS[0]}

# 3. End to end: the same recipes on --device cpu and on the GPU device, against the I/O floor; bytes compared.
say "== end-to-end merge on $device [$(elapsed)]"
e2e=${TMPDIR:-/tmp}/weld-gpu-e2e
e2e_status=0
if [ "$layers" -gt 0 ]; then
  [ -f "$e2e/ft2/config.json" ] || WELD_BENCH_LAYERS=$layers "${bench[@]}" make-models "$e2e" 2 >/dev/null
  base=$e2e/base ft1=$e2e/ft1 ft2=$e2e/ft2
else
  mkdir -p "$e2e"
  base=$repo/examples/models/lm-base ft1=$repo/examples/models/lm-ft-c ft2=$repo/examples/models/lm-ft-python
fi
inputs=$(ls "$base"/*.safetensors "$ft1"/*.safetensors "$ft2"/*.safetensors)
cat $inputs > /dev/null   # warm the page cache
now() { date +%s.%N; }
rm -rf "$e2e/floor-out"
t0=$(now); cat $inputs > /dev/null; cp -r "$base" "$e2e/floor-out"; sync; t1=$(now)
floor=$(echo "$t1 - $t0" | bc -l)
rm -rf "$e2e/floor-out"
{
  echo "# End-to-end merge: --device cpu and --device $device"
  echo
  echo "inputs: $(cat $inputs | wc -c) bytes in 3 models (${layers:-0} layers; 0 = examples/models); $(nproc) cores"
  echo
  echo "| recipe | device | seconds | ratio to floor | bytes equal to cpu |"
  echo "| --- | --- | ---: | ---: | --- |"
  printf '| floor (cat inputs + cp one model + sync) | | %.2f | 1.00 | |\n' "$floor"
} > "$OUT/e2e.md"
recipe_linear="models:
  - model: $base
    parameters: {weight: 0.34}
  - model: $ft1
    parameters: {weight: 0.33}
  - model: $ft2
    parameters: {weight: 0.33}
merge_method: linear
parameters: {normalize: false}
dtype: float32
out_dtype: bfloat16"
recipe_ties="models:
  - model: $ft1
    parameters: {weight: 0.5, density: 0.3}
  - model: $ft2
    parameters: {weight: 0.5, density: 0.3}
merge_method: ties
base_model: $base
parameters: {normalize: true}
dtype: float32
out_dtype: bfloat16"
for name in linear ties; do
  recipe=$e2e/$name.yml
  var=recipe_$name
  printf '%s\n' "${!var}" > "$recipe"
  for dev in cpu "$device"; do
    out=$e2e/out-$name-$dev
    rm -rf "$out"
    t0=$(now)
    "${weld[@]}" merge "$recipe" -o "$out" --device "$dev" --random-seed 1 -q > "$e2e/$name-$dev.log" 2>&1
    status=$?
    sync; t1=$(now)
    secs=$(echo "$t1 - $t0" | bc -l)
    same=""
    if [ "$status" != 0 ]; then
      same="merge failed: $(grep -m1 -E 'error' "$e2e/$name-$dev.log" | cut -c1-160)"
      [ "$dev" = cpu ] || e2e_status=1
    elif [ "$dev" != cpu ]; then
      same=yes
      for f in "$e2e/out-$name-cpu"/*.safetensors; do cmp -s "$f" "$out/$(basename "$f")" || same=no; done
      [ "$same" = yes ] || e2e_status=1
    fi
    printf '| %s | %s | %.2f | %.2f | %s |\n' "$name" "$dev" "$secs" "$(echo "$secs / $floor" | bc -l)" "$same" >> "$OUT/e2e.md"
  done
done
rm -rf "$e2e"/out-*
cat "$OUT/e2e.md" | tee -a "$log"

# 4. The PTX the device compiled (the newest target ILGPU supports), for the record.
say "== ptx [$(elapsed)]"
rm -rf "$e2e/ptx"
"${bench[@]}" ptx "$e2e/ptx" 2>&1 | tail -1 | tee -a "$log"
tar -C "$e2e" -czf "$OUT/ptx.tar.gz" ptx 2>/dev/null || true

say "== tests exit $test_status, bench exit $bench_status, end to end exit $e2e_status, $(elapsed) in all"
say "results: $OUT/gpu-bench.md, gpu-bench.csv, e2e.md, gpu-tests.log, ptx.tar.gz, gpu-run.log"
if [ "$test_status" = 1 ] || [ "$e2e_status" = 1 ]; then exit 1; fi
if [ "$bench_status" = 3 ]; then exit 3; fi
if [ "$test_status" != 0 ] || [ "$bench_status" != 0 ]; then exit 2; fi
exit 0

#!/usr/bin/env bash
# Builds, tests and benchmarks the CUDA backend on a GPU machine; results go to $OUT (see bench/gpu/README.md).
#
#   bench/gpu/run.sh pack   On a machine WITH the .NET SDK (the dev box): builds Release and stages what the GPU
#                           machine needs in artifacts/gpu-carry/ (a .NET runtime + the built bench and test
#                           assemblies, ~37 MB compressed). Carry that folder to the GPU machine.
#   bench/gpu/run.sh        On the GPU machine: with an SDK there, builds and runs `dotnet test` itself; without one
#                           (the usual case), unpacks artifacts/gpu-carry/ and runs the GPU tests through
#                           `Weld.Bench gpu-tests`. Then runs `Weld.Bench cuda-bench` (per-kernel GB/s vs a D2D copy).
#
# WELD_GPU_PREBUILT=1 uses artifacts/gpu-carry even where an SDK exists; WELD_BENCH_ELEMENTS sets the tensor size.
# Exit status: 0 all GPU tests passed and every kernel met its bandwidth target; 1 a test failed;
# 2 a target was missed or a GPU test was skipped (no device seen); 3 no usable CUDA device for the bench.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
carry=$repo/artifacts/gpu-carry
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

has_sdk() { command -v dotnet >/dev/null 2>&1 && [ -n "$(dotnet --list-sdks 2>/dev/null)" ]; }

if [ "${1:-}" = pack ]; then
  set -e
  has_sdk || { echo "pack needs the .NET SDK" >&2; exit 1; }
  build=$repo/artifacts/gpu-build
  for project in bench/Weld.Bench tests/Kernels.Tests tests/Engine.Tests tests/Cli.Tests; do
    dotnet build "$project" -c Release --artifacts-path "$build" -v q -nologo
  done
  rm -rf "$carry" && mkdir -p "$carry/stage/app"
  # One folder: the bench's output first (it owns Weld.Bench.deps.json), then the test assemblies' extra files.
  cp -r "$build/bin/Weld.Bench/release/." "$carry/stage/app/"
  cp -rn "$build/bin/Weld.Kernels.Tests/release/." "$build/bin/Weld.Engine.Tests/release/." "$build/bin/Weld.Cli.Tests/release/." "$carry/stage/app/"
  rm -rf "$carry/stage/app/arm64" "$carry/stage/app/x86"
  find "$carry/stage/app/runtimes" -mindepth 1 -maxdepth 1 ! -name linux-x64 ! -name unix -exec rm -rf {} +
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

# The GPU machine has no ../shared model zoo; the CUDA tests only need the example models.
export WELD_SHARED_MODELS=${WELD_SHARED_MODELS:-$repo/examples/models}
export CI=true  # the NVRTC compile tests must run, never skip
# The CUDA image keeps NVRTC/cuBLAS in the toolkit folder, which the loader cache may not list.
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  if [ -d "$dir" ]; then export LD_LIBRARY_PATH=$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
done

{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true; } 2>&1 | tee -a "$log"
ldconfig -p | grep -E 'libcuda\.so\.1|libnvrtc\.so|libcublas\.so' | tee -a "$log" || true

test_status=0
if [ -z "${WELD_GPU_PREBUILT:-}" ] && has_sdk; then
  say "== SDK found: building Release and running the GPU tests with dotnet test"
  dotnet build Engine.sln -c Release -v q -nologo 2>&1 | tail -3 | tee -a "$log"
  for project in tests/Kernels.Tests tests/Engine.Tests tests/Cli.Tests; do
    dotnet test "$project" -c Release --no-build --logger "console;verbosity=normal" \
      --filter "FullyQualifiedName~Cuda|FullyQualifiedName~Nvrtc|FullyQualifiedName~RandomizedSvdDevice" 2>&1 | tee -a "$log" | grep -E '^\s*(Passed|Failed|Skipped) |Passed!|Failed!'
    [ "${PIPESTATUS[0]}" = 0 ] || test_status=1
  done
  bench=(dotnet run -c Release --no-build --project bench/Weld.Bench --)
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
  say "== GPU tests (prebuilt, runtime $(ls "$work/dotnet/shared/Microsoft.NETCore.App"))"
  # The zoo models the GPU tests read (the prebuilt tests run outside the repository).
  export WELD_SHARED_MODELS=${WELD_SHARED_MODELS:-$repo/tests/zoo}
  dotnet "$work/app/Weld.Bench.dll" gpu-tests "$work/app/Weld.Kernels.Tests.dll" "$work/app/Weld.Engine.Tests.dll" "$work/app/Weld.Cli.Tests.dll" 2>&1 | tee -a "$log"
  test_status=${PIPESTATUS[0]}
  bench=(dotnet "$work/app/Weld.Bench.dll")
fi

say "== cuda-bench"
"${bench[@]}" cuda-bench "$OUT" "${WELD_BENCH_ELEMENTS:-67108864}" 2>&1 | tee -a "$log"
bench_status=${PIPESTATUS[0]}

say "== tests exit $test_status, bench exit $bench_status; results: $OUT/cuda-bench.md, $OUT/cuda-bench.csv, $log"
if [ "$test_status" = 1 ]; then exit 1; fi
if [ "$bench_status" = 3 ]; then exit 3; fi
if [ "$test_status" != 0 ] || [ "$bench_status" != 0 ]; then exit 2; fi
exit 0

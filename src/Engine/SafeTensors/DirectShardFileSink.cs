using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Weld.Engine.SafeTensors;

/// <summary>
/// Writes a shard with <c>O_DIRECT</c>: the device reads our buffers, nothing is copied into the page cache.
/// </summary>
/// <remarks>
/// A buffered write copies every output byte into freshly allocated page-cache pages; on virtual machines that
/// copy (and first touch of those pages) costs seconds per GB of CPU time — a third of a merge's CPU time on the
/// bench VM — and the pages must still be flushed at fsync. Direct I/O hands 4 MiB aligned blocks to the device
/// from a ring of <see cref="BlockCount"/>, so the next block is filled while up to three are in flight (a merge hands
/// the writer results in bursts: one block at a time left the merge waiting on the device); the file is written
/// sequentially from offset 0, the last block padded to the 4 KiB boundary and the file truncated to its true
/// length. Linux only; where <c>open(O_DIRECT)</c> is refused (tmpfs, some network file systems) the caller falls
/// back to <see cref="BufferedShardFileSink"/>.
/// </remarks>
internal sealed unsafe partial class DirectShardFileSink : ShardFileSink
{
    private const int BlockBytes = 4 << 20;

    /// <summary>
    /// Blocks in the ring: one being filled, the others in flight. On the bench VM's virtual disk two concurrent 4 MiB
    /// direct writes move a GB in 1.17 s where one at a time takes 1.42 s (dd, same disk, loaded machine).
    /// </summary>
    private const int BlockCount = 4;
    private const int Alignment = 4096;
    private const int HugePageBytes = 2 << 20;
    private const int AdviseHugePage = 14; // MADV_HUGEPAGE
    private const int OpenWriteOnly = 0x1, OpenCreate = 0x40, OpenTruncate = 0x200, OpenCloseOnExec = 0x80000;
    private const int OpenDirect = 0x4000; // x86-64 and arm64 differ: see DirectFlag

    private readonly SafeFileHandle _file;
    private readonly byte*[] _blocks = new byte*[BlockCount];
    private readonly Task[] _writes = new Task[BlockCount]; // the write of each block's last contents
    private int _current;       // block being filled
    private int _filled;        // bytes of it filled
    private long _fileOffset;   // where the block being filled goes
    private bool _closed;

    private DirectShardFileSink(SafeFileHandle file)
    {
        _file = file;
        for (int i = 0; i < BlockCount; i++)
        {
            _blocks[i] = AllocateBlock();
            _writes[i] = Task.CompletedTask;
        }
    }

    /// <summary>
    /// A 4 MiB block on two transparent huge pages where the kernel gives them: every direct write pins the block's
    /// pages for the device (get_user_pages), 2 pins instead of 1,024 — that pinning was 3 % of a linear merge's CPU
    /// time. Four blocks per shard writer, so the slow first touch of fresh huge pages on the VM (see
    /// NativeFloatBuffer) costs milliseconds.
    /// </summary>
    private static byte* AllocateBlock()
    {
        var block = (byte*)NativeMemory.AlignedAlloc(BlockBytes, HugePageBytes);
        try
        {
            _ = Madvise((nint)block, BlockBytes, AdviseHugePage); // advice only: 4 KiB pages work too
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
        return block;
    }

    /// <summary>Opens <paramref name="path"/> with <c>O_DIRECT</c>, or returns null where that is not possible.</summary>
    public static DirectShardFileSink? TryCreate(string path)
    {
        if (!OperatingSystem.IsLinux() || DirectFlag == 0) return null;
        int fd;
        try
        {
            fd = Open(path, OpenWriteOnly | OpenCreate | OpenTruncate | OpenCloseOnExec | DirectFlag, 420 /* 0644 */);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
        if (fd < 0)
        {
            // The file system does not do direct I/O: the buffered sink will report any other problem (permissions,
            // missing folder) with .NET's own message.
            return null;
        }
        return new DirectShardFileSink(new SafeFileHandle(fd, ownsHandle: true));
    }

    private static int DirectFlag => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 or Architecture.X86 => OpenDirect,
        Architecture.Arm64 or Architecture.Arm => 0x10000,
        _ => 0,
    };

    public override Span<byte> GetSpan(int sizeHint = 0)
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        if (_filled == BlockBytes) Flush();
        return new Span<byte>(_blocks[_current] + _filled, BlockBytes - _filled);
    }

    /// <summary>Hashes the bytes just written (while they are in cache) and moves past them.</summary>
    public override void Advance(int count)
    {
        if ((uint)count > (uint)(BlockBytes - _filled)) throw new ArgumentOutOfRangeException(nameof(count));
        Hash.Append(new ReadOnlySpan<byte>(_blocks[_current] + _filled, count));
        _filled += count;
        if (_filled == BlockBytes) Flush();
    }

    /// <summary>
    /// Sends the full block (already hashed, piece by piece in <see cref="Advance"/>) to the device in the background
    /// and moves to the next block of the ring once that one's previous write is done.
    /// </summary>
    private void Flush()
    {
        byte* block = _blocks[_current];
        long offset = _fileOffset;
        _writes[_current] = Task.Run(() => WriteBlock(block, BlockBytes, offset));
        _fileOffset += BlockBytes;
        _current = (_current + 1) % BlockCount;
        _filled = 0;
        _writes[_current].GetAwaiter().GetResult(); // the next block must be free before we fill it
    }

    private void WriteBlock(byte* block, int length, long offset) =>
        RandomAccess.Write(_file, new ReadOnlySpan<byte>(block, length), offset);

    public override void Complete()
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        foreach (Task write in _writes) write.GetAwaiter().GetResult();
        long length = _fileOffset + _filled;
        Checksum = Hash.GetTextAndReset();
        if (_filled > 0)
        {
            // Direct I/O moves whole sectors: pad the tail with zeros, then cut the file back to its true length.
            int padded = (_filled + Alignment - 1) & ~(Alignment - 1);
            new Span<byte>(_blocks[_current] + _filled, padded - _filled).Clear();
            WriteBlock(_blocks[_current], padded, _fileOffset);
        }
        RandomAccess.SetLength(_file, length);
        if (Fsync(_file) != 0)
            throw new IOException($"fsync failed (errno {Marshal.GetLastPInvokeError()})");
        Dispose();
    }

    public override void Dispose()
    {
        if (_closed) return;
        _closed = true;
        foreach (Task write in _writes)
        {
            try
            {
                write.Wait(); // the device may still be reading a block: never free it under the write
            }
            catch (AggregateException)
            {
                // Abandoning the file anyway; the error that made us abandon it is the one reported.
            }
        }
        _file.Dispose();
        foreach (byte* block in _blocks) NativeMemory.AlignedFree(block);
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(nint address, nuint length, int advice);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(SafeFileHandle file);
}
